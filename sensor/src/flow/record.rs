//! Flow records: what the table emits when a flow ends or a long flow
//! reaches its active timeout. Counters are deltas since the previous record
//! of the same flow (as IPFIX's octetDeltaCount), so summing every record of a
//! 5-tuple gives its totals.

use std::net::IpAddr;

use nbad_common::{FlowKey, IP_V4};

/// Why a record was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EndReason {
    /// No packet within the protocol's idle timeout.
    IdleTimeout,
    /// Still active after the active timeout: an interim record.
    ActiveTimeout,
    /// Both sides sent FIN, and the linger time passed.
    TcpClose,
    /// A side sent RST, and the linger time passed.
    TcpReset,
    /// Evicted to make room in a full table.
    Evicted,
    /// The replayed capture ended.
    EndOfCapture,
    /// The sensor shut down.
    Shutdown,
}

impl EndReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 7] = [
        Self::IdleTimeout,
        Self::ActiveTimeout,
        Self::TcpClose,
        Self::TcpReset,
        Self::Evicted,
        Self::EndOfCapture,
        Self::Shutdown,
    ];

    /// The reason as written in `event.reason` and in statistics.
    pub fn name(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle_timeout",
            Self::ActiveTimeout => "active_timeout",
            Self::TcpClose => "tcp_close",
            Self::TcpReset => "tcp_reset",
            Self::Evicted => "evicted",
            Self::EndOfCapture => "end_of_capture",
            Self::Shutdown => "shutdown",
        }
    }

    /// Whether the flow goes on after this record.
    pub fn is_interim(self) -> bool {
        self == Self::ActiveTimeout
    }
}

/// Counters of one direction of a flow within one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Packets sent.
    pub packets: u64,
    /// IP-layer bytes sent.
    pub bytes: u64,
    /// Union of the TCP flags sent.
    pub tcp_flags: u8,
    /// First packet, ns since the epoch (0 when no packet).
    pub first_ns: u64,
    /// Last packet, ns since the epoch (0 when no packet).
    pub last_ns: u64,
}

/// TCP state bits carried into records.
pub mod tcp_state {
    /// The client's SYN was seen.
    pub const SYN: u8 = 0x02;
    /// The server's SYN-ACK was seen.
    pub const SYN_ACK: u8 = 0x04;
    /// The three-way handshake completed.
    pub const ESTABLISHED: u8 = 0x08;
    /// The client sent FIN.
    pub const FIN_CLIENT: u8 = 0x10;
    /// The server sent FIN.
    pub const FIN_SERVER: u8 = 0x20;
    /// Either side sent RST.
    pub const RST: u8 = 0x40;
}

/// One flow record, oriented client → server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// The canonical key.
    pub key: FlowKey,
    /// Whether the client is the key's lower endpoint.
    pub client_is_lo: bool,
    /// Why the record was emitted.
    pub reason: EndReason,
    /// Earliest packet of this record, ns since the epoch.
    pub start_ns: u64,
    /// Latest packet of this record, ns since the epoch.
    pub end_ns: u64,
    /// Counters of the client's packets.
    pub client: DirectionCounters,
    /// Counters of the server's packets.
    pub server: DirectionCounters,
    /// [`tcp_state`] bits (0 for other protocols).
    pub tcp_state: u8,
    /// Whether an earlier (interim) record of the same flow was emitted: this
    /// record continues a flow that started before `start_ns`.
    pub continued: bool,
}

impl FlowRecord {
    /// The client's address and port.
    pub fn client_endpoint(&self) -> (IpAddr, u16) {
        if self.client_is_lo { self.lo() } else { self.hi() }
    }

    /// The server's address and port.
    pub fn server_endpoint(&self) -> (IpAddr, u16) {
        if self.client_is_lo { self.hi() } else { self.lo() }
    }

    fn lo(&self) -> (IpAddr, u16) {
        (addr(&self.key, self.key.addr_lo), self.key.port_lo)
    }

    fn hi(&self) -> (IpAddr, u16) {
        (addr(&self.key, self.key.addr_hi), self.key.port_hi)
    }

    /// Packets in both directions.
    pub fn packets(&self) -> u64 {
        self.client.packets + self.server.packets
    }

    /// IP-layer bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.client.bytes + self.server.bytes
    }
}

/// One of a key's addresses as an `IpAddr` (IPv4 unmapped for IPv4 keys).
pub fn addr_of(key: &FlowKey, bytes: [u8; 16]) -> IpAddr {
    addr(key, bytes)
}

fn addr(key: &FlowKey, bytes: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(bytes);
    if key.ip_version == IP_V4 {
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    } else {
        IpAddr::V6(v6)
    }
}

/// Where a flow table puts the records it emits: a vector in tests, the
/// worker's bounded, chunked channel to the output stage in the pipeline.
pub trait RecordSink {
    /// Takes one record.
    fn emit(&mut self, record: FlowRecord);
}

impl RecordSink for Vec<FlowRecord> {
    fn emit(&mut self, record: FlowRecord) {
        self.push(record);
    }
}
