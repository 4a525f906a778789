//! Observations: the per-packet facts detectors need that flow records do not
//! carry, taken in the capture thread while the frame is still at hand.
//!
//! - the application protocol of each flow direction, from its first payload
//!   ([`crate::protocol::identify`]): every identified direction, with the
//!   entropy of an HTTP request's body where one follows its headers, and an
//!   unidentified one where a port rule expects a protocol the identifier
//!   knows. TCP directions are identified only when their opening was seen
//!   ([`first_payload`]): a flow met in mid-stream is never judged from a
//!   segment in its middle;
//! - a TLS server's first flight (ServerHello, and for TLS 1.2 and earlier the
//!   leaf certificate), joined across segments ([`flight`]);
//! - bursts inside flows: a payload after a second of silence in its direction
//!   ([`bursts`]), for beacons that call home inside one connection;
//! - every DNS message on port 53 (name, type, response code, size, and the A
//!   and AAAA answers of responses);
//! - every ICMP echo request and reply (payload size);
//! - every malformed frame whose sender is known, and TCP flag combinations no
//!   stack sends (NULL, XMAS, SYN+FIN, SYN+RST): evasive packets;
//! - every ICMP or ICMPv6 destination unreachable, with the protocol,
//!   destination and port of the packet it quotes (what the scan detector
//!   counts as a refused probe);
//! - every DHCP or BOOTP client message to port 67 from an Ethernet client
//!   (message type, client hardware address, relayed or not): what the flood
//!   detector counts DHCP floods and starvation with. Every message, not only a
//!   flow's first: a starvation tool repeats one 5-tuple thousands of times;
//! - every broadcast ARP request (who asked for which address), from the
//!   frames the decoder returns as not IP (what the scan detector counts
//!   sweeps with). Only frames read whole see ARP: the XDP path passes non-IP
//!   frames to the kernel without a sample.
//!
//! Cost on the hot path: a packet without payload costs a few compares; a
//! payload costs two table lookups (one cache line each) unless it is a first
//! payload, which is identified (tens of nanoseconds when it is nothing known,
//! about a microsecond for a whole TLS ClientHello with its JA4). Observations
//! are batched and sent with the capture clock whenever a batch fills or the
//! clock enters a new tick (a second in replays, 20 ms live: see
//! [`crate::pipeline::RunOptions::tick`]), which is also when the dispatcher sends every
//! worker its batch; the analysis stage orders its inputs by those clocks (see
//! [`crate::pipeline`]).

use std::net::IpAddr;

use crate::decode::{L4Span, Malformed, PacketMeta};
use crate::detect::protocol_mismatch;
use crate::flow::record::addr_of;
use crate::protocol::{self, App, DnsInfo, Protocol, ServerFlight, Transport};

pub mod bursts;
pub mod dns_answers;
pub mod first_payload;
pub mod flight;

/// Shortest payload identified: TCP keep-alives carry one byte or none; the
/// shortest opening the identifier knows (a SOCKS5 greeting) has three.
pub const MIN_IDENTIFY_LEN: usize = 3;
/// A TCP first payload this short that tells nothing (a stager's length prefix, a lone byte)
/// has its direction's next payload looked at too.
pub const SHORT_FIRST_LEN: usize = 8;
/// Bytes of an HTTP request body from which its entropy is measured.
pub const MIN_BODY_LEN: usize = 32;
/// Observations per batch sent to the analysis stage.
pub const BATCH: usize = 512;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const DNS_PORT: u16 = 53;
const DHCP_SERVER_PORT: u16 = 67;

/// What one observation says.
#[derive(Debug, Clone, PartialEq)]
pub enum ObsKind {
    /// The first payload of a flow direction, identified (`Unknown` included).
    App {
        /// What it carries.
        protocol: Protocol,
        /// For an HTTP request with a body after its headers in the same payload: the body's
        /// Shannon entropy in bits per byte (8 is random).
        body_entropy: Option<f32>,
        /// The payload (an HTTP response's body) starts a Windows executable (`MZ`, and
        /// `PE\0\0` where its header points).
        executable: bool,
        /// An HTTP POST or PUT whose headers filled the payload: its body comes next, as
        /// [`ObsKind::HttpBody`].
        body_follows: bool,
    },
    /// The unidentified first payload of a TCP flow direction that looks fully encrypted (see
    /// [`crate::protocol::encrypted`]), on ports no rule expects a known protocol on.
    Encrypted {
        /// Its length, bytes.
        len: u16,
    },
    /// The body of an HTTP request whose headers came alone ([`ObsKind::App`]'s `body_follows`).
    HttpBody {
        /// The body's Shannon entropy in bits per byte of the data it carries (see
        /// `body_entropy`), when it has at least [`MIN_BODY_LEN`] bytes.
        entropy: Option<f32>,
    },
    /// A TLS server's first flight (ServerHello, leaf certificate for TLS 1.2 and earlier).
    TlsServer(Box<ServerFlight>),
    /// A payload after at least a second of silence in its direction (a burst inside a flow).
    Burst {
        /// The payload's bytes.
        bytes: u32,
    },
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
    /// A DHCP or BOOTP client message to port 67.
    DhcpRequest(protocol::dhcp::ClientMessage),
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
    /// DHCP client messages observed.
    pub dhcp_requests: u64,
    /// TLS server flights not joined because [`flight::MAX_OPEN`] were open.
    pub flights_dropped: u64,
}

impl ObserveCounters {
    /// Adds `other` (another capture thread's observer) to these. Every field is named, so a
    /// counter added to the struct cannot be left out of the sum.
    pub fn add(&mut self, other: &Self) {
        let Self {
            identified,
            dns,
            icmp_echo,
            malformed,
            evasive,
            unreachable,
            arp_requests,
            dhcp_requests,
            flights_dropped,
        } = other;
        self.identified += identified;
        self.dns += dns;
        self.icmp_echo += icmp_echo;
        self.malformed += malformed;
        self.evasive += evasive;
        self.unreachable += unreachable;
        self.arp_requests += arp_requests;
        self.dhcp_requests += dhcp_requests;
        self.flights_dropped += flights_dropped;
    }
}

/// Takes observations from decoded frames and batches them.
#[derive(Debug)]
pub struct Observer {
    firsts: first_payload::FirstPayloads,
    bursts: bursts::Bursts,
    flights: flight::Flights,
    batch: Vec<Observation>,
    /// The tick the last batch was taken in, and the tick's length.
    tick: u64,
    tick_ns: u64,
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
            firsts: first_payload::FirstPayloads::new(),
            bursts: bursts::Bursts::new(),
            flights: flight::Flights::new(),
            batch: Vec::with_capacity(BATCH),
            tick: 0,
            tick_ns: 1_000_000_000,
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
                let tcp = proto == TCP;
                if tcp && meta.packets == 1 {
                    self.tcp_flags(meta);
                    if meta.tcp_flags & crate::decode::tcp_flags::SYN != 0 {
                        // A SYN opens the client's direction, a SYN-ACK the server's.
                        self.firsts.opening(meta.hash, meta.from_lo);
                    }
                }
                let payload = span.payload(frame);
                if payload.is_empty() {
                    return self.batch.len() >= BATCH;
                }
                let (sport, dport) = ports(meta);
                let transport = if tcp { Transport::Tcp } else { Transport::Udp };
                if (sport == DNS_PORT || dport == DNS_PORT) && self.dns(meta, transport, payload) {
                    return self.batch.len() >= BATCH;
                }
                if !tcp
                    && dport == DHCP_SERVER_PORT
                    && let Some(message) = protocol::dhcp::client_message(payload)
                {
                    self.counters.dhcp_requests += 1;
                    self.push(meta, ObsKind::DhcpRequest(message));
                }
                if self.bursts.payload(meta.hash, meta.from_lo, meta.ts_ns) {
                    let bytes = u32::try_from(payload.len()).unwrap_or(u32::MAX);
                    self.push(meta, ObsKind::Burst { bytes });
                }
                match self.firsts.payload(meta.hash, meta.from_lo, tcp) {
                    first_payload::First::Identify => {
                        let known = payload.len() >= MIN_IDENTIFY_LEN
                            && self.identify(meta, transport, sport, dport, payload);
                        if tcp && !known && payload.len() <= SHORT_FIRST_LEN {
                            self.firsts.again(meta.hash, meta.from_lo);
                        }
                    }
                    first_payload::First::Body => {
                        let entropy = entropy_of(payload);
                        self.push(meta, ObsKind::HttpBody { entropy });
                    }
                    first_payload::First::Skip => {
                        if tcp && let Some(flight) = self.flights.next(meta.hash, meta.from_lo, payload) {
                            self.push(meta, ObsKind::TlsServer(Box::new(flight)));
                        }
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

    /// The same observer, whose batches are due every `tick_ns` of capture time (a second
    /// by default).
    #[must_use]
    pub fn with_tick(mut self, tick_ns: u64) -> Self {
        self.tick_ns = tick_ns.max(1);
        self
    }

    /// What has been observed, the flights dropped for room included.
    #[must_use]
    pub fn counters(&self) -> ObserveCounters {
        ObserveCounters { flights_dropped: self.flights.dropped, ..self.counters }
    }

    /// Whether the clock entered a new tick since the last batch was taken
    /// (the analysis stage then learns the capture's progress).
    #[inline]
    pub fn new_tick(&self, now_ns: u64) -> bool {
        now_ns / self.tick_ns != self.tick
    }

    /// Takes the batch (possibly empty) and notes the tick it was taken in.
    pub fn take(&mut self, now_ns: u64) -> Vec<Observation> {
        self.tick = now_ns / self.tick_ns;
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

    /// Identifies a direction's first payload and reports it: every identified protocol, and
    /// an unidentified payload where a port rule expects a protocol the identifier knows.
    /// Identifies a first payload and reports it; whether it was known.
    fn identify(
        &mut self,
        meta: &PacketMeta,
        transport: Transport,
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> bool {
        self.counters.identified += 1;
        let protocol = protocol::identify(transport, payload);
        if protocol.is_unknown() {
            let executable = transport == Transport::Tcp && starts_executable(payload);
            let short = transport == Transport::Tcp && payload.len() <= SHORT_FIRST_LEN;
            if executable || (!short && protocol_mismatch::expects_identifiable(sport, dport, meta.key.proto))
            {
                self.push(
                    meta,
                    ObsKind::App { protocol, body_entropy: None, executable, body_follows: false },
                );
            } else if transport == Transport::Tcp && protocol::encrypted::looks_fully_encrypted(payload) {
                let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
                self.push(meta, ObsKind::Encrypted { len });
            }
            return false;
        }
        if let Some(protocol::tls::TlsInfo { message: protocol::tls::TlsMessage::ServerHello(_), .. }) =
            protocol.tls()
            && let Some(flight) = self.flights.first(meta.hash, meta.from_lo, payload, meta.ts_ns)
        {
            self.push(meta, ObsKind::TlsServer(Box::new(flight)));
        }
        let (body_entropy, body_follows) = match protocol.http() {
            Some(protocol::http::HttpInfo::Request(r)) => {
                let sends = matches!(&*r.method, "POST" | "PUT") && r.content_length.unwrap_or(0) > 0;
                let alone = sends && payload.ends_with(b"\r\n\r\n");
                if alone {
                    self.firsts.expect_body(meta.hash, meta.from_lo);
                }
                (body_entropy(payload), alone)
            }
            _ => (None, false),
        };
        let executable = match protocol.http() {
            Some(protocol::http::HttpInfo::Response(_)) => http_body(payload).is_some_and(starts_executable),
            _ => false,
        };
        self.push(meta, ObsKind::App { protocol, body_entropy, executable, body_follows });
        true
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

/// Whether `payload` starts a Windows PE executable: `MZ`, and `PE\0\0` at the offset its DOS
/// header gives (when that lies within the payload; a cut header with `MZ` and the DOS stub's
/// text counts too).
fn starts_executable(payload: &[u8]) -> bool {
    if !payload.starts_with(b"MZ") {
        return false;
    }
    let pe_at = payload.get(0x3c..0x40).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    match pe_at.and_then(|at| payload.get(at..at + 4)) {
        Some(sig) => sig == b"PE\0\0",
        None => payload.windows(16).any(|w| w == b"This program can"),
    }
}

/// What follows an HTTP message's headers in `payload`, past a first chunk-size line when the
/// body is chunked.
fn http_body(payload: &[u8]) -> Option<&[u8]> {
    let at = payload.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = payload.get(at..)?;
    let size_line = body.iter().take(18).position(|&b| b == b'\r');
    match size_line {
        Some(n)
            if n > 0 && body[..n].iter().all(u8::is_ascii_hexdigit) && body.get(n + 1) == Some(&b'\n') =>
        {
            body.get(n + 2..)
        }
        _ => Some(body),
    }
}

/// The Shannon entropy, in bits per byte of the data it carries, of what follows an HTTP
/// request's headers in `payload`, when at least [`MIN_BODY_LEN`] bytes follow.
///
/// A body that is one form field of hex digits or of the base64 alphabet (`o=6b78...`, how
/// many implants encode what they encrypt) is measured per character and scaled to the data
/// it encodes (4 bits a hex digit, 6 a base64 character carry at most): random bytes score
/// near 8 raw or encoded, text and markup well below.
fn body_entropy(payload: &[u8]) -> Option<f32> {
    let at = payload.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    entropy_of(payload.get(at..)?)
}

/// [`body_entropy`] of a body on its own.
fn entropy_of(body: &[u8]) -> Option<f32> {
    if body.len() < MIN_BODY_LEN {
        return None;
    }
    let value = form_value(body);
    let scale = if value.len() >= MIN_BODY_LEN && value.iter().all(u8::is_ascii_hexdigit) {
        2.0
    } else if value.len() >= MIN_BODY_LEN
        && value.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    {
        8.0 / 6.0
    } else {
        return Some(shannon(body) as f32);
    };
    Some((shannon(value) * scale).min(8.0) as f32)
}

/// A body's value when it is a single form field (`name=value`, a short name), else the body.
fn form_value(body: &[u8]) -> &[u8] {
    let name = body.iter().take(17).position(|&b| b == b'=');
    match name {
        Some(n) if n > 0 && body[..n].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_') => {
            &body[n + 1..]
        }
        _ => body,
    }
}

/// The Shannon entropy of `bytes` in bits per byte.
fn shannon(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum()
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

#[cfg(test)]
mod tests;
