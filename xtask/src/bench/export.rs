//! `cargo xtask bench --export`: flow export throughput against the JSON output, in one
//! invocation on the benchmark capture (detection off in every run):
//!
//! 1. JSON flow records written to a file (the baseline);
//! 2. the same records exported as IPFIX biflow over UDP to a loopback socket that discards
//!    them, and no JSON output (`--flows ""`), so that the run pays for the export alone;
//! 3. IPFIX unidirectional, the same way;
//! 4. NetFlow v9;
//! 5. Kafka (`[output.kafka]`, lz4) to tansu on loopback, when `target/tansu` has it.
//!
//! Each run's queue holds every record (16 Mi), so a slow exporter shows as time, not as
//! drops; the sensor gives exporters 10 s after the pipeline ends, and records still unsent
//! then are counted (`dropped_shutdown`) and shown. The report gives flow records per second
//! of wall time (the process ends when the exporters are done), the ratio to the JSON run, the
//! share of records sent, and the bytes per record on the wire (IPFIX/v9: messages and
//! templates; Kafka: keys and values before compression).

use std::fmt::Write as _;
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::capture::BenchCapture;
use super::measure::{self, Sample};
use crate::cmd::{heading, note};

/// One way of writing the flow records.
struct Mode {
    label: &'static str,
    /// `[output]` and export tables for the run's configuration; `{udp}` and `{kafka}` are
    /// replaced by the addresses.
    config: &'static str,
    /// Whether the JSON records go to a file (the baseline) or nowhere.
    json_file: bool,
    needs_kafka: bool,
}

const MODES: [Mode; 5] = [
    Mode { label: "JSON lines to a file", config: "", json_file: true, needs_kafka: false },
    Mode {
        label: "IPFIX biflow, UDP",
        config: "[[output.ipfix]]\nname = \"bench\"\ncollector = \"{udp}\"\nqueue_records = 16777216\n",
        json_file: false,
        needs_kafka: false,
    },
    Mode {
        label: "IPFIX unidirectional, UDP",
        config: "[[output.ipfix]]\nname = \"bench\"\ncollector = \"{udp}\"\nrecord_mode = \"unidirectional\"\n\
                 queue_records = 16777216\n",
        json_file: false,
        needs_kafka: false,
    },
    Mode {
        label: "NetFlow v9, UDP",
        config: "[[output.ipfix]]\nname = \"bench\"\ncollector = \"{udp}\"\nprotocol = \"netflow9\"\n\
                 record_mode = \"unidirectional\"\nqueue_records = 16777216\n",
        json_file: false,
        needs_kafka: false,
    },
    Mode {
        label: "Kafka (lz4), tansu",
        config: "[output.kafka]\nbrokers = [\"{kafka}\"]\ntopic = \"bench\"\ncreate_partitions = 3\n\
                 queue_records = 16777216\nbatch_max_records = 5000\nlinger_ms = 50\n",
        json_file: false,
        needs_kafka: true,
    },
];

/// What one run gave.
struct Row {
    label: &'static str,
    sample: Sample,
    records: u64,
    sent: u64,
    offered: u64,
    bytes: u64,
    dropped: u64,
}

/// A loopback UDP socket drained by a thread (so the kernel buffer never refuses datagrams).
fn discard_socket() -> Result<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("binding a loopback UDP socket")?;
    let address = socket.local_addr()?.to_string();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while socket.recv(&mut buf).is_ok() {}
    });
    Ok(address)
}

/// tansu on a free port, for the Kafka run; `None` without a tansu binary.
fn start_tansu(root: &Path, dir: &Path) -> Result<Option<(std::process::Child, String)>> {
    let bin = root.join("target/tansu/bin/tansu");
    if !bin.is_file() {
        return Ok(None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(fs::File::create(dir.join("tansu.log"))?)
        .stderr(fs::File::create(dir.join("tansu.err"))?)
        .spawn()
        .context("starting tansu")?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Some((child, format!("127.0.0.1:{port}"))));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("tansu did not listen on port {port}")
}

/// Runs every mode `repeat` times on `capture` with `sensor`; writes and prints the report.
pub fn run(
    root: &Path,
    sensor: &Path,
    capture: &BenchCapture,
    run_dir: &Path,
    repeat: u32,
    limit: Duration,
) -> Result<PathBuf> {
    heading(&format!("bench: flow export ({repeat} runs each, logs in {})", run_dir.display()));
    let udp = discard_socket()?;
    let mut tansu = start_tansu(root, run_dir)?;
    if tansu.is_none() {
        note("tansu is not built (cargo xtask setup builds it into target/tansu): no Kafka run");
    }
    let mut rows: Vec<Row> = Vec::new();
    for repetition in 1..=repeat {
        for (i, mode) in MODES.iter().enumerate() {
            let Some(kafka) =
                (if mode.needs_kafka { tansu.as_ref().map(|t| t.1.as_str()) } else { Some("") })
            else {
                continue;
            };
            let cfg = run_dir.join(format!("export-{i}.toml"));
            let text = format!(
                "[detection]\nenabled = false\n{}",
                mode.config.replace("{udp}", &udp).replace("{kafka}", kafka)
            );
            fs::write(&cfg, text)?;
            let stats = run_dir.join(format!("export-{i}-{repetition}-stats.json"));
            let flows =
                if mode.json_file { run_dir.join("export-flows.json") } else { PathBuf::from("/dev/null") };
            let _ = fs::remove_file(run_dir.join("export-flows.json"));
            let mut c = Command::new(sensor);
            c.args(["replay", "--quiet", "-c"])
                .arg(&cfg)
                .arg("--flows")
                .arg(&flows)
                .arg("--stats")
                .arg(&stats);
            c.arg(&capture.pcap);
            let finished = measure::measure(&mut c, run_dir, &format!("export-{i}-{repetition}"), limit)?;
            if !finished.status.success() {
                bail!("{}: the sensor exited with {}: {}", mode.label, finished.status, finished.stderr);
            }
            let s: Value = serde_json::from_str(&fs::read_to_string(&stats)?)?;
            let n = |p: &str| s.pointer(p).and_then(Value::as_u64).unwrap_or(0);
            let x = |k: &str| n(&format!("/output/export/0/{k}"));
            let row = Row {
                label: mode.label,
                sample: finished.sample,
                records: n("/output/flow_records_written"),
                sent: if mode.json_file { n("/output/flow_records_written") } else { x("sent") },
                offered: if mode.json_file { n("/output/flow_records_written") } else { x("offered") },
                bytes: if mode.json_file {
                    fs::metadata(run_dir.join("export-flows.json")).map_or(0, |m| m.len())
                } else {
                    x("bytes")
                },
                dropped: x("dropped_queue_full") + x("dropped_send_error") + x("dropped_shutdown"),
            };
            note(&format!(
                "{:<28} run {repetition}: {:>7.2} s wall {:>7.2} s CPU, {:>9.0} records/s, {} of {} sent",
                row.label,
                row.sample.wall_s,
                row.sample.cpu_s(),
                row.records as f64 / row.sample.wall_s,
                row.sent,
                row.offered
            ));
            rows.push(row);
        }
    }
    let _ = fs::remove_file(run_dir.join("export-flows.json"));
    if let Some((mut child, _)) = tansu.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let report = render(capture, repeat, &rows);
    let path = run_dir.parent().unwrap_or(run_dir).join("export-report.md");
    fs::write(&path, &report)?;
    println!("{report}");
    Ok(path)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn render(capture: &BenchCapture, repeat: u32, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Flow export throughput\n\n{} ({} packets, {} flows), detection off, median of {repeat}.\n",
        capture.pcap.display(),
        capture.meta.packets,
        capture.meta.flows
    );
    let _ = writeln!(
        out,
        "| output | wall s | CPU s | flow records/s | vs JSON | sent | dropped | bytes/record |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut json_rate = None;
    for mode in MODES.iter() {
        let runs: Vec<&Row> = rows.iter().filter(|r| r.label == mode.label).collect();
        let Some(first) = runs.first() else { continue };
        let wall = median(runs.iter().map(|r| r.sample.wall_s).collect());
        let cpu = median(runs.iter().map(|r| r.sample.cpu_s()).collect());
        let rate = first.records as f64 / wall.max(1e-9);
        let base = *json_rate.get_or_insert(rate);
        let _ = writeln!(
            out,
            "| {} | {wall:.2} | {cpu:.2} | {rate:.0} | {:.2}× | {} of {} | {} | {:.1} |",
            mode.label,
            rate / base,
            first.sent,
            first.offered,
            first.dropped,
            first.bytes as f64 / first.sent.max(1) as f64
        );
    }
    out
}
