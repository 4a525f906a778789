//! `cargo xtask bench --delivery`: alerts per second from `nbad-sensor alerts send` to each
//! kind of receiver on loopback (the same receivers the delivery tests start), and the file
//! sink as the same-run baseline the others are compared with.
//!
//! Each subject delivers the same file of [`ALERTS`] ECS alerts through a fresh spool; the
//! time is the whole `alerts send` run (read, spool, deliver until acknowledged) measured
//! from outside. Receivers that are not installed are reported as skipped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nbad_tests::receivers::send::{self, config, sink};
use nbad_tests::receivers::{
    alerts, free_port, hec::Hec, nats::Nats, opensearch::OpenSearch, redis::Redis, syslog, wait_until,
};

use crate::cmd::{self, heading, note};

/// Alerts per subject.
const ALERTS: u32 = 20_000;

struct Row {
    label: &'static str,
    result: Result<Duration, String>,
}

fn measure(bin: &Path, dir: &Path, file: &Path, sinks: &str) -> Result<Duration> {
    let run_dir = tempfile::tempdir_in(dir)?;
    let cfg = config(run_dir.path(), sinks)?;
    let start = Instant::now();
    let out = send::run_bin(bin, &cfg, 300, &[file])?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!("alerts send failed: {}", send::stderr(&out));
    }
    Ok(took)
}

fn batch(keys: &str) -> String {
    format!("{keys}\nbatch_max_events = 500")
}

pub fn run(root: &Path, no_build: bool) -> Result<()> {
    heading("bench --delivery: alerts/s per sink to local receivers");
    let bin = root.join("target/release/nbad-sensor");
    if !no_build {
        cmd::run(
            "build nbad-sensor (release)",
            &mut cmd::cargo(["build", "--release", "-p", "nbad-sensor"]),
        )?;
    }
    if !bin.is_file() {
        bail!("{} not found (drop --no-build)", bin.display());
    }
    let dir = tempfile::tempdir().context("temp dir")?;
    let file = dir.path().join("alerts.jsonl");
    alerts::write(&file, 0xbe, ALERTS)?;
    let mut rows = Vec::new();
    let mut add = |label, result: Result<Duration>| {
        rows.push(Row { label, result: result.map_err(|e| format!("{e:#}")) })
    };

    let out = dir.path().join("alerts-out.jsonl");
    add(
        "file (JSON lines)",
        measure(
            &bin,
            dir.path(),
            &file,
            &sink("file", "f", &batch(&format!("path = \"{}\"", out.display()))),
        ),
    );
    let hec = Hec::start("t", 0, Duration::ZERO)?;
    add(
        "splunk_hec (contract server)",
        measure(
            &bin,
            dir.path(),
            &file,
            &sink("splunk_hec", "h", &batch(&format!("url = \"{}\"\ntoken = \"t\"", hec.url()))),
        ),
    );
    let hec2 = Hec::start("t", 0, Duration::ZERO)?;
    add(
        "splunk_hec, gzip",
        measure(
            &bin,
            dir.path(),
            &file,
            &sink(
                "splunk_hec",
                "h",
                &batch(&format!("url = \"{}\"\ntoken = \"t\"\ngzip = true", hec2.url())),
            ),
        ),
    );
    match OpenSearch::start(dir.path(), free_port()?)? {
        Some(os) => add(
            "elasticsearch _bulk (osmem-server)",
            measure(
                &bin,
                dir.path(),
                &file,
                &sink("elasticsearch", "e", &batch(&format!("url = \"{}\"", os.url()))),
            ),
        ),
        None => add(
            "elasticsearch _bulk (osmem-server)",
            Err(anyhow::anyhow!("skipped: osmem-server not installed")),
        ),
    }
    match Redis::start(dir.path(), free_port()?)? {
        Some(r) => add(
            "redis XADD",
            measure(&bin, dir.path(), &file, &sink("redis", "r", &batch(&format!("url = \"{}\"", r.url())))),
        ),
        None => add("redis XADD", Err(anyhow::anyhow!("skipped: redis-server not installed"))),
    }
    match Nats::start(dir.path(), free_port()?)? {
        Some(n) => add(
            "nats JetStream",
            measure(
                &bin,
                dir.path(),
                &file,
                &sink("nats", "n", &batch(&format!("url = \"{}\"\nstream = \"B\"", n.url()))),
            ),
        ),
        None => add("nats JetStream", Err(anyhow::anyhow!("skipped: nats-server not installed"))),
    }
    let port = free_port()?;
    match syslog::rsyslog(dir.path(), port, None)? {
        Some(rx) => {
            let r = measure(
                &bin,
                dir.path(),
                &file,
                &sink("syslog", "s", &batch(&format!("protocol = \"tcp\"\naddress = \"127.0.0.1:{port}\""))),
            );
            let all = wait_until(Duration::from_secs(60), || {
                alerts::ids_in(&rx.received(), 0xbe).len() == ALERTS as usize
            });
            add(
                "syslog TCP (rsyslog)",
                r.and_then(|d| if all { Ok(d) } else { bail!("rsyslog did not write every alert") }),
            );
        }
        None => add("syslog TCP (rsyslog)", Err(anyhow::anyhow!("skipped: rsyslogd not installed"))),
    }
    if let Some(ca) = syslog::TestCa::generate(dir.path())? {
        let port = free_port()?;
        if let Some(_rx) = syslog::rsyslog(dir.path(), port, Some(&ca))? {
            let keys = format!(
                "protocol = \"tls\"\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"\nca_file = \"{}\"",
                ca.ca.display()
            );
            add(
                "syslog TLS (rsyslog)",
                measure(&bin, dir.path(), &file, &sink("syslog", "s", &batch(&keys))),
            );
        }
    }

    let base = rows.first().and_then(|r| r.result.as_ref().ok()).map(|d| f64::from(ALERTS) / d.as_secs_f64());
    println!("\n| sink | alerts/s | vs file sink |\n|---|---:|---:|");
    for row in &rows {
        match &row.result {
            Ok(d) => {
                let rate = f64::from(ALERTS) / d.as_secs_f64();
                let ratio = base.map_or(String::from("-"), |b| format!("{:.2}", rate / b));
                println!("| {} | {rate:.0} | {ratio} |", row.label);
            }
            Err(e) => println!("| {} | {} | |", row.label, e.lines().next().unwrap_or_default()),
        }
    }
    note(&format!(
        "{ALERTS} alerts per subject, batch_max_events = 500, fsync = never; whole `alerts send` runs"
    ));
    Ok(())
}
