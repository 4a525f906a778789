//! `cargo xtask lab`: the live demo. Builds the sensor, starts the lab (namespaces, real servers,
//! a tc mirror of the router's inside interface to `span0`), runs `nbad-sensor run` on `span0`
//! with `configs/lab.toml`, then plays benign traffic and each episode in turn while the sensor's
//! flow records stream to the terminal, one summary line each. Stops the sensor with SIGTERM,
//! removes the lab, and ends with the web console of the run (its URL; on a terminal it serves
//! until Ctrl-C, see `lab_console`).
//!
//! Banners and notes go to stderr, flow records to stdout (`cargo xtask lab > flows.txt` keeps
//! only the records). Every record is also saved, as the sensor wrote it, to
//! `target/lab/flows.json`.
//!
//! Ctrl-C, SIGTERM and SIGHUP are caught: the episode under way is cut short, the sensor stopped
//! and the lab removed before xtask exits. A run killed with SIGKILL leaves the lab to its
//! processes' own time limits and the next run's leftover sweep.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

use crate::cmd::{self, heading, note};
use crate::{lab_console, setup, target_dir};

/// The lab library of the `nbad-tests` crate, compiled into xtask from the same files: xtask
/// depends on no workspace crate (see xtask/Cargo.toml), and the library needs nothing but std,
/// anyhow and serde_json. Parts of it serve only the integration test.
use nbad_tests::lab as netlab;

use netlab::topology::span_if;
use netlab::{Episode, Lab, LabOptions, Node, exec, preflight};

/// Pause after each episode, so that its flow records (idle timeouts of 3 s and a TCP close
/// linger of 1 s in configs/lab.toml, read every 200 ms) print under its banner.
const RECORD_SETTLE: Duration = Duration::from_secs(4);
/// Summary lines shown per episode; the rest are counted (and saved to flows.json).
const SHOWN_PER_EPISODE: usize = 15;

#[derive(Debug, Args)]
pub struct LabArgs {
    /// What to run: `all`, `benign`, or a comma-separated list of upload, dns-tunnel,
    /// icmp-tunnel, ssh-443, scan (benign traffic always runs first).
    #[arg(long, default_value = "all", value_name = "LIST")]
    episodes: String,
    /// Capture path: xdp, pcap, or auto (XDP when it attaches, else libpcap).
    #[arg(long, default_value = "auto", value_parser = ["xdp", "pcap", "auto"])]
    mode: String,
    /// Print flow records as the sensor's raw JSON lines instead of one summary line each.
    #[arg(long)]
    json: bool,
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    no_setup: bool,
}

pub fn run(root: &Path, args: &LabArgs) -> Result<()> {
    let mut episodes = Episode::parse_list(&args.episodes)?;
    if !episodes.contains(&Episode::Benign) {
        episodes.insert(0, Episode::Benign);
    }
    if !args.no_setup {
        setup::run()?;
    }
    if let Some(why) = preflight::unavailable() {
        bail!("{why}");
    }
    let sensor_bin = sensor_binary(root)?;
    let config_path = root.join("configs/lab.toml");
    let base =
        fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let out_dir = target_dir(root).join("lab");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let console = lab_console::Files::prepare(&out_dir)?;
    let config = console.with_state(&netlab::config_with(&base, &args.mode, &span_if(0))?);

    install_stop_handlers()?;
    let started = Instant::now();
    heading("lab: build the network (namespaces, servers, mirror)");
    let lab = Lab::start(LabOptions::default())?;
    if !lab.leftovers_removed().is_empty() {
        note(&format!("removed what earlier runs left: {}", lab.leftovers_removed().join(", ")));
    }
    describe(&lab);

    heading(&format!("lab: start the sensor (capture.mode = \"{}\")", args.mode));
    let printer = Arc::new(Mutex::new(Printer::new(args.json)));
    let on_record = {
        let printer = Arc::clone(&printer);
        Box::new(move |line: &str| printer.lock().unwrap_or_else(PoisonError::into_inner).record(line))
    };
    let on_log = Box::new(|line: &str| eprintln!("    {line}"));
    let mut sensor = lab.start_sensor(&sensor_bin, &config, "sensor", Some(on_record), Some(on_log))?;

    let mut failed = Vec::new();
    for episode in &episodes {
        if exec::stop_requested() {
            break;
        }
        lock(&printer).start_phase(episode.title());
        eprintln!("\n{}", episode.banner());
        match episode.run(&lab) {
            Ok(outcome) => note(&outcome.summary),
            Err(e) if exec::stop_requested() => note(&format!("cut short: {e:#}")),
            Err(e) => {
                note(&format!("FAILED: {e:#}"));
                failed.push(episode.key());
            }
        }
        let _ = exec::nap(RECORD_SETTLE);
        print_alerts(&sensor.new_alerts());
    }

    lock(&printer).start_phase("shutdown");
    heading("lab: stop the sensor (SIGTERM)");
    let output = sensor.stop();
    lock(&printer).finish_phase();
    heading("lab: remove the lab");
    let prefix = lab.prefix().to_owned();
    lab.teardown();
    note(&format!("namespaces {prefix}-* and their processes removed"));
    let output = output?;
    heading("lab: alerts");
    for a in &output.alerts {
        print_alerts(std::slice::from_ref(a));
    }
    println!("{} alerts in all", output.alerts.len());
    print_latency(&output.stats);

    let flows_path = out_dir.join("flows.json");
    let mut raw = String::new();
    for record in &output.records {
        raw.push_str(&record.to_string());
        raw.push('\n');
    }
    fs::write(&flows_path, raw).with_context(|| format!("writing {}", flows_path.display()))?;

    heading("lab: flow records per episode");
    for (phase, count) in lock(&printer).counts.iter().filter(|(_, n)| *n > 0) {
        println!("{count:>6}  {phase}");
    }
    println!(
        "{} records in all, saved to {}; the lab ran {:.0} s",
        output.records.len(),
        flows_path.display(),
        started.elapsed().as_secs_f64()
    );
    if exec::stop_requested() {
        bail!("interrupted; the lab was removed");
    }
    if !output.clean_exit {
        bail!("the sensor did not exit cleanly after SIGTERM (its log is above)");
    }
    if !failed.is_empty() {
        bail!("episodes failed: {}", failed.join(", "));
    }
    lab_console::finish(&sensor_bin, &console, &config, &output.alerts)
}

/// One line per alert: detector, score, host, and its message.
/// The packet-to-alert latency per detector, from the sensor's last statistics.
fn print_latency(stats: &Value) {
    let Some(by) = stats.get("alert_latency").and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return;
    };
    heading("lab: packet-to-alert latency (newest packet of the evidence to the alert)");
    println!("{:<20} {:>6} {:>10} {:>10} {:>10}", "detector", "alerts", "p50 ms", "p99 ms", "max ms");
    for (detector, q) in by {
        let f = |k: &str| q.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let n = q.get("count").and_then(Value::as_u64).unwrap_or(0);
        println!("{detector:<20} {n:>6} {:>10.1} {:>10.1} {:>10.1}", f("p50_ms"), f("p99_ms"), f("max_ms"));
    }
}

fn print_alerts(alerts: &[Value]) {
    for a in alerts {
        println!(
            "  ALERT {:<18} score {:>3}  {}  {}",
            a["rule"]["name"].as_str().unwrap_or("?"),
            a["event"]["risk_score"],
            a["source"]["ip"].as_str().unwrap_or("?"),
            a["message"].as_str().unwrap_or("")
        );
    }
}

fn lock(printer: &Mutex<Printer>) -> std::sync::MutexGuard<'_, Printer> {
    printer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `$NBAD_SENSOR_BIN` as it is, or a fresh release build.
fn sensor_binary(root: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("NBAD_SENSOR_BIN") {
        let path = PathBuf::from(path);
        note(&format!("using NBAD_SENSOR_BIN={}", path.display()));
        return Ok(path);
    }
    heading("lab: build the sensor (release)");
    cmd::run("build nbad-sensor", cmd::cargo(["build", "--release", "-p", "nbad-sensor"]).current_dir(root))?;
    Ok(target_dir(root).join("release/nbad-sensor"))
}

fn describe(lab: &Lab) {
    let ip = |n: Node| n.ip().to_string();
    let filter = lab.mirror_filter().map_or("?", netlab::MirrorFilter::name);
    let lines = [
        format!("inside  10.77.1.0/24: in1 {}, in2 {}, in3 {}", ip(Node::In1), ip(Node::In2), ip(Node::In3)),
        format!(
            "outside 10.77.2.0/24: web {} (HTTP, HTTPS), dns {} (dnsmasq), ssh {} (sshd :22 and :443),",
            ip(Node::Web),
            ip(Node::Dns),
            ip(Node::Ssh)
        ),
        format!(
            "                      iodine {} (iodined, t.lab), ptun {} (ptunnel-ng), sink {} (uploads)",
            ip(Node::Iodine),
            ip(Node::Ptunnel),
            ip(Node::Sink)
        ),
        format!("router  10.77.1.1 (inside) / 10.77.2.1 (outside), namespace {}", lab.ns(Node::Router)),
        format!(
            "mirror  tc {filter} on the router's inside interface, ingress and egress -> {} in {}",
            span_if(0),
            lab.ns(Node::Sensor)
        ),
        format!("servers {}", lab.server_names().join(", ")),
    ];
    for line in lines {
        note(&line);
    }
}

/// Turns flow records into terminal lines, a bounded number per episode.
#[derive(Debug)]
struct Printer {
    json: bool,
    shown: usize,
    /// Flow records per phase (episode), in order.
    counts: Vec<(String, usize)>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Self { json, shown: 0, counts: vec![("before the first episode".to_owned(), 0)] }
    }

    fn start_phase(&mut self, title: &str) {
        self.finish_phase();
        self.shown = 0;
        self.counts.push((title.to_owned(), 0));
    }

    fn finish_phase(&mut self) {
        let total = self.counts.last().map_or(0, |(_, n)| *n);
        if total > self.shown {
            println!("  … and {} more", total - self.shown);
            self.shown = total;
        }
    }

    fn record(&mut self, line: &str) {
        let Some((_, count)) = self.counts.last_mut() else { return };
        *count += 1;
        if self.json {
            println!("{line}");
            self.shown += 1;
        } else if self.shown < SHOWN_PER_EPISODE {
            if self.shown == 0 {
                println!("{}", header_line());
            }
            println!("{}", summary_line(line));
            self.shown += 1;
        }
    }
}

/// The column heads of [`summary_line`]: client to server (→) and back (←).
fn header_line() -> String {
    format!(
        "  {:<5} {:<21} {:<21} {:>6} {:>6} {:>10} {:>10} {:>6}  end",
        "proto", "client", "server", "pkts→", "←pkts", "bytes→", "←bytes", "secs"
    )
}

/// One flow record as a table row, e.g.
/// `  tcp   10.77.1.11:33664      10.77.2.50:80           2938    161    4.1 MiB    8.3 KiB    0.0  tcp_close`
fn summary_line(line: &str) -> String {
    let Ok(r) = serde_json::from_str::<Value>(line) else {
        return format!("  {line}");
    };
    let text = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or("?").to_owned();
    let num = |p: &str| r.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let endpoint = |side: &str| match r.pointer(&format!("/{side}/port")).and_then(Value::as_u64) {
        Some(port) => format!("{}:{port}", text(&format!("/{side}/ip"))),
        None => text(&format!("/{side}/ip")),
    };
    let interim = match text("/event/action").as_str() {
        "flow_end" => "",
        "flow_interim" => " (interim)",
        _ => return format!("  {line}"),
    };
    let secs = num("/event/duration") as f64 / 1e9;
    format!(
        "  {:<5} {:<21} {:<21} {:>6} {:>6} {:>10} {:>10} {secs:>6.1}  {}{interim}",
        text("/network/transport"),
        endpoint("source"),
        endpoint("destination"),
        num("/source/packets"),
        num("/destination/packets"),
        bytes(num("/source/bytes")),
        bytes(num("/destination/bytes")),
        text("/event/reason"),
    )
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// SIGINT, SIGTERM and SIGHUP set the lab's stop flag instead of killing xtask, so that the
/// lab is torn down. The lab's processes run in their own process groups (`timeout`), so a
/// Ctrl-C on the terminal reaches xtask alone.
#[expect(
    unsafe_code,
    reason = "sigaction(2) has no std wrapper; the handler only stores to an atomic (async-signal-safe)"
)]
pub(crate) fn install_stop_handlers() -> Result<()> {
    extern "C" fn on_signal(_: libc::c_int) {
        exec::request_stop();
    }
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `action` is a zeroed, then fully initialised sigaction that lives across the
        // call; the handler is an `extern "C"` fn that only does an atomic store.
        let ret = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(signal, &raw const action, std::ptr::null_mut())
        };
        if ret != 0 {
            bail!("installing a handler for signal {signal}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_a_record_on_one_line() {
        let record = r#"{"event":{"action":"flow_end","reason":"tcp_close","duration":1325000},
            "source":{"ip":"10.77.1.11","port":34716,"bytes":394,"packets":6},
            "destination":{"ip":"10.77.2.10","port":80,"bytes":4777,"packets":6},
            "network":{"transport":"tcp"}}"#
            .replace('\n', "");
        let line = summary_line(&record);
        assert!(line.starts_with("  tcp   10.77.1.11:34716      10.77.2.10:80 "), "{line}");
        assert!(line.contains("394 B") && line.contains("4.7 KiB") && line.contains("tcp_close"), "{line}");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(4 << 20), "4.0 MiB");
    }
}
