//! The analyst's loop on the corpus: verdicts from the ground truth, what they say of the
//! detectors (precision, time to detect), and what they change on the next replay.
//!
//! For every capture the sensor alerts on: replay it with a state file; give every alert a
//! verdict from the MANIFEST's label through `nbad-sensor verdict --state` (`true_positive`
//! when it is the labelled episode's detector and host, `false_positive` otherwise, on the
//! benign captures all of them); read `nbad-sensor report --json`; then replay the capture again
//! from that state, and from a copy of the state taken before the verdicts (the control). The
//! difference between the two second replays is what the verdicts changed.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use nbad_tests::detection::{self, Alert, Case, Expect};
use nbad_tests::sensor;
use serde_json::Value;

/// What the loop did on one capture.
#[derive(Debug, Default)]
struct Row {
    /// Verdicts per detector: (true positives, false positives).
    verdicts: BTreeMap<String, (u64, u64)>,
    /// Time to detect of each true-positive incident, seconds.
    ttd: Vec<f64>,
    /// False alerts of the second replay: control, with verdicts.
    false_again: (usize, usize),
    /// Whether the second replay still detects the episode: control, with verdicts.
    detected_again: (bool, bool),
    episode: bool,
}

/// The loop over the whole corpus.
#[derive(Debug, Default)]
pub struct Loop {
    rows: Vec<Row>,
}

fn is_episode_alert(case: &Case, a: &Alert) -> bool {
    case.episode().is_some_and(|(detector, host)| a.detector == detector && (host == "-" || a.host == host))
}

impl Loop {
    /// Runs the loop on `case`'s capture in `scratch`.
    pub fn add(&mut self, corpus_root: &Path, case: &Case, scratch: &Path) -> Result<()> {
        if matches!(case.expect, Expect::Unreadable { .. }) {
            return Ok(());
        }
        let capture = corpus_root.join(case.capture);
        let config = detection::config_text(case.home_networks, "");
        let dirs = ["first", "control", "judged"].map(|d| scratch.join("loop").join(d));
        for d in &dirs {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let state = scratch.join("loop/state.json");
        let control_state = scratch.join("loop/control-state.json");
        let first = detection::replay(&[&capture], &config, Some(&state), false, &dirs[0])?;
        if first.alerts.is_empty() {
            return Ok(());
        }
        fs::copy(&state, &control_state).context("copying the state")?;
        let mut row = Row { episode: case.is_episode(), ..Row::default() };
        for a in &first.alerts {
            let tp = is_episode_alert(case, a);
            let kind = if tp { "true_positive" } else { "false_positive" };
            let cfg = dirs[0].join("sensor.toml");
            let words = [
                "verdict",
                a.id.as_str(),
                "--verdict",
                kind,
                "--reason",
                "the corpus MANIFEST's label",
                "--author",
                "detect-report",
                "--state",
            ];
            let args: Vec<&OsStr> = words
                .iter()
                .map(OsStr::new)
                .chain([state.as_os_str(), OsStr::new("-c"), cfg.as_os_str()])
                .collect();
            let run = sensor::run(&args, &dirs[0], detection::REPLAY_LIMIT)?;
            if !run.succeeded() {
                bail!("{}", run.describe());
            }
            let e = row.verdicts.entry(a.detector.clone()).or_default();
            if tp { e.0 += 1 } else { e.1 += 1 }
        }
        let args = [OsStr::new("report"), OsStr::new("--json"), OsStr::new("--state"), state.as_os_str()];
        let run = sensor::run(&args, &dirs[0], detection::REPLAY_LIMIT)?;
        if !run.succeeded() {
            bail!("{}", run.describe());
        }
        let report: Value = serde_json::from_str(&run.stdout).context("report JSON")?;
        row.ttd = report
            .pointer("/figures/detections")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(|x| x.get("seconds").and_then(Value::as_f64)).collect())
            .unwrap_or_default();
        let control = detection::replay(&[&capture], &config, Some(&control_state), false, &dirs[1])?;
        let judged = detection::replay(&[&capture], &config, Some(&state), false, &dirs[2])?;
        let false_alerts = |alerts: &[Alert]| alerts.iter().filter(|a| !is_episode_alert(case, a)).count();
        let detected = |alerts: &[Alert]| alerts.iter().any(|a| is_episode_alert(case, a));
        row.false_again = (false_alerts(&control.alerts), false_alerts(&judged.alerts));
        row.detected_again = (detected(&control.alerts), detected(&judged.alerts));
        self.rows.push(row);
        Ok(())
    }

    /// The markdown section.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### The analyst's loop: verdicts from the ground truth\n");
        let _ = writeln!(
            out,
            "Every alert of the first replay got a verdict from the MANIFEST's label \
             (`nbad-sensor verdict --state`): `true_positive` for the labelled episode's detector \
             and host, `false_positive` for anything else. {} captures alerted.\n",
            self.rows.len()
        );
        let mut per: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for row in &self.rows {
            for (d, (tp, fp)) in &row.verdicts {
                let e = per.entry(d.as_str()).or_default();
                e.0 += tp;
                e.1 += fp;
            }
        }
        let _ = writeln!(out, "| detector | true positives | false positives | precision |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let (mut tp_all, mut fp_all) = (0, 0);
        for (d, (tp, fp)) in &per {
            let _ = writeln!(out, "| {d} | {tp} | {fp} | {} |", precision(*tp, *fp));
            (tp_all, fp_all) = (tp_all + tp, fp_all + fp);
        }
        let _ = writeln!(out, "| **all** | {tp_all} | {fp_all} | **{}** |\n", precision(tp_all, fp_all));
        let mut ttd: Vec<f64> = self.rows.iter().flat_map(|r| r.ttd.iter().copied()).collect();
        ttd.sort_by(f64::total_cmp);
        let q = |p: f64| -> String {
            ttd.len().checked_sub(1).map_or_else(
                || "-".to_owned(),
                |last| format!("{:.0} s", ttd[((last as f64) * p).round() as usize]),
            )
        };
        let _ = writeln!(
            out,
            "Time to detect (start of the first evidence window to the first alert) over {} \
             true-positive incidents: median {}, p90 {}, max {}.\n",
            ttd.len(),
            q(0.5),
            q(0.9),
            q(1.0)
        );
        let sum = |f: fn(&Row) -> usize| self.rows.iter().map(f).sum::<usize>();
        let episodes = self.rows.iter().filter(|r| r.episode).count();
        let kept = |f: fn(&Row) -> bool| self.rows.iter().filter(|r| r.episode && f(r)).count();
        let _ = writeln!(
            out,
            "Second replay of each capture from its state: false alerts {} without the verdicts \
             (control), {} with them; labelled episodes still detected {}/{episodes} without, \
             {}/{episodes} with.\n",
            sum(|r| r.false_again.0),
            sum(|r| r.false_again.1),
            kept(|r| r.detected_again.0),
            kept(|r| r.detected_again.1),
        );
        out
    }
}

fn precision(tp: u64, fp: u64) -> String {
    if tp + fp == 0 { "-".to_owned() } else { format!("{:.1} %", 100.0 * tp as f64 / (tp + fp) as f64) }
}
