//! What one run of a subject measured ([`Run`]), the line printed after it, and the report of
//! the whole invocation appended to `report-live.md` and `report-live.json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

use super::capture::{LiveCapture, MAX_FRAME};
use crate::cmd::{self, heading, note};

/// One run of one subject.
#[derive(Debug, Default, Serialize)]
pub(super) struct Run {
    pub(super) subject: &'static str,
    pub(super) label: &'static str,
    pub(super) repetition: u32,
    pub(super) command: String,
    pub(super) sender_command: String,
    /// The subject's "capturing on …" line.
    pub(super) capture_line: String,
    pub(super) offered: u64,
    /// Frames tcpreplay could not send.
    pub(super) sender_failed: u64,
    pub(super) send_s: f64,
    pub(super) sender_cpu_s: f64,
    pub(super) veth_rx_packets: u64,
    pub(super) veth_rx_dropped: u64,
    pub(super) accounted: Option<u64>,
    pub(super) drops: Option<u64>,
    pub(super) subject_cpu_s: Option<f64>,
    pub(super) subject_wall_s: Option<f64>,
    pub(super) subject_peak_rss_mib: Option<f64>,
    /// Busy CPU seconds of the whole machine (all but idle and iowait) from the replay's start
    /// to the subject's exit, and the softirq part of them.
    pub(super) system_busy_s: f64,
    pub(super) system_softirq_s: f64,
    pub(super) window_s: f64,
    pub(super) counters: BTreeMap<String, u64>,
    pub(super) failure: Option<String>,
}

impl Run {
    fn percent(&self) -> Option<f64> {
        self.accounted.filter(|_| self.offered > 0).map(|a| a as f64 * 100.0 / self.offered as f64)
    }
}

pub(super) fn print_run(run: &Run) {
    if let Some(why) = &run.failure {
        note(&format!("{:<36} run {}: FAILED: {why}", run.label, run.repetition));
        return;
    }
    let percent = run.percent().map_or("–".to_owned(), |p| format!("{p:.3} %"));
    note(&format!(
        "{:<36} run {}: offered {} at {:.3} Mpps, accounted {percent}, CPU {} s (sender {:.2} s, system {:.2} s)",
        run.label,
        run.repetition,
        run.offered,
        mpps(run),
        run.subject_cpu_s.map_or("–".to_owned(), |c| format!("{c:.2}")),
        run.sender_cpu_s,
        run.system_busy_s
    ));
}

/// With `--threads`: each repetition's `capture.threads` run as ratios to its one-thread
/// libpcap run (accounted, subject CPU, accounted per subject CPU second, machine CPU).
fn threads_comparison(runs: &[Run]) -> String {
    let ok = |key: &str, rep: u32| {
        runs.iter().find(|r| r.subject == key && r.repetition == rep && r.failure.is_none())
    };
    let mut md = String::new();
    for one in runs.iter().filter(|r| r.subject == "nbad_libpcap" && r.failure.is_none()) {
        let Some(many) = ok("nbad_libpcap_threads", one.repetition) else { continue };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "–".to_owned(),
        };
        let accounted = |r: &Run| r.accounted.map(|a| a as f64);
        let per_cpu = |r: &Run| r.accounted.zip(r.subject_cpu_s).map(|(a, c)| a as f64 / c.max(1e-9));
        if md.is_empty() {
            md.push_str(
                "\n`capture.threads` (--threads) against one thread, same repetition \
                 (ratio = threads run / one-thread run):\n\n\
                 | run | accounted | subject CPU | accounted per subject CPU s | system CPU | drops (one / threads) |\n\
                 |---:|---:|---:|---:|---:|---|\n",
            );
        }
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} / {} |\n",
            one.repetition,
            ratio(accounted(many), accounted(one)),
            ratio(many.subject_cpu_s, one.subject_cpu_s),
            ratio(per_cpu(many), per_cpu(one)),
            ratio(Some(many.system_busy_s), Some(one.system_busy_s)),
            one.drops.map_or("–".to_owned(), |d| d.to_string()),
            many.drops.map_or("–".to_owned(), |d| d.to_string()),
        ));
    }
    md
}

fn mpps(run: &Run) -> f64 {
    if run.send_s > 0.0 { run.offered as f64 / run.send_s / 1e6 } else { 0.0 }
}

/// Appends this invocation to `report-live.md` and to the array in `report-live.json`; prints
/// it. Returns one line per failed run.
pub(super) fn write_report(
    bench_dir: &Path,
    live: &LiveCapture,
    repeat: u32,
    runs: &[Run],
    took: Duration,
) -> Result<Vec<String>> {
    let probe = |c: &mut Command| cmd::probe(c).ok().flatten().map(|s| s.trim().to_owned());
    let date = probe(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])).unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let cpus = thread::available_parallelism().map_or(0, usize::from);
    let git = probe(Command::new("git").args(["rev-parse", "--short", "HEAD"])).unwrap_or_default();

    let mut md = format!("\n## nbad-sensor live capture bench, {date}\n\n");
    let shape = match live.flows {
        Some(flows) => format!("synthetic: 60-byte UDP frames round-robin over {flows} concurrent flows"),
        None => format!("frames over {MAX_FRAME} bytes left out: {}", live.left_out),
    };
    md.push_str(&format!(
        "- sent: `{}`: {} packets ({shape}), once per run, by `tcpreplay --topspeed` into a veth \
         pair between two namespaces; the subject captures the receiving end\n",
        live.path.display(),
        live.packets,
    ));
    md.push_str(&format!(
        "- machine: {cpus} CPUs, Linux {kernel}; git {git}; {repeat} run(s) of each subject; the \
         whole bench took {:.0} s\n",
        took.as_secs_f64()
    ));
    md.push_str(
        "- accounted: libpcap path `capture.packets_read`; XDP path `capture.packets_read` + the \
         program's not_ip, truncated, malformed; Suricata `decoder.pkts`. drops: as the path reports \
         them (libpcap kernel + interface drops; XDP `flow_map_full`; Suricata `capture.kernel_drops`)\n",
    );
    md.push_str(
        "- subject CPU: the capturing process's user + system time (rusage). The XDP program and \
         libpcap's kernel-side copy run in softirq on the sender's CPU, charged to no capturing \
         process: compare the sender's CPU and the machine's busy CPU (`/proc/stat`, from the \
         replay's start to the subject's exit, other tenants included) with the sender-only row\n\n",
    );
    md.push_str(
        "| subject | run | offered | accounted | % accounted | drops | subject CPU s | sender CPU s | system CPU s | of it softirq s | send s | Mpps offered |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let dash = || "–".to_owned();
    for run in runs {
        let failed = if run.failure.is_some() { " **FAILED**" } else { "" };
        if run.offered == 0 {
            md.push_str(&format!("| {}{failed} | {} |{}\n", run.label, run.repetition, " – |".repeat(10)));
            continue;
        }
        md.push_str(&format!(
            "| {}{failed} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} |\n",
            run.label,
            run.repetition,
            run.offered,
            run.accounted.map_or_else(dash, |a| a.to_string()),
            run.percent().map_or_else(dash, |p| format!("{p:.3}")),
            run.drops.map_or_else(dash, |d| d.to_string()),
            run.subject_cpu_s.map_or_else(dash, |c| format!("{c:.2}")),
            run.sender_cpu_s,
            run.system_busy_s,
            run.system_softirq_s,
            run.send_s,
            mpps(run),
        ));
    }
    md.push('\n');
    let mut failures = Vec::new();
    for run in runs {
        let mut detail = format!(
            "veth rx {} packets, {} dropped; sender failed {}; measured window {:.1} s",
            run.veth_rx_packets, run.veth_rx_dropped, run.sender_failed, run.window_s
        );
        if let (Some(wall), Some(rss)) = (run.subject_wall_s, run.subject_peak_rss_mib) {
            detail.push_str(&format!("; subject ran {wall:.1} s, peak RSS {rss:.0} MiB"));
        }
        if !run.counters.is_empty() {
            let counters: Vec<String> = run.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            detail.push_str(&format!("; {}", counters.join(", ")));
        }
        if !run.capture_line.is_empty() {
            detail.push_str(&format!("; \"{}\"", run.capture_line));
        }
        md.push_str(&format!("- {} run {}: {detail}\n", run.label, run.repetition));
        if let Some(why) = &run.failure {
            md.push_str(&format!("- {} run {} FAILED: {why}\n", run.label, run.repetition));
            failures.push(format!("{} run {}: {why}", run.label, run.repetition));
        }
    }
    md.push_str(&threads_comparison(runs));
    md.push_str("\nCommands (run 1):\n\n");
    for run in runs.iter().filter(|r| r.repetition == 1) {
        md.push_str(&format!("- {}: sender `{}`", run.subject, run.sender_command));
        if !run.command.is_empty() {
            md.push_str(&format!("; capture `{}`", run.command));
        }
        md.push('\n');
    }

    heading("bench --live: report");
    println!("{md}");
    let md_path = bench_dir.join("report-live.md");
    let mut text =
        fs::read_to_string(&md_path).unwrap_or_else(|_| "# nbad-sensor live capture bench\n".to_owned());
    text.push_str(&md);
    fs::write(&md_path, text).with_context(|| format!("writing {}", md_path.display()))?;

    let json_path = bench_dir.join("report-live.json");
    let mut all = fs::read(&json_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
        .unwrap_or_default();
    all.push(json!({
        "date": date,
        "machine": { "cpus": cpus, "kernel": kernel, "git": git },
        "capture": {
            "path": live.path,
            "packets": live.packets,
            "left_out_over_1514_bytes": live.left_out,
            "synthetic_flows": live.flows,
        },
        "repeat": repeat,
        "took_s": took.as_secs_f64(),
        "runs": runs,
    }));
    fs::write(&json_path, serde_json::to_string_pretty(&all)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("appended to {} and {}", md_path.display(), json_path.display());
    Ok(failures)
}
