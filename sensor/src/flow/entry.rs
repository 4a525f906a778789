//! One flow's state in the table: per-direction counters of the current
//! segment, TCP state, and which side is the client. 96 bytes, `Copy`.

use nbad_common::FlowKey;

use crate::decode::PacketMeta;
use crate::flow::record::{DirectionCounters, EndReason, FlowRecord, tcp_state};

/// IANA number of TCP.
pub(super) const TCP: u8 = 6;

pub(super) use crate::decode::tcp_flags::{ACK as TCP_ACK, FIN as TCP_FIN, RST as TCP_RST, SYN as TCP_SYN};

/// Entry state bit: the slot holds a flow.
pub(super) const LIVE: u8 = 0x01;
/// Entry state bit: the client is the key's higher endpoint.
pub(super) const CLIENT_HI: u8 = 0x80;
/// The bits of an entry's state that are TCP state ([`tcp_state`]).
const TCP_BITS: u8 = 0x7e;

/// One flow. Per-direction times are microsecond offsets from `seg_start`,
/// the start of the current record's segment; index 0 is the key's lower
/// endpoint, 1 the higher.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlowEntry {
    pub(super) seg_start: u64,
    /// Per-segment byte counts; a segment that would overflow one is closed
    /// with an interim record first (4 GiB in one direction within one
    /// active timeout), which keeps the entry small.
    pub(super) bytes: [u32; 2],
    pub(super) packets: [u32; 2],
    pub(super) first_us: [u32; 2],
    pub(super) last_us: [u32; 2],
    pub(super) key: FlowKey,
    /// The wheel second this flow is filed under.
    pub(super) filed: u32,
    pub(super) tcp_flags: [u8; 2],
    pub(super) state: u8,
    /// Records already emitted for this flow (interim records), saturating.
    pub(super) segments: u16,
}

const _: () = assert!(size_of::<FlowEntry>() <= 96);

impl FlowEntry {
    /// Whether the other side answered: a completed TCP handshake, or packets both ways.
    pub(super) fn answered(&self) -> bool {
        if self.key.proto == TCP {
            self.state & tcp_state::ESTABLISHED != 0
        } else {
            self.packets[0] > 0 && self.packets[1] > 0
        }
    }

    pub(super) fn new(m: &PacketMeta) -> Self {
        let sender_hi = !m.from_lo;
        let syn_ack = m.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK;
        // The client sent the SYN; a flow first seen at its SYN-ACK has the
        // receiver as client; otherwise the first packet's sender. (An
        // aggregate's flags are a union, so only a single packet's SYN-ACK
        // says who the server is.)
        let client_hi = if m.key.proto == TCP && syn_ack && m.packets == 1 { !sender_hi } else { sender_hi };
        Self {
            seg_start: m.first_ns(),
            bytes: [0; 2],
            packets: [0; 2],
            first_us: [0; 2],
            last_us: [0; 2],
            key: m.key,
            filed: 0,
            tcp_flags: [0; 2],
            state: LIVE | if client_hi { CLIENT_HI } else { 0 },
            segments: 0,
        }
    }

    pub(super) fn live(&self) -> bool {
        self.state & LIVE != 0
    }

    pub(super) fn client_dir(&self) -> usize {
        usize::from(self.state & CLIENT_HI != 0)
    }

    pub(super) fn closing(&self) -> bool {
        let s = self.state;
        s & tcp_state::RST != 0
            || s & (tcp_state::FIN_CLIENT | tcp_state::FIN_SERVER)
                == tcp_state::FIN_CLIENT | tcp_state::FIN_SERVER
    }

    pub(super) fn last_ns(&self) -> u64 {
        let last = (0..2).filter(|&d| self.packets[d] > 0).map(|d| self.last_us[d]).max();
        self.seg_start + u64::from(last.unwrap_or(0)) * 1_000
    }

    /// Bytes of the current segment, both directions.
    pub(super) fn segment_bytes(&self) -> u32 {
        self.bytes[0].saturating_add(self.bytes[1])
    }

    pub(super) fn has_packets(&self) -> bool {
        self.packets[0] > 0 || self.packets[1] > 0
    }

    /// Accounts one packet; returns whether the flow just started closing.
    pub(super) fn update(&mut self, m: &PacketMeta) -> bool {
        let d = usize::from(!m.from_lo);
        let offset = |ts: u64| u32::try_from(ts.saturating_sub(self.seg_start) / 1_000).unwrap_or(u32::MAX);
        if self.packets[d] == 0 {
            self.first_us[d] = offset(m.first_ns());
        }
        self.last_us[d] = self.last_us[d].max(offset(m.ts_ns));
        self.packets[d] += m.packets;
        self.bytes[d] += m.ip_len;
        self.tcp_flags[d] |= m.tcp_flags;
        if self.key.proto != TCP {
            return false;
        }
        let was_closing = self.closing();
        let from_client = d == self.client_dir();
        let f = m.tcp_flags;
        // SYN from the client is its SYN, SYN from the server its SYN-ACK;
        // read this way, the union of an aggregate's flags tells the same
        // story as its packets one by one.
        if f & TCP_SYN != 0 {
            self.state |= if from_client { tcp_state::SYN } else { tcp_state::SYN_ACK };
        }
        // Established once SYN and SYN-ACK are seen and the client has sent
        // an ACK; checked on every update, so an aggregate whose client ACK
        // came in before the server's SYN-ACK was accounted still counts.
        if self.tcp_flags[self.client_dir()] & TCP_ACK != 0
            && self.state & (tcp_state::SYN | tcp_state::SYN_ACK) == tcp_state::SYN | tcp_state::SYN_ACK
        {
            self.state |= tcp_state::ESTABLISHED;
        }
        if f & TCP_FIN != 0 {
            self.state |= if from_client { tcp_state::FIN_CLIENT } else { tcp_state::FIN_SERVER };
        }
        if f & TCP_RST != 0 {
            self.state |= tcp_state::RST;
        }
        !was_closing && self.closing()
    }

    /// Whether accounting `m` would overflow a per-segment counter.
    pub(super) fn would_overflow(&self, m: &PacketMeta) -> bool {
        let d = usize::from(!m.from_lo);
        self.packets[d].checked_add(m.packets).is_none() || self.bytes[d].checked_add(m.ip_len).is_none()
    }

    /// A new connection on a closing TCP flow's 5-tuple (port reuse).
    pub(super) fn is_reuse(&self, m: &PacketMeta) -> bool {
        self.key.proto == TCP && self.closing() && m.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    pub(super) fn record(&self, reason: EndReason) -> FlowRecord {
        let dir = |d: usize| {
            let has = self.packets[d] > 0;
            let at = |us: u32| if has { self.seg_start + u64::from(us) * 1_000 } else { 0 };
            DirectionCounters {
                packets: u64::from(self.packets[d]),
                bytes: u64::from(self.bytes[d]),
                tcp_flags: self.tcp_flags[d],
                first_ns: at(self.first_us[d]),
                last_ns: at(self.last_us[d]),
            }
        };
        let c = self.client_dir();
        let (client, server) = (dir(c), dir(1 - c));
        let start = [client, server]
            .iter()
            .filter(|d| d.packets > 0)
            .map(|d| d.first_ns)
            .min()
            .unwrap_or(self.seg_start);
        FlowRecord {
            key: self.key,
            client_is_lo: c == 0,
            reason,
            start_ns: start,
            end_ns: self.last_ns().max(start),
            client,
            server,
            tcp_state: self.state & TCP_BITS,
            continued: self.segments > 0,
        }
    }

    /// Starts a new segment at `start_ns` after an interim record.
    pub(super) fn reset_segment(&mut self, start_ns: u64) {
        self.seg_start = start_ns;
        self.segments = self.segments.saturating_add(1);
        self.bytes = [0; 2];
        self.packets = [0; 2];
        self.first_us = [0; 2];
        self.last_us = [0; 2];
        self.tcp_flags = [0; 2];
    }
}

pub(super) fn close_reason(e: &FlowEntry) -> EndReason {
    if e.state & tcp_state::RST != 0 { EndReason::TcpReset } else { EndReason::TcpClose }
}
