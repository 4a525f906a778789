//! The subjects and the sender: starting a subject in the rx namespace and waiting until it
//! captures, one tcpreplay pass into the tx end, waiting for the subject's count to settle,
//! stopping it, and filling in its [`Run`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use nbad_tests::lab::exec;
use serde_json::Value;

use super::super::measure::{self, Finished};
use super::super::peers;
use super::capture::LiveCapture;
use super::counts::{Counts, CpuTimes, find_count, parse_tcpreplay, sensor_counts, suricata_counts};
use super::net::{Lab, RX_IF, TX_IF, signal_namespace};
use super::report::Run;
use crate::cmd;

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
/// The sensor's default `capture.xdp.poll_interval_ms` (`configs/sensor.example.toml`).
const DEFAULT_POLL_MS: u32 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subject {
    SenderOnly,
    Xdp,
    /// The XDP path at the sensor's default poll interval instead of the bench's 200 ms.
    XdpDefaultPoll,
    Libpcap,
    /// The libpcap path with `capture.threads` from `--threads` (PACKET_FANOUT).
    LibpcapThreads,
    Suricata,
}

impl Subject {
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::SenderOnly => "sender_only",
            Self::Xdp => "nbad_xdp",
            Self::XdpDefaultPoll => "nbad_xdp_poll_1s",
            Self::Libpcap => "nbad_libpcap",
            Self::LibpcapThreads => "nbad_libpcap_threads",
            Self::Suricata => "suricata_af_packet",
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::SenderOnly => "sender only (nothing captures)",
            Self::Xdp => "nbad-sensor, XDP path",
            Self::XdpDefaultPoll => "nbad-sensor, XDP path, 1 s poll",
            Self::Libpcap => "nbad-sensor, libpcap path",
            Self::LibpcapThreads => "nbad-sensor, libpcap, --threads",
            Self::Suricata => "suricata 7 af-packet (detect off)",
        }
    }

    /// `capture.xdp.poll_interval_ms` when the subject overrides the bench configuration's.
    pub(super) fn poll_interval_ms(self) -> Option<u32> {
        (self == Self::XdpDefaultPoll).then_some(DEFAULT_POLL_MS)
    }

    /// `capture.mode` for the sensor's subjects.
    pub(super) fn mode(self) -> Option<&'static str> {
        match self {
            Self::Xdp | Self::XdpDefaultPoll => Some("xdp"),
            Self::Libpcap | Self::LibpcapThreads => Some("pcap"),
            Self::SenderOnly | Self::Suricata => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Bench<'a> {
    pub(super) lab: &'a Lab,
    pub(super) live: &'a LiveCapture,
    pub(super) sensor: PathBuf,
    pub(super) run_dir: PathBuf,
    pub(super) limit: Duration,
    pub(super) clock_ticks: f64,
}

impl Bench<'_> {
    pub(super) fn run_once(&self, subject: Subject, repetition: u32) -> Run {
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
            Subject::Xdp | Subject::XdpDefaultPoll | Subject::Libpcap | Subject::LibpcapThreads => {
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
        ensure!(subject.mode().is_some(), "not a sensor subject");
        let mut c = self.in_rx(self.limit + Duration::from_secs(10));
        c.arg(&self.sensor)
            .args(["run", "--config"])
            .arg(self.run_dir.join(format!("{}.toml", subject.key())))
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
            Subject::Xdp | Subject::XdpDefaultPoll | Subject::Libpcap | Subject::LibpcapThreads => {
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

/// The last lines of a log, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
    if tail.is_empty() { "(no output)".to_owned() } else { tail }
}

/// Suricata as a live flow meter: the `--peers` configuration (flow events only, memcaps
/// raised) plus af-packet on the rx veth (one thread, a ring of about 64 MiB like the sensor's
/// libpcap buffer) and its counters in stats.log every second.
pub(super) fn write_suricata_config(path: &Path) -> Result<()> {
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
