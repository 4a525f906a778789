//! `cargo xtask bench --latency`: packet-to-alert latency of live capture, per detector, read
//! from the sensor's own histogram (`alert_latency` in its statistics: the newest packet of an
//! alert's evidence to the alert's emission, HdrHistogram quantiles).
//!
//! The input is a capture of [`EPISODES`] protocol-misuse episodes written here, one every
//! [`SPACING`]: each a TCP session from its own inside client (10.64.x.y) to its own outside
//! server (198.18.x.y, RFC 2544's benchmarking range) on port 443, whose server speaks SSH
//! first — the shape `protocol_mismatch` alerts on at the first payload, so every episode is
//! one alert, none suppressed as a repeat of another. tcpreplay sends it at its own pace
//! (not `--topspeed`) over the bench's veth pair ([`Lab`]: two namespaces, no addresses, no
//! routes), and the sensor captures the far end with libpcap, then with XDP (the shipped
//! 1 s poll interval: observations come from the program's sample ring, read at every pause
//! of the capture loop). The sensor stamps packets on arrival, so the pace does not enter the
//! figure; what does is the capture path, the pipeline's tick and merge, and detection.
//!
//! Bucket detectors (scan, DNS tunnel windows, volume) alert when their bucket closes: their
//! latency is up to `bucket_s` after the threshold is crossed, by design, and is not measured
//! here.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use etherparse::PacketBuilder;
use nbad_tests::lab::{exec, preflight};
use serde_json::Value;

use super::super::pcap_out::PcapWriter;
use super::net::{Lab, RX_IF, TX_IF, signal_namespace};
use crate::cmd::{self, heading, note};
use crate::setup::Apt;
use crate::target_dir;

/// Episodes per run: each one alert.
const EPISODES: u32 = 200;
/// Time between two episodes' first packets, in the capture.
const SPACING: Duration = Duration::from_millis(50);
/// Longest the sensor may take to start capturing, and a whole run.
const START_LIMIT: Duration = Duration::from_secs(30);
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Wait after the replay, so that the last episode's alert is out before SIGTERM.
const SETTLE: Duration = Duration::from_secs(2);
const READY: &str = "capturing on ";

/// The client's and the server's banners.
const SERVER_BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
const CLIENT_BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";

/// One capture path's figures.
#[derive(Debug)]
struct Row {
    path: &'static str,
    alerts: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    packets: u64,
}

/// Measures, prints and writes `target/bench/latency.md`.
pub fn run(root: &Path, no_build: bool) -> Result<()> {
    crate::lab::install_stop_handlers()?;
    ensure!(preflight::is_root(), "`bench --latency` needs root: it creates network namespaces");
    heading("bench --latency: tools");
    Apt::default().ensure(&["tcpreplay", "ethtool", "iproute2"], &[])?;
    if !no_build {
        heading("bench --latency: build (release)");
        let mut build = cmd::cargo(["build", "--release", "-p", "nbad-sensor", "--bin", "nbad-sensor"]);
        cmd::run("build nbad-sensor", build.current_dir(root))?;
    }
    let bench_dir = target_dir(root).join("bench");
    let run_dir = bench_dir.join("last-latency-run");
    let _ = fs::remove_dir_all(&run_dir);
    fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let capture = run_dir.join("episodes.pcap");
    let packets = write_episodes(&capture)?;
    note(&format!("{EPISODES} SSH-on-443 episodes, {packets} packets, one every {SPACING:?}"));

    heading("bench --latency: network (namespaces and a veth pair)");
    let lab = Lab::create()?;
    let sensor = target_dir(root).join("release/nbad-sensor");
    let mut rows = Vec::new();
    for (path, mode) in [("libpcap", "pcap"), ("XDP", "xdp")] {
        heading(&format!("bench --latency: {path}"));
        let row = measure(&lab, &sensor, &run_dir, &capture, path, mode)?;
        note(&format!(
            "{} alerts; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            row.alerts, row.p50_ms, row.p99_ms, row.max_ms
        ));
        rows.push(row);
    }
    lab.teardown();
    let report = render(&rows);
    let out = bench_dir.join("latency.md");
    fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("\n{report}");
    note(&format!("written to {}", out.display()));
    for r in &rows {
        ensure!(
            r.alerts == u64::from(EPISODES),
            "{}: {} of {EPISODES} episodes alerted (logs in {})",
            r.path,
            r.alerts,
            run_dir.display()
        );
    }
    Ok(())
}

fn measure(
    lab: &Lab,
    sensor: &Path,
    run_dir: &Path,
    capture: &Path,
    path: &'static str,
    mode: &str,
) -> Result<Row> {
    let config = run_dir.join(format!("{mode}.toml"));
    fs::write(
        &config,
        format!(
            "[sensor]\nid = \"bench-latency\"\nhome_networks = [\"10.0.0.0/8\"]\n\
             [capture]\nmode = \"{mode}\"\ninterface = \"{RX_IF}\"\npromiscuous = true\n\
             [output]\nflows = \"/dev/null\"\nstats_interval_s = 1\n"
        ),
    )
    .context("writing the sensor configuration")?;
    let stats = run_dir.join(format!("{mode}-stats.json"));
    let alerts = run_dir.join(format!("{mode}-alerts.jsonl"));
    let log = run_dir.join(format!("{mode}.log"));
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.rx, "timeout", "-k", "2"])
        .arg(RUN_LIMIT.as_secs().to_string())
        .arg(sensor)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--stats")
        .arg(&stats)
        .arg("--alerts")
        .arg(&alerts)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?)
        .spawn()
        .context("starting the sensor")?;
    let result = drive(lab, &mut child, &log, capture);
    signal_namespace(&lab.rx, "TERM", Some("timeout"));
    let status = child.wait().context("waiting for the sensor")?;
    result?;
    ensure!(status.success(), "the sensor exited with {status} after SIGTERM: see {}", log.display());
    let text = fs::read_to_string(&stats).with_context(|| format!("reading {}", stats.display()))?;
    let stats: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", stats.display()))?;
    let q = &stats["alert_latency"]["protocol_mismatch"];
    let f = |k: &str| q[k].as_f64().unwrap_or(f64::NAN);
    Ok(Row {
        path,
        alerts: q["count"].as_u64().unwrap_or(0),
        p50_ms: f("p50_ms"),
        p99_ms: f("p99_ms"),
        max_ms: f("max_ms"),
        packets: stats["capture"]["packets_read"].as_u64().unwrap_or(0),
    })
}

/// Waits until the sensor captures, replays the episodes, and lets the last alert out.
fn drive(lab: &Lab, child: &mut Child, log: &Path, capture: &Path) -> Result<()> {
    let start = Instant::now();
    while !fs::read_to_string(log).unwrap_or_default().contains(READY) {
        if child.try_wait()?.is_some() || start.elapsed() > START_LIMIT {
            bail!("the sensor did not start capturing: see {}", log.display());
        }
        exec::nap(Duration::from_millis(100))?;
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.tx, "timeout", "-k", "2"])
        .arg(RUN_LIMIT.as_secs().to_string())
        .args(["tcpreplay", "-q", "-i", TX_IF])
        .arg(capture)
        .output()
        .context("running tcpreplay")?;
    ensure!(out.status.success(), "tcpreplay failed: {}", String::from_utf8_lossy(&out.stderr));
    exec::nap(SETTLE)
}

/// Writes the episodes; returns the packets written.
fn write_episodes(path: &Path) -> Result<u64> {
    let mut out = PcapWriter::create(path)?;
    let mut packets = 0;
    let t0_us: u64 = 1_700_000_000_000_000;
    for i in 0..EPISODES {
        let [_, _, hi, lo] = i.to_be_bytes();
        let client = [10, 64, hi, lo.wrapping_add(1)];
        let server = [198, 18, hi, lo.wrapping_add(1)];
        let at = t0_us + u64::from(i) * u64::try_from(SPACING.as_micros()).unwrap_or(50_000);
        let cport = 40_000 + u16::try_from(i % 20_000).unwrap_or(0);
        // (from the client, flags, payload), 1 ms apart.
        let seg: [(bool, &str, &[u8]); 6] = [
            (true, "S", b""),
            (false, "SA", b""),
            (true, "A", b""),
            (false, "PA", SERVER_BANNER),
            (true, "PA", CLIENT_BANNER),
            (false, "A", b""),
        ];
        let (mut cseq, mut sseq) = (1_000u32, 5_000u32);
        for (k, (from_client, flags, payload)) in seg.iter().enumerate() {
            let (src, dst, sport, dport, seq, ack) = if *from_client {
                (client, server, cport, 443, cseq, sseq)
            } else {
                (server, client, 443, cport, sseq, cseq)
            };
            let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4(src, dst, 64)
                .tcp(sport, dport, seq, 64_240);
            if flags.contains('S') {
                b = b.syn();
            }
            if flags.contains('A') {
                b = b.ack(ack);
            }
            if flags.contains('P') {
                b = b.psh();
            }
            let mut frame = Vec::with_capacity(64 + payload.len());
            b.write(&mut frame, payload).context("building a frame")?;
            let len = u32::try_from(payload.len()).unwrap_or(0) + u32::from(flags.contains('S'));
            if *from_client {
                cseq = cseq.wrapping_add(len);
            } else {
                sseq = sseq.wrapping_add(len);
            }
            out.write_packet(at + k as u64 * 1_000, u32::try_from(frame.len()).unwrap_or(0), &frame)?;
            packets += 1;
        }
    }
    out.finish()?;
    Ok(packets)
}

fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "| capture path | episodes | alerts | p50 ms | p99 ms | max ms | packets seen |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {EPISODES} | {} | {:.1} | {:.1} | {:.1} | {} |",
            r.path, r.alerts, r.p50_ms, r.p99_ms, r.max_ms, r.packets
        );
    }
    s
}
