//! Observations: the per-packet facts detectors need that flow records do not
//! carry, taken in the capture thread while the frame is still at hand.
//!
//! - the application protocol of each flow direction, from its first payload
//!   ([`crate::protocol::identify`]), when it breaks a port rule of
//!   [`protocol_mismatch`] (the rest would only be dropped there);
//! - every DNS message on port 53 (name, type, response code, size);
//! - every ICMP echo request and reply (payload size);
//! - every malformed frame whose sender is known, and TCP flag combinations no
//!   stack sends (NULL, XMAS, SYN+FIN, SYN+RST): evasive packets;
//! - every ICMP or ICMPv6 destination unreachable, with the protocol,
//!   destination and port of the packet it quotes (what the scan detector
//!   counts as a refused probe);
//! - every broadcast ARP request (who asked for which address), from the
//!   frames the decoder returns as not IP (what the scan detector counts
//!   sweeps with). Only frames read whole see ARP: the XDP path passes non-IP
//!   frames to the kernel without a sample.
//!
//! Cost on the hot path: a packet with neither payload nor anything above to
//! report costs a few compares. "First payload of a direction" is remembered
//! in a two-way set-associative table of flow-hash tags ([`SEEN_SLOTS`] × 8
//! bytes, both ways in one cache line): a collision only makes a direction be
//! identified twice, never missed, so no per-flow state has to be freed. Observations are batched and sent with the
//! capture clock whenever a batch fills or the clock enters a new second,
//! which is also when the dispatcher sends every worker its batch; the
//! analysis stage orders its inputs by those clocks (see
//! [`crate::pipeline`]).

use std::net::IpAddr;

use crate::decode::{L4Span, Malformed, PacketMeta};
use crate::detect::protocol_mismatch;
use crate::flow::record::addr_of;
use crate::protocol::{self, App, DnsInfo, Protocol, Transport};

/// Slots of the first-payload table (a power of two): 2 MiB, two-way.
pub const SEEN_SLOTS: usize = 1 << 18;
/// Shortest payload identified: TCP keep-alives carry one byte, and no
/// protocol the identifier knows starts with fewer than eight.
pub const MIN_IDENTIFY_LEN: usize = 8;
/// Observations per batch sent to the analysis stage.
pub const BATCH: usize = 512;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const DNS_PORT: u16 = 53;

/// What one observation says.
#[derive(Debug, Clone, PartialEq)]
pub enum ObsKind {
    /// The first payload of a flow direction, identified (`Unknown` included).
    App(Protocol),
    /// A DNS message on port 53.
    Dns(DnsObs),
    /// An ICMP or ICMPv6 echo request or reply.
    IcmpEcho {
        /// True for a reply.
        reply: bool,
        /// Bytes after the 8-byte echo header, as captured.
        payload_len: u16,
    },
    /// A frame the decoder refused, from a known sender.
    Malformed(Malformed),
    /// A TCP packet with flags no stack sends; the name of the combination.
    Evasive(&'static str),
    /// A destination unreachable (`src` sent it to `dst`, the sender of the
    /// packet it quotes), with what the quoted header says.
    Unreachable {
        /// The quoted packet's IANA protocol.
        orig_proto: u8,
        /// The quoted packet's destination.
        orig_dst: IpAddr,
        /// The quoted packet's destination port (ICMP: its type; 0 when none).
        orig_dport: u16,
    },
    /// A broadcast ARP request: `src` asked who has `dst`.
    ArpRequest,
}

/// One DNS message's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsObs {
    /// A query (true) or a response.
    pub query: bool,
    /// The first question's name, if whole.
    pub qname: Option<String>,
    /// The first question's type.
    pub qtype: Option<u16>,
    /// The response code (0 for queries).
    pub rcode: u8,
    /// Answer records (responses).
    pub answers: u16,
    /// The message's size in bytes.
    pub size: u16,
    /// Carried over TCP.
    pub tcp: bool,
    /// A and AAAA answers of a response (at most [`dns_answers::MAX_ADDRS`]).
    pub addrs: Vec<IpAddr>,
}

/// One observation: who sent what to whom, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Capture time, ns since the epoch.
    pub ts_ns: u64,
    /// The sender.
    pub src: IpAddr,
    /// The receiver (the sender again for a malformed frame whose receiver is unknown).
    pub dst: IpAddr,
    /// Sender's port (ICMP: type equivalent).
    pub sport: u16,
    /// Receiver's port (ICMP: code equivalent).
    pub dport: u16,
    /// IANA transport number.
    pub proto: u8,
    /// What was seen.
    pub kind: ObsKind,
}

/// Counters of the observer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObserveCounters {
    /// Flow directions whose first payload was identified.
    pub identified: u64,
    /// DNS messages observed.
    pub dns: u64,
    /// ICMP echo packets observed.
    pub icmp_echo: u64,
    /// Malformed frames attributed to a sender.
    pub malformed: u64,
    /// Evasive TCP packets.
    pub evasive: u64,
    /// ICMP and ICMPv6 destination unreachables observed.
    pub unreachable: u64,
    /// Broadcast ARP requests observed.
    pub arp_requests: u64,
}

/// Takes observations from decoded frames and batches them.
#[derive(Debug)]
pub struct Observer {
    seen: Vec<u64>,
    batch: Vec<Observation>,
    sec: u64,
    /// What has been observed.
    pub counters: ObserveCounters,
}

impl Default for Observer {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer {
    /// An observer with an empty first-payload table.
    #[must_use]
    pub fn new() -> Self {
        Self {
            seen: vec![0; SEEN_SLOTS],
            batch: Vec::with_capacity(BATCH),
            sec: 0,
            counters: ObserveCounters::default(),
        }
    }

    /// Looks at one decoded packet; `meta.hash` must be set. Returns whether a
    /// batch is ready to be taken.
    #[inline]
    pub fn packet(&mut self, meta: &PacketMeta, l4: Option<L4Span>, frame: &[u8]) -> bool {
        let proto = meta.key.proto;
        let Some(span) = l4 else { return false };
        match proto {
            TCP | UDP => {
                if proto == TCP && meta.packets == 1 {
                    self.tcp_flags(meta);
                }
                let payload = span.payload(frame);
                if payload.is_empty() {
                    return self.batch.len() >= BATCH;
                }
                let (sport, dport) = ports(meta);
                let transport = if proto == TCP { Transport::Tcp } else { Transport::Udp };
                let dns = sport == DNS_PORT || dport == DNS_PORT;
                if dns && self.dns(meta, transport, payload) {
                    // DNS on 53 breaks no port rule: nothing more to learn.
                    return self.batch.len() >= BATCH;
                }
                // Most payloads are neither a first payload nor able to start
                // one that breaks a port rule: those skip the table. On TCP
                // 443 every payload the client sends goes through it, so that
                // a TLS flow's direction is marked at its first record and its
                // later segments (which start anywhere) are not taken for a
                // first payload of something else. What a server on 443 sends
                // is never looked at: every 443 rule is decided by the client's
                // side (its ClientHello, SSH banner or HTTP request), and the
                // server's side is most of an HTTPS flow's packets.
                if proto == TCP && sport == 443 {
                    return self.batch.len() >= BATCH;
                }
                let tls_port = proto == TCP && dport == 443;
                // A TCP keep-alive's single byte (or any payload this short)
                // says nothing about the protocol.
                if payload.len() < MIN_IDENTIFY_LEN
                    || (!tls_port && !may_break_a_rule(proto, sport, dport, payload))
                {
                    return self.batch.len() >= BATCH;
                }
                let dir = u64::from(meta.from_lo);
                let tag = (meta.hash & !1) | dir | 0x8000_0000_0000_0000;
                // The set depends on the direction too, so a flow's two
                // directions do not evict each other.
                let set = ((meta.hash ^ dir.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 40) as usize
                    & (SEEN_SLOTS - 1)
                    & !1;
                let seen = self.seen[set] == tag || self.seen[set + 1] == tag;
                if !seen {
                    // The newer tag goes first; the older one moves to the second way.
                    self.seen[set + 1] = self.seen[set];
                    self.seen[set] = tag;
                    if tls_port && matches!(payload[0], 0x14..=0x17) {
                        // A TLS record on 443 breaks no rule.
                        return self.batch.len() >= BATCH;
                    }
                    self.counters.identified += 1;
                    let found = protocol::identify(transport, payload);
                    // Only what can break a port rule crosses to the analysis
                    // stage (TLS on 443 and HTTP on 80 are most of the traffic).
                    let (src, dst) = endpoints(meta);
                    if protocol_mismatch::rule_for(src, dst, proto, &found, true).is_some() {
                        self.push(meta, ObsKind::App(found));
                    }
                }
            }
            ICMP | ICMPV6 => {
                let header = span.header(frame);
                let echo = match (proto, header.first()) {
                    (ICMP, Some(8)) | (ICMPV6, Some(128)) => Some(false),
                    (ICMP, Some(0)) | (ICMPV6, Some(129)) => Some(true),
                    _ => None,
                };
                if let Some(reply) = echo {
                    self.counters.icmp_echo += 1;
                    let payload_len = u16::try_from(span.payload(frame).len()).unwrap_or(u16::MAX);
                    self.push(meta, ObsKind::IcmpEcho { reply, payload_len });
                } else if let Some(kind) = unreachable(proto, header) {
                    self.counters.unreachable += 1;
                    self.push(meta, kind);
                }
            }
            _ => {}
        }
        self.batch.len() >= BATCH
    }

    /// Records a malformed frame from `src` (when its IP header was readable).
    pub fn malformed(&mut self, src: Option<[u8; 16]>, reason: Malformed, ts_ns: u64) -> bool {
        if let Some(src) = src {
            self.counters.malformed += 1;
            let src = mapped(src);
            self.batch.push(Observation {
                ts_ns,
                src,
                dst: src,
                sport: 0,
                dport: 0,
                proto: 0,
                kind: ObsKind::Malformed(reason),
            });
        }
        self.batch.len() >= BATCH
    }

    /// Looks at a frame the decoder found not to be IP: a broadcast ARP
    /// request is reported (gratuitous ARP and probes from 0.0.0.0 are not).
    /// Returns whether a batch is ready to be taken.
    pub fn not_ip(&mut self, link: crate::capture::LinkType, frame: &[u8], ts_ns: u64) -> bool {
        if let Some(arp) = crate::decode::link::arp_request(link, frame)
            && arp.broadcast
            && arp.sender != arp.target
            && arp.sender != [0; 4]
        {
            self.counters.arp_requests += 1;
            self.batch.push(Observation {
                ts_ns,
                src: IpAddr::V4(arp.sender.into()),
                dst: IpAddr::V4(arp.target.into()),
                sport: 0,
                dport: 0,
                proto: 0,
                kind: ObsKind::ArpRequest,
            });
        }
        self.batch.len() >= BATCH
    }

    /// Whether the clock entered a new second since the last batch was taken
    /// (the analysis stage then learns the capture's progress).
    #[inline]
    pub fn new_second(&self, now_ns: u64) -> bool {
        now_ns / 1_000_000_000 != self.sec
    }

    /// Takes the batch (possibly empty) and notes the second it was taken in.
    pub fn take(&mut self, now_ns: u64) -> Vec<Observation> {
        self.sec = now_ns / 1_000_000_000;
        std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH))
    }

    fn tcp_flags(&mut self, meta: &PacketMeta) {
        use crate::decode::tcp_flags::{FIN, PSH, RST, SYN, URG};
        let f = meta.tcp_flags;
        let what = if f == 0 {
            "null_scan"
        } else if f & (FIN | PSH | URG) == FIN | PSH | URG && f & SYN == 0 {
            "xmas_scan"
        } else if f & (SYN | FIN) == SYN | FIN {
            "syn_fin"
        } else if f & (SYN | RST) == SYN | RST {
            "syn_rst"
        } else {
            return;
        };
        self.counters.evasive += 1;
        self.push(meta, ObsKind::Evasive(what));
    }

    /// Reports a DNS message; false when the payload is not DNS.
    fn dns(&mut self, meta: &PacketMeta, transport: Transport, payload: &[u8]) -> bool {
        let Protocol { app: App::Dns(DnsInfo { query, qname, qtype, .. }), .. } =
            protocol::identify(transport, payload)
        else {
            return false;
        };
        let qname = qname.map(String::from);
        let msg = if transport == Transport::Tcp { payload.get(2..).unwrap_or(&[]) } else { payload };
        let rcode = msg.get(3).map_or(0, |b| b & 0x0f);
        let answers = msg.get(6..8).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let size = u16::try_from(msg.len()).unwrap_or(u16::MAX);
        self.counters.dns += 1;
        let tcp = transport == Transport::Tcp;
        let addrs = if query || answers == 0 { Vec::new() } else { dns_answers::addresses(msg) };
        self.push(meta, ObsKind::Dns(DnsObs { query, qname, qtype, rcode, answers, size, tcp, addrs }));
        true
    }

    fn push(&mut self, meta: &PacketMeta, kind: ObsKind) {
        let ((src, sport), (dst, dport)) = endpoints(meta);
        self.batch.push(Observation {
            ts_ns: meta.ts_ns,
            src,
            dst,
            sport,
            dport,
            proto: meta.key.proto,
            kind,
        });
    }
}

/// Whether `payload` could be a first payload that breaks a port rule of
/// [`protocol_mismatch`] (off TCP 443): on 53 anything that is not DNS (the
/// caller has tried DNS), elsewhere only bytes that can start a protocol the
/// identifier knows (a TLS record, an ASCII banner, command, request or
/// reply, a QUIC long header). Mid-stream segments mostly fail this test at
/// their first byte.
#[inline]
fn may_break_a_rule(proto: u8, sport: u16, dport: u16, payload: &[u8]) -> bool {
    let Some(&b) = payload.first() else { return false };
    if sport == DNS_PORT || dport == DNS_PORT {
        return true;
    }
    if proto == UDP {
        return b & 0x80 != 0 || b.is_ascii_uppercase();
    }
    matches!(b, 0x14..=0x17) || b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// A destination unreachable's facts from its ICMP header and the IP header
/// it quotes (ICMP type 3 but not code 4, "fragmentation needed", which
/// answers a packet too big rather than refusing it; ICMPv6 type 1). The
/// quoted header is read with every length checked; `None` when cut short.
fn unreachable(proto: u8, icmp: &[u8]) -> Option<ObsKind> {
    let (&ty, &code) = (icmp.first()?, icmp.get(1)?);
    let quoted = icmp.get(8..)?;
    let (orig_proto, orig_dst, l4) = match (proto, ty, code) {
        (ICMP, 3, c) if c != 4 => {
            let ihl = usize::from(quoted.first()? & 0x0f) * 4;
            let dst: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
            (*quoted.get(9)?, IpAddr::V4(dst.into()), quoted.get(ihl.max(20)..).unwrap_or(&[]))
        }
        (ICMPV6, 1, _) => {
            let dst: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
            (*quoted.get(6)?, IpAddr::V6(dst.into()), quoted.get(40..).unwrap_or(&[]))
        }
        _ => return None,
    };
    let orig_dport = match orig_proto {
        TCP | UDP | 132 => l4.get(2..4).map_or(0, |p| u16::from_be_bytes([p[0], p[1]])),
        ICMP | ICMPV6 => l4.first().map_or(0, |t| u16::from(*t)),
        _ => 0,
    };
    Some(ObsKind::Unreachable { orig_proto, orig_dst, orig_dport })
}

/// The sender's and the receiver's address and port.
fn endpoints(meta: &PacketMeta) -> ((IpAddr, u16), (IpAddr, u16)) {
    let (src, dst) = if meta.from_lo {
        (meta.key.addr_lo, meta.key.addr_hi)
    } else {
        (meta.key.addr_hi, meta.key.addr_lo)
    };
    let (sport, dport) = ports(meta);
    ((addr_of(&meta.key, src), sport), (addr_of(&meta.key, dst), dport))
}

/// The sender's and the receiver's port.
fn ports(meta: &PacketMeta) -> (u16, u16) {
    if meta.from_lo { (meta.key.port_lo, meta.key.port_hi) } else { (meta.key.port_hi, meta.key.port_lo) }
}

/// An address as the decoder stores it (IPv4 mapped into IPv6) as an `IpAddr`.
fn mapped(bytes: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(bytes);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

pub mod dns_answers;

#[cfg(test)]
mod tests;
