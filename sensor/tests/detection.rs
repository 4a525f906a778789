//! Detection through the real binary: the self-test, alerts as ECS lines,
//! determinism of a replay from saved state, and `baseline show`/`reset`.

pub mod common;

use std::path::Path;

use std::ffi::OsString;

use common::{Outcome, run_sensor, selftest_capture};
use serde_json::Value;

fn replay(dir: &Path, pcap: &Path, state: &Path, alerts: &Path) {
    let config = dir.join("selftest.toml");
    std::fs::write(&config, nbad_sensor::selftest::CONFIG).expect("write config");
    let args: Vec<OsString> = vec![
        "replay".into(),
        "-c".into(),
        config.into(),
        "--flows".into(),
        "".into(),
        "--alerts".into(),
        alerts.into(),
        "--state".into(),
        state.into(),
        pcap.into(),
    ];
    run_sensor(args).assert_code(0, "replay with detection");
}

#[test]
fn selftest_passes_every_check() {
    let out: Outcome = run_sensor(["selftest"]);
    out.assert_code(0, "selftest");
    // One per episode, the incident record, the ordinary host.
    let checks = nbad_sensor::selftest::EPISODES_TABLE.len() + 2;
    assert_eq!(out.stdout.matches("PASS").count(), checks, "{}", out.stdout);
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
}

#[test]
fn alerts_are_ecs_lines_with_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = selftest_capture(dir.path());
    let alerts = dir.path().join("alerts.jsonl");
    replay(dir.path(), &pcap, &dir.path().join("state.json"), &alerts);
    let text = std::fs::read_to_string(&alerts).expect("alerts written");
    let docs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert!(docs.len() >= 9, "{text}");
    for d in &docs {
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["id"].as_str().map(str::len), Some(32));
        let score = d["event"]["risk_score"].as_u64().expect("risk score");
        assert!((1..=100).contains(&score));
        assert!(d["rule"]["name"].is_string() && d["rule"]["description"].is_string());
        assert!(d["source"]["ip"].is_string());
        let ev = &d["nbad"]["evidence"];
        assert!(ev["observed"].is_number() && ev["threshold"].is_number(), "{d}");
        assert!(ev["learning_state"].is_string() && ev["window_start"].is_string());
        assert!(d["nbad"]["incident"]["id"].as_str().is_some_and(|s| s.starts_with("inc-")));
    }
    let exfil = docs.iter().find(|d| d["rule"]["name"] == "exfiltration").expect("exfiltration alert");
    assert_eq!(exfil["source"]["ip"], "10.1.0.10");
    assert_eq!(exfil["destination"]["ip"], "198.51.100.50");
    assert!(exfil["nbad"]["evidence"]["community_ids"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(
        exfil["nbad"]["evidence"]["baseline_band"].is_array(),
        "a learned baseline gives a band: {exfil}"
    );
}

#[test]
fn replay_from_the_same_saved_state_gives_identical_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = selftest_capture(dir.path());
    let state = dir.path().join("state.json");
    // Learn once, keep that state, then replay twice from a copy of it.
    replay(dir.path(), &pcap, &state, &dir.path().join("learn.jsonl"));
    let saved = std::fs::read(&state).expect("state saved");
    let mut outputs = Vec::new();
    for n in 0..2 {
        std::fs::write(&state, &saved).expect("restore state");
        let alerts = dir.path().join(format!("run{n}.jsonl"));
        replay(dir.path(), &pcap, &state, &alerts);
        outputs.push(std::fs::read(&alerts).expect("alerts"));
    }
    assert!(!outputs[0].is_empty());
    assert_eq!(outputs[0], outputs[1], "same capture, same saved state: the same alerts byte for byte");
}

#[test]
fn baseline_show_and_reset_work_on_the_saved_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = selftest_capture(dir.path());
    let state = dir.path().join("state.json");
    replay(dir.path(), &pcap, &state, &dir.path().join("a.jsonl"));
    let show = |state: &Path| -> Outcome {
        run_sensor([
            OsString::from("baseline"),
            "show".into(),
            "10.1.0.20".into(),
            "--state".into(),
            state.into(),
        ])
    };
    let out = show(&state);
    out.assert_code(0, "baseline show");
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["host"], "10.1.0.20");
    assert!(doc["buckets_learned"].as_u64().is_some_and(|n| n > 20), "{doc}");
    assert!(doc["metrics"]["bytes_out"]["typical"].as_f64().is_some_and(|v| v > 0.0), "{doc}");

    run_sensor([
        OsString::from("baseline"),
        "reset".into(),
        "10.1.0.20".into(),
        "--state".into(),
        state.clone().into(),
    ])
    .assert_code(0, "baseline reset");
    let out = show(&state);
    out.assert_code(1, "show after reset");
    assert!(out.stderr.contains("no baseline"), "{}", out.stderr);
}

#[test]
fn a_state_file_of_another_version_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"format":"nbad-sensor-baselines","version":99,"hosts":{},"services":[]}"#)
        .expect("write");
    let out = run_sensor([
        OsString::from("baseline"),
        "show".into(),
        "10.0.0.1".into(),
        "--state".into(),
        state.into(),
    ]);
    out.assert_code(1, "old state");
    assert!(out.stderr.contains("version 99"), "{}", out.stderr);
}

#[test]
fn a_replay_delivers_its_alerts_to_the_configured_sinks_through_the_spool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = selftest_capture(dir.path());
    let delivered = dir.path().join("delivered.jsonl");
    let config = dir.path().join("deliver.toml");
    let text = format!(
        "{}\n[alerts]\nspool_dir = {:?}\n\n[[alerts.sinks]]\ntype = \"file\"\nname = \"siem\"\npath = {:?}\n",
        nbad_sensor::selftest::CONFIG,
        dir.path().join("spool").display().to_string(),
        delivered.display().to_string()
    );
    std::fs::write(&config, text).expect("write config");
    let alerts = dir.path().join("alerts.jsonl");
    let args: Vec<OsString> = vec![
        "replay".into(),
        "-c".into(),
        config.into(),
        "--flows".into(),
        "".into(),
        "--alerts".into(),
        alerts.clone().into(),
        "--stats".into(),
        dir.path().join("stats.json").into(),
        pcap.into(),
    ];
    let out = run_sensor(args);
    out.assert_code(0, "replay with a file sink");
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("stats.json")).expect("stats"))
            .expect("JSON");
    let sink = &stats["delivery"]["sinks"][0];
    assert_eq!(sink["name"], "siem", "{stats}");
    assert_eq!(sink["spool_depth"], 0, "drained at the end: {stats}");
    assert!(out.stderr.contains("sink siem (file)"), "{}", out.stderr);
    let ids = |path: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(path).expect("read");
        let mut ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("JSON")["event"]["id"]
                    .as_str()
                    .expect("id")
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids
    };
    let written = ids(&alerts);
    assert!(written.len() >= 9);
    assert_eq!(ids(&delivered), written, "every alert raised reached the sink, once");
    assert_eq!(sink["sent"].as_u64(), Some(written.len() as u64), "{stats}");
    // Incident records travel the same way, as documents of their own.
    let text = std::fs::read_to_string(&delivered).expect("read");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|d| d["event"]["dataset"] == "nbad.incident")
        .collect();
    assert!(!records.is_empty(), "no incident record delivered");
    for r in &records {
        assert_eq!(r["event"]["kind"], "alert");
        assert_eq!(r["rule"]["name"], "staged_incident");
        assert!(r["message"].as_str().is_some_and(|m| m.starts_with("Incident inc-")), "{r}");
        assert!(r["nbad"]["incident"]["stages"].is_array(), "{r}");
    }
}
