//! Flow records as ECS JSON lines.
//!
//! Field names follow the Elastic Common Schema: the client is `source`, the
//! server `destination`; `network.community_id` is Community ID v1 with seed
//! 0; sensor-specific facts (TCP state and flags per direction) live under
//! `nbad.*`. Times are RFC 3339 UTC with microseconds; `event.duration` is in
//! nanoseconds as ECS defines it.

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::flow::community_id::community_id_v1;
use crate::flow::record::{FlowRecord, tcp_state};

/// Bytes of encoded lines collected before one write to the output.
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes flow records as JSON lines. Lines are encoded into one reusable
/// buffer and written in large chunks.
pub struct FlowJsonWriter {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    observer: String,
}

impl std::fmt::Debug for FlowJsonWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowJsonWriter").field("observer", &self.observer).finish_non_exhaustive()
    }
}

impl FlowJsonWriter {
    /// A writer to `out`, naming the sensor `observer` in every record.
    pub fn new(out: Box<dyn Write + Send>, observer: &str) -> Self {
        Self { out, buf: Vec::with_capacity(WRITE_CHUNK + 4096), observer: observer.to_owned() }
    }

    /// Writes one record as a line.
    pub fn write(&mut self, record: &FlowRecord) -> io::Result<()> {
        serde_json::to_writer(&mut self.buf, &ecs(record, &self.observer))?;
        self.buf.push(b'\n');
        if self.buf.len() >= WRITE_CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out buffered lines.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

/// One record's ECS document (no newline) and its Community ID, for outputs that frame
/// records themselves (the Kafka flow output: one message per record, keyed by Community ID).
pub(crate) fn ecs_document(record: &FlowRecord, observer: &str) -> serde_json::Result<(Vec<u8>, String)> {
    let doc = ecs(record, observer);
    let json = serde_json::to_vec(&doc)?;
    Ok((json, doc.network.community_id))
}

/// A timestamp in ns since the epoch, serialised as RFC 3339.
#[derive(Debug, Clone, Copy)]
struct Ts(u64);

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = UNIX_EPOCH + Duration::from_nanos(self.0);
        s.collect_str(&humantime::format_rfc3339_micros(t))
    }
}

#[derive(Serialize)]
struct Ecs<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Ts,
    event: Event,
    source: Endpoint,
    destination: Endpoint,
    network: Network,
    observer: Observer<'a>,
    nbad: Nbad,
}

#[derive(Serialize)]
struct Event {
    kind: &'static str,
    category: [&'static str; 1],
    #[serde(rename = "type")]
    kind_type: [&'static str; 2],
    action: &'static str,
    reason: &'static str,
    start: Ts,
    end: Ts,
    duration: u64,
}

#[derive(Serialize)]
struct Endpoint {
    ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    bytes: u64,
    packets: u64,
}

#[derive(Serialize)]
struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    iana_number: NumStr,
    #[serde(rename = "type")]
    net_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inner: Option<InnerVlan>,
    bytes: u64,
    packets: u64,
    community_id: String,
}

#[derive(Serialize)]
struct Vlan {
    id: NumStr,
}

/// A number written as a JSON string (ECS keywords such as `network.iana_number`).
#[derive(Debug, Clone, Copy)]
struct NumStr(u16);

impl Serialize for NumStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(itoa::Buffer::new().format(self.0))
    }
}

/// TCP flags written as an array of names, without allocating.
#[derive(Debug, Clone, Copy)]
struct Flags(u8);

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.0.count_ones() as usize))?;
        for (bit, name) in FLAG_NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                seq.serialize_element(name)?;
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct InnerVlan {
    vlan: Vlan,
}

#[derive(Serialize)]
struct Observer<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Nbad {
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<Tcp>,
}

#[derive(Serialize)]
struct Tcp {
    state: &'static str,
    handshake: bool,
    source_flags: Flags,
    destination_flags: Flags,
}

fn transport_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        132 => "sctp",
        136 => "udplite",
        _ => return None,
    })
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132 | 136)
}

const FLAG_NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

fn tcp_state_name(state: u8) -> &'static str {
    if state & tcp_state::RST != 0 {
        "reset"
    } else if state & tcp_state::FIN_CLIENT != 0 && state & tcp_state::FIN_SERVER != 0 {
        "closed"
    } else if state & (tcp_state::FIN_CLIENT | tcp_state::FIN_SERVER) != 0 {
        "closing"
    } else if state & tcp_state::ESTABLISHED != 0 {
        "established"
    } else if state & tcp_state::SYN_ACK != 0 {
        "syn_received"
    } else if state & tcp_state::SYN != 0 {
        "syn_sent"
    } else {
        "midstream"
    }
}

fn ecs<'a>(r: &FlowRecord, observer: &'a str) -> Ecs<'a> {
    let proto = r.key.proto;
    let ports = has_ports(proto);
    let (cip, cport) = r.client_endpoint();
    let (sip, sport) = r.server_endpoint();
    let vlan = |id: u16| (id != 0).then_some(Vlan { id: NumStr(id) });
    Ecs {
        timestamp: Ts(r.end_ns),
        event: Event {
            kind: "event",
            category: ["network"],
            kind_type: ["connection", if r.reason.is_interim() { "info" } else { "end" }],
            action: if r.reason.is_interim() { "flow_interim" } else { "flow_end" },
            reason: r.reason.name(),
            start: Ts(r.start_ns),
            end: Ts(r.end_ns),
            duration: r.end_ns - r.start_ns,
        },
        source: Endpoint {
            ip: cip,
            port: ports.then_some(cport),
            bytes: r.client.bytes,
            packets: r.client.packets,
        },
        destination: Endpoint {
            ip: sip,
            port: ports.then_some(sport),
            bytes: r.server.bytes,
            packets: r.server.packets,
        },
        network: Network {
            transport: transport_name(proto),
            iana_number: NumStr(u16::from(proto)),
            net_type: if cip.is_ipv4() { "ipv4" } else { "ipv6" },
            vlan: vlan(r.key.vlan_outer),
            inner: vlan(r.key.vlan_inner).map(|vlan| InnerVlan { vlan }),
            bytes: r.bytes(),
            packets: r.packets(),
            community_id: community_id_v1(0, cip, cport, sip, sport, proto),
        },
        observer: Observer { name: observer },
        nbad: Nbad {
            tcp: (proto == 6).then(|| Tcp {
                state: tcp_state_name(r.tcp_state),
                handshake: r.tcp_state & tcp_state::ESTABLISHED != 0,
                source_flags: Flags(r.client.tcp_flags),
                destination_flags: Flags(r.server.tcp_flags),
            }),
        },
    }
}
