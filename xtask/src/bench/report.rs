//! The bench report: printed as a Markdown table and written to `target/bench/report.md` and
//! `report.json`. Every figure is a median over the repetitions (each column on its own), and
//! every comparison is a ratio between subjects measured in this same invocation.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::capture::{BenchCapture, HEAD_PACKETS};
use super::measure::{self, Sample};
use super::{Outcome, Subject};
use crate::cmd::{self, heading};

/// A subject's medians and derived rates.
#[derive(Debug)]
struct Row<'a> {
    outcome: &'a Outcome,
    median: Option<Sample>,
    mpps: Option<f64>,
    mb_per_s: Option<f64>,
}

/// Writes the report; returns one line per failed subject.
pub fn write(
    bench_dir: &Path,
    capture: &BenchCapture,
    repeat: u32,
    outcomes: &[Outcome],
) -> Result<Vec<String>> {
    let meta = &capture.meta;
    let rows: Vec<Row<'_>> = outcomes
        .iter()
        .map(|outcome| {
            let median = measure::median(&outcome.samples);
            let whole_file = outcome.subject != Subject::Baseline;
            let packets = if whole_file { meta.packets } else { HEAD_PACKETS };
            let mpps = median.map(|m| packets as f64 / m.wall_s / 1e6);
            let mb_per_s = median.filter(|_| whole_file).map(|m| meta.bytes as f64 / m.wall_s / 1e6);
            Row { outcome, median, mpps, mb_per_s }
        })
        .collect();
    let find = |s: Subject| rows.iter().find(|r| r.outcome.subject == s);
    let mpps_of = |s: Subject| find(s).and_then(|r| r.mpps);
    let libpcap = mpps_of(Subject::Libpcap);
    let nbad = mpps_of(Subject::Replay);
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);

    let rss_of = |s: Subject| find(s).and_then(|r| r.median).map(|m| m.max_rss_kib);
    let active_peak = find(Subject::Replay).and_then(|r| r.outcome.active_peak);
    let bytes_per_flow = match (rss_of(Subject::Replay), rss_of(Subject::Baseline), active_peak) {
        (Some(full), Some(base), Some(peak)) if peak > 0 => {
            Some((full as f64 - base as f64) * 1024.0 / peak as f64)
        }
        _ => None,
    };
    let replay_vs_libpcap = ratio(nbad, libpcap);
    let detect_vs_replay = ratio(mpps_of(Subject::Detect), nbad);
    let detect_vs_libpcap = ratio(mpps_of(Subject::Detect), libpcap);
    let detect_vs_softflowd = ratio(mpps_of(Subject::Detect), mpps_of(Subject::Softflowd));
    let detect_vs_suricata = ratio(mpps_of(Subject::Detect), mpps_of(Subject::Suricata));
    let mb_of = |s: Subject| find(s).and_then(|r| r.mb_per_s);
    let replay_vs_raw = ratio(mb_of(Subject::Replay), mb_of(Subject::RawRead));

    let machine = machine();
    let mut md = String::new();
    md.push_str("# nbad-sensor bench\n\n");
    md.push_str(&format!(
        "- capture: `{}`: {} packets, {} flows (direction-free 5-tuples), {} bytes ({:.0} MiB), span {:.1} s; {} copies of {} corpus packets\n",
        capture.pcap.display(),
        meta.packets,
        meta.flows,
        meta.bytes,
        meta.bytes as f64 / 1_048_576.0,
        meta.span_s,
        meta.copies,
        meta.template_packets
    ));
    md.push_str(&format!(
        "- machine: {}, {} CPUs, Linux {}; git {}; {}\n",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cpus"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["git"].as_str().unwrap_or("?"),
        machine["date"].as_str().unwrap_or("?")
    ));
    md.push_str(&format!(
        "- each figure is the median of {repeat} runs (each column on its own); page cache warm; Mpps = packets / wall time\n"
    ));
    md.push_str(
        "- peak RSS is the child's `ru_maxrss`; Linux never reports it below the RSS of the xtask that spawned the child (the floor, recorded per run); `≤` marks a figure at its floor\n\n",
    );
    md.push_str("| subject | wall s | CPU s | Mpps | MB/s | peak RSS MiB | vs libpcap | vs nbad |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in &rows {
        let cell = |v: Option<f64>, digits: usize| v.map_or("–".to_owned(), |v| format!("{v:.digits$}"));
        let m = row.median;
        let whole_file = row.outcome.subject != Subject::Baseline;
        let rel = |base: Option<f64>| {
            if whole_file {
                cell(ratio(row.mpps, base).filter(|_| row.outcome.failure.is_none()), 2)
            } else {
                "–".to_owned()
            }
        };
        let status = if row.outcome.failure.is_some() { " **FAILED**" } else { "" };
        md.push_str(&format!(
            "| {}{status} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.outcome.subject.label(),
            cell(m.map(|m| m.wall_s), 3),
            cell(m.map(|m| m.cpu_s()), 3),
            cell(row.mpps.filter(|_| whole_file), 2),
            cell(row.mb_per_s, 0),
            rss_cell(m),
            rel(libpcap),
            rel(nbad),
        ));
    }
    md.push('\n');
    let or_dash = |v: Option<f64>, digits: usize| v.map_or("–".to_owned(), |v| format!("{v:.digits$}"));
    md.push_str(&format!(
        "- nbad-sensor replay (flow records only) packet rate / libpcap loop packet rate: **{}x** (target ≥ 0.75)\n",
        or_dash(replay_vs_libpcap, 2)
    ));
    md.push_str(&format!(
        "- replay with every detector on / libpcap loop: **{}x** (target ≥ 0.6)\n",
        or_dash(detect_vs_libpcap, 2)
    ));
    md.push_str(&format!(
        "- replay with every detector on / flow records only: **{}x** (target ≥ 0.9)\n",
        or_dash(detect_vs_replay, 2)
    ));
    if detect_vs_softflowd.is_some() || detect_vs_suricata.is_some() {
        md.push_str(&format!(
            "- replay with every detector on / softflowd: **{}x** (target ≥ 12); / Suricata: **{}x** (target ≥ 15)\n",
            or_dash(detect_vs_softflowd, 1),
            or_dash(detect_vs_suricata, 1)
        ));
    }
    md.push_str(&format!(
        "- nbad-sensor replay MB/s / raw read MB/s (context): {}x\n",
        or_dash(replay_vs_raw, 3)
    ));
    // A baseline at its floor may truly be lower: then bytes per flow is too low by at most
    // floor / active_peak.
    let baseline_floor = find(Subject::Baseline)
        .and_then(|r| r.median)
        .filter(|m| m.max_rss_kib <= m.rss_floor_kib)
        .map(|m| m.rss_floor_kib);
    let caveat = match (baseline_floor, active_peak) {
        (Some(floor), Some(peak)) if peak > 0 => format!(
            " (the baseline is at the RSS floor, {:.1} MiB: its true value may be lower, so this may be low by up to {:.0} B)",
            floor as f64 / 1024.0,
            floor as f64 * 1024.0 / peak as f64
        ),
        _ => String::new(),
    };
    md.push_str(&format!(
        "- bytes per tracked flow = (peak RSS replay − peak RSS 1000-packet replay) / flows.active_peak ({}) = **{}**{caveat}\n",
        active_peak.map_or("–".to_owned(), |p| p.to_string()),
        or_dash(bytes_per_flow, 0),
    ));
    let mut failures = Vec::new();
    for row in &rows {
        for line in &row.outcome.notes {
            md.push_str(&format!("- {}: {line}\n", row.outcome.subject.label()));
        }
        if let Some(reason) = &row.outcome.failure {
            md.push_str(&format!("- {} FAILED: {reason}\n", row.outcome.subject.label()));
            failures.push(format!("{} failed: {reason}", row.outcome.subject.label()));
        }
    }
    md.push_str("\nCommands:\n\n");
    for row in rows.iter().filter(|r| !r.outcome.command.is_empty()) {
        md.push_str(&format!("- {}: `{}`\n", row.outcome.subject.key(), row.outcome.command));
    }

    let json = json!({
        "capture": { "path": capture.pcap, "head": capture.head, "meta": meta },
        "repeat": repeat,
        "machine": machine,
        "subjects": rows.iter().map(|r| json!({
            "key": r.outcome.subject.key(),
            "label": r.outcome.subject.label(),
            "command": r.outcome.command,
            "runs": r.outcome.samples,
            "median": r.median,
            "mpps": r.mpps,
            "mb_per_s": r.mb_per_s,
            "failure": r.outcome.failure,
            "notes": r.outcome.notes,
        })).collect::<Vec<Value>>(),
        "replay": {
            "mpps_vs_libpcap": replay_vs_libpcap,
            "mb_per_s_vs_raw_read": replay_vs_raw,
            "flows_active_peak": active_peak,
            "bytes_per_tracked_flow": bytes_per_flow,
        },
    });

    heading("bench: report");
    println!("{md}");
    let md_path = bench_dir.join("report.md");
    let json_path = bench_dir.join("report.json");
    fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("written: {} and {}", md_path.display(), json_path.display());
    Ok(failures)
}

/// Peak RSS in MiB, as `≤ x` when it is not above the run's floor.
fn rss_cell(median: Option<Sample>) -> String {
    match median {
        None => "–".to_owned(),
        Some(m) if m.max_rss_kib <= m.rss_floor_kib => format!("≤ {:.1}", m.rss_mib()),
        Some(m) => format!("{:.1}", m.rss_mib()),
    }
}

fn machine() -> Value {
    let cpu = fs::read_to_string("/proc/cpuinfo").ok().and_then(|text| {
        text.lines().find_map(|l| {
            l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
    });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|k| k.trim().to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let probe = |cmd: &mut Command| cmd::probe(cmd).ok().flatten().map(|s| s.trim().to_owned());
    let git = probe(Command::new("git").args(["rev-parse", "--short", "HEAD"]))
        .map(|rev| {
            let dirty =
                probe(Command::new("git").args(["status", "--porcelain"])).is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev} (with uncommitted changes)") } else { rev }
        })
        .unwrap_or_else(|| "(no commit)".to_owned());
    let date = probe(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]));
    json!({ "cpu": cpu, "cpus": cpus, "kernel": kernel, "git": git, "date": date })
}
