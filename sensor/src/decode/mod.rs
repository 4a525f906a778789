//! From captured frames to [`PacketMeta`]: the few facts the flow table needs.
//!
//! Link layers are stripped in [`link`], tunnels (GRE, ERSPAN, VXLAN) opened in
//! [`tunnel`], and IP — IPv4 with options, IPv6 with extension headers, both
//! with fragments — is parsed by etherparse's lax slicer, which accepts packets
//! cut by a snaplen. The decoder never panics on wire bytes: every failure is a
//! [`Malformed`] reason, counted per reason by the caller.

mod fragments;
pub mod link;
mod malformed;
pub mod tcp_flags;
pub mod tunnel;

use etherparse::{IpNumber, LaxIpSlice, err::ip::LaxHeaderSliceError};
use nbad_common::{FlowKey, IP_V4, IP_V6};

pub use fragments::{FragmentId, FragmentTracker};
pub use malformed::Malformed;

use crate::capture::LinkType;
use crate::config::DecodeSettings;
use crate::flow::community_id::icmp_port_equivalents;
use link::{L3, Vlans};
use tunnel::Inner;

/// What the flow table needs from one packet. `Copy`, no borrowed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    /// The canonical (direction-free) flow key.
    pub key: FlowKey,
    /// The key's hash; filled in by the dispatcher, used to shard and to index.
    pub hash: u64,
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// IP-layer bytes (IPv4 total length, IPv6 payload length + 40), as
    /// IPFIX's octetDeltaCount counts them, whatever the snaplen cut; for an
    /// aggregate (see `packets`), the bytes of all its packets.
    pub ip_len: u32,
    /// Packets this describes: 1 for a decoded packet; more for an
    /// aggregate read from the XDP program's flow map, whose packets span
    /// from `ts_ns - span_us` to `ts_ns`.
    pub packets: u32,
    /// Microseconds from the aggregate's first packet to its last (0 for one packet).
    pub span_us: u32,
    /// Whether the sender is the key's lower endpoint.
    pub from_lo: bool,
    /// TCP flags (0 for other protocols and for non-first fragments).
    pub tcp_flags: u8,
}

impl PacketMeta {
    /// Time of the first packet this describes.
    pub fn first_ns(&self) -> u64 {
        self.ts_ns.saturating_sub(u64::from(self.span_us) * 1_000)
    }
}

/// Why a frame yields no [`PacketMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not an IP packet (ARP, LLDP, ...).
    NotIp,
    /// Malformed, for the given reason.
    Malformed(Malformed),
    /// A later IP fragment whose first fragment was not seen.
    OrphanFragment,
}

/// Per-decoder counters, published by the capture stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeCounters {
    /// Frames that yielded a flow update.
    pub parsed: u64,
    /// Frames that carry no IP.
    pub non_ip: u64,
    /// Malformed frames, by [`Malformed::index`].
    pub malformed: [u64; Malformed::COUNT],
    /// Packets taken out of a GRE, ERSPAN or VXLAN tunnel.
    pub decapsulated: u64,
    /// IP fragments seen (first and later).
    pub fragments: u64,
    /// Later fragments whose first fragment was not seen.
    pub orphan_fragments: u64,
    /// First fragments remembered in the place of another datagram's, still in its lifetime
    /// (the table holds [`FRAGMENT_SLOTS`]).
    pub fragments_overwritten: u64,
}

impl DecodeCounters {
    /// Adds `other` (another capture thread's decoder) to these. Every field is named, so a
    /// counter added to the struct cannot be left out of the sum.
    pub fn add(&mut self, other: &Self) {
        let Self {
            parsed,
            non_ip,
            malformed,
            decapsulated,
            fragments,
            orphan_fragments,
            fragments_overwritten,
        } = other;
        self.parsed += parsed;
        self.non_ip += non_ip;
        for (sum, n) in self.malformed.iter_mut().zip(malformed) {
            *sum += n;
        }
        self.decapsulated += decapsulated;
        self.fragments += fragments;
        self.orphan_fragments += orphan_fragments;
        self.fragments_overwritten += fragments_overwritten;
    }
}

/// Where the transport header of the last decoded packet lies in its frame,
/// so that later stages can read its payload without parsing the frame again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L4Span {
    /// IANA protocol number of the transport.
    pub proto: u8,
    /// Offset of the transport header in the frame.
    pub start: usize,
    /// Offset just past the transport bytes captured (snaplen-cut included).
    pub end: usize,
}

impl L4Span {
    /// The transport payload: after the TCP header (its data offset), the UDP
    /// header, or the 8-byte ICMP echo header; empty when cut short.
    #[must_use]
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let Some(l4) = frame.get(self.start..self.end) else { return &[] };
        let header = match self.proto {
            6 => l4.get(12).map_or(usize::MAX, |b| usize::from(b >> 4) * 4),
            17 | 1 | 58 => 8,
            _ => 0,
        };
        l4.get(header..).unwrap_or(&[])
    }

    /// The transport header's first bytes (ICMP type and code, ports).
    #[must_use]
    pub fn header<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame.get(self.start..self.end).unwrap_or(&[])
    }
}

/// Tunnels opened at most, one inside the other.
const MAX_TUNNEL_DEPTH: u8 = 2;
/// Slots in the first-fragment table.
const FRAGMENT_SLOTS: usize = 4096;

/// Decodes frames; owns the fragment table and the counters.
#[derive(Debug)]
pub struct Decoder {
    gre: bool,
    vxlan_ports: Vec<u16>,
    fragments: FragmentTracker,
    /// What has been decoded so far.
    pub counters: DecodeCounters,
    /// Address of the frame being decoded, to turn sub-slices into offsets.
    frame_base: usize,
    /// The transport of the last packet decoded, when it had one.
    last_l4: Option<L4Span>,
    /// The source address of the last frame whose IP header was read (also
    /// when the frame failed later), IPv4 mapped into IPv6.
    last_src: Option<[u8; 16]>,
}

impl Decoder {
    /// A decoder following tunnels as configured.
    pub fn new(settings: &DecodeSettings) -> Self {
        Self {
            gre: settings.gre,
            vxlan_ports: if settings.vxlan { settings.vxlan_ports.clone() } else { Vec::new() },
            fragments: FragmentTracker::new(FRAGMENT_SLOTS),
            counters: DecodeCounters::default(),
            frame_base: 0,
            last_l4: None,
            last_src: None,
        }
    }

    /// Decodes one frame and counts the outcome.
    pub fn decode(&mut self, link: LinkType, ts_ns: u64, data: &[u8]) -> Result<PacketMeta, Skip> {
        let result = self.decode_frame(link, ts_ns, data);
        match result {
            Ok(_) => self.counters.parsed += 1,
            Err(Skip::NotIp) => self.counters.non_ip += 1,
            Err(Skip::Malformed(reason)) => self.counters.malformed[reason.index()] += 1,
            Err(Skip::OrphanFragment) => self.counters.orphan_fragments += 1,
        }
        result
    }

    /// A decoder with the same tunnel settings, fresh tables and counters.
    #[must_use]
    pub fn clone_settings(&self) -> Self {
        Self {
            gre: self.gre,
            vxlan_ports: self.vxlan_ports.clone(),
            fragments: FragmentTracker::new(FRAGMENT_SLOTS),
            counters: DecodeCounters::default(),
            frame_base: 0,
            last_l4: None,
            last_src: None,
        }
    }

    /// Where the transport of the last frame decoded lies (`None` for a
    /// failed frame, a later fragment, or a protocol without one).
    #[must_use]
    pub fn last_l4(&self) -> Option<L4Span> {
        self.last_l4
    }

    /// The source address (IPv4 mapped into IPv6) of the last frame, when its
    /// IP header could be read: who sent a malformed packet.
    #[must_use]
    pub fn last_src(&self) -> Option<[u8; 16]> {
        self.last_src
    }

    fn decode_frame(&mut self, link: LinkType, ts_ns: u64, data: &[u8]) -> Result<PacketMeta, Skip> {
        self.frame_base = data.as_ptr() as usize;
        self.last_l4 = None;
        self.last_src = None;
        let mut vlans = Vlans::default();
        match link::strip(link, data, &mut vlans).map_err(Skip::Malformed)? {
            L3::Ip(ip) => self.ip(ip, vlans, ts_ns, 0),
            L3::NotIp => Err(Skip::NotIp),
        }
    }

    fn ip(&mut self, bytes: &[u8], vlans: Vlans, ts_ns: u64, depth: u8) -> Result<PacketMeta, Skip> {
        let (ip, ext_err) = LaxIpSlice::from_slice(bytes).map_err(|e| {
            Skip::Malformed(match e {
                LaxHeaderSliceError::Len(_) => Malformed::TruncatedIp,
                LaxHeaderSliceError::Content(etherparse::err::ip::HeaderError::UnsupportedIpVersion {
                    ..
                }) => Malformed::BadIpVersion,
                LaxHeaderSliceError::Content(_) => Malformed::BadIpHeader,
            })
        })?;
        if ext_err.is_some() {
            return Err(Skip::Malformed(Malformed::BadIpExtension));
        }
        let mut ends = Endpoints::default();
        let (ip_len, frag) = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                ends.src = v4_mapped(h.source());
                ends.dst = v4_mapped(h.destination());
                ends.version = IP_V4;
                let total = usize::from(h.total_len());
                let len = if total >= h.slice().len() { total } else { bytes.len() };
                let frag = v4.is_payload_fragmented().then(|| Fragment {
                    offset: h.fragments_offset().value(),
                    ident: u32::from(h.identification()),
                });
                (len, frag)
            }
            LaxIpSlice::Ipv6(v6) => {
                let h = v6.header();
                ends.src = h.source();
                ends.dst = h.destination();
                ends.version = IP_V6;
                let payload_len = usize::from(h.payload_length());
                let len = if payload_len == 0 { bytes.len() } else { payload_len + 40 };
                let frag = v6.extensions().clone().into_iter().find_map(|ext| match ext {
                    etherparse::Ipv6ExtensionSlice::Fragment(f) if f.is_fragmenting_payload() => {
                        Some(Fragment { offset: f.fragment_offset().value(), ident: f.identification() })
                    }
                    _ => None,
                });
                (len, frag)
            }
        };
        self.last_src = Some(ends.src);
        let payload = ip.payload();
        let proto = payload.ip_number;
        let ip_len = u32::try_from(ip_len).unwrap_or(u32::MAX);

        if let Some(frag) = frag {
            self.counters.fragments += 1;
            let id = FragmentId { src: ends.src, dst: ends.dst, ident: frag.ident, proto: proto.0 };
            if frag.offset != 0 {
                let (sport, dport) = self.fragments.lookup(&id, ts_ns).ok_or(Skip::OrphanFragment)?;
                return Ok(ends.meta(sport, dport, proto.0, vlans, ts_ns, ip_len, 0));
            }
            // A first fragment: take its ports, remember them, and do not look
            // inside tunnels (their inner header may be split).
            let (sport, dport, flags) = transport_ports(proto, payload.payload)?;
            self.fragments.remember(id, (sport, dport), ts_ns);
            self.counters.fragments_overwritten = self.fragments.overwritten;
            return Ok(ends.meta(sport, dport, proto.0, vlans, ts_ns, ip_len, flags));
        }

        let l4 = payload.payload;
        if depth < MAX_TUNNEL_DEPTH {
            let inner = match proto {
                IpNumber::GRE if self.gre => Some(tunnel::gre(l4).map_err(Skip::Malformed)?),
                IpNumber::UDP if l4.len() >= 8 && !self.vxlan_ports.is_empty() => {
                    let dport = u16::from_be_bytes([l4[2], l4[3]]);
                    if self.vxlan_ports.contains(&dport) {
                        Some(tunnel::vxlan(&l4[8..]).map_err(Skip::Malformed)?)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            match inner {
                Some(Inner::Ip(inner)) => {
                    self.counters.decapsulated += 1;
                    return self.ip(inner, vlans, ts_ns, depth + 1);
                }
                Some(Inner::Ethernet(frame)) => {
                    self.counters.decapsulated += 1;
                    let mut inner_vlans = vlans;
                    return match link::ethernet(frame, &mut inner_vlans).map_err(Skip::Malformed)? {
                        L3::Ip(inner) => self.ip(inner, inner_vlans, ts_ns, depth + 1),
                        L3::NotIp => Err(Skip::NotIp),
                    };
                }
                Some(Inner::Opaque) | None => {}
            }
        } else if matches!(proto, IpNumber::GRE) && self.gre {
            return Err(Skip::Malformed(Malformed::TunnelTooDeep));
        }
        let (sport, dport, flags) = transport_ports(proto, l4)?;
        let start = (l4.as_ptr() as usize).wrapping_sub(self.frame_base);
        self.last_l4 = Some(L4Span { proto: proto.0, start, end: start + l4.len() });
        Ok(ends.meta(sport, dport, proto.0, vlans, ts_ns, ip_len, flags))
    }
}

#[derive(Debug, Clone, Copy)]
struct Fragment {
    offset: u16,
    ident: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct Endpoints {
    src: [u8; 16],
    dst: [u8; 16],
    version: u8,
}

impl Endpoints {
    #[expect(clippy::too_many_arguments, reason = "a flat constructor of the packet's facts")]
    fn meta(
        &self,
        sport: u16,
        dport: u16,
        proto: u8,
        vlans: Vlans,
        ts_ns: u64,
        ip_len: u32,
        tcp_flags: u8,
    ) -> PacketMeta {
        let from_lo = (self.src, sport) <= (self.dst, dport);
        let (lo, hi) = if from_lo {
            ((self.src, sport), (self.dst, dport))
        } else {
            ((self.dst, dport), (self.src, sport))
        };
        PacketMeta {
            key: FlowKey {
                addr_lo: lo.0,
                addr_hi: hi.0,
                port_lo: lo.1,
                port_hi: hi.1,
                vlan_outer: vlans.outer,
                vlan_inner: vlans.inner,
                proto,
                ip_version: self.version,
                pad: [0; 2],
            },
            hash: 0,
            ts_ns,
            ip_len,
            packets: 1,
            span_us: 0,
            from_lo,
            tcp_flags,
        }
    }
}

fn v4_mapped(addr: [u8; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    out[10] = 0xff;
    out[11] = 0xff;
    out[12..].copy_from_slice(&addr);
    out
}

/// Ports (or ICMP type/code equivalents) and TCP flags from the transport
/// header. Only the first bytes are needed, so a header cut by the snaplen
/// after its flags still counts.
fn transport_ports(proto: IpNumber, l4: &[u8]) -> Result<(u16, u16, u8), Skip> {
    let ports = |l4: &[u8]| -> Result<(u16, u16), Skip> {
        let p = l4.get(..4).ok_or(Skip::Malformed(Malformed::TruncatedTransport))?;
        Ok((u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])))
    };
    match proto {
        IpNumber::TCP => {
            let (s, d) = ports(l4)?;
            let header = l4.get(..14).ok_or(Skip::Malformed(Malformed::TruncatedTransport))?;
            if header[12] >> 4 < 5 {
                return Err(Skip::Malformed(Malformed::BadTcpHeader));
            }
            Ok((s, d, header[13]))
        }
        IpNumber::UDP | IpNumber::SCTP | IpNumber::UDP_LITE => {
            let (s, d) = ports(l4)?;
            Ok((s, d, 0))
        }
        IpNumber::ICMP | IpNumber::IPV6_ICMP => {
            let h = l4.get(..2).ok_or(Skip::Malformed(Malformed::TruncatedTransport))?;
            let (s, d, _) = icmp_port_equivalents(proto == IpNumber::IPV6_ICMP, h[0], h[1]);
            Ok((s, d, 0))
        }
        _ => Ok((0, 0, 0)),
    }
}

#[cfg(test)]
mod tests;
