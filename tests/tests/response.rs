//! Automated response in the live lab (`nbad_tests::lab`), with real nftables on the lab's router:
//!
//! - a sensor with response on (`quarantine_host`, `never_act` holding in3) learns the three
//!   inside hosts from their ordinary traffic; then in2 and in3 each speak SSH to the outside
//!   server's port 443 (a `protocol_mismatch` alert each);
//! - in2 is quarantined: it cannot reach the outside web server until the TTL expires, then it
//!   can again, and the audit log has the action and its undo; in1 is never cut off;
//! - in3 is on the never-act list: refused, logged, never cut off;
//! - a second sensor, started from the first one's state with `dry_run`, sees in1 do the same:
//!   the audit log says what it would have done, and in1 keeps its reach; the set stays empty.
//!
//! Needs root, nftables and the lab's programs (`cargo xtask setup` installs them); otherwise it is
//! reported as skipped (`nbad_tests::gate`), which fails a CI run. Takes about 90 s.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nbad_tests::gate::{self, Need};
use nbad_tests::lab::exec::Exec;
use nbad_tests::lab::topology::span_if;
use nbad_tests::lab::{Lab, LabOptions, Node, config_with, preflight};
use nbad_tests::sensor;
use serde_json::Value;

/// How long an action lasts.
const TTL_S: u64 = 8;

/// `configs/lab.toml` for libpcap on the first mirror port, with a state file and `response`.
fn config(lab: &Lab, state: &Path, audit: &Path, dry_run: bool) -> Result<String> {
    let base_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/lab.toml");
    let base =
        std::fs::read_to_string(&base_path).with_context(|| format!("reading {}", base_path.display()))?;
    let mut text = config_with(&base, "pcap", &span_if(0))?;
    let detection = "[detection]\n";
    if !text.contains(detection) {
        bail!("configs/lab.toml has no [detection] table");
    }
    text =
        text.replacen(detection, &format!("{detection}state_file = {:?}\n", state.display().to_string()), 1);
    text.push_str(&format!(
        "\n[response]\nenabled = true\ndry_run = {dry_run}\nmin_score = 1\ndetectors = [\"protocol_mismatch\"]\n\
         ttl_s = {TTL_S}\nnever_act = [\"{}\"]\naudit_log = {:?}\n\n\
         [response.nftables]\nenabled = true\naction = \"quarantine_host\"\n\
         command = [\"ip\", \"netns\", \"exec\", {:?}, \"nft\"]\n",
        Node::In3.ip(),
        audit.display().to_string(),
        lab.ns(Node::Router),
    ));
    Ok(text)
}

/// Whether `node` can fetch the outside web server's page now.
fn reaches_web(lab: &Lab, node: Node) -> Result<bool> {
    let url = format!("http://{}/", Node::Web.ip());
    let out = Exec::new(Some(&lab.ns(node)), &["curl", "-sS", "-m", "2", "-o", "/dev/null", &url])
        .limit(Duration::from_secs(5))
        .run()?;
    Ok(out.status.success())
}

/// SSH's identification exchange with the outside sshd on port 443, from `node`.
fn ssh_banner_on_443(lab: &Lab, node: Node) -> Result<()> {
    let script = format!(
        "import socket\ns = socket.create_connection(('{}', 443), 3)\n\
         s.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n')\nprint(s.recv(256))\ns.close()\n",
        Node::Ssh.ip()
    );
    Exec::new(Some(&lab.ns(node)), &["python3", "-c", &script]).run_ok()?;
    Ok(())
}

/// The audit log's events.
fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn event_for<'a>(events: &'a [Value], action: &str, node: Node) -> Option<&'a Value> {
    let ip = node.ip().to_string();
    events.iter().find(|e| {
        e.pointer("/event/action").and_then(Value::as_str) == Some(action)
            && e.pointer("/nbad/response/target").and_then(Value::as_str) == Some(ip.as_str())
    })
}

/// Waits up to `limit` for `ready`.
fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    while !ready()? {
        if start.elapsed() > limit {
            bail!("{what}: not within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// The quarantine set's elements in the router's namespace.
fn quarantined(lab: &Lab) -> Result<String> {
    let out = Exec::new(
        None,
        &[
            "ip",
            "netns",
            "exec",
            &lab.ns(Node::Router),
            "nft",
            "list",
            "set",
            "inet",
            "nbad_response",
            "quarantine4",
        ],
    )
    .run_ok()?;
    Ok(out.stdout)
}

#[test]
fn a_quarantine_cuts_the_host_off_until_its_ttl_and_never_act_and_dry_run_change_nothing() -> Result<()> {
    let mut needs = preflight::needs();
    needs.push(Need::Program { program: "nft", package: "nftables" });
    let Some(_ran) = gate::require(&needs) else { return Ok(()) };
    let bin = sensor::sensor_bin()?;
    let lab = Lab::start(LabOptions { mirror_ports: 1 })?;
    let state = lab.dir().join("response-state.json");
    let audit = lab.dir().join("response-audit.jsonl");
    let live = lab.start_sensor(&bin, &config(&lab, &state, &audit, false)?, "respond", None, None)?;

    // The three hosts' ordinary traffic for longer than the lab's learning period (20 s, two
    // buckets of 10 s): response never acts on a host that is still learning.
    let learn_until = Instant::now() + Duration::from_secs(34);
    while Instant::now() < learn_until {
        for node in Node::INSIDE {
            if !reaches_web(&lab, node)? {
                bail!("{node:?} cannot reach the web server before any response");
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    ssh_banner_on_443(&lab, Node::In2)?;
    ssh_banner_on_443(&lab, Node::In3)?;
    wait_for("in2's quarantine in the audit log", Duration::from_secs(20), || {
        Ok(event_for(&audit_events(&audit), "quarantine_host", Node::In2).is_some())
    })?;
    let events = audit_events(&audit);
    let action = event_for(&events, "quarantine_host", Node::In2).context("the action")?;
    assert_eq!(action.pointer("/event/outcome").and_then(Value::as_str), Some("success"), "{action}");
    let set = quarantined(&lab)?;
    assert!(set.contains(&Node::In2.ip().to_string()), "{set}");
    assert!(!reaches_web(&lab, Node::In2)?, "in2 is cut off while quarantined");
    assert!(reaches_web(&lab, Node::In1)?, "in1 is not");
    wait_for("in3's refusal in the audit log", Duration::from_secs(10), || {
        Ok(event_for(&audit_events(&audit), "quarantine_host", Node::In3).is_some())
    })?;
    let events = audit_events(&audit);
    let refused = event_for(&events, "quarantine_host", Node::In3).context("the refusal")?;
    let reason = refused.pointer("/event/reason").and_then(Value::as_str).unwrap_or_default();
    assert!(reason.contains("never_act"), "{refused}");
    assert!(reaches_web(&lab, Node::In3)?, "the never-act list holds");

    wait_for("in2's undo at the TTL", Duration::from_secs(TTL_S + 10), || {
        Ok(event_for(&audit_events(&audit), "undo_quarantine_host", Node::In2).is_some())
    })?;
    wait_for("in2 reaching the web server again", Duration::from_secs(5), || reaches_web(&lab, Node::In2))?;
    assert!(!quarantined(&lab)?.contains(&Node::In2.ip().to_string()));
    let first = live.stop()?;
    assert!(first.clean_exit, "{}", first.log);

    // Dry run, from the first sensor's state: in1 is a learned host at once.
    let dry_audit = lab.dir().join("response-dry-audit.jsonl");
    let dry = lab.start_sensor(&bin, &config(&lab, &state, &dry_audit, true)?, "respond-dry", None, None)?;
    for _ in 0..3 {
        reaches_web(&lab, Node::In1)?;
        std::thread::sleep(Duration::from_secs(1));
    }
    ssh_banner_on_443(&lab, Node::In1)?;
    wait_for("in1's dry run in the audit log", Duration::from_secs(20), || {
        Ok(event_for(&audit_events(&dry_audit), "quarantine_host", Node::In1).is_some())
    })?;
    let events = audit_events(&dry_audit);
    let would = event_for(&events, "quarantine_host", Node::In1).context("the dry run")?;
    assert_eq!(would.pointer("/nbad/response/dry_run").and_then(Value::as_bool), Some(true), "{would}");
    assert!(reaches_web(&lab, Node::In1)?, "a dry run changes nothing");
    assert!(!quarantined(&lab)?.contains(&Node::In1.ip().to_string()));
    let second = dry.stop()?;
    assert!(second.clean_exit, "{}", second.log);
    lab.teardown();
    Ok(())
}
