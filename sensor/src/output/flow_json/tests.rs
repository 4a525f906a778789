//! The hand-written encoder against serde's rendering of the schema structs, byte for byte, on
//! records of every shape the writer sees.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nbad_common::{FlowKey, IP_V4, IP_V6};

use super::*;
use crate::flow::EndReason;
use crate::flow::record::DirectionCounters;
use crate::output::flow_meta::{CertificateMeta, HttpMeta, TlsMeta};

fn mapped(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A record between `lo` and `hi` (lo < hi), the client being `lo` when `client_is_lo`.
fn record(
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
    proto: u8,
    reason: EndReason,
    client_is_lo: bool,
) -> FlowRecord {
    let dir = |packets, bytes, tcp_flags, first_ns| DirectionCounters {
        packets,
        bytes,
        tcp_flags,
        first_ns,
        last_ns: first_ns + 5_000_000,
    };
    FlowRecord {
        key: FlowKey {
            addr_lo: mapped(lo.0),
            addr_hi: mapped(hi.0),
            port_lo: lo.1,
            port_hi: hi.1,
            vlan_outer: 0,
            vlan_inner: 0,
            proto,
            ip_version: if lo.0.is_ipv4() { IP_V4 } else { IP_V6 },
            pad: [0; 2],
        },
        client_is_lo,
        reason,
        start_ns: 1_700_000_000_000_000_123,
        end_ns: 1_700_000_001_999_999_999,
        client: dir(12, 3_400, 0x1b, 1_700_000_000_000_000_123),
        server: dir(9, 120_000, 0x12, 1_700_000_000_000_100_000),
        tcp_state: tcp_state::SYN | tcp_state::SYN_ACK | tcp_state::ESTABLISHED,
        continued: false,
    }
}

fn v4(a: [u8; 4], port: u16) -> (IpAddr, u16) {
    (IpAddr::V4(Ipv4Addr::from(a)), port)
}

fn v6(s: &str, port: u16) -> (IpAddr, u16) {
    (IpAddr::V6(s.parse::<Ipv6Addr>().expect("address")), port)
}

fn tls_meta() -> FlowMeta {
    let mut m = FlowMeta::default();
    m.protocol = Some("tls");
    m.tls = Some(Box::new(TlsMeta {
        server_name: Some("www.example.org".into()),
        client_alpn: vec!["h2".into(), "http/1.1".into()],
        ja4: Some("t13d1516h2_8daaf6152771_e5627efa2ab1".into()),
        client_version: Some(0x0304),
        version: Some(0x0303),
        cipher: Some(0xc02f),
        certificate: Some(CertificateMeta {
            subject: "CN=www.example.org,O=\"Quote\" \\ Inc".into(),
            issuer: "CN=Example CA".into(),
            not_before: 1_600_000_000,
            not_after: 1_800_000_000,
            self_signed: false,
        }),
    }));
    m
}

fn http_meta() -> FlowMeta {
    let mut m = FlowMeta::default();
    m.protocol = Some("http");
    m.http = Some(Box::new(HttpMeta {
        method: Some("POST".into()),
        host: Some("203.0.113.9:7080".into()),
        path: Some("/gate.php?id=\u{1}é\"x".into()),
        uri_len: Some(17),
        user_agent: Some("Mozilla/5.0 (tab\t)".into()),
        referer: Some(false),
        status: Some(200),
        content_type: Some("application/octet-stream".into()),
    }));
    m
}

fn both(r: &FlowRecord, meta: Option<&FlowMeta>, observer: &str) -> (String, String) {
    let mut fast = Vec::new();
    let id = encode(&mut fast, r, meta, &json_string(observer), &mut Clock::default()).expect("encodes");
    let slow = serde_json::to_vec(&reference::ecs(r, meta, observer)).expect("serialises");
    let fast = String::from_utf8(fast).expect("UTF-8");
    assert!(fast.contains(&id), "the returned Community ID is the one written");
    (fast, String::from_utf8(slow).expect("UTF-8"))
}

#[test]
fn writes_what_serde_writes_for_every_shape_of_record() {
    let shapes = [
        record(v4([10, 0, 0, 1], 40_000), v4([192, 0, 2, 9], 443), 6, EndReason::TcpClose, true),
        record(v4([10, 0, 0, 1], 443), v4([192, 0, 2, 9], 40_000), 6, EndReason::ActiveTimeout, false),
        record(v4([10, 0, 0, 1], 53), v4([10, 0, 0, 2], 5353), 17, EndReason::IdleTimeout, false),
        record(v4([10, 0, 0, 1], 0), v4([10, 0, 0, 2], 8), 1, EndReason::EndOfCapture, true),
        record(v6("2001:db8::1", 0), v6("2001:db8::2", 0), 58, EndReason::Evicted, true),
        record(v6("2001:db8::1", 1234), v6("fe80::1", 22), 6, EndReason::TcpReset, true),
        record(v4([10, 0, 0, 1], 0), v4([10, 0, 0, 2], 0), 47, EndReason::Shutdown, true),
        record(v4([10, 0, 0, 1], 0), v4([10, 0, 0, 2], 0), 253, EndReason::IdleTimeout, true),
    ];
    let metas = [None, Some(tls_meta()), Some(http_meta()), Some(FlowMeta::default())];
    for (i, mut r) in shapes.into_iter().enumerate() {
        if i % 2 == 1 {
            r.key.vlan_outer = 100;
            r.key.vlan_inner = if i % 4 == 1 { 4094 } else { 0 };
            r.tcp_state = tcp_state::SYN | tcp_state::RST;
            r.client.tcp_flags = 0;
        }
        for meta in &metas {
            for observer in ["sensor-1", "quote\"and\\back\u{7}slash"] {
                let (fast, slow) = both(&r, meta.as_ref(), observer);
                assert_eq!(fast, slow, "shape {i}, meta {:?}", meta.as_ref().and_then(|m| m.protocol));
            }
        }
    }
}

#[test]
fn times_keep_their_microseconds_across_seconds_and_slots() {
    let mut r = record(v4([10, 0, 0, 1], 1), v4([10, 0, 0, 2], 2), 17, EndReason::IdleTimeout, true);
    let mut clock = Clock::default();
    let observer = json_string("s");
    // Consecutive records that revisit seconds in and out of the cache, with sub-second
    // parts that need zero padding and none.
    for (start, end) in [
        (0, 0),
        (1_000, 999_999_999),
        (1_700_000_000_000_001_000, 1_700_000_004_000_000_000),
        (1_700_000_000_000_001_000, 1_700_000_000_500_000_000),
        (1_700_000_004_123_456_789, 1_700_000_008_000_000_001),
        (4_102_444_799_999_999_000, 4_102_444_800_000_000_000),
    ] {
        r.start_ns = start;
        r.end_ns = end;
        let mut fast = Vec::new();
        encode(&mut fast, &r, None, &observer, &mut clock).expect("encodes");
        let slow = serde_json::to_vec(&reference::ecs(&r, None, "s")).expect("serialises");
        assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&slow), "{start}..{end}");
    }
}

#[test]
fn the_writer_frames_one_line_per_record() {
    let r = record(v4([10, 0, 0, 1], 40_000), v4([192, 0, 2, 9], 443), 6, EndReason::TcpClose, true);
    let path = std::env::temp_dir().join(format!("nbad-flow-json-{}.jsonl", std::process::id()));
    let file = std::fs::File::create(&path).expect("temp file");
    let mut w = FlowJsonWriter::new(Box::new(file), "sensor-1");
    let meta = tls_meta();
    w.write(&r, None).expect("writes");
    w.write(&r, Some(&meta)).expect("writes");
    w.flush().expect("flushes");
    let text = std::fs::read_to_string(&path).expect("reads back");
    std::fs::remove_file(&path).expect("removes");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("each line is a document")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["tls"]["client"]["server_name"], "www.example.org");
    assert_eq!(lines[0]["observer"]["name"], "sensor-1");
}
