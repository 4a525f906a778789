//! `cargo xtask bench --live`: the sensor capturing live traffic sent as fast as a veth pair
//! carries it here, on its XDP path and on its libpcap path (and Suricata's af-packet with
//! `--peers`), each judged by how many of the packets offered it accounts for and by the CPU
//! that costs.
//!
//! The network: namespaces `nbb<pid>-tx` and `nbb<pid>-rx` joined by one veth pair (`nbbtx` in
//! the first, `nbbrx` in the second); no addresses, no routes, IPv6 off (so that nothing but
//! the replay crosses the pair), offloads off. Nothing is created in xtask's own namespace.
//! tcpreplay sends the capture once with `--topspeed` (and `--limit`) into `nbbtx`; the
//! subject captures `nbbrx`. [`Lab`]'s `Drop` kills whatever runs in the two namespaces and
//! deletes them; every start first removes `nbb<pid>-*` namespaces whose process is gone (a run
//! killed by a signal leaves them to that sweep). Every process runs under `timeout(1)`.
//!
//! What is sent ([`LiveCapture`]): the benchmark capture without its frames over 1514 bytes
//! (super-frames that GRO/TSO made on the hosts the corpus was captured on: the veth's
//! 1500-byte MTU refuses them, and a larger MTU keeps XDP from attaching to a veth in native
//! mode), optionally only the first `--live-packets` of it.
//!
//! One run of a subject: start it in the rx namespace and wait until it captures; read
//! `/proc/stat` and the rx veth's counters; replay; wait until the subject's count reaches the
//! packets offered or stops growing (bounded); SIGTERM; reap it with `wait4` (see `measure`);
//! read `/proc/stat` again. What is reported:
//! - offered: tcpreplay's "Actual: N packets";
//! - accounted: libpcap path: `capture.packets_read`; XDP path: `capture.packets_read`
//!   (packets counted into flows) plus the frames the program counted as not IP, truncated or
//!   malformed; Suricata: `decoder.pkts`;
//! - drops, as each path reports them: libpcap's kernel and interface drops; the XDP program's
//!   `flow_map_full`; Suricata's `capture.kernel_drops`;
//! - CPU: the subject's user + system seconds (rusage). The kernel's share of capture — the XDP
//!   program, libpcap's copy into its ring — runs in softirq context on the *sender's* CPU and
//!   is charged to no capture process, so the report also gives the sender's rusage and the
//!   machine's busy CPU seconds from `/proc/stat` (other tenants of a shared machine included),
//!   and a "sender only" run, with nothing capturing, as the floor of both.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use nbad_tests::lab::exec::{self, Exec};
use nbad_tests::lab::{config_with, preflight};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::capture::BenchCapture;
use super::measure::{self, Finished};
use super::pcap_out::PcapWriter;
use super::{BenchArgs, peers};
use crate::cmd::{self, heading, note};
use crate::setup::Apt;
use crate::target_dir;

/// Namespace prefix: `nbb<pid>-tx`, `nbb<pid>-rx` (the lab's is `nbl`).
const PREFIX: &str = "nbb";
/// The veth ends, one in each namespace.
const TX_IF: &str = "nbbtx";
const RX_IF: &str = "nbbrx";
/// The largest frame a veth with the default 1500-byte MTU sends: MTU plus the Ethernet header.
const MAX_FRAME: usize = 1514;
/// The sensor's configuration; `capture.mode` and `capture.interface` are rewritten per run.
const CONFIG: &str = "configs/bench-live-sensor.toml";
/// Longest a subject may take to start capturing.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Longest one replay may take.
const SEND_LIMIT: Duration = Duration::from_secs(180);
/// Longest the wait for a subject's count to settle after the replay.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// A count unchanged this long has settled (the sensor writes its stats every second).
const QUIET: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(250);
/// The log lines that say a subject captures.
const SENSOR_READY: &str = "capturing on ";
const SURICATA_READY: &str = "Engine started";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    SenderOnly,
    Xdp,
    Libpcap,
    Suricata,
}

impl Subject {
    fn key(self) -> &'static str {
        match self {
            Self::SenderOnly => "sender_only",
            Self::Xdp => "nbad_xdp",
            Self::Libpcap => "nbad_libpcap",
            Self::Suricata => "suricata_af_packet",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::SenderOnly => "sender only (nothing captures)",
            Self::Xdp => "nbad-sensor, XDP path",
            Self::Libpcap => "nbad-sensor, libpcap path",
            Self::Suricata => "suricata 7 af-packet (detect off)",
        }
    }

    /// `capture.mode` for the sensor's subjects.
    fn mode(self) -> Option<&'static str> {
        match self {
            Self::Xdp => Some("xdp"),
            Self::Libpcap => Some("pcap"),
            Self::SenderOnly | Self::Suricata => None,
        }
    }
}

/// One run of one subject.
#[derive(Debug, Default, Serialize)]
struct Run {
    subject: &'static str,
    label: &'static str,
    repetition: u32,
    command: String,
    sender_command: String,
    /// The subject's "capturing on …" line.
    capture_line: String,
    offered: u64,
    /// Frames tcpreplay could not send.
    sender_failed: u64,
    send_s: f64,
    sender_cpu_s: f64,
    veth_rx_packets: u64,
    veth_rx_dropped: u64,
    accounted: Option<u64>,
    drops: Option<u64>,
    subject_cpu_s: Option<f64>,
    subject_wall_s: Option<f64>,
    subject_peak_rss_mib: Option<f64>,
    /// Busy CPU seconds of the whole machine (all but idle and iowait) from the replay's start
    /// to the subject's exit, and the softirq part of them.
    system_busy_s: f64,
    system_softirq_s: f64,
    window_s: f64,
    counters: BTreeMap<String, u64>,
    failure: Option<String>,
}

impl Run {
    fn percent(&self) -> Option<f64> {
        self.accounted.filter(|_| self.offered > 0).map(|a| a as f64 * 100.0 / self.offered as f64)
    }
}

pub fn run(root: &Path, args: &BenchArgs, capture: &BenchCapture) -> Result<()> {
    // Ctrl-C or SIGTERM tears the namespaces down instead of leaving them to the next sweep.
    crate::lab::install_stop_handlers()?;
    let started = Instant::now();
    ensure!(
        preflight::is_root(),
        "`bench --live` needs root: it creates network namespaces and attaches an XDP program"
    );
    heading("bench --live: tools");
    let mut apt = Apt::default();
    apt.ensure(&["tcpreplay", "ethtool", "iproute2"], &[])?;
    let mut suricata_missing = None;
    if args.peers
        && let Err(err) = peers::install(&mut apt)
    {
        eprintln!("    {err:#}: measuring without Suricata");
        suricata_missing = Some(format!("not installed: {err:#}"));
    }
    if !args.no_build {
        heading("bench --live: build (release)");
        let mut build = cmd::cargo(["build", "--release", "-p", "nbad-sensor", "--bin", "nbad-sensor"]);
        cmd::run("build nbad-sensor", build.current_dir(root))?;
    }

    let bench_dir = target_dir(root).join("bench");
    let live = LiveCapture::ensure(&bench_dir, capture, args.live_packets)?;
    let run_dir = bench_dir.join("last-live-run");
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir).with_context(|| format!("clearing {}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let base = fs::read_to_string(root.join(CONFIG)).with_context(|| format!("reading {CONFIG}"))?;
    for subject in [Subject::Xdp, Subject::Libpcap] {
        let mode = subject.mode().context("a sensor subject")?;
        fs::write(run_dir.join(format!("{mode}.toml")), config_with(&base, mode, RX_IF)?)
            .context("writing a sensor configuration")?;
    }
    let mut subjects = vec![Subject::SenderOnly, Subject::Xdp, Subject::Libpcap];
    if args.peers {
        subjects.push(Subject::Suricata);
        if suricata_missing.is_none() {
            write_suricata_config(&run_dir.join("suricata.yaml"))?;
        }
    }

    heading("bench --live: network (namespaces and a veth pair)");
    let lab = Lab::create()?;
    note(&format!("{TX_IF} in {} -> {RX_IF} in {}; no addresses, no routes, IPv6 off", lab.tx, lab.rx));
    let bench = Bench {
        lab: &lab,
        live: &live,
        sensor: target_dir(root).join("release/nbad-sensor"),
        run_dir: run_dir.clone(),
        limit: Duration::from_secs(args.timeout_s),
        clock_ticks: clock_ticks(),
    };
    let repeat = args.repeat.unwrap_or(1);
    heading(&format!("bench --live: measuring ({repeat} run(s) each, logs in {})", run_dir.display()));
    let mut runs = Vec::new();
    for repetition in 1..=repeat {
        for &subject in &subjects {
            // Set only if a signal handler calls `exec::request_stop` (the lab's do).
            if exec::stop_requested() {
                break;
            }
            let run = match (subject, &suricata_missing) {
                (Subject::Suricata, Some(why)) => Run {
                    subject: subject.key(),
                    label: subject.label(),
                    repetition,
                    failure: Some(why.clone()),
                    ..Run::default()
                },
                _ => bench.run_once(subject, repetition),
            };
            print_run(&run);
            runs.push(run);
        }
    }
    lab.teardown();
    note("namespaces removed");

    let failures = write_report(&bench_dir, &live, repeat, &runs, started.elapsed())?;
    if !failures.is_empty() {
        bail!("bench --live incomplete: {}", failures.join("; "));
    }
    Ok(())
}

fn print_run(run: &Run) {
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

fn mpps(run: &Run) -> f64 {
    if run.send_s > 0.0 { run.offered as f64 / run.send_s / 1e6 } else { 0.0 }
}

#[derive(Debug)]
struct Bench<'a> {
    lab: &'a Lab,
    live: &'a LiveCapture,
    sensor: PathBuf,
    run_dir: PathBuf,
    limit: Duration,
    clock_ticks: f64,
}

impl Bench<'_> {
    fn run_once(&self, subject: Subject, repetition: u32) -> Run {
        let mut run = Run { subject: subject.key(), label: subject.label(), repetition, ..Run::default() };
        if let Err(err) = self.measure(subject, repetition, &mut run) {
            run.failure = Some(format!("{err:#}"));
        }
        run
    }

    fn measure(&self, subject: Subject, repetition: u32, run: &mut Run) -> Result<()> {
        let label = format!("{}-{repetition}", subject.key());
        let mut receiver = match subject {
            Subject::SenderOnly => None,
            Subject::Xdp | Subject::Libpcap => {
                Some(self.start(self.sensor_command(subject, repetition)?, &label, SENSOR_READY)?)
            }
            Subject::Suricata => {
                Some(self.start(self.suricata_command(repetition)?, &label, SURICATA_READY)?)
            }
        };
        if let Some(receiver) = &mut receiver {
            run.command.clone_from(&receiver.command);
            run.capture_line.clone_from(&receiver.ready_line);
        }

        let cpu_before = CpuTimes::read()?;
        let rx_before = self.lab.rx_counters()?;
        let started = Instant::now();
        let sent = self.send(&label)?;
        run.sender_command = sent.command;
        run.offered = sent.packets;
        run.sender_failed = sent.failed;
        run.send_s = sent.seconds;
        run.sender_cpu_s = sent.cpu_s;
        if receiver.is_some() {
            self.settle(subject, repetition, sent.packets)?;
        }
        let finished = receiver.map(Receiver::stop).transpose()?;
        let cpu_after = CpuTimes::read()?;
        let rx_after = self.lab.rx_counters()?;
        run.window_s = started.elapsed().as_secs_f64();
        run.system_busy_s = (cpu_after.busy - cpu_before.busy) as f64 / self.clock_ticks;
        run.system_softirq_s = (cpu_after.softirq - cpu_before.softirq) as f64 / self.clock_ticks;
        run.veth_rx_packets = rx_after.0.saturating_sub(rx_before.0);
        run.veth_rx_dropped = rx_after.1.saturating_sub(rx_before.1);

        let Some(finished) = finished else { return Ok(()) };
        run.subject_cpu_s = Some(finished.sample.cpu_s());
        run.subject_wall_s = Some(finished.sample.wall_s);
        run.subject_peak_rss_mib = Some(finished.sample.rss_mib());
        if finished.timed_out {
            bail!("killed after {} s (--timeout-s): {}", self.limit.as_secs(), tail(&finished.stderr));
        }
        // SIGTERM is how every subject is stopped; a clean stop exits 0.
        if !finished.status.success() {
            bail!("exited with {} after SIGTERM: {}", finished.status, tail(&finished.stderr));
        }
        let counts = self.counts(subject, repetition)?;
        run.accounted = Some(counts.accounted);
        run.drops = Some(counts.drops);
        run.counters = counts.counters;
        if subject == Subject::Suricata {
            let log_dir = self.run_dir.join(format!("suricata-{repetition}"));
            let events = peers::count_and_remove_eve(&log_dir)?;
            run.counters.insert("eve_flow_events".to_owned(), events);
        }
        Ok(())
    }

    fn stats_path(&self, subject: Subject, repetition: u32) -> PathBuf {
        self.run_dir.join(format!("{}-{repetition}-stats.json", subject.key()))
    }

    fn suricata_log_dir(&self, repetition: u32) -> PathBuf {
        self.run_dir.join(format!("suricata-{repetition}"))
    }

    /// `ip netns exec <rx> timeout …`: the rx namespace holds the subject and nothing else.
    fn in_rx(&self, limit: Duration) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.lab.rx, "timeout", "-k", "2"]).arg(limit.as_secs().to_string());
        c
    }

    fn sensor_command(&self, subject: Subject, repetition: u32) -> Result<Command> {
        let mode = subject.mode().context("not a sensor subject")?;
        let mut c = self.in_rx(self.limit + Duration::from_secs(10));
        c.arg(&self.sensor)
            .args(["run", "--config"])
            .arg(self.run_dir.join(format!("{mode}.toml")))
            .args(["--flows", "/dev/null", "--stats"])
            .arg(self.stats_path(subject, repetition));
        Ok(c)
    }

    fn suricata_command(&self, repetition: u32) -> Result<Command> {
        let log_dir = self.suricata_log_dir(repetition);
        fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        let mut c = self.in_rx(self.limit + Duration::from_secs(10));
        c.args(["suricata", "-c"])
            .arg(self.run_dir.join("suricata.yaml"))
            .arg(format!("--af-packet={RX_IF}"))
            .arg("-l")
            .arg(&log_dir)
            .args(["--runmode", "single", "--disable-detection", "-k", "none"]);
        Ok(c)
    }

    /// Starts a subject, measured from another thread, and waits until it logs `ready`.
    fn start(&self, command: Command, label: &str, ready: &str) -> Result<Receiver> {
        let mut receiver = Receiver::start(command, &self.run_dir, label, self.limit, &self.lab.rx);
        let end = Instant::now() + START_LIMIT;
        loop {
            let logs = receiver.logs();
            if let Some(line) = logs.lines().find(|l| l.contains(ready)) {
                receiver.ready_line = line.trim().to_owned();
                return Ok(receiver);
            }
            if receiver.handle.as_ref().is_none_or(JoinHandle::is_finished) {
                bail!("`{}` exited before it captured: {}", receiver.command, tail(&logs));
            }
            if Instant::now() >= end {
                bail!("`{}` not capturing after {START_LIMIT:?}: {}", receiver.command, tail(&logs));
            }
            exec::nap(Duration::from_millis(100))?;
        }
    }

    /// One pass of the live capture into the tx end, as fast as tcpreplay goes.
    fn send(&self, label: &str) -> Result<Sent> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.lab.tx, "timeout", "-k", "2"])
            .arg(SEND_LIMIT.as_secs().to_string())
            .args(["tcpreplay", "--topspeed", "--loop", "1", "--limit"])
            .arg(self.live.packets.to_string())
            .args(["-i", TX_IF])
            .arg(&self.live.path);
        let command = cmd::display(&c);
        let finished = measure::measure(
            &mut c,
            &self.run_dir,
            &format!("{label}-sender"),
            SEND_LIMIT + Duration::from_secs(5),
        )?;
        let text = format!("{}\n{}", finished.stdout, finished.stderr);
        if finished.timed_out || !finished.status.success() {
            bail!("`{command}` failed ({}): {}", finished.status, tail(&text));
        }
        let (packets, seconds) = parse_tcpreplay(&text)
            .with_context(|| format!("no \"Actual:\" line from tcpreplay: {}", tail(&text)))?;
        let failed = find_count(&text, "Failed packets:").unwrap_or(0);
        Ok(Sent { command, packets, seconds, failed, cpu_s: finished.sample.cpu_s() })
    }

    /// Waits until the subject has accounted for `offered` packets, or its count has not grown
    /// for [`QUIET`], or [`SETTLE_LIMIT`] has passed.
    fn settle(&self, subject: Subject, repetition: u32, offered: u64) -> Result<()> {
        let end = Instant::now() + SETTLE_LIMIT;
        let (mut last, mut since) = (None, Instant::now());
        while Instant::now() < end {
            let now = self.counts(subject, repetition).ok().map(|c| c.accounted);
            if now.is_some_and(|n| n >= offered) {
                return Ok(());
            }
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= QUIET {
                return Ok(());
            }
            exec::nap(POLL)?;
        }
        Ok(())
    }

    /// What the subject has counted so far (the final figures once it has exited).
    fn counts(&self, subject: Subject, repetition: u32) -> Result<Counts> {
        match subject {
            Subject::Xdp | Subject::Libpcap => {
                let path = self.stats_path(subject, repetition);
                let text =
                    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                let stats: Value =
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                Ok(sensor_counts(&stats))
            }
            Subject::Suricata => {
                let path = self.suricata_log_dir(repetition).join("stats.log");
                let text =
                    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                suricata_counts(&text)
            }
            Subject::SenderOnly => bail!("nothing captures"),
        }
    }
}

#[derive(Debug)]
struct Sent {
    command: String,
    packets: u64,
    seconds: f64,
    failed: u64,
    cpu_s: f64,
}

#[derive(Debug, Default)]
struct Counts {
    accounted: u64,
    drops: u64,
    counters: BTreeMap<String, u64>,
}

/// From the sensor's stats JSON; see the module docs for what counts as accounted.
fn sensor_counts(stats: &Value) -> Counts {
    let mut counters = BTreeMap::new();
    let capture = &stats["capture"];
    for (prefix, object) in [("capture.", capture), ("capture.source.", &capture["source"])] {
        if let Some(map) = object.as_object() {
            for (key, value) in map {
                if let Some(n) = value.as_u64() {
                    counters.insert(format!("{prefix}{key}"), n);
                }
            }
        }
    }
    for key in [
        "/decode/parsed",
        "/decode/non_ip",
        "/decode/malformed_total",
        "/flows/created",
        "/flows/active_peak",
    ] {
        if let Some(n) = stats.pointer(key).and_then(Value::as_u64) {
            counters.insert(key.trim_start_matches('/').replace('/', "."), n);
        }
    }
    let get = |key: &str| counters.get(key).copied().unwrap_or(0);
    let xdp = counters.contains_key("capture.source.seen");
    let (accounted, drops) = if xdp {
        let outside_flows = ["not_ip", "truncated", "malformed"].map(|k| get(&format!("capture.source.{k}")));
        (get("capture.packets_read") + outside_flows.iter().sum::<u64>(), get("capture.source.flow_map_full"))
    } else {
        (get("capture.packets_read"), get("capture.kernel_dropped") + get("capture.interface_dropped"))
    };
    Counts { accounted, drops, counters }
}

/// From Suricata's stats.log: the last value of each counter (the log is appended to every
/// `stats.interval` seconds). Accounted: `decoder.pkts`; drops: `capture.kernel_drops`.
fn suricata_counts(stats_log: &str) -> Result<Counts> {
    let mut counters = BTreeMap::new();
    // "capture.kernel_packets                        | Total                     | 1000"
    for line in stats_log.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [name, "Total", value] = cells[..]
            && let Ok(n) = value.parse::<u64>()
        {
            counters.insert(name.to_owned(), n);
        }
    }
    let accounted = *counters.get("decoder.pkts").context("no decoder.pkts in stats.log yet")?;
    let drops = counters.get("capture.kernel_drops").copied().unwrap_or(0);
    counters.retain(|k, _| k.starts_with("capture.") || k == "decoder.pkts" || k.starts_with("flow.total"));
    Ok(Counts { accounted, drops, counters })
}

/// tcpreplay's summary: "Actual: 1000000 packets (162922068 bytes) sent in 1.25 seconds".
fn parse_tcpreplay(text: &str) -> Option<(u64, f64)> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix("Actual:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let packets = words.first()?.parse().ok()?;
    let seconds = words.iter().position(|w| *w == "in").and_then(|i| words.get(i + 1))?.parse().ok()?;
    Some((packets, seconds))
}

/// The number after `label` on the first line that has it ("Failed packets:  5040").
fn find_count(text: &str, label: &str) -> Option<u64> {
    text.lines().find_map(|l| l.trim().strip_prefix(label)).and_then(|rest| rest.trim().parse().ok())
}

/// The last lines of a log, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
    if tail.is_empty() { "(no output)".to_owned() } else { tail }
}

/// A subject running in the rx namespace, measured by `measure` on a thread of its own.
#[derive(Debug)]
struct Receiver {
    command: String,
    ready_line: String,
    out: PathBuf,
    err: PathBuf,
    ns: String,
    handle: Option<JoinHandle<Result<Finished>>>,
}

impl Receiver {
    fn start(mut command: Command, run_dir: &Path, label: &str, limit: Duration, ns: &str) -> Self {
        let line = cmd::display(&command);
        let (dir, name) = (run_dir.to_owned(), label.to_owned());
        let handle = thread::spawn(move || measure::measure(&mut command, &dir, &name, limit));
        Self {
            command: line,
            ready_line: String::new(),
            out: run_dir.join(format!("{label}.out")),
            err: run_dir.join(format!("{label}.err")),
            ns: ns.to_owned(),
            handle: Some(handle),
        }
    }

    /// Its stderr and stdout so far.
    fn logs(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        format!("{}\n{}", read(&self.err), read(&self.out))
    }

    /// SIGTERM to the subject (not to its `timeout`, which would report 124), then its rusage
    /// once it has exited.
    fn stop(mut self) -> Result<Finished> {
        signal_namespace(&self.ns, "TERM", Some("timeout"));
        let handle = self.handle.take().context("stopped twice")?;
        handle.join().map_err(|_| anyhow!("the measuring thread panicked"))?
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            signal_namespace(&self.ns, "KILL", None);
            let _ = handle.join();
        }
    }
}

/// Sends `signal` to every process in namespace `ns`, except those named `spare`.
fn signal_namespace(ns: &str, signal: &str, spare: Option<&str>) {
    let Ok(out) = Exec::new(None, &["ip", "netns", "pids", ns]).uninterruptible().run() else { return };
    for pid in out.stdout.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if spare.is_none_or(|s| comm.trim() != s) {
            exec::signal(pid, signal);
        }
    }
}

/// The two namespaces and the veth pair between them. Removed by [`Lab::teardown`] or on drop.
#[derive(Debug)]
struct Lab {
    tx: String,
    rx: String,
    torn_down: bool,
}

impl Lab {
    fn create() -> Result<Self> {
        let removed = remove_leftovers()?;
        if !removed.is_empty() {
            note(&format!("removed what earlier runs left: {}", removed.join(", ")));
        }
        let pid = std::process::id();
        let lab = Self { tx: format!("{PREFIX}{pid}-tx"), rx: format!("{PREFIX}{pid}-rx"), torn_down: false };
        // From here on an error drops `lab`, which removes what was made.
        for ns in [&lab.tx, &lab.rx] {
            run_ok(None, &["ip", "netns", "add", ns])?;
            // `default` applies to the veth made below: no IPv6 chatter (router solicitations,
            // MLD) crosses the pair, only the replay.
            let ipv6_off = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"];
            run_ok(Some(ns), &["sysctl", "-q", "-w", ipv6_off[0], ipv6_off[1]])?;
        }
        run_ok(
            None,
            &[
                "ip", "-n", &lab.tx, "link", "add", TX_IF, "type", "veth", "peer", "name", RX_IF, "netns",
                &lab.rx,
            ],
        )?;
        for (ns, dev) in [(&lab.tx, TX_IF), (&lab.rx, RX_IF)] {
            run_ok(Some(ns), &["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])?;
            run_ok(None, &["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(lab)
    }

    /// The rx veth's received packets and drops (kernel counters, cumulative).
    fn rx_counters(&self) -> Result<(u64, u64)> {
        let out = run_ok(None, &["ip", "-n", &self.rx, "-s", "-j", "link", "show", RX_IF])?;
        let links: Value = serde_json::from_str(&out).context("parsing `ip -j -s link show`")?;
        let rx = links.pointer("/0/stats64/rx").context("no stats64.rx in `ip -j -s link show`")?;
        let get = |k: &str| rx[k].as_u64().unwrap_or(0);
        Ok((get("packets"), get("dropped")))
    }

    fn teardown(mut self) {
        self.teardown_inner();
    }

    fn teardown_inner(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            remove_namespace(&self.rx);
            remove_namespace(&self.tx);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown_inner();
    }
}

/// Runs a bounded command (in namespace `ns`, or here) and returns its stdout; fails unless it
/// exits 0.
fn run_ok(ns: Option<&str>, argv: &[&str]) -> Result<String> {
    Ok(Exec::new(ns, argv).run_ok()?.stdout)
}

/// Kills whatever runs in `ns` and deletes it (its veth end, and so the pair, with it).
fn remove_namespace(ns: &str) {
    signal_namespace(ns, "KILL", None);
    let _ = Exec::new(None, &["ip", "netns", "del", ns]).uninterruptible().run();
}

/// Removes `nbb<pid>-tx`/`-rx` namespaces whose process is gone, or that carry this process's
/// pid (left by a dead process that had it before).
fn remove_leftovers() -> Result<Vec<String>> {
    let list = run_ok(None, &["ip", "netns", "list"])?;
    let mut removed = Vec::new();
    // `ip netns list` prints "NAME" or "NAME (id: N)".
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if let Some(pid) = owner_pid(name)
            && (pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists())
        {
            remove_namespace(name);
            removed.push(format!("namespace {name}"));
        }
    }
    Ok(removed)
}

/// `nbb1234-rx` → 1234; `None` for names this bench does not make.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.strip_suffix("-tx").or_else(|| rest.strip_suffix("-rx"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The machine's CPU time so far, in clock ticks, summed over the CPUs (`/proc/stat`).
#[derive(Debug, Clone, Copy)]
struct CpuTimes {
    /// user + nice + system + irq + softirq + steal (guest time is inside user).
    busy: u64,
    softirq: u64,
}

impl CpuTimes {
    fn read() -> Result<Self> {
        let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
        Self::parse(line).context("parsing /proc/stat")
    }

    /// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`
    fn parse(line: &str) -> Option<Self> {
        let v: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(Self { busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7), softirq: at(6) })
    }
}

/// `getconf CLK_TCK` (the unit of `/proc/stat`), 100 if it cannot be read.
fn clock_ticks() -> f64 {
    cmd::probe(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The capture that is replayed: the benchmark capture's frames of at most [`MAX_FRAME`]
/// bytes, all of them or the first `--live-packets`. Built once, beside the benchmark capture
/// (`bench-<recipe>-live-<N|all>.pcap` and its `.json`).
#[derive(Debug, Serialize, Deserialize)]
struct LiveCapture {
    #[serde(skip)]
    path: PathBuf,
    packets: u64,
    bytes: u64,
    /// Frames over [`MAX_FRAME`] bytes skipped among those read.
    left_out: u64,
}

impl LiveCapture {
    fn ensure(bench_dir: &Path, capture: &BenchCapture, limit: Option<u64>) -> Result<Self> {
        heading("bench --live: capture to replay");
        let stem = capture.pcap.file_stem().and_then(|s| s.to_str()).context("capture file name")?;
        let tag = limit.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let path = bench_dir.join(format!("{stem}-live-{tag}.pcap"));
        let meta_path = path.with_extension("json");
        let cached = fs::read(&meta_path).ok().and_then(|b| serde_json::from_slice::<Self>(&b).ok());
        if let Some(meta) = cached
            && fs::metadata(&path).is_ok_and(|m| m.len() == meta.bytes)
        {
            note(&format!("reusing {}", path.display()));
            let live = Self { path, ..meta };
            live.describe();
            return Ok(live);
        }
        note(&format!("writing {} from {}", path.display(), capture.pcap.display()));
        let partial = path.with_extension("pcap.partial");
        let (packets, left_out, bytes) = copy_small_frames(&capture.pcap, &partial, limit)?;
        fs::rename(&partial, &path).with_context(|| format!("renaming to {}", path.display()))?;
        let live = Self { path, packets, bytes, left_out };
        fs::write(&meta_path, serde_json::to_string_pretty(&live)?)
            .with_context(|| format!("writing {}", meta_path.display()))?;
        live.describe();
        Ok(live)
    }

    fn describe(&self) {
        note(&format!(
            "{} packets to send; {} frames over {MAX_FRAME} bytes left out (the veth's MTU refuses them)",
            self.packets, self.left_out
        ));
    }
}

/// Copies the frames of at most [`MAX_FRAME`] bytes of `from` (a capture written by
/// `pcap_out`: classic pcap, little-endian, microseconds) to `to`, up to `limit` of them.
/// Returns (frames copied, frames left out, bytes written).
fn copy_small_frames(from: &Path, to: &Path, limit: Option<u64>) -> Result<(u64, u64, u64)> {
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; 24];
    input.read_exact(&mut header).with_context(|| format!("reading {}", from.display()))?;
    ensure!(
        header[..4] == 0xa1b2_c3d4_u32.to_le_bytes(),
        "{}: not a little-endian microsecond pcap (as `bench` writes them)",
        from.display()
    );
    let mut out = PcapWriter::create(to)?;
    let (mut kept, mut left_out) = (0u64, 0u64);
    let mut record = [0u8; 16];
    let mut frame = vec![0u8; 1 << 16];
    while limit.is_none_or(|n| kept < n) {
        match input.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
        }
        let word = |i: usize| u32::from_le_bytes([record[i], record[i + 1], record[i + 2], record[i + 3]]);
        let (ts_us, caplen, orig) = (u64::from(word(0)) * 1_000_000 + u64::from(word(4)), word(8), word(12));
        let caplen = usize::try_from(caplen).context("frame length")?;
        if frame.len() < caplen {
            frame.resize(caplen, 0);
        }
        input
            .read_exact(&mut frame[..caplen])
            .with_context(|| format!("{}: a frame cut short", from.display()))?;
        if caplen > MAX_FRAME {
            left_out += 1;
            continue;
        }
        out.write_packet(ts_us, orig, &frame[..caplen])?;
        kept += 1;
    }
    let bytes = out.finish()?;
    Ok((kept, left_out, bytes))
}

/// Suricata as a live flow meter: the `--peers` configuration (flow events only, memcaps
/// raised) plus af-packet on the rx veth (one thread, a ring of about 64 MiB like the sensor's
/// libpcap buffer) and its counters in stats.log every second.
fn write_suricata_config(path: &Path) -> Result<()> {
    peers::write_suricata_config(path)?;
    let base = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let stats_output =
        "  - stats:\n      enabled: yes\n      filename: stats.log\n      totals: yes\n      threads: no\n";
    let yaml = base.replacen("outputs:\n", &format!("outputs:\n{stats_output}"), 1);
    ensure!(yaml != base, "the --peers Suricata configuration has no `outputs:` list to extend");
    let extra = format!(
        "stats:\n  enabled: yes\n  interval: 1\naf-packet:\n  - interface: {RX_IF}\n    threads: 1\n    \
         cluster-id: 98\n    cluster-type: cluster_flow\n    defrag: no\n    use-mmap: yes\n    \
         tpacket-v3: yes\n    ring-size: 32768\n"
    );
    fs::write(path, yaml + &extra).with_context(|| format!("writing {}", path.display()))
}

/// Appends this invocation to `report-live.md` and to the array in `report-live.json`; prints
/// it. Returns one line per failed run.
fn write_report(
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
    md.push_str(&format!(
        "- sent: `{}`: {} packets (frames over {MAX_FRAME} bytes left out: {}), once per run, by \
         `tcpreplay --topspeed` into a veth pair between two namespaces; the subject captures the \
         receiving end\n",
        live.path.display(),
        live.packets,
        live.left_out
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
        "capture": { "path": live.path, "packets": live.packets, "left_out_over_1514_bytes": live.left_out },
        "repeat": repeat,
        "took_s": took.as_secs_f64(),
        "runs": runs,
    }));
    fs::write(&json_path, serde_json::to_string_pretty(&all)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("appended to {} and {}", md_path.display(), json_path.display());
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_packets_and_seconds_from_the_tcpreplay_summary() {
        let text = "Actual: 1000000 packets (162922068 bytes) sent in 1.25 seconds\n\
                    Rated: 129524551.0 Bps, 1036.19 Mbps, 795009.24 pps\n\
                    Statistics for network device: nbbtx\n\tSuccessful packets:        1000000\n\
                    \tFailed packets:            5040\n";
        assert_eq!(parse_tcpreplay(text), Some((1_000_000, 1.25)));
        assert_eq!(find_count(text, "Failed packets:"), Some(5040));
        assert_eq!(parse_tcpreplay("Warning: nothing sent"), None);
    }

    #[test]
    fn xdp_accounts_packets_in_flows_and_frames_outside_them() {
        let stats = json!({
            "capture": { "packets_read": 990, "kernel_dropped": 0, "interface_dropped": 0,
                "source": { "seen": 1000, "parsed": 995, "not_ip": 3, "truncated": 1, "malformed": 1,
                    "flow_map_full": 5 } },
            "decode": { "parsed": 990 }, "flows": { "created": 10, "active_peak": 10 }
        });
        let counts = sensor_counts(&stats);
        assert_eq!((counts.accounted, counts.drops), (995, 5));
        assert_eq!(counts.counters["capture.source.seen"], 1000);
    }

    #[test]
    fn libpcap_accounts_frames_read_and_reports_its_drops() {
        let stats =
            json!({ "capture": { "packets_read": 900, "kernel_dropped": 70, "interface_dropped": 30 } });
        let counts = sensor_counts(&stats);
        assert_eq!((counts.accounted, counts.drops), (900, 100));
    }

    #[test]
    fn takes_the_last_suricata_stats_dump() {
        let log = "Counter | TM Name | Value\n\
                   capture.kernel_packets | Total | 10\ndecoder.pkts | Total | 10\n\
                   ------\n\
                   capture.kernel_packets | Total | 25\ncapture.kernel_drops | Total | 2\ndecoder.pkts | Total | 23\n";
        let counts = suricata_counts(log).expect("counts");
        assert_eq!((counts.accounted, counts.drops), (23, 2));
        assert!(suricata_counts("Counter | TM Name | Value\n").is_err());
    }

    #[test]
    fn owns_only_its_own_namespace_names() {
        assert_eq!(owner_pid("nbb1234-rx"), Some(1234));
        assert_eq!(owner_pid("nbb1234-tx"), Some(1234));
        assert_eq!(owner_pid("nbl1234a-router"), None);
        assert_eq!(owner_pid("nbb-rx"), None);
        assert_eq!(owner_pid("nbbx1-rx"), None);
    }

    #[test]
    fn counts_busy_time_without_idle_and_iowait() {
        let t = CpuTimes::parse("cpu  100 10 50 1000 20 5 7 3 0 0").expect("parses");
        assert_eq!((t.busy, t.softirq), (175, 7));
    }
}
