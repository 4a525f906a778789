use super::*;
use crate::capture::LinkType;
use crate::config::DecodeSettings;
use crate::decode::Decoder;
use crate::flow::FlowHasher;
use crate::protocol::{App, Protocol};

fn decoder() -> Decoder {
    Decoder::new(&DecodeSettings { gre: true, vxlan: true, vxlan_ports: vec![4789] })
}

/// An Ethernet/IPv4/TCP segment from 10.0.0.1:40000 to 10.0.0.2:`dport`.
fn tcp_frame(dport: u16, payload: &[u8]) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, dport, 1, 64_000)
        .psh()
        .ack(1);
    let mut out = Vec::new();
    builder.write(&mut out, payload).expect("frame");
    out
}

/// The SYN of 10.0.0.1:40000 → 10.0.0.2:`dport`: opens the client's direction.
fn tcp_syn(dport: u16) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, dport, 0, 64_000)
        .syn();
    let mut out = Vec::new();
    builder.write(&mut out, &[]).expect("frame");
    out
}

/// An Ethernet/IPv4/UDP frame from 10.0.0.1:40000 to 10.0.0.2:`dport`.
fn udp_frame(dport: u16, payload: &[u8]) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(40000, dport);
    let mut out = Vec::new();
    builder.write(&mut out, payload).expect("frame");
    out
}

fn observe(obs: &mut Observer, frame: &[u8]) {
    let mut d = decoder();
    let mut meta = d.decode(LinkType::Ethernet, 1_000, frame).expect("decodes");
    meta.hash = FlowHasher::with_seed(7).hash(&meta.key);
    obs.packet(&meta, d.last_l4(), frame);
}

fn dns_query(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).expect("short label"));
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

#[test]
fn reports_every_dns_query_on_port_53() {
    let mut obs = Observer::new();
    observe(&mut obs, &udp_frame(53, &dns_query("a1.example.com", 16)));
    observe(&mut obs, &udp_frame(53, &dns_query("b2.example.com", 16)));
    let batch = obs.take(2_000);
    let dns: Vec<_> =
        batch.iter().filter_map(|o| if let ObsKind::Dns(d) = &o.kind { Some(d) } else { None }).collect();
    assert_eq!(dns.len(), 2);
    assert_eq!(dns[0].qname.as_deref(), Some("a1.example.com"));
    assert_eq!(dns[0].qtype, Some(16));
    assert!(dns[0].query);
    let apps = batch.iter().filter(|o| matches!(o.kind, ObsKind::App { .. })).count();
    assert_eq!(apps, 0, "DNS on 53 breaks no port rule");
    assert_eq!(batch[0].src.to_string(), "10.0.0.1");
    assert_eq!(batch[0].dport, 53);
}

#[test]
fn reports_icmp_echo_payload_sizes() {
    let builder = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .icmpv4_echo_request(1, 1);
    let mut frame = Vec::new();
    builder.write(&mut frame, &[0xab; 300]).expect("frame");
    let mut obs = Observer::new();
    observe(&mut obs, &frame);
    let batch = obs.take(0);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].kind, ObsKind::IcmpEcho { reply: false, payload_len: 300 });
}

#[test]
fn empty_payloads_report_nothing() {
    let mut obs = Observer::new();
    observe(&mut obs, &udp_frame(9999, &[]));
    assert!(obs.take(0).is_empty());
}

#[test]
fn ssh_on_443_is_reported_once_per_direction() {
    let mut obs = Observer::new();
    let banner = b"SSH-2.0-OpenSSH_9.2\r\n";
    observe(&mut obs, &tcp_syn(443));
    observe(&mut obs, &tcp_frame(443, banner));
    observe(&mut obs, &tcp_frame(443, b"Zmore bytes of the session"));
    let batch = obs.take(0);
    let apps: Vec<_> = batch.iter().filter(|o| matches!(o.kind, ObsKind::App { .. })).collect();
    assert_eq!(apps.len(), 1, "{batch:?}");
    assert!(matches!(&apps[0].kind, ObsKind::App { protocol: Protocol { app: App::Ssh { .. }, .. }, .. }));
    assert_eq!(obs.counters.identified, 1);
}

/// Regression: a flow whose start the capture missed was judged from a segment in its middle,
/// which read as "something other than TLS on 443". A TCP direction is identified only after
/// its opening was seen.
#[test]
fn a_flow_met_in_mid_stream_is_never_identified() {
    let mut obs = Observer::new();
    observe(&mut obs, &tcp_frame(443, &[0x9c, 0x03, 0x77, 0x00, 0x10, 1, 2, 3, 4, 5]));
    observe(&mut obs, &tcp_frame(443, b"SSH-2.0-not-at-the-start\r\n"));
    assert_eq!(obs.counters.identified, 0);
    assert!(obs.take(0).iter().all(|o| !matches!(o.kind, ObsKind::App { .. })));
}

#[test]
fn an_http_post_is_reported_with_its_body_entropy() {
    let mut obs = Observer::new();
    let mut post =
        b"POST /gate.php HTTP/1.1\r\nHost: 203.0.113.9:7080\r\nContent-Length: 256\r\n\r\n".to_vec();
    post.extend((0..=255u8).map(|b| b.wrapping_mul(167)));
    observe(&mut obs, &tcp_syn(7080));
    observe(&mut obs, &tcp_frame(7080, &post));
    let batch = obs.take(0);
    let Some(ObsKind::App { protocol, body_entropy, .. }) =
        batch.iter().map(|o| &o.kind).find(|k| matches!(k, ObsKind::App { .. }))
    else {
        panic!("no application observation: {batch:?}");
    };
    assert_eq!(protocol.name(), "http");
    assert!(body_entropy.is_some_and(|e| e > 7.9), "{body_entropy:?}");
}

#[test]
fn hex_or_base64_encoded_random_bodies_measure_like_raw_random_and_text_does_not() {
    let random: Vec<u8> = (0..96u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let post = format!("POST /76N1Lm.php?n=x4 HTTP/1.1\r\nHost: a.example\r\n\r\no={hex}");
    let e = body_entropy(post.as_bytes()).expect("present");
    assert!(e > 6.5, "hex-encoded random: {e}");
    let text = "POST /f HTTP/1.1\r\n\r\nname=Jane+Doe&comment=the+quick+brown+fox+jumps+over+the+lazy+dog";
    let e = body_entropy(text.as_bytes()).expect("present");
    assert!(e < 5.0, "a form: {e}");
    let word = "POST /f HTTP/1.1\r\n\r\ntoken=aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    assert!(body_entropy(word.as_bytes()).expect("present") < 2.0);
}

/// Regression: a Windows client's DNS dynamic UPDATE (opcode 5) to port 53
/// was identified as unknown and raised "port 53 carrying something other
/// than DNS"; it is a DNS message and breaks no port rule.
#[test]
fn dns_update_to_port_53_is_dns_not_a_mismatch() {
    let update = b"\x8a\x1c\x28\x00\x00\x01\x00\x01\x00\x02\x00\x00\x07example\x05local\x00\x00\x06\x00\x01\
        \x05host1\xc0\x0c\x00\x05\x00\xfe\x00\x00\x00\x00\x00\x00\
        \xc0\x1f\x00\x01\x00\xff\x00\x00\x00\x00\x00\x00\
        \xc0\x1f\x00\x01\x00\x01\x00\x00\x04\xb0\x00\x04\x0a\x00\x00\x17";
    let mut obs = Observer::new();
    observe(&mut obs, &udp_frame(53, update));
    let batch = obs.take(0);
    assert!(batch.iter().all(|o| !matches!(o.kind, ObsKind::App { .. })), "{batch:?}");
    let ObsKind::Dns(d) = &batch[0].kind else { panic!("not DNS: {batch:?}") };
    assert_eq!((d.query, d.qname.as_deref(), d.qtype), (true, Some("example.local"), Some(6)));
}

#[test]
fn reports_a_port_unreachable_with_the_probe_it_quotes() {
    let probe =
        crate::synth::udp((IpAddr::from([10, 0, 0, 1]), 40_000), (IpAddr::from([10, 0, 0, 2]), 161), b"x");
    let icmp = crate::synth::unreachable(IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 1]), 3, &probe);
    let mut obs = Observer::new();
    observe(&mut obs, &crate::synth::ethernet(&[], &icmp));
    let batch = obs.take(0);
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(batch[0].src.to_string(), "10.0.0.2");
    assert_eq!(batch[0].dst.to_string(), "10.0.0.1");
    assert_eq!(
        batch[0].kind,
        ObsKind::Unreachable { orig_proto: 17, orig_dst: IpAddr::from([10, 0, 0, 2]), orig_dport: 161 }
    );
    assert_eq!(obs.counters.unreachable, 1);
}

#[test]
fn fragmentation_needed_and_cut_quotes_are_not_reported() {
    let probe =
        crate::synth::udp((IpAddr::from([10, 0, 0, 1]), 40_000), (IpAddr::from([10, 0, 0, 2]), 161), b"x");
    let (a, b) = (IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 1]));
    let mut obs = Observer::new();
    observe(&mut obs, &crate::synth::ethernet(&[], &crate::synth::unreachable(a, b, 4, &probe)));
    observe(&mut obs, &crate::synth::ethernet(&[], &crate::synth::unreachable(a, b, 3, &probe[..12])));
    assert!(obs.take(0).is_empty());
}

#[test]
fn reports_broadcast_arp_requests_from_non_ip_frames_only() {
    let mut obs = Observer::new();
    let frame = crate::synth::arp_request([192, 168, 1, 71], [192, 168, 1, 9]);
    assert!(matches!(decoder().decode(LinkType::Ethernet, 0, &frame), Err(crate::decode::Skip::NotIp)));
    obs.not_ip(LinkType::Ethernet, &frame, 5);
    // Gratuitous ARP and a unicast refresh are not a sweep's.
    obs.not_ip(LinkType::Ethernet, &crate::synth::arp_request([192, 168, 1, 7], [192, 168, 1, 7]), 6);
    let mut unicast = crate::synth::arp_request([192, 168, 1, 71], [192, 168, 1, 10]);
    unicast[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    obs.not_ip(LinkType::Ethernet, &unicast, 7);
    // Cut short: nothing, no panic.
    obs.not_ip(LinkType::Ethernet, &frame[..30], 8);
    let batch = obs.take(0);
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(
        (batch[0].src.to_string(), batch[0].dst.to_string()),
        ("192.168.1.71".into(), "192.168.1.9".into())
    );
    assert_eq!(batch[0].kind, ObsKind::ArpRequest);
    assert_eq!(batch[0].ts_ns, 5);
}

#[test]
fn reports_every_dhcp_client_message_to_port_67_not_only_a_flows_first() {
    let mut discover = vec![1, 1, 6, 0, 0, 0, 0, 1];
    discover.resize(28, 0);
    discover.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xaa, 0xbb]);
    discover.resize(236, 0);
    discover.extend_from_slice(&[0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255]);
    let mut obs = Observer::new();
    for _ in 0..3 {
        observe(&mut obs, &udp_frame(67, &discover));
    }
    let mut offer = discover.clone();
    offer[0] = 2;
    observe(&mut obs, &udp_frame(67, &offer));
    observe(&mut obs, &udp_frame(68, &discover));
    let batch = obs.take(0);
    let dhcp: Vec<_> = batch.iter().filter(|o| matches!(o.kind, ObsKind::DhcpRequest(_))).collect();
    assert_eq!(dhcp.len(), 3, "{batch:#?}");
    assert_eq!(obs.counters.dhcp_requests, 3);
    let ObsKind::DhcpRequest(m) = &dhcp[0].kind else { unreachable!("filtered") };
    assert_eq!((m.message_type, m.client, m.relayed), (Some(1), [0xde, 0xad, 0xbe, 0xef, 0xaa, 0xbb], false));
}
