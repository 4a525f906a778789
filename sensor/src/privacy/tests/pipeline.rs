//! The self-test scenario (27 attack episodes and ordinary traffic) replayed through the
//! production pipeline with `[privacy]` off and on: what the flow output, the exporters, the
//! alert file and delivery's formats are given.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::Value;

use super::KEY;
use crate::alert::Alert;
use crate::flow::EndReason;
use crate::privacy::{Pseudonyms, SENSOR_MADE, text};

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
        tick: pipeline::REPLAY_TICK,
        stop: Arc::default(),
        end_reason: EndReason::EndOfCapture,
        hasher: crate::flow::FlowHasher::with_seed(1),
        engine: Some(Engine::new(&cfg, None)),
        alerts: Some(AlertWriter::new(open(&alerts_path))),
        on_alerts: Some(on_alerts),
        side_alerts: None,
        settings: None,
        export: outputs.then_some(feed),
        control: None,
        respond: None,
        hold: None,
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
