//! Decoder behaviour on frames built by `synth`, one link type or header
//! feature per test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::config::DecodeSettings;
use crate::synth;

fn decoder() -> Decoder {
    Decoder::new(&DecodeSettings { gre: true, vxlan: true, vxlan_ports: vec![4789] })
}

fn a(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn b(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))
}

fn decode_eth(d: &mut Decoder, frame: &[u8]) -> Result<PacketMeta, Skip> {
    d.decode(LinkType::Ethernet, 1, frame)
}

#[test]
fn tcp_over_ethernet_gives_canonical_key_direction_flags_and_ip_length() {
    let mut d = decoder();
    let ip = synth::tcp((b(7), 443), (a(5), 50_000), synth::flags::SYN | synth::flags::ACK, 1, 2, &[0; 10]);
    let m = decode_eth(&mut d, &synth::ethernet(&[], &ip)).expect("decodes");
    assert_eq!(m.key.proto, 6);
    assert_eq!(m.key.ip_version, 4);
    assert_eq!(&m.key.addr_lo[12..], &[10, 0, 0, 5]);
    assert_eq!(m.key.port_lo, 50_000);
    assert_eq!(m.key.port_hi, 443);
    assert!(!m.from_lo, "sender 198.51.100.7 is the higher endpoint");
    assert_eq!(m.tcp_flags, 0x12);
    assert_eq!(m.ip_len, 20 + 20 + 10);
    // The reverse direction has the same key.
    let back = synth::tcp((a(5), 50_000), (b(7), 443), synth::flags::ACK, 2, 2, &[]);
    let r = decode_eth(&mut d, &synth::ethernet(&[], &back)).expect("decodes");
    assert_eq!(r.key, m.key);
    assert!(r.from_lo);
}

#[test]
fn vlan_and_qinq_ids_are_part_of_the_key() {
    let mut d = decoder();
    let ip = synth::udp((a(1), 1000), (b(1), 53), b"q");
    let plain = decode_eth(&mut d, &synth::ethernet(&[], &ip)).expect("plain");
    let one = decode_eth(&mut d, &synth::ethernet(&[100], &ip)).expect("802.1Q");
    let two = decode_eth(&mut d, &synth::ethernet(&[200, 300], &ip)).expect("QinQ");
    assert_eq!((plain.key.vlan_outer, plain.key.vlan_inner), (0, 0));
    assert_eq!((one.key.vlan_outer, one.key.vlan_inner), (100, 0));
    assert_eq!((two.key.vlan_outer, two.key.vlan_inner), (200, 300));
    assert_ne!(plain.key, one.key);
}

#[test]
fn ipv6_key_and_length_include_the_fixed_header() {
    let mut d = decoder();
    let c = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
    let s = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let m = decode_eth(&mut d, &synth::ethernet(&[], &synth::udp((c, 5353), (s, 53), &[1; 30]))).expect("v6");
    assert_eq!(m.key.ip_version, 6);
    assert_eq!(m.ip_len, 40 + 8 + 30);
}

#[test]
fn icmp_echo_request_and_reply_share_a_flow() {
    let mut d = decoder();
    let req = decode_eth(&mut d, &synth::ethernet(&[], &synth::echo(a(1), b(1), true, 7, 1, &[0; 56])));
    let rep = decode_eth(&mut d, &synth::ethernet(&[], &synth::echo(b(1), a(1), false, 7, 1, &[0; 56])));
    let (req, rep) = (req.expect("request"), rep.expect("reply"));
    assert_eq!(req.key, rep.key);
    assert_ne!(req.from_lo, rep.from_lo);
}

#[test]
fn gre_and_vxlan_are_decapsulated_to_the_inner_flow() {
    let mut d = decoder();
    let inner = synth::udp((a(9), 4000), (b(9), 53), b"inner");
    let direct = decode_eth(&mut d, &synth::ethernet(&[], &inner)).expect("direct");
    let via_gre =
        decode_eth(&mut d, &synth::ethernet(&[], &synth::gre(a(250), b(250), &inner))).expect("gre");
    let frame = synth::ethernet(&[], &inner);
    let via_vxlan = decode_eth(&mut d, &synth::ethernet(&[], &synth::vxlan(a(250), b(250), 42, &frame)));
    assert_eq!(via_gre.key, direct.key);
    assert_eq!(via_gre.ip_len, direct.ip_len);
    assert_eq!(via_vxlan.expect("vxlan").key, direct.key);
    assert_eq!(d.counters.decapsulated, 2);
}

#[test]
fn tunnels_are_left_closed_when_disabled() {
    let mut d = Decoder::new(&DecodeSettings { gre: false, vxlan: false, vxlan_ports: vec![4789] });
    let inner = synth::udp((a(9), 4000), (b(9), 53), b"inner");
    let m = decode_eth(&mut d, &synth::ethernet(&[], &synth::gre(a(250), b(250), &inner))).expect("gre");
    assert_eq!(m.key.proto, 47);
    assert_eq!(d.counters.decapsulated, 0);
}

#[test]
fn later_fragment_is_accounted_to_the_flow_of_its_first_fragment() {
    let mut d = decoder();
    let mut first = vec![0x9c, 0x40, 0x13, 0x89, 0x05, 0xdc, 0, 0];
    first.extend_from_slice(&[0; 64]);
    let f1 = synth::ipv4_fragment([10, 0, 0, 1], [10, 0, 0, 2], 17, 9, 0, true, &first);
    let f2 = synth::ipv4_fragment([10, 0, 0, 1], [10, 0, 0, 2], 17, 9, 9, false, &[0; 20]);
    let m1 = decode_eth(&mut d, &synth::ethernet(&[], &f1)).expect("first");
    let m2 = decode_eth(&mut d, &synth::ethernet(&[], &f2)).expect("later");
    assert_eq!((m1.key.port_lo, m1.key.port_hi), (40_000, 5001));
    assert_eq!(m1.key, m2.key);
    assert_eq!(m2.ip_len, 40);
    // A later fragment of an unseen datagram is an orphan, counted as such.
    let f3 = synth::ipv4_fragment([10, 0, 0, 1], [10, 0, 0, 2], 17, 10, 9, false, &[0; 20]);
    assert_eq!(decode_eth(&mut d, &synth::ethernet(&[], &f3)), Err(Skip::OrphanFragment));
    assert_eq!((d.counters.fragments, d.counters.orphan_fragments), (3, 1));
}

#[test]
fn linux_cooked_v1_and_v2_raw_ip_and_bsd_loopback_are_read() {
    let mut d = decoder();
    let ip = synth::udp((a(1), 1000), (b(1), 53), b"x");
    let reference = d.decode(LinkType::Raw, 1, &ip).expect("raw");
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    // Loopback frames of the "any" device: ARPHRD 772, no address.
    let mut sll_lo = vec![0, 0, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
    sll_lo.extend_from_slice(&ip);
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll2.extend_from_slice(&ip);
    let mut null_le = 2u32.to_le_bytes().to_vec();
    null_le.extend_from_slice(&ip);
    let mut null_be = 2u32.to_be_bytes().to_vec();
    null_be.extend_from_slice(&ip);
    for (link, frame) in [
        (LinkType::LinuxSll, &sll),
        (LinkType::LinuxSll, &sll_lo),
        (LinkType::LinuxSll2, &sll2),
        (LinkType::Null, &null_le),
        (LinkType::Null, &null_be),
        (LinkType::Loop, &null_be),
    ] {
        assert_eq!(d.decode(link, 1, frame).map(|m| m.key), Ok(reference.key), "{link:?}");
    }
}

#[test]
fn arp_is_not_ip_and_not_malformed() {
    let mut d = decoder();
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(decode_eth(&mut d, &arp), Err(Skip::NotIp));
    assert_eq!(d.counters.non_ip, 1);
}

#[test]
fn malformed_frames_are_counted_by_reason_and_never_panic() {
    let mut d = decoder();
    let tcp = synth::ethernet(&[], &synth::tcp((a(1), 1), (b(1), 2), 0x02, 0, 0, &[]));
    let mut bad_offset = tcp.clone();
    bad_offset[14 + 20 + 12] = 0x20;
    let mut bad_version = tcp.clone();
    bad_version[14] = 0x75;
    let mut bad_ihl = tcp.clone();
    bad_ihl[14] = 0x43;
    let cases: [(&[u8], Malformed); 6] = [
        (&[], Malformed::Empty),
        (&tcp[..10], Malformed::TruncatedLink),
        (&tcp[..24], Malformed::TruncatedIp),
        (&tcp[..14 + 20 + 2], Malformed::TruncatedTransport),
        (&bad_offset, Malformed::BadTcpHeader),
        (&bad_version, Malformed::BadIpVersion),
    ];
    for (frame, reason) in cases {
        assert_eq!(decode_eth(&mut d, frame), Err(Skip::Malformed(reason)), "{reason:?}");
    }
    assert!(matches!(decode_eth(&mut d, &bad_ihl), Err(Skip::Malformed(_))));
    // Every prefix of a valid frame decodes or is malformed; none panics.
    let vxlan = synth::ethernet(&[7], &synth::vxlan(a(1), b(1), 1, &tcp));
    for cut in 0..vxlan.len() {
        let _ = decode_eth(&mut d, &vxlan[..cut]);
    }
    assert_eq!(
        d.counters.malformed.iter().sum::<u64>() as usize,
        7 + vxlan.len() - d.counters.parsed as usize - d.counters.non_ip as usize
    );
}

#[test]
fn arp_request_is_read_under_vlan_tags_and_cooked_headers_and_nothing_else() {
    use link::{ArpRequest, arp_request};
    let frame = synth::arp_request([10, 0, 0, 5], [10, 0, 0, 9]);
    let want = ArpRequest { sender: [10, 0, 0, 5], target: [10, 0, 0, 9], broadcast: true };
    assert_eq!(arp_request(LinkType::Ethernet, &frame), Some(want));
    let mut tagged = frame[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    tagged.extend_from_slice(&frame[12..]);
    assert_eq!(arp_request(LinkType::Ethernet, &tagged), Some(want));
    let mut cooked = vec![0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 5, 0, 0, 0x08, 0x06];
    cooked.extend_from_slice(&frame[14..]);
    assert_eq!(arp_request(LinkType::LinuxSll, &cooked), Some(want));
    let mut reply = frame.clone();
    reply[21] = 2;
    assert_eq!(arp_request(LinkType::Ethernet, &reply), None);
    for cut in 0..frame.len() {
        let _ = arp_request(LinkType::Ethernet, &frame[..cut]);
    }
    assert_eq!(arp_request(LinkType::Ethernet, &frame[..41]), None);
    let ip = synth::ethernet(&[], &synth::udp((a(1), 1), (a(2), 2), b"x"));
    assert_eq!(arp_request(LinkType::Ethernet, &ip), None);
    assert_eq!(arp_request(LinkType::Raw, &frame), None);
}
