//! Alert files for `nbad-sensor alerts send`, written as the detectors' `--alerts PATH` writes
//! them (ECS alert documents, one per line), and `event.id`s read back from what receivers got.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::json;

/// The `event.id` of test alert `n` of a run tagged `tag` (32 hex digits, like the sensor's).
pub fn id(tag: u32, n: u32) -> String {
    format!("{tag:08x}{:024x}", n)
}

/// Writes `count` ECS alert lines (scores 10, 20, …, 100 in turn) and returns their ids.
pub fn write(path: &Path, tag: u32, count: u32) -> Result<BTreeSet<String>> {
    let mut text = String::new();
    let mut ids = BTreeSet::new();
    for n in 0..count {
        let id = id(tag, n);
        let score = 10 * (n % 10 + 1);
        let doc = json!({
            "@timestamp": "2026-01-01T00:01:00.000000Z",
            "ecs": { "version": "8.11.0" },
            "message": format!("10.0.0.{} probed 120 ports \"quoted\" | piped = equals \\ backslash", n % 250),
            "event": {
                "kind": "alert", "id": id, "module": "nbad", "dataset": "nbad.alert",
                "category": ["network", "intrusion_detection"], "type": ["indicator"],
                "risk_score": score, "severity": 3,
                "start": "2026-01-01T00:00:00.000000Z", "end": "2026-01-01T00:01:00.000000Z",
            },
            "rule": { "name": "scan", "description": "Horizontal or vertical scanning" },
            "source": { "ip": format!("10.0.0.{}", n % 250) },
            "destination": { "ip": "198.51.100.7", "port": 22 },
            "network": { "transport": "tcp" },
            "observer": { "name": "test-sensor", "type": "sensor", "vendor": "nbad", "product": "nbad-sensor" },
            "nbad": {
                "severity": "high",
                "host": { "criticality": 3, "owner": null },
                "evidence": {
                    "metric": "distinct_ports", "observed": 120.0, "baseline_mean": 3.0,
                    "baseline_band": [0.0, 8.0], "threshold": 50.0, "learning_state": "active",
                    "window_start": "2026-01-01T00:00:00.000000Z", "window_end": "2026-01-01T00:01:00.000000Z",
                    "community_ids": [], "details": {},
                },
            },
        });
        let _ = writeln!(text, "{doc}");
        ids.insert(id);
    }
    std::fs::write(path, text)?;
    Ok(ids)
}

/// Every test-alert id (32 hex digits starting with the run's tag) that occurs in `text`.
pub fn ids_in(text: &str, tag: u32) -> BTreeSet<String> {
    let prefix = format!("{tag:08x}");
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(&prefix) {
        let candidate = rest.get(at..at + 32).unwrap_or_default();
        if candidate.len() == 32 && candidate.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.insert(candidate.to_owned());
            rest = &rest[at + 32..];
        } else {
            rest = &rest[at + prefix.len()..];
        }
    }
    out
}
