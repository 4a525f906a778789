//! Per-packet work of the benchmark-capture builder: find the IPv4 header in an Ethernet frame,
//! move its addresses into a copy's own address block with the checksums kept consistent, and
//! name the packet's flow.
//!
//! Checksums are updated incrementally (RFC 1624, eqn. 3) rather than recomputed, for the IPv4
//! header and for the TCP/UDP pseudo-header: a valid checksum stays valid and one that was wrong
//! in the source (checksum offload on the capturing host) stays wrong by the same amount, so every
//! copy decodes like its source packet.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{Result, ensure};
use etherparse::{EtherType, Ethernet2HeaderSlice, Ipv4HeaderSlice, SingleVlanHeaderSlice};

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_SCTP: u8 = 132;

/// Offset of a valid IPv4 header in an Ethernet frame, after up to two VLAN tags; `None` for
/// anything else (ARP, IPv6, truncated or bogus headers).
pub fn ipv4_offset(frame: &[u8]) -> Option<usize> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).ok()?;
    let mut ether_type = eth.ether_type();
    let mut offset = eth.slice().len();
    for _ in 0..2 {
        if !matches!(
            ether_type,
            EtherType::VLAN_TAGGED_FRAME | EtherType::PROVIDER_BRIDGING | EtherType::VLAN_DOUBLE_TAGGED_FRAME
        ) {
            break;
        }
        let vlan = SingleVlanHeaderSlice::from_slice(frame.get(offset..)?).ok()?;
        ether_type = vlan.ether_type();
        offset += vlan.slice().len();
    }
    if ether_type != EtherType::IPV4 {
        return None;
    }
    Ipv4HeaderSlice::from_slice(frame.get(offset..)?).ok()?;
    Some(offset)
}

/// Source and destination address of the IPv4 header at `ip`. The caller got `ip` from
/// [`ipv4_offset`], so the 20-byte fixed header is present.
pub fn addresses(frame: &[u8], ip: usize) -> (u32, u32) {
    (read_u32(frame, ip + 12), read_u32(frame, ip + 16))
}

/// The addresses, ports and protocol of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// TCP or UDP with the ports in the captured bytes: the ports can be renumbered.
    pub renumberable: bool,
}

impl Tuple {
    /// Direction-free (`min(endpoint)`, `max(endpoint)`, protocol) packed into 104 bits.
    pub fn key(&self) -> u128 {
        let a = (u64::from(self.src) << 16) | u64::from(self.sport);
        let b = (u64::from(self.dst) << 16) | u64::from(self.dport);
        (u128::from(a.min(b)) << 56) | (u128::from(a.max(b)) << 8) | u128::from(self.proto)
    }
}

/// The tuple of the IPv4 packet at `ip`. Ports are 0 for protocols without them and for
/// non-first fragments.
pub fn tuple(frame: &[u8], ip: usize) -> Tuple {
    let (src, dst) = addresses(frame, ip);
    let proto = frame[ip + 9];
    let ports = ports(frame, ip);
    let (sport, dport) = ports.unwrap_or((0, 0));
    Tuple {
        src,
        dst,
        sport,
        dport,
        proto,
        renumberable: ports.is_some() && matches!(proto, PROTO_TCP | PROTO_UDP),
    }
}

/// [`Tuple::key`] of the packet at `ip`.
pub fn flow_key(frame: &[u8], ip: usize) -> u128 {
    tuple(frame, ip).key()
}

/// Ports of a TCP/UDP/SCTP packet that carries the transport header (first fragment or none).
fn ports(frame: &[u8], ip: usize) -> Option<(u16, u16)> {
    let proto = frame[ip + 9];
    if !matches!(proto, PROTO_TCP | PROTO_UDP | PROTO_SCTP) || fragment_offset(frame, ip) != 0 {
        return None;
    }
    let l4 = ip + header_len(frame, ip);
    let bytes = frame.get(l4..l4 + 4)?;
    Some((u16::from_be_bytes([bytes[0], bytes[1]]), u16::from_be_bytes([bytes[2], bytes[3]])))
}

fn header_len(frame: &[u8], ip: usize) -> usize {
    usize::from(frame[ip] & 0x0f) * 4
}

fn fragment_offset(frame: &[u8], ip: usize) -> u16 {
    u16::from_be_bytes([frame[ip + 6], frame[ip + 7]]) & 0x1fff
}

fn read_u32(frame: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
}

/// Addresses left as they are in every copy: "this network" 0/8 (DHCP clients), multicast, and
/// the reserved block with the broadcast address. Remapping them would change what the packet
/// means. Loopback is remapped like a private address: on an Ethernet capture it is just a
/// lab's way of talking to itself (zeek's echo-connections trace is all 127.0.0.1).
pub fn is_kept_address(addr: u32) -> bool {
    let ip = Ipv4Addr::from(addr);
    ip.octets()[0] == 0 || ip.is_multicast() || addr >= 0xf000_0000
}

/// Private-side addresses (RFC 1918, shared 100.64/10, link-local, loopback) map into 10.0.0.0/8; all
/// other unicast addresses into 100.64.0.0/10. Keeping the two apart preserves which side of
/// a conversation was the local one.
fn is_private_side(addr: u32) -> bool {
    let ip = Ipv4Addr::from(addr);
    ip.is_private() || ip.is_link_local() || ip.is_loopback() || (addr & 0xffc0_0000) == 0x6440_0000
}

const PRIVATE_BLOCK: (u32, u32) = (0x0a00_0000, 1 << 24); // 10.0.0.0/8
const PUBLIC_BLOCK: (u32, u32) = (0x6440_0000, 1 << 22); // 100.64.0.0/10

/// A bijection per copy: the `j`-th distinct source address of a side becomes
/// `block + 1 + copy * n_side + j`, so no two (copy, address) pairs share an address.
#[derive(Debug)]
pub struct AddressPlan {
    index: BTreeMap<u32, (bool, u32)>,
    private_count: u32,
    public_count: u32,
}

impl AddressPlan {
    pub fn new(addresses: impl IntoIterator<Item = u32>, copies: u32) -> Result<Self> {
        let mut index = BTreeMap::new();
        for addr in addresses {
            if !is_kept_address(addr) {
                index.insert(addr, (is_private_side(addr), 0));
            }
        }
        let (mut private_count, mut public_count) = (0u32, 0u32);
        for (private, slot) in index.values_mut() {
            let counter = if *private { &mut private_count } else { &mut public_count };
            *slot = *counter;
            *counter += 1;
        }
        for (name, count, block) in
            [("10.0.0.0/8", private_count, PRIVATE_BLOCK), ("100.64.0.0/10", public_count, PUBLIC_BLOCK)]
        {
            ensure!(
                u64::from(count) * u64::from(copies) + 2 <= u64::from(block.1),
                "{copies} copies of {count} addresses do not fit in {name}: ask for fewer packets/flows"
            );
        }
        Ok(Self { index, private_count, public_count })
    }

    pub fn map(&self, copy: u32, addr: u32) -> u32 {
        match self.index.get(&addr) {
            None => addr,
            Some(&(true, j)) => PRIVATE_BLOCK.0 + 1 + copy * self.private_count + j,
            Some(&(false, j)) => PUBLIC_BLOCK.0 + 1 + copy * self.public_count + j,
        }
    }
}

/// Writes new addresses into the IPv4 header at `ip` and updates the IPv4 header checksum and,
/// when the transport header is in the captured bytes, the TCP or UDP checksum.
pub fn rewrite_addresses(frame: &mut [u8], ip: usize, src: u32, dst: u32) {
    let mut old = [0u8; 8];
    old.copy_from_slice(&frame[ip + 12..ip + 20]);
    let mut new = [0u8; 8];
    new[..4].copy_from_slice(&src.to_be_bytes());
    new[4..].copy_from_slice(&dst.to_be_bytes());
    if old == new {
        return;
    }
    frame[ip + 12..ip + 20].copy_from_slice(&new);
    update_checksum_at(frame, ip + 10, &old, &new);
    // The addresses are in the TCP/UDP pseudo-header.
    update_transport_checksum(frame, ip, &old, &new);
}

/// Renumbers the source (`source_side`) or destination port of a TCP or UDP packet whose
/// [`Tuple::renumberable`] is true, updating its checksum.
pub fn rewrite_port(frame: &mut [u8], ip: usize, source_side: bool, port: u16) {
    let at = ip + header_len(frame, ip) + if source_side { 0 } else { 2 };
    let Some(field) = frame.get_mut(at..at + 2) else {
        return;
    };
    let old = [field[0], field[1]];
    let new = port.to_be_bytes();
    field.copy_from_slice(&new);
    update_transport_checksum(frame, ip, &old, &new);
}

/// Applies the change `old` → `new` of covered bytes to the TCP or UDP checksum, when the
/// transport header is in the captured bytes of this (first or only) fragment.
fn update_transport_checksum(frame: &mut [u8], ip: usize, old: &[u8], new: &[u8]) {
    if fragment_offset(frame, ip) != 0 {
        return; // no transport header in this fragment
    }
    let l4 = ip + header_len(frame, ip);
    match frame[ip + 9] {
        PROTO_TCP => update_checksum_at(frame, l4 + 16, old, new),
        // UDP checksum 0 means "none"; a computed 0 is sent as 0xffff (RFC 768).
        PROTO_UDP if frame.get(l4 + 6..l4 + 8).is_some_and(|c| c != [0, 0]) => {
            update_checksum_at(frame, l4 + 6, old, new);
            if frame[l4 + 6..l4 + 8] == [0, 0] {
                frame[l4 + 6..l4 + 8].copy_from_slice(&[0xff, 0xff]);
            }
        }
        _ => {}
    }
}

/// RFC 1624 eqn. 3 at `at` (if those two bytes were captured): HC' = ~(~HC + ~m + m'), for
/// the 16-bit words of `old` → `new` (even lengths).
fn update_checksum_at(frame: &mut [u8], at: usize, old: &[u8], new: &[u8]) {
    let Some(field) = frame.get_mut(at..at + 2) else {
        return;
    };
    let mut sum = u32::from(!u16::from_be_bytes([field[0], field[1]]));
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    field.copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ones'-complement sum over `data`, folded (RFC 1071).
    fn ones_sum(data: &[u8]) -> u32 {
        let mut sum: u32 = data
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    /// Ethernet + IPv4 + UDP (ports 5353 -> 53) + 4 bytes payload, both checksums valid.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = [0x45, 0, 0, 32, 0x12, 0x34, 0x40, 0, 64, PROTO_UDP, 0, 0, 192, 168, 1, 20, 8, 8, 8, 8];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
        let ip_sum = !(ones_sum(&f[14..34]) as u16);
        f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        let udp_sum = udp_checksum(&f);
        f[40..42].copy_from_slice(&udp_sum.to_be_bytes());
        f
    }

    fn udp_checksum(f: &[u8]) -> u16 {
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, PROTO_UDP, 0, 12]);
        let mut udp = f[34..].to_vec();
        udp[6..8].copy_from_slice(&[0, 0]);
        pseudo.extend_from_slice(&udp);
        !(ones_sum(&pseudo) as u16)
    }

    #[test]
    fn incremental_update_keeps_ip_and_udp_checksums_valid() {
        let mut f = udp_frame();
        let ip = ipv4_offset(&f).expect("an IPv4 frame");
        assert_eq!(ip, 14);
        rewrite_addresses(&mut f, ip, 0x0a00_0005, 0x6440_0007);
        assert_eq!(addresses(&f, ip), (0x0a00_0005, 0x6440_0007));
        assert_eq!(ones_sum(&f[14..34]), 0xffff, "IPv4 header checksum verifies");
        assert_eq!(u16::from_be_bytes([f[40], f[41]]), udp_checksum(&f));
    }

    #[test]
    fn port_renumbering_keeps_the_udp_checksum_valid() {
        let mut f = udp_frame();
        rewrite_port(&mut f, 14, true, 40_000);
        assert_eq!(tuple(&f, 14).sport, 40_000);
        assert_eq!(u16::from_be_bytes([f[40], f[41]]), udp_checksum(&f));
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut f = udp_frame();
        f[40..42].copy_from_slice(&[0, 0]);
        rewrite_addresses(&mut f, 14, 0x0a00_0005, 0x6440_0007);
        assert_eq!(&f[40..42], &[0, 0]);
    }

    #[test]
    fn flow_key_is_direction_free() {
        let f = udp_frame();
        let mut reply = f.clone();
        reply[26..30].copy_from_slice(&f[30..34]);
        reply[30..34].copy_from_slice(&f[26..30]);
        reply[34..36].copy_from_slice(&f[36..38]);
        reply[36..38].copy_from_slice(&f[34..36]);
        assert_eq!(flow_key(&f, 14), flow_key(&reply, 14));
    }

    #[test]
    fn address_plan_gives_each_copy_its_own_addresses_and_keeps_multicast() {
        let addrs = [0xc0a8_0114, 0x0808_0808, 0xe000_00fb];
        let plan = AddressPlan::new(addrs, 3).expect("fits");
        let mut seen = std::collections::BTreeSet::new();
        for copy in 0..3 {
            for addr in &addrs[..2] {
                assert!(seen.insert(plan.map(copy, *addr)), "no collision");
            }
            assert_eq!(plan.map(copy, 0xe000_00fb), 0xe000_00fb);
        }
        assert_eq!(plan.map(1, 0xc0a8_0114), 0x0a00_0002);
        assert_eq!(plan.map(1, 0x0808_0808), 0x6440_0002);
    }

    #[test]
    fn non_ipv4_frames_are_not_rewritten() {
        let mut f = udp_frame();
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(ipv4_offset(&f), None);
        assert_eq!(ipv4_offset(&f[..20]), None);
    }
}
