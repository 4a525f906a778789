//! Frame parsing: from an XDP buffer to the canonical flow key and the facts accounted with it,
//! built exactly as the sensor's userspace decoder builds them (`sensor/src/decode`).
//!
//! Every read of packet memory goes through [`ptr_at`], which checks it against `data_end`
//! first; a frame too short for a header the parser needs is [`Skip::Truncated`], an impossible
//! header [`Skip::Malformed`], a frame without IP [`Skip::NotIp`]. Loops have constant bounds
//! ([`MAX_VLAN_TAGS`], [`MAX_IPV6_EXTENSIONS`]) so LLVM unrolls them for the verifier.

use aya_ebpf::{helpers::bpf_xdp_get_buff_len, programs::XdpContext};
use nbad_common::{FlowKey, IP_V4, IP_V6, XdpCounter, icmp_counterpart};

const ETH_HDR_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const IPV4_MIN_HDR_LEN: usize = 20;
const IPV6_HDR_LEN: usize = 40;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// Pre-standard QinQ outer tag, still emitted by some switches.
const ETH_P_QINQ_LEGACY: u16 = 0x9100;

/// Tags the program looks through, as userspace does; a deeper stack is not IP to either.
/// The first two are recorded, matching `FlowKey::vlan_outer/inner`.
const MAX_VLAN_TAGS: usize = 4;
/// IPv6 extension headers looked through before giving up on the transport header.
const MAX_IPV6_EXTENSIONS: usize = 4;

const PROTO_HOPOPTS: u8 = 0;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_AH: u8 = 51;
const PROTO_ICMPV6: u8 = 58;
const PROTO_DSTOPTS: u8 = 60;
const PROTO_SCTP: u8 = 132;
const PROTO_UDP_LITE: u8 = 136;

const DNS_PORT: u16 = 53;
/// Ethernet II header. Byte arrays only, so the type has alignment 1 and any offset is valid.
#[repr(C)]
struct EthHdr {
    dst: [u8; 6],
    src: [u8; 6],
    ether_type: [u8; 2],
}

/// The part of an 802.1Q/802.1ad tag that follows the tag's own EtherType.
#[repr(C)]
struct VlanTag {
    tci: [u8; 2],
    ether_type: [u8; 2],
}

const _: () = assert!(size_of::<EthHdr>() == ETH_HDR_LEN);
const _: () = assert!(size_of::<VlanTag>() == VLAN_TAG_LEN);

/// Why a frame is not accounted; each maps to one counter.
#[derive(Clone, Copy)]
pub(crate) enum Skip {
    NotIp,
    Truncated,
    Malformed,
}

impl Skip {
    #[inline(always)]
    pub(crate) fn counter(self) -> XdpCounter {
        match self {
            Self::NotIp => XdpCounter::NotIp,
            Self::Truncated => XdpCounter::Truncated,
            Self::Malformed => XdpCounter::Malformed,
        }
    }
}

/// Which always-sampled class a packet belongs to, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Plain,
    Dns,
    IcmpEcho,
}

/// What the flow table needs from one packet (userspace's `PacketMeta`).
pub(crate) struct Packet {
    pub(crate) key: FlowKey,
    pub(crate) from_lo: bool,
    pub(crate) ip_len: u32,
    pub(crate) tcp_flags: u8,
    pub(crate) class: Class,
}

/// The transport facts: ports (or ICMP equivalents), TCP flags and sampling class.
struct L4 {
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    class: Class,
}

const NO_PORTS: L4 = L4 { sport: 0, dport: 0, tcp_flags: 0, class: Class::Plain };

/// The L3 facts shared by IPv4 and IPv6.
struct L3 {
    src: [u8; 16],
    dst: [u8; 16],
    version: u8,
    ip_len: u32,
}

/// Parses a frame into its canonical flow key and the facts accounted with it.
#[inline(always)]
pub(crate) fn parse(ctx: &XdpContext) -> Result<Packet, Skip> {
    let eth: *const EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: `ptr_at` checked that the header lies inside the packet; the type has alignment 1.
    let mut ether_type = u16::from_be_bytes(unsafe { (*eth).ether_type });
    let mut offset = ETH_HDR_LEN;
    let mut vlans = [0u16; 2];

    // A constant bound keeps the loop acceptable to the verifier (LLVM unrolls it).
    for i in 0..MAX_VLAN_TAGS {
        if !matches!(ether_type, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_LEGACY) {
            break;
        }
        let tag: *const VlanTag = ptr_at(ctx, offset)?;
        // SAFETY: as above, `ptr_at` bounds-checked this tag.
        let (tci, next) = unsafe { ((*tag).tci, (*tag).ether_type) };
        if let Some(slot) = vlans.get_mut(i) {
            *slot = u16::from_be_bytes(tci) & 0x0fff;
        }
        ether_type = u16::from_be_bytes(next);
        offset += VLAN_TAG_LEN;
    }

    let (l3, proto, l4_offset, later_fragment) = match ether_type {
        ETH_P_IPV4 => ipv4(ctx, offset)?,
        ETH_P_IPV6 => ipv6(ctx, offset)?,
        _ => return Err(Skip::NotIp),
    };
    let l4 = if later_fragment { NO_PORTS } else { transport(ctx, l4_offset, proto)? };

    // Canonical order, exactly as userspace's `Endpoints::meta`: the sender is "lo" when
    // (src, sport) <= (dst, dport), comparing address bytes lexicographically, then the port.
    let from_lo = endpoint_order(&l3.src, l4.sport) <= endpoint_order(&l3.dst, l4.dport);
    let ((addr_lo, port_lo), (addr_hi, port_hi)) = if from_lo {
        ((l3.src, l4.sport), (l3.dst, l4.dport))
    } else {
        ((l3.dst, l4.dport), (l3.src, l4.sport))
    };
    Ok(Packet {
        key: FlowKey {
            addr_lo,
            addr_hi,
            port_lo,
            port_hi,
            vlan_outer: vlans[0],
            vlan_inner: vlans[1],
            proto,
            ip_version: l3.version,
            pad: [0; 2],
        },
        from_lo,
        ip_len: l3.ip_len,
        tcp_flags: l4.tcp_flags,
        class: l4.class,
    })
}

/// IPv4: addresses (mapped), IP length, protocol, transport offset, and whether this is a later
/// fragment (no transport header).
#[inline(always)]
fn ipv4(ctx: &XdpContext, offset: usize) -> Result<(L3, u8, usize, bool), Skip> {
    let h: *const [u8; IPV4_MIN_HDR_LEN] = ptr_at(ctx, offset)?;
    // SAFETY: `ptr_at` bounds-checked the fixed header; byte arrays have alignment 1.
    let h = unsafe { &*h };
    if h[0] >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if header_len < IPV4_MIN_HDR_LEN {
        return Err(Skip::Malformed);
    }
    // Options must be present too, as for userspace's slicer.
    let _: *const u8 = ptr_at(ctx, offset + header_len - 1)?;
    let total_len = u32::from(u16::from_be_bytes([h[2], h[3]]));
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[10] = 0xff;
    src[11] = 0xff;
    dst[10] = 0xff;
    dst[11] = 0xff;
    src[12..].copy_from_slice(&h[12..16]);
    dst[12..].copy_from_slice(&h[16..20]);
    // Like userspace: a total length shorter than the header is not trusted.
    let ip_len = if total_len >= header_len as u32 { total_len } else { frame_len(ctx, offset) };
    let (l4_offset, proto) = skip_auth_header(ctx, offset + header_len, h[9])?;
    Ok((L3 { src, dst, version: IP_V4, ip_len }, proto, l4_offset, frag_offset != 0))
}

/// IPv6: the fixed header, then up to [`MAX_IPV6_EXTENSIONS`] extension headers.
#[inline(always)]
fn ipv6(ctx: &XdpContext, offset: usize) -> Result<(L3, u8, usize, bool), Skip> {
    let h: *const [u8; IPV6_HDR_LEN] = ptr_at(ctx, offset)?;
    // SAFETY: `ptr_at` bounds-checked the fixed header; byte arrays have alignment 1.
    let h = unsafe { &*h };
    if h[0] >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let payload_len = u32::from(u16::from_be_bytes([h[4], h[5]]));
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    // A zero payload length is a jumbogram (or a lie); userspace then counts what is there.
    let ip_len = if payload_len == 0 { frame_len(ctx, offset) } else { payload_len + IPV6_HDR_LEN as u32 };

    let mut proto = h[6];
    let mut at = offset + IPV6_HDR_LEN;
    let mut later_fragment = false;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match proto {
            PROTO_HOPOPTS | PROTO_ROUTING | PROTO_DSTOPTS => {
                let ext: *const [u8; 2] = ptr_at(ctx, at)?;
                // SAFETY: bounds-checked by `ptr_at`.
                let [next, len] = unsafe { *ext };
                proto = next;
                at += (usize::from(len) + 1) * 8;
            }
            PROTO_FRAGMENT => {
                let ext: *const [u8; 4] = ptr_at(ctx, at)?;
                // SAFETY: bounds-checked by `ptr_at`.
                let [next, _, off_hi, off_lo] = unsafe { *ext };
                proto = next;
                later_fragment |= u16::from_be_bytes([off_hi, off_lo]) >> 3 != 0;
                at += 8;
            }
            PROTO_AH => (at, proto) = skip_auth_header(ctx, at, proto)?,
            _ => break,
        }
    }
    // Still inside the extension chain: account the packet, without ports.
    let unfinished =
        matches!(proto, PROTO_HOPOPTS | PROTO_ROUTING | PROTO_DSTOPTS | PROTO_FRAGMENT | PROTO_AH);
    Ok((L3 { src, dst, version: IP_V6, ip_len }, proto, at, later_fragment || unfinished))
}

/// Looks through an authentication header (IPv4 or IPv6), as userspace's slicer does.
#[inline(always)]
fn skip_auth_header(ctx: &XdpContext, at: usize, proto: u8) -> Result<(usize, u8), Skip> {
    if proto != PROTO_AH {
        return Ok((at, proto));
    }
    let ah: *const [u8; 2] = ptr_at(ctx, at)?;
    // SAFETY: bounds-checked by `ptr_at`.
    let [next, len] = unsafe { *ah };
    Ok((at + (usize::from(len) + 2) * 4, next))
}

/// Ports (or ICMP type/counterpart), TCP flags and sampling class, from the first transport
/// bytes only, as userspace's `transport_ports` reads them.
#[inline(always)]
fn transport(ctx: &XdpContext, at: usize, proto: u8) -> Result<L4, Skip> {
    match proto {
        PROTO_TCP => {
            let t: *const [u8; 14] = ptr_at(ctx, at)?;
            // SAFETY: bounds-checked by `ptr_at`.
            let t = unsafe { &*t };
            if t[12] >> 4 < 5 {
                return Err(Skip::Malformed);
            }
            Ok(ports(t[0], t[1], t[2], t[3], t[13], true))
        }
        PROTO_UDP | PROTO_SCTP | PROTO_UDP_LITE => {
            let u: *const [u8; 4] = ptr_at(ctx, at)?;
            // SAFETY: bounds-checked by `ptr_at`.
            let [s0, s1, d0, d1] = unsafe { *u };
            Ok(ports(s0, s1, d0, d1, 0, proto == PROTO_UDP))
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            let i: *const [u8; 2] = ptr_at(ctx, at)?;
            // SAFETY: bounds-checked by `ptr_at`.
            let [icmp_type, code] = unsafe { *i };
            let v6 = proto == PROTO_ICMPV6;
            let other = match icmp_counterpart(v6, icmp_type) {
                Some(counterpart) => counterpart,
                None => code,
            };
            let echo = if v6 { matches!(icmp_type, 128 | 129) } else { matches!(icmp_type, 0 | 8) };
            Ok(L4 {
                sport: u16::from(icmp_type),
                dport: u16::from(other),
                tcp_flags: 0,
                class: if echo { Class::IcmpEcho } else { Class::Plain },
            })
        }
        _ => Ok(NO_PORTS),
    }
}

#[inline(always)]
fn ports(s0: u8, s1: u8, d0: u8, d1: u8, tcp_flags: u8, dns_capable: bool) -> L4 {
    let sport = u16::from_be_bytes([s0, s1]);
    let dport = u16::from_be_bytes([d0, d1]);
    let dns = dns_capable && (sport == DNS_PORT || dport == DNS_PORT);
    L4 { sport, dport, tcp_flags, class: if dns { Class::Dns } else { Class::Plain } }
}

/// `(address, port)` as integers that order like the address bytes, then the port. Comparing
/// arrays directly would call `memcmp`, which BPF does not have.
#[inline(always)]
fn endpoint_order(addr: &[u8; 16], port: u16) -> (u64, u64, u16) {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *addr;
    (
        u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        port,
    )
}

/// Bytes of the frame from `offset` to its end (userspace's "what was captured").
#[inline(always)]
fn frame_len(ctx: &XdpContext, offset: usize) -> u32 {
    // SAFETY: the helper only reads the XDP buffer's length.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    len.saturating_sub(offset as u64) as u32
}

/// Returns a pointer to a `T` at `offset` bytes into the frame, or [`Skip::Truncated`] when the
/// frame is too short to hold it. The only way this program addresses packet memory.
///
/// The pointer is valid to read for the rest of the program run; `T` must have alignment 1
/// (byte arrays), because frames carry no alignment guarantee.
#[inline(always)]
pub(crate) fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Skip> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(Skip::Truncated);
    }
    Ok((start + offset) as *const T)
}
