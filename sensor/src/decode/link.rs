//! Link layers: Ethernet with 802.1Q/802.1ad tags, Linux cooked v1 and v2,
//! BSD loopback, and raw IP. Each returns the network-layer bytes it found.

use etherparse::{EtherType, Ethernet2Slice, SingleVlanSlice};

use crate::capture::LinkType;
use crate::decode::Malformed;

/// Network-layer payload found under a link header.
#[derive(Debug, Clone, Copy)]
pub enum L3<'a> {
    /// An IPv4 or IPv6 packet (the IP parser tells which).
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, STP, ...): not malformed, just not ours.
    NotIp,
}

/// VLAN ids from the outermost two tags (0 where absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vlans {
    /// Outer (service or only) tag.
    pub outer: u16,
    /// Inner (customer) tag of a QinQ frame.
    pub inner: u16,
}

/// Tags followed at most; deeper stacks are passed over, not recorded.
const MAX_TAGS: usize = 4;

/// Strips the link header of `link` from `data`.
pub fn strip<'a>(link: LinkType, data: &'a [u8], vlans: &mut Vlans) -> Result<L3<'a>, Malformed> {
    if data.is_empty() {
        return Err(Malformed::Empty);
    }
    match link {
        LinkType::Ethernet => ethernet(data, vlans),
        LinkType::Raw => Ok(L3::Ip(data)),
        LinkType::Null | LinkType::Loop => loopback(link, data),
        // Cooked headers are read by hand: etherparse's SLL slice rejects
        // hardware types it does not know, such as the loopback frames (772)
        // of captures on Linux's "any" device.
        LinkType::LinuxSll => {
            // SLL: packet type (2), ARPHRD (2), address length (2),
            // address (8), protocol (2).
            let header = data.get(..16).ok_or(Malformed::TruncatedLink)?;
            cooked_payload(u16::from_be_bytes([header[14], header[15]]), &data[16..], vlans)
        }
        LinkType::LinuxSll2 => {
            // SLL2: protocol (2), reserved (2), ifindex (4), ARPHRD (2),
            // packet type (1), address length (1), address (8).
            let header = data.get(..20).ok_or(Malformed::TruncatedLink)?;
            cooked_payload(u16::from_be_bytes([header[0], header[1]]), &data[20..], vlans)
        }
    }
}

/// A cooked header's protocol is an EtherType when it is 0x0600 or more;
/// smaller values name non-Ethernet framings (802.2, CAN, ...), none of them IP.
fn cooked_payload<'a>(protocol: u16, payload: &'a [u8], vlans: &mut Vlans) -> Result<L3<'a>, Malformed> {
    if protocol >= 0x0600 { ether_payload(EtherType(protocol), payload, vlans) } else { Ok(L3::NotIp) }
}

/// An Ethernet II frame, possibly tagged.
pub fn ethernet<'a>(data: &'a [u8], vlans: &mut Vlans) -> Result<L3<'a>, Malformed> {
    let eth = Ethernet2Slice::from_slice_without_fcs(data).map_err(|_| Malformed::TruncatedLink)?;
    ether_payload(eth.ether_type(), eth.payload_slice(), vlans)
}

fn ether_payload<'a>(
    mut et: EtherType,
    mut payload: &'a [u8],
    vlans: &mut Vlans,
) -> Result<L3<'a>, Malformed> {
    let mut tags = 0;
    while matches!(
        et,
        EtherType::VLAN_TAGGED_FRAME | EtherType::PROVIDER_BRIDGING | EtherType::VLAN_DOUBLE_TAGGED_FRAME
    ) {
        let tag = SingleVlanSlice::from_slice(payload).map_err(|_| Malformed::TruncatedVlan)?;
        let id = tag.vlan_identifier().value();
        match tags {
            0 => vlans.outer = id,
            1 => vlans.inner = id,
            _ => {}
        }
        tags += 1;
        if tags > MAX_TAGS {
            return Ok(L3::NotIp);
        }
        et = tag.ether_type();
        payload = tag.payload_slice();
    }
    match et {
        EtherType::IPV4 | EtherType::IPV6 => Ok(L3::Ip(payload)),
        _ => Ok(L3::NotIp),
    }
}

/// BSD loopback: a 4-byte address family. LINKTYPE_NULL stores it in the
/// byte order of the machine that wrote the file, so both orders are tried.
fn loopback(link: LinkType, data: &[u8]) -> Result<L3<'_>, Malformed> {
    let header: [u8; 4] = data.get(..4).and_then(|h| h.try_into().ok()).ok_or(Malformed::TruncatedLink)?;
    let family = match link {
        LinkType::Loop => u32::from_be_bytes(header),
        _ => {
            let le = u32::from_le_bytes(header);
            if le > 0xffff { u32::from_be_bytes(header) } else { le }
        }
    };
    // AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD),
    // 30 (macOS) or 10 (Linux).
    match family {
        2 | 10 | 24 | 28 | 30 => Ok(L3::Ip(&data[4..])),
        _ => Err(Malformed::BadLoopbackFamily),
    }
}

/// An ARP request's addresses (IPv4 over Ethernet only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRequest {
    /// Sender protocol address.
    pub sender: [u8; 4],
    /// Target protocol address: the one asked for.
    pub target: [u8; 4],
    /// Sent to the Ethernet broadcast address (true also where the link
    /// header does not say: cooked captures).
    pub broadcast: bool,
}

/// ARP's EtherType.
const ETHERTYPE_ARP: u16 = 0x0806;

/// The ARP request a non-IP frame carries, if any: Ethernet (tagged or not)
/// and Linux cooked frames; every length is checked.
#[must_use]
pub fn arp_request(link: LinkType, data: &[u8]) -> Option<ArpRequest> {
    let (et, payload, broadcast) = match link {
        LinkType::Ethernet => {
            let dst = data.get(..6)?;
            let et = data.get(12..14)?;
            (u16::from_be_bytes([et[0], et[1]]), data.get(14..)?, dst == [0xff; 6])
        }
        LinkType::LinuxSll => {
            let h = data.get(..16)?;
            (u16::from_be_bytes([h[14], h[15]]), data.get(16..)?, true)
        }
        LinkType::LinuxSll2 => {
            let h = data.get(..20)?;
            (u16::from_be_bytes([h[0], h[1]]), data.get(20..)?, true)
        }
        LinkType::Raw | LinkType::Null | LinkType::Loop => return None,
    };
    let (mut et, mut payload) = (et, payload);
    for _ in 0..MAX_TAGS {
        if !matches!(et, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        let tag = payload.get(..4)?;
        et = u16::from_be_bytes([tag[2], tag[3]]);
        payload = payload.get(4..)?;
    }
    if et != ETHERTYPE_ARP {
        return None;
    }
    // Hardware Ethernet (1), protocol IPv4, lengths 6 and 4, operation request (1).
    let a = payload.get(..28)?;
    if a[..8] != [0, 1, 0x08, 0x00, 6, 4, 0, 1] {
        return None;
    }
    let sender: [u8; 4] = a[14..18].try_into().ok()?;
    let target: [u8; 4] = a[24..28].try_into().ok()?;
    Some(ArpRequest { sender, target, broadcast })
}
