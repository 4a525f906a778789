//! Deterministic synthetic traffic: frames built with etherparse and written
//! as a classic pcap. The demo (`nbad-sensor generate`), the self-checks and
//! the tests use it, so the project can exercise its whole pipeline on
//! traffic it makes itself, byte for byte the same on every run.
//!
//! Addresses are inside 10.0.0.0/8 and fd00::/8 for the "inside" and in the
//! documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32) for the "outside": nothing here is ever sent anywhere.

use std::io::{self, Write};
use std::net::IpAddr;

use etherparse::{IpHeaders, IpNumber, PacketBuilder, PacketBuilderStep, TcpHeader};
use pcap_parser::{LegacyPcapBlock, Linktype, PcapHeader, ToVec};

/// TCP flag bits, as on the wire.
pub use crate::decode::tcp_flags as flags;

/// Writes frames to a classic pcap (microsecond timestamps).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header for `linktype` (1 = Ethernet, 101 = raw IP, ...).
    pub fn new(mut out: W, linktype: i32) -> io::Result<Self> {
        let header = PcapHeader { snaplen: 262_144, network: Linktype(linktype), ..PcapHeader::new() };
        out.write_all(&header.to_vec_raw().map_err(io::Error::other)?)?;
        Ok(Self { out })
    }

    /// Appends one frame.
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(io::Error::other)?;
        let block = LegacyPcapBlock {
            ts_sec: u32::try_from(ts_ns / 1_000_000_000).map_err(io::Error::other)?,
            ts_usec: u32::try_from(ts_ns % 1_000_000_000 / 1_000).map_err(io::Error::other)?,
            caplen: len,
            origlen: len,
            data: frame,
        };
        self.out.write_all(&block.to_vec_raw().map_err(io::Error::other)?)
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn ip_step(src: IpAddr, dst: IpAddr) -> PacketBuilderStep<IpHeaders> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        // Mixed families cannot form one packet; map the v4 side into v6.
        (s, d) => PacketBuilder::ipv6(v6(s), v6(d), 64),
    }
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn finish(result: Result<(), etherparse::err::packet::BuildWriteError>, out: Vec<u8>) -> Vec<u8> {
    // Writing into a Vec only fails for payloads over the IP length limit,
    // which the generators never produce.
    debug_assert!(result.is_ok(), "{result:?}");
    out
}

/// An IP packet carrying a TCP segment with the given flags.
pub fn tcp(
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    tcp_flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = TcpHeader::new(src.1, dst.1, seq, 64_240);
    h.fin = tcp_flags & flags::FIN != 0;
    h.syn = tcp_flags & flags::SYN != 0;
    h.rst = tcp_flags & flags::RST != 0;
    h.psh = tcp_flags & flags::PSH != 0;
    h.ack = tcp_flags & flags::ACK != 0;
    h.urg = tcp_flags & flags::URG != 0;
    h.acknowledgment_number = ack;
    let b = ip_step(src.0, dst.0).tcp_header(h);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    let r = b.write(&mut out, payload);
    finish(r, out)
}

/// An IP packet carrying a UDP datagram.
pub fn udp(src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) -> Vec<u8> {
    let b = ip_step(src.0, dst.0).udp(src.1, dst.1);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    let r = b.write(&mut out, payload);
    finish(r, out)
}

/// An ICMP (or ICMPv6) echo request or reply.
pub fn echo(src: IpAddr, dst: IpAddr, request: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let step = ip_step(src, dst);
    let mut out = Vec::new();
    let r = match (src.is_ipv4(), request) {
        (true, true) => step.icmpv4_echo_request(id, seq).write(&mut out, payload),
        (true, false) => step.icmpv4_echo_reply(id, seq).write(&mut out, payload),
        (false, true) => step.icmpv6_echo_request(id, seq).write(&mut out, payload),
        (false, false) => step.icmpv6_echo_reply(id, seq).write(&mut out, payload),
    };
    finish(r, out)
}

/// A destination unreachable (ICMP type 3, or ICMPv6 type 1) with `code`,
/// quoting the start of `original` (an IP packet) as routers and hosts do:
/// its header and the first 8 bytes of its transport.
pub fn unreachable(src: IpAddr, dst: IpAddr, code: u8, original: &[u8]) -> Vec<u8> {
    let v4 = src.is_ipv4();
    let quoted_len = if v4 { usize::from(original.first().map_or(5, |b| b & 0x0f)) * 4 + 8 } else { 48 };
    let quoted = &original[..original.len().min(quoted_len)];
    let mut icmp = vec![if v4 { 3 } else { 1 }, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quoted);
    if v4 {
        let sum = ipv4_checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    // (ICMPv6's checksum covers a pseudo-header; the decoder does not check it.)
    raw_ip(src, dst, if v4 { 1 } else { 58 }, &icmp)
}

/// A broadcast Ethernet frame carrying an ARP request: `sender` asks who has `target`.
pub fn arp_request(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mac = [0x02, 0, sender[1], sender[2], sender[3], 0x01];
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06]);
    // Ethernet, IPv4, lengths 6 and 4, request.
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&sender);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target);
    frame
}

/// An IP packet with protocol `proto` and a raw payload (GRE, ESP, ...).
pub fn raw_ip(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let r = ip_step(src, dst).write(&mut out, IpNumber(proto), payload);
    finish(r, out)
}

/// GRE (RFC 2784, no optional fields) around an IP packet.
pub fn gre(outer_src: IpAddr, outer_dst: IpAddr, inner: &[u8]) -> Vec<u8> {
    let proto: u16 = if inner.first().is_some_and(|b| b >> 4 == 6) { 0x86dd } else { 0x0800 };
    let mut payload = vec![0, 0];
    payload.extend_from_slice(&proto.to_be_bytes());
    payload.extend_from_slice(inner);
    raw_ip(outer_src, outer_dst, 47, &payload)
}

/// VXLAN (UDP port 4789, VNI `vni`) around an Ethernet frame.
pub fn vxlan(outer_src: IpAddr, outer_dst: IpAddr, vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner_frame);
    udp((outer_src, 49_152), (outer_dst, 4789), &payload)
}

/// An Ethernet II frame around an IP packet, with 802.1Q tags (outermost first).
pub fn ethernet(vlans: &[u16], ip: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 4 * vlans.len() + ip.len());
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02]);
    for (i, id) in vlans.iter().enumerate() {
        let tpid: u16 = if i == 0 && vlans.len() > 1 { 0x88a8 } else { 0x8100 };
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    }
    let et: u16 = if ip.first().is_some_and(|b| b >> 4 == 6) { 0x86dd } else { 0x0800 };
    frame.extend_from_slice(&et.to_be_bytes());
    frame.extend_from_slice(ip);
    frame
}

/// An IPv4 fragment: `offset8` is the fragment offset in 8-byte units.
pub fn ipv4_fragment(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ident: u16,
    offset8: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&u16::try_from(total).unwrap_or(u16::MAX).to_be_bytes());
    p.extend_from_slice(&ident.to_be_bytes());
    let frag = (offset8 & 0x1fff) | if more { 0x2000 } else { 0 };
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let sum = ipv4_checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 =
        header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A DNS query for `name` (type A), as a UDP payload.
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(u8::try_from(label.len().min(63)).unwrap_or(63));
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A DNS query for `name` of type `qtype`, as a UDP payload.
pub fn dns_query_typed(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = dns_query(id, name);
    let at = q.len() - 4;
    q[at..at + 2].copy_from_slice(&qtype.to_be_bytes());
    q
}

/// A resolver's NXDOMAIN answer to a type A query for `name`, as a UDP payload.
pub fn dns_nxdomain(id: u16, name: &str) -> Vec<u8> {
    let mut r = dns_query(id, name);
    // QR, RD, RA; rcode 3.
    r[2] = 0x81;
    r[3] = 0x83;
    r
}

/// A TLS 1.2 ClientHello record offering one cipher suite, with an SNI extension when `sni` is
/// given.
pub fn tls_client_hello(sni: Option<&str>) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(host) = sni {
        let len = u16::try_from(host.len()).unwrap_or(0);
        extensions.extend_from_slice(&[0x00, 0x00]);
        extensions.extend_from_slice(&(len + 5).to_be_bytes());
        extensions.extend_from_slice(&(len + 3).to_be_bytes());
        extensions.push(0);
        extensions.extend_from_slice(&len.to_be_bytes());
        extensions.extend_from_slice(host.as_bytes());
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]);
    body.extend_from_slice(&u16::try_from(extensions.len()).unwrap_or(0).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut hs = vec![0x01, 0];
    hs.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(hs.len()).unwrap_or(0).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// The first bytes of a Windows PE file: the DOS header with `e_lfanew` = 0x80 and the `PE`
/// signature there, padded to `len`.
pub fn pe_header(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(0x84)];
    p[..2].copy_from_slice(b"MZ");
    p[0x3c] = 0x80;
    p[0x80..0x84].copy_from_slice(b"PE\0\0");
    p
}

/// A small deterministic pseudo-random generator (SplitMix64). Determinism
/// across versions and platforms matters more here than statistical quality,
/// so the generator is spelled out rather than taken from a crate whose
/// stream may change between releases.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A timeline of frames, sorted and written at the end.
#[derive(Debug, Default)]
pub struct Timeline {
    frames: Vec<(u64, u64, Vec<u8>)>,
    seq: u64,
}

impl Timeline {
    /// Adds a frame at `ts_ns`. Frames with equal times keep insertion order.
    pub fn push(&mut self, ts_ns: u64, frame: Vec<u8>) {
        self.frames.push((ts_ns, self.seq, frame));
        self.seq += 1;
    }

    /// A complete TCP connection: handshake, `exchanges` of (client bytes,
    /// server bytes) each `gap_ns` apart, then FIN/FIN (or RST when `reset`).
    /// Frames are Ethernet with `vlans`. Returns the time of the last packet.
    #[expect(clippy::too_many_arguments, reason = "a scenario line reads best flat")]
    pub fn tcp_session(
        &mut self,
        vlans: &[u16],
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        start_ns: u64,
        exchanges: &[(usize, usize)],
        gap_ns: u64,
        reset: bool,
    ) -> u64 {
        use flags::{ACK, FIN, PSH, RST, SYN};
        let rtt = 2_000_000;
        let mut t = start_ns;
        let (mut cs, mut ss) = (1_000u32, 5_000u32);
        let mut add = |t: u64, from_client: bool, f: u8, cs: u32, ss: u32, payload: &[u8]| {
            let ip = if from_client {
                tcp(client, server, f, cs, ss, payload)
            } else {
                tcp(server, client, f, ss, cs, payload)
            };
            self.push(t, ethernet(vlans, &ip));
        };
        add(t, true, SYN, cs, 0, &[]);
        t += rtt;
        add(t, false, SYN | ACK, cs + 1, ss, &[]);
        t += rtt;
        cs += 1;
        ss += 1;
        add(t, true, ACK, cs, ss, &[]);
        // On 443 every segment starts like a TLS application-data record, as
        // HTTPS does, so the sessions look like what they stand for.
        let tls = server.1 == 443;
        let payload = |fill: u8, len: usize| {
            let mut p = vec![fill; len];
            if tls && len >= 5 {
                p[..3].copy_from_slice(&[0x17, 0x03, 0x03]);
            }
            p
        };
        // On HTTP's ports the first segment of each side starts like an HTTP request or
        // response, for the same reason.
        let http = matches!(server.1, 80 | 8080);
        let head = |mut p: Vec<u8>, line: &[u8]| {
            let n = line.len().min(p.len());
            p[..n].copy_from_slice(&line[..n]);
            p
        };
        let mut first = (http, http);
        for &(up, down) in exchanges {
            t += gap_ns;
            for chunk in chunks(up) {
                let mut p = payload(b'u', chunk);
                if std::mem::take(&mut first.0) {
                    let line = format!(
                        "POST /upload HTTP/1.1\r\nHost: files.example\r\nUser-Agent: synth/1.0\r\nContent-Length: {up}\r\n\r\n"
                    );
                    p = head(p, line.as_bytes());
                }
                add(t, true, PSH | ACK, cs, ss, &p);
                cs = cs.wrapping_add(chunk as u32);
                t += 100_000;
            }
            for chunk in chunks(down) {
                let mut p = payload(b'd', chunk);
                if std::mem::take(&mut first.1) {
                    let line = format!("HTTP/1.1 200 OK\r\nContent-Length: {down}\r\n\r\n");
                    p = head(p, line.as_bytes());
                }
                add(t, false, PSH | ACK, cs, ss, &p);
                ss = ss.wrapping_add(chunk as u32);
                t += 100_000;
            }
            add(t, true, ACK, cs, ss, &[]);
        }
        t += rtt;
        if reset {
            add(t, true, RST | ACK, cs, ss, &[]);
        } else {
            add(t, true, FIN | ACK, cs, ss, &[]);
            t += rtt;
            add(t, false, FIN | ACK, cs + 1, ss, &[]);
            t += rtt;
            add(t, true, ACK, cs + 1, ss + 1, &[]);
        }
        t
    }

    /// One TCP connection from `client` to `server` starting at `start_ns`: the handshake, each
    /// `(from_client, payload)` 10 ms apart, then FIN/FIN. Returns the time of the last packet.
    pub fn tcp_exchange(
        &mut self,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        start_ns: u64,
        steps: &[(bool, &[u8])],
    ) -> u64 {
        use flags::{ACK, FIN, PSH, SYN};
        let (mut cs, mut ss) = (1_000u32, 5_000u32);
        let mut t = start_ns;
        let mut add = |t: u64, from_client: bool, f: u8, cs: u32, ss: u32, payload: &[u8]| {
            let ip = if from_client {
                tcp(client, server, f, cs, ss, payload)
            } else {
                tcp(server, client, f, ss, cs, payload)
            };
            self.push(t, ethernet(&[], &ip));
        };
        add(t, true, SYN, cs, 0, &[]);
        add(t + 1_000_000, false, SYN | ACK, cs + 1, ss, &[]);
        (cs, ss) = (cs + 1, ss + 1);
        add(t + 2_000_000, true, ACK, cs, ss, &[]);
        for &(from_client, payload) in steps {
            t += 10_000_000;
            add(t, from_client, PSH | ACK, cs, ss, payload);
            let n = u32::try_from(payload.len()).unwrap_or(0);
            if from_client {
                cs = cs.wrapping_add(n);
            } else {
                ss = ss.wrapping_add(n);
            }
        }
        t += 10_000_000;
        add(t, true, FIN | ACK, cs, ss, &[]);
        add(t + 1_000_000, false, FIN | ACK, cs + 1, ss, &[]);
        add(t + 2_000_000, true, ACK, cs + 1, ss + 1, &[]);
        t + 2_000_000
    }

    /// Writes every frame in time order as an Ethernet pcap.
    pub fn write_pcap<W: Write>(mut self, out: W) -> io::Result<W> {
        self.frames.sort_by_key(|(ts, seq, _)| (*ts, *seq));
        let mut w = PcapWriter::new(out, 1)?;
        for (ts, _, frame) in &self.frames {
            w.write(*ts, frame)?;
        }
        Ok(w.into_inner())
    }

    /// Frames so far.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame was added.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Splits a byte count into segments of at most 1400 bytes.
fn chunks(total: usize) -> impl Iterator<Item = usize> {
    let full = total / 1400;
    let rest = total % 1400;
    std::iter::repeat_n(1400, full).chain((rest > 0).then_some(rest))
}

pub mod demo;
