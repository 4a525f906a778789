//! Specification of the output rewrite: hand-made records and alerts, then the self-test
//! scenario (27 attack episodes and ordinary traffic) replayed through the production
//! pipeline with `[privacy]` off and on.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{Value, json};

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

// The pipeline: the self-test scenario with [privacy] off and on.

struct Run {
    flows: Vec<Value>,
    alerts: Vec<Value>,
    /// (client, server) of every record the exporters (IPFIX, NetFlow, Kafka) were given.
    exported: Vec<(IpAddr, IpAddr)>,
    /// Every alert handed to delivery, in each sink format (OCSF, CEF, LEEF) as one string.
    delivered: Vec<Value>,
}

/// Replays the self-test scenario with `privacy_toml` under `[privacy]`; with `outputs` off no
/// flow output or exporter is set (alerts are written either way).
fn replay(dir: &Path, name: &str, privacy_toml: &str, outputs: bool) -> Run {
    use std::sync::Arc;

    use crate::capture::file::FileSource;
    use crate::detect::Engine;
    use crate::output::flow_json::FlowJsonWriter;
    use crate::pipeline::analysis::AlertWriter;
    use crate::pipeline::{self, RunOptions};

    let pcap = dir.join("scenario.pcap");
    if !pcap.exists() {
        let file = std::fs::File::create(&pcap).expect("create the capture");
        let mut w = crate::selftest::scenario().write_pcap(std::io::BufWriter::new(file)).expect("write it");
        w.flush().expect("flush it");
    }
    let text = format!("{}\n[privacy]\n{privacy_toml}", crate::selftest::CONFIG);
    let cfg = crate::config::from_str(&text, "<privacy test>").expect("the test configuration loads");
    let (flows_path, alerts_path) = (dir.join(format!("{name}.flows")), dir.join(format!("{name}.alerts")));
    let open =
        |p: &Path| -> Box<dyn std::io::Write + Send> { Box::new(std::fs::File::create(p).expect("create")) };
    let (feed, exported) = crate::output::export::test_feed(1 << 20);
    let handed: Arc<std::sync::Mutex<Vec<Alert>>> = Arc::default();
    let sink = Arc::clone(&handed);
    let on_alerts = pipeline::analysis::AlertHook(Box::new(move |a: &[Alert]| {
        sink.lock().expect("not poisoned").extend_from_slice(a);
    }));
    let opts = RunOptions {
        flows: outputs.then(|| FlowJsonWriter::new(open(&flows_path), "selftest")),
        stats: crate::config::OutputTarget::None,
        periodic_stats: None,
        stop: Arc::default(),
        end_reason: EndReason::EndOfCapture,
        hasher: crate::flow::FlowHasher::with_seed(1),
        engine: Some(Engine::new(&cfg, None)),
        alerts: Some(AlertWriter::new(open(&alerts_path))),
        on_alerts: Some(on_alerts),
        side_alerts: None,
        settings: None,
        export: outputs.then_some(feed),
        hub: None,
    };
    let mut source = FileSource::new(&[pcap]).expect("open the capture");
    pipeline::run(&cfg, &mut source, opts).expect("the replay runs");
    let lines = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .expect("read the output")
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    };
    let mut records = Vec::new();
    while let crate::output::export::Recv::Records(chunk) = exported.recv(std::time::Duration::ZERO) {
        records.extend(chunk.iter().map(|r| (r.client_endpoint().0, r.server_endpoint().0)));
    }
    use crate::deliver::config::Format;
    let delivered = handed
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|a| {
            let formats =
                [Format::Ocsf, Format::Cef, Format::Leef].map(|f| crate::deliver::format::text(a, f));
            Value::from(formats.join("\n"))
        })
        .collect();
    let flows = if outputs { lines(&flows_path) } else { Vec::new() };
    Run { flows, alerts: lines(&alerts_path), exported: records, delivered }
}

/// Every inside address written anywhere in `doc`.
fn inside_addresses(doc: &Value, home: &ipnet::IpNet) -> BTreeSet<IpAddr> {
    let mut found = BTreeSet::new();
    let _ = text::rewrite_addrs(&doc.to_string(), &mut |ip| {
        if home.contains(&ip) {
            found.insert(ip);
        }
        ip
    });
    found
}

/// Every payload-derived string of the plain run: flow facts and non-sensor evidence strings.
fn payload_strings(run: &Run) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in &run.flows {
        for ptr in ["/tls/client/server_name", "/url/domain", "/url/path", "/user_agent/original"] {
            if let Some(s) = f.pointer(ptr).and_then(Value::as_str) {
                out.insert(s.to_owned());
            }
        }
    }
    for a in &run.alerts {
        let Some(details) = a.pointer("/nbad/evidence/details").and_then(Value::as_object) else { continue };
        for (k, v) in details {
            if SENSOR_MADE.contains(&k.as_str()) {
                continue;
            }
            let mut stack = vec![v];
            while let Some(v) = stack.pop() {
                match v {
                    Value::String(s) if !text::is_numeric_or_address(s) => {
                        out.insert(s.clone());
                    }
                    Value::Array(items) => stack.extend(items),
                    Value::Object(m) => stack.extend(m.values()),
                    _ => {}
                }
            }
        }
    }
    out.retain(|s| s.len() >= 6);
    out
}

fn detectors(run: &Run) -> Vec<(String, String)> {
    run.alerts
        .iter()
        .map(|a| {
            let s = |p: &str| a.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
            (s("/rule/name"), s("/event/dataset"))
        })
        .collect()
}

/// `[privacy]` keys that pseudonymise under [`KEY`] (written to a key file in `dir`).
fn pseudonymize_toml(dir: &Path, drop_payload: bool) -> String {
    let key = dir.join("cryptopan.key");
    if !key.exists() {
        std::fs::write(&key, KEY).expect("write the key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    }
    format!(
        "pseudonymize_inside = true\nkey_file = {:?}\ndrop_payload_fields = {drop_payload}\n",
        key.display()
    )
}

fn community_ids(run: &Run) -> usize {
    run.alerts
        .iter()
        .filter_map(|a| a.pointer("/nbad/evidence/community_ids").and_then(Value::as_array))
        .map(Vec::len)
        .sum()
}

#[test]
fn alerts_keep_their_community_ids_when_no_flow_output_is_written() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plain = replay(dir.path(), "plain", "", true);
    let quiet = replay(dir.path(), "quiet", &pseudonymize_toml(dir.path(), false), false);
    assert!(community_ids(&plain) > 10, "the scenario's alerts name flows");
    assert_eq!(community_ids(&quiet), community_ids(&plain));
}

#[test]
fn a_replay_with_privacy_on_writes_no_real_inside_address_and_no_payload_name_yet_raises_the_same_alerts() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plain = replay(dir.path(), "plain", "", true);
    let private = replay(dir.path(), "private", &pseudonymize_toml(dir.path(), true), true);

    assert!(plain.alerts.len() >= 27, "the scenario raises its alerts ({})", plain.alerts.len());
    assert_eq!(detectors(&private), detectors(&plain), "same alerts, same detectors, same order");
    assert_eq!(private.flows.len(), plain.flows.len());
    assert_eq!(community_ids(&private), community_ids(&plain), "no alert lost a Community ID");
    let endpoints: Vec<(IpAddr, IpAddr)> = private
        .flows
        .iter()
        .map(|f| {
            let ip = |p: &str| {
                f.pointer(p).and_then(Value::as_str).and_then(|s| s.parse().ok()).expect("an address")
            };
            (ip("/source/ip"), ip("/destination/ip"))
        })
        .collect();
    assert_eq!(private.exported, endpoints, "the exporters are given the records the JSON lines show");

    let home: ipnet::IpNet = "10.1.0.0/24".parse().expect("the self-test's home network");
    let mut n = Pseudonyms::new(&KEY, &[home]);
    let mut pseudonymised = 0;
    assert_eq!(private.delivered.len(), plain.alerts.len(), "every alert is handed to delivery");
    let written =
        |run: &Run| run.alerts.iter().chain(&run.flows).chain(&run.delivered).cloned().collect::<Vec<_>>();
    for (p, r) in written(&private).iter().zip(&written(&plain)) {
        let real = inside_addresses(r, &home);
        let want: BTreeSet<IpAddr> = real.iter().map(|&ip| n.addr(ip)).collect();
        assert_eq!(inside_addresses(p, &home), want, "only pseudonyms of the real inside addresses:\n{p}");
        pseudonymised += real.iter().filter(|&&ip| n.addr(ip) != ip).count();
    }
    assert!(pseudonymised > 100, "inside addresses were there to hide ({pseudonymised})");

    let names = payload_strings(&plain);
    assert!(names.iter().any(|s| s.contains("example")), "the scenario has names to drop: {names:?}");
    for doc in written(&private) {
        let written = doc.to_string();
        for s in &names {
            assert!(!written.contains(s.as_str()), "{s:?} is dropped from every output, yet:\n{written}");
        }
    }
}
