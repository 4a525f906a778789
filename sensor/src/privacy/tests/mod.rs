//! Specification of the output rewrite on hand-made records and alerts; `pipeline.rs`
//! replays the self-test scenario through the production pipeline with `[privacy]` off and on.

use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::alert::{Detector, Evidence, IncidentRef, LearningState, Severity};
use crate::config::PrivacyKey;
use crate::flow::EndReason;
use crate::flow::community_id::community_id_v1;
use crate::flow::record::DirectionCounters;
use crate::output::flow_meta::{HttpMeta, TlsMeta};

const KEY: [u8; 32] = [0x5a; 32];
const HOME: &str = "10.1.0.0/16";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn privacy(pseudonymize: bool, drop_payload: bool) -> Privacy {
    let mut cfg = crate::config::default();
    cfg.sensor.home_networks = vec![HOME.parse().expect("test CIDR")];
    cfg.privacy.pseudonymize_inside = pseudonymize.then(|| PrivacyKey::from_bytes(KEY));
    cfg.privacy.drop_payload_fields = drop_payload;
    Privacy::from_config(&cfg).expect("an option is on")
}

fn names() -> Pseudonyms {
    Pseudonyms::new(&KEY, &[HOME.parse().expect("test CIDR")])
}

fn record(client: (IpAddr, u16), server: (IpAddr, u16)) -> FlowRecord {
    let mapped = |ip: IpAddr| match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    let (c, s) = ((mapped(client.0), client.1), (mapped(server.0), server.1));
    let client_is_lo = c <= s;
    let (lo, hi) = if client_is_lo { (c, s) } else { (s, c) };
    FlowRecord {
        key: nbad_common::FlowKey {
            addr_lo: lo.0,
            addr_hi: hi.0,
            port_lo: lo.1,
            port_hi: hi.1,
            proto: 6,
            ip_version: if client.0.is_ipv4() { nbad_common::IP_V4 } else { nbad_common::IP_V6 },
            ..nbad_common::FlowKey::default()
        },
        client_is_lo,
        reason: EndReason::TcpClose,
        start_ns: 1,
        end_ns: 2,
        client: DirectionCounters::default(),
        server: DirectionCounters::default(),
        tcp_state: 0,
        continued: false,
    }
}

#[test]
fn no_privacy_object_is_built_while_every_option_is_off() {
    assert!(Privacy::from_config(&crate::config::default()).is_none());
}

#[test]
fn records_get_pseudonyms_for_inside_endpoints_and_keep_a_canonical_key() {
    let mut p = privacy(true, false);
    let mut n = names();
    let recs = [
        record((ip("10.1.2.3"), 40_000), (ip("203.0.113.9"), 443)),
        record((ip("203.0.113.9"), 5_000), (ip("10.1.200.1"), 22)),
        record((ip("10.1.0.1"), 1_000), (ip("10.1.0.2"), 445)),
        record((ip("fd00::1"), 1_000), (ip("2001:db8::1"), 80)),
        record((ip("198.51.100.1"), 1_000), (ip("203.0.113.1"), 80)),
    ];
    let out = p.records(&recs);
    for (real, got) in recs.iter().zip(out.iter()) {
        let (c, s) = (real.client_endpoint(), real.server_endpoint());
        assert_eq!(got.client_endpoint(), (n.addr(c.0), c.1));
        assert_eq!(got.server_endpoint(), (n.addr(s.0), s.1));
        assert!((got.key.addr_lo, got.key.port_lo) <= (got.key.addr_hi, got.key.port_hi), "canonical");
    }
    assert_ne!(out[0].client_endpoint().0, ip("10.1.2.3"));
    assert_eq!(out[4], recs[4], "a record between two outside hosts is unchanged");
}

#[test]
fn payload_facts_are_dropped_from_flow_records_and_the_rest_is_kept() {
    let mut p = privacy(false, true);
    let mut meta = FlowMeta::default();
    meta.protocol = Some("http");
    meta.tls = Some(Box::new(TlsMeta {
        server_name: Some("secret.example.com".into()),
        ja4: Some("t13d1516h2_8daaf6152771_02713d6af862".into()),
        ..TlsMeta::default()
    }));
    meta.http = Some(Box::new(HttpMeta {
        method: Some("GET".into()),
        host: Some("secret.example.com".into()),
        path: Some("/login?user=alice".into()),
        user_agent: Some("curl/8".into()),
        status: Some(200),
        ..HttpMeta::default()
    }));
    let got = p.meta(Some(meta)).expect("kept");
    let (tls, http) = (got.tls.expect("tls"), got.http.expect("http"));
    assert_eq!((tls.server_name, tls.ja4.is_some()), (None, true));
    assert_eq!((http.host, http.path, http.user_agent), (None, None, None));
    assert_eq!((http.method.as_deref(), http.status, got.protocol), (Some("GET"), Some(200), Some("http")));
}

fn alert() -> Alert {
    let host = ip("10.1.0.5");
    let peer = ip("203.0.113.9");
    let mut details = serde_json::Map::new();
    details.insert("rule".into(), json!("horizontal"));
    details.insert("targets".into(), json!(["10.1.0.7", "10.1.0.8:22"]));
    details.insert("sni".into(), json!("c2.evil-example.com"));
    details.insert("user_agent".into(), json!("Mozilla/5.0 (X11)"));
    details.insert("examples".into(), json!(["aGVsbG8.t.example.net"]));
    details.insert("bytes".into(), json!(12_345));
    let cid = community_id_v1(0, host, 40_000, peer, 443, 6);
    Alert {
        id: crate::alert::alert_id("s", Detector::SuspiciousTls, host, Some(peer), Some(443), 9),
        timestamp_ns: 9,
        sensor_id: "s".into(),
        detector: Detector::SuspiciousTls,
        description: "TLS unlike ordinary traffic".into(),
        message:
            "10.1.0.5 → 203.0.113.9:443: TLS to c2.evil-example.com with Mozilla/5.0 (X11), then 10.1.0.7"
                .into(),
        risk_score: 70,
        severity: Severity::from_score(70),
        host,
        peer: Some(peer),
        port: Some(443),
        transport: Some("tcp".into()),
        community_id: Some(cid.clone()),
        host_criticality: 3,
        host_owner: None,
        evidence: Evidence {
            metric: "tls_score".into(),
            observed: 7.0,
            baseline_mean: None,
            baseline_band: None,
            threshold: 5.0,
            learning_state: LearningState::NotApplicable,
            window_start_ns: 1,
            window_end_ns: 9,
            community_ids: vec![cid],
            details,
        },
        incident: Some(IncidentRef {
            id: "inc-0011223344556677".into(),
            host_risk: 70,
            alert_count: 2,
            related: vec!["00112233445566778899aabbccddeeff".into()],
        }),
        host_role: None,
        record: None,
    }
}

#[test]
fn an_address_literal_in_a_host_header_gets_its_pseudonym() {
    let mut p = privacy(true, false);
    let mut meta = FlowMeta::default();
    meta.http = Some(Box::new(HttpMeta { host: Some("10.1.0.5:8080".into()), ..HttpMeta::default() }));
    let got = p.meta(Some(meta)).and_then(|m| m.http).and_then(|h| h.host);
    assert_eq!(got.as_deref(), Some(format!("{}:8080", names().addr(ip("10.1.0.5"))).as_str()));
}

#[test]
fn alerts_get_pseudonyms_for_every_inside_address_id_and_community_id() {
    let mut p = privacy(true, false);
    let mut n = names();
    p.records(&[record((ip("10.1.0.5"), 40_000), (ip("203.0.113.9"), 443))]);
    let real = alert();
    let got = p.alerts(std::slice::from_ref(&real)).remove(0);
    let (h, t7, t8) = (n.addr(ip("10.1.0.5")), n.addr(ip("10.1.0.7")), n.addr(ip("10.1.0.8")));
    assert_eq!((got.host, got.peer), (h, real.peer));
    assert_eq!(
        got.message,
        format!("{h} → 203.0.113.9:443: TLS to c2.evil-example.com with Mozilla/5.0 (X11), then {t7}")
    );
    assert_eq!(got.evidence.details["targets"], json!([t7.to_string(), format!("{t8}:22")]));
    let want_cid = community_id_v1(0, h, 40_000, ip("203.0.113.9"), 443, 6);
    assert_eq!(got.community_id.as_deref(), Some(want_cid.as_str()));
    assert_eq!(got.evidence.community_ids, [want_cid]);
    assert_eq!(got.id, n.id(&real.id));
    assert_ne!(got.id, real.id);
    let inc = got.incident.expect("kept");
    assert_eq!(inc.id, n.id("inc-0011223344556677"));
    assert_eq!(inc.related, [n.id("00112233445566778899aabbccddeeff")], "related ids match the alerts' own");
}

#[test]
fn dropping_payload_fields_redacts_names_in_evidence_and_message() {
    let mut p = privacy(false, true);
    let got = p.alerts(&[alert()]).remove(0);
    let d = &got.evidence.details;
    assert_eq!(d["rule"], "horizontal", "the sensor's own words stay");
    assert_eq!(d["bytes"], 12_345);
    assert_eq!(d["targets"], json!(["10.1.0.7", "10.1.0.8:22"]), "addresses are not payload");
    assert_eq!(d["sni"], text::REDACTED);
    assert_eq!(d["user_agent"], text::REDACTED);
    assert_eq!(d["examples"], json!([text::REDACTED]));
    assert_eq!(got.message, "10.1.0.5 → 203.0.113.9:443: TLS to [redacted] with [redacted], then 10.1.0.7");
}

mod pipeline;
