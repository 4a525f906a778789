//! `[privacy]` with the real binary on corpus captures: the same capture replayed with
//! pseudonymisation and payload dropping off, then on.
//!
//! - the same alerts (count and detectors, in order) and the same number of flow records;
//! - every inside address (the default home networks: RFC 1918 and fc00::/7) in a flow
//!   record or an alert is replaced by another inside address, the same one every time, and
//!   every outside address is kept;
//! - every Community ID an alert names is one of a written flow record's (an analyst can
//!   still pivot from the alert to its flows);
//! - no SNI, HTTP Host, URL or User-Agent of the plain run is written anywhere.
//!
//! Skips (passes with a `skipping:` line) where the corpus is absent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use nbad_tests::{Corpus, detection, sensor};
use serde_json::Value;

/// Captures with inside hosts and names: HTTP to an exploit kit, a DNS tunnel, QUIC C2.
const CAPTURES: [&str; 3] = [
    "beacon_c2/sanders__ek_to_cryptowall4.pcapng",
    "dns_tunnel/ndpi__dns-tunnel-iodine.pcap",
    "beacon_c2/zeek__merlinc2-quic.pcapng",
];

struct Output {
    flows: Vec<Value>,
    alerts: Vec<Value>,
}

fn replay(capture: &Path, dir: &Path, name: &str, privacy: &str) -> Result<Output> {
    let scratch = dir.join(name);
    std::fs::create_dir_all(&scratch)?;
    let run = detection::replay_run(&[capture], &detection::config_text(&[], privacy), None, true, &scratch)?;
    ensure!(run.succeeded(), "{}", run.describe());
    let alerts = scratch.join("alerts.json");
    let alerts = if alerts.exists() { sensor::read_json_lines(&alerts)? } else { Vec::new() };
    Ok(Output { flows: sensor::read_json_lines(&scratch.join("flows.json"))?, alerts })
}

fn is_inside(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private(),
        IpAddr::V6(a) => a.segments()[0] & 0xfe00 == 0xfc00,
    }
}

fn ip_at(doc: &Value, pointer: &str) -> Option<IpAddr> {
    doc.pointer(pointer).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

fn strings_at(docs: &[Value], pointers: &[&str]) -> BTreeSet<String> {
    docs.iter()
        .flat_map(|d| pointers.iter().filter_map(|p| d.pointer(p).and_then(Value::as_str)))
        .filter(|s| s.len() >= 6)
        .map(str::to_owned)
        .collect()
}

/// Checks one capture; returns how many payload names its plain run wrote.
fn check(corpus: &Corpus, path: &str, key: &Path, scratch: &Path) -> Result<usize> {
    let capture = corpus.path(corpus.entry(path)?);
    let plain = replay(&capture, scratch, "plain", "")?;
    let private = replay(
        &capture,
        scratch,
        "private",
        &format!(
            "[privacy]\npseudonymize_inside = true\nkey_file = {:?}\ndrop_payload_fields = true\n",
            key.display()
        ),
    )?;

    let rules = |o: &Output| -> Vec<String> {
        o.alerts
            .iter()
            .filter_map(|a| a.pointer("/rule/name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    ensure!(!plain.alerts.is_empty(), "{path}: the capture raises alerts");
    ensure!(
        rules(&private) == rules(&plain),
        "{path}: alerts differ: {:?} vs {:?}",
        rules(&private),
        rules(&plain)
    );
    ensure!(private.flows.len() == plain.flows.len(), "{path}: flow records differ in number");

    // Address by address, position by position: inside ones replaced, consistently.
    let mut pseudonyms: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
    let mut hidden = 0;
    let docs = plain.flows.iter().zip(&private.flows).chain(plain.alerts.iter().zip(&private.alerts));
    for (p, q) in docs {
        for ptr in ["/source/ip", "/destination/ip"] {
            let (Some(real), Some(written)) = (ip_at(p, ptr), ip_at(q, ptr)) else { continue };
            if is_inside(real) {
                ensure!(written != real && is_inside(written), "{path}: {ptr} {real} written as {written}");
                let first = *pseudonyms.entry(real).or_insert(written);
                ensure!(first == written, "{path}: {real} written as {first} and as {written}");
                hidden += 1;
            } else {
                ensure!(written == real, "{path}: outside {real} written as {written}");
            }
        }
    }
    ensure!(hidden > 0, "{path}: the capture has inside addresses to hide");
    let written: String = private.flows.iter().chain(&private.alerts).map(Value::to_string).collect();
    for real in pseudonyms.keys().filter(|r| !pseudonyms.values().any(|p| p == *r)) {
        ensure!(!written.contains(&format!("\"{real}\"")), "{path}: {real} is written somewhere");
    }

    // Alerts still point at their flows.
    let flow_ids = strings_at(&private.flows, &["/network/community_id"]);
    for a in &private.alerts {
        for id in a.pointer("/nbad/evidence/community_ids").and_then(Value::as_array).into_iter().flatten() {
            let id = id.as_str().unwrap_or_default();
            ensure!(flow_ids.contains(id), "{path}: alert names {id}, which no flow record has");
        }
    }

    let names = strings_at(
        &plain.flows,
        &["/tls/client/server_name", "/url/domain", "/url/original", "/user_agent/original"],
    );
    for name in &names {
        ensure!(!written.contains(name.as_str()), "{path}: {name:?} is written with payload fields dropped");
    }
    Ok(names.len())
}

#[test]
fn privacy_hides_inside_addresses_and_payload_names_in_every_output_and_keeps_every_alert() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else {
        return Ok(());
    };
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let key = scratch.path().join("cryptopan.key");
    std::fs::write(&key, [0x42u8; 32])?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400))?;
    let mut failures = Vec::new();
    let mut names = 0;
    for path in CAPTURES {
        match check(&corpus, path, &key, scratch.path()) {
            Ok(n) => names += n,
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    ensure!(names > 0, "the captures have names to drop");
    Ok(())
}
