//! `cargo xtask bench`: how fast the sensor replays a large capture, and at what memory cost per
//! tracked flow, relative to baselines measured in the same invocation (the machine is shared and
//! noisy, so only same-run ratios mean much).
//!
//! Subjects, each a child process measured with `wait4` (see `measure`):
//! 1. raw read: `xtask raw-read FILE`, the floor for any reader of the file;
//! 2. libpcap loop: `sensor/examples/pcap_read_loop.rs`, the floor for a libpcap-based reader;
//! 3. nbad-sensor replay of the capture, flow records to /dev/null;
//! 4. the same replay of the first 1000 packets: the memory baseline that (3) is compared with;
//! 5. with `--peers`: softflowd and Suricata (see `peers`).
//!
//! `--export` measures flow export instead (see `export`): IPFIX, NetFlow v9 and Kafka against
//! the JSON output, in flow records per second.
//!
//! `--live` measures live capture instead (see `live`): the capture sent over a veth pair and
//! captured by the sensor's XDP and libpcap paths (and Suricata's af-packet with `--peers`).
//!
//! Each repetition runs every subject once, in that order, after one unrecorded read that puts
//! the file in the page cache. A subject that fails is reported and not retried; the others go
//! on, and the command exits non-zero at the end.

mod capture;
mod corpus;
mod delivery;
mod export;
mod live;
mod measure;
mod pcap_out;
pub mod peers;
pub mod raw_read;
mod report;
mod rewrite;
mod split;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use self::capture::{BenchCapture, HEAD_PACKETS, Targets};
use self::measure::{Finished, Sample};
use crate::cmd::{self, heading, note};
use crate::setup::{self, Apt};
use crate::stats::SensorStats;
use crate::target_dir;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Also measure softflowd and Suricata 7 (installed with apt if missing).
    #[arg(long)]
    peers: bool,
    /// Packets the benchmark capture has at least.
    #[arg(long, default_value_t = 3_000_000)]
    packets: u64,
    /// Distinct 5-tuples the benchmark capture has at least.
    #[arg(long, default_value_t = 300_000)]
    flows: u64,
    /// Runs of each measurement; the report gives the median. Default: 3, or 1 with `--live`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: Option<u32>,
    /// Kill a measured run that takes longer than this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// Only build (or find) the benchmark capture; measure nothing.
    #[arg(long)]
    capture_only: bool,
    /// Use the binaries already in target/release instead of building them.
    #[arg(long)]
    no_build: bool,
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    no_setup: bool,
    /// Measure live capture (root): the capture sent by tcpreplay over a veth pair between two
    /// namespaces, captured by the XDP path and the libpcap path (and Suricata with `--peers`).
    #[arg(long)]
    live: bool,
    /// With `--live`: send only the first N packets of the capture (default: all of them).
    #[arg(long, value_name = "N", requires = "live", value_parser = clap::value_parser!(u64).range(1..))]
    live_packets: Option<u64>,
    /// Measure alert delivery instead: alerts/s per sink to local receivers (see `delivery`).
    #[arg(long)]
    delivery: bool,
    /// Measure live packet-to-alert latency instead (root): protocol-misuse episodes sent over
    /// a veth pair, captured with libpcap and with XDP (see `live::latency`).
    #[arg(long, conflicts_with_all = ["live", "delivery", "peers"])]
    latency: bool,
    /// Measure flow export instead: IPFIX, NetFlow v9 and Kafka against the JSON output, in
    /// flow records per second on the benchmark capture (see `export`).
    #[arg(long, conflicts_with_all = ["live", "delivery", "peers"])]
    export: bool,
    /// With `--live`: replay a synthetic capture instead, small UDP frames round-robin over N
    /// concurrent flows (`--live-packets` of them, default 3 000 000).
    #[arg(long, value_name = "N", requires = "live",
          value_parser = clap::value_parser!(u64).range(1..=live::synthetic::MAX_FLOWS))]
    live_flows: Option<u64>,
    /// With `--live`: also measure the libpcap path with `capture.threads = N` (N handles in one
    /// PACKET_FANOUT group, a capture thread each), beside the one-thread libpcap run of the
    /// same invocation; the report gives the ratios of the two.
    #[arg(long, value_name = "N", requires = "live", value_parser = clap::value_parser!(u64).range(2..=64))]
    threads: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    RawRead,
    Libpcap,
    Replay,
    Detect,
    Baseline,
    Softflowd,
    Suricata,
}

impl Subject {
    pub fn key(self) -> &'static str {
        match self {
            Self::RawRead => "raw_read",
            Self::Libpcap => "libpcap_loop",
            Self::Replay => "nbad_replay",
            Self::Detect => "nbad_replay_detect",
            Self::Baseline => "nbad_replay_baseline",
            Self::Softflowd => "softflowd",
            Self::Suricata => "suricata",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::RawRead => "raw read (1 MiB read())",
            Self::Libpcap => "libpcap loop (pcap_read_loop)",
            Self::Replay => "nbad-sensor replay (flow records only)",
            Self::Detect => "nbad-sensor replay, every detector on",
            Self::Baseline => "nbad-sensor replay, first 1000 pkts",
            Self::Softflowd => "softflowd -r (NetFlow v5 to loopback)",
            Self::Suricata => "suricata 7 (single, detect off)",
        }
    }
}

/// Everything measured about one subject.
#[derive(Debug)]
pub struct Outcome {
    pub subject: Subject,
    pub command: String,
    pub samples: Vec<Sample>,
    pub failure: Option<String>,
    pub notes: Vec<String>,
    /// `flows.active_peak` from the sensor's stats (replay only).
    pub active_peak: Option<u64>,
}

impl Outcome {
    fn new(subject: Subject) -> Self {
        Self {
            subject,
            command: String::new(),
            samples: Vec::new(),
            failure: None,
            notes: Vec::new(),
            active_peak: None,
        }
    }
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    if args.delivery {
        return delivery::run(root, args.no_build);
    }
    if args.latency {
        return live::latency::run(root, args.no_build);
    }
    if !args.no_setup && !args.capture_only {
        setup::run()?;
    }
    let bench_dir = target_dir(root).join("bench");
    let corpus = corpus::corpus_dir(root)?;
    let targets = Targets { packets: args.packets, flows: args.flows };
    if args.capture_only {
        capture::ensure(&bench_dir, &corpus, targets)?;
        return Ok(());
    }
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let capture = match capture::existing(&bench_dir, &corpus, targets)? {
        Some(capture) => capture,
        None => {
            // Built by a child: the builder's memory would otherwise stay in this process, and
            // on Linux a child's reported peak RSS is never below its parent's (see `measure`).
            let mut build = Command::new(&xtask);
            build.args(["bench", "--capture-only", "--packets"]);
            build.arg(args.packets.to_string()).arg("--flows").arg(args.flows.to_string());
            cmd::run("build the benchmark capture", &mut build)?;
            capture::existing(&bench_dir, &corpus, targets)?
                .context("the capture builder exited 0 but left no capture")?
        }
    };

    if args.live {
        return live::run(root, args, &capture);
    }
    if args.export {
        let release = target_dir(root).join("release");
        if !args.no_build {
            heading("bench: build (release)");
            let mut build = cmd::cargo(["build", "--release", "-p", "nbad-sensor", "--bin", "nbad-sensor"]);
            cmd::run("build nbad-sensor", build.current_dir(root))?;
        }
        let run_dir = bench_dir.join("last-export-run");
        let _ = fs::remove_dir_all(&run_dir);
        fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        let limit = Duration::from_secs(args.timeout_s);
        let report = export::run(
            root,
            &release.join("nbad-sensor"),
            &capture,
            &run_dir,
            args.repeat.unwrap_or(1),
            limit,
        )?;
        note(&format!("report: {}", report.display()));
        return Ok(());
    }
    let repeat = args.repeat.unwrap_or(3);
    let release = target_dir(root).join("release");
    let mut subjects =
        vec![Subject::RawRead, Subject::Libpcap, Subject::Replay, Subject::Detect, Subject::Baseline];
    if args.peers {
        subjects.extend([Subject::Softflowd, Subject::Suricata]);
    }
    let mut outcomes: Vec<Outcome> = subjects.into_iter().map(Outcome::new).collect();
    if !args.no_build {
        build_binaries(root, &mut outcomes);
    }

    let run_dir = bench_dir.join("last-run");
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir).with_context(|| format!("clearing {}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;

    let mut sink = None;
    if args.peers {
        heading("bench: peers (softflowd, suricata)");
        match peers::install(&mut Apt::default()) {
            Ok(()) => {
                peers::write_suricata_config(&run_dir.join("suricata.yaml"))?;
                sink = Some(peers::ExportSink::bind()?);
            }
            Err(err) => {
                eprintln!("    {err:#}: measuring without them");
                let peer = |o: &&mut Outcome| matches!(o.subject, Subject::Softflowd | Subject::Suricata);
                for outcome in outcomes.iter_mut().filter(peer) {
                    outcome.failure = Some(format!("not installed: {err:#}"));
                }
            }
        }
    }

    let bench = Bench {
        capture: &capture,
        xtask,
        pcap_loop: release.join("examples/pcap_read_loop"),
        sensor: release.join("nbad-sensor"),
        run_dir: run_dir.clone(),
        sink,
        limit: Duration::from_secs(args.timeout_s),
    };

    heading(&format!("bench: measuring ({repeat} runs each, logs in {})", run_dir.display()));
    // Unrecorded: puts the capture in the page cache so that run 1 is not a disk benchmark.
    measure::measure(&mut bench.command(Subject::RawRead, 0)?, &run_dir, "warmup", bench.limit)?;
    for repetition in 1..=repeat {
        for outcome in outcomes.iter_mut().filter(|o| o.failure.is_none()) {
            bench.run_once(outcome, repetition)?;
        }
    }

    let failures = report::write(&bench_dir, &capture, repeat, &outcomes)?;
    if !failures.is_empty() {
        bail!("bench incomplete: {}", failures.join("; "));
    }
    Ok(())
}

/// `cargo build --release` of the libpcap example and of the sensor, separately: the example
/// only needs the sensor's library, so it can be measured while the binary does not build.
fn build_binaries(root: &Path, outcomes: &mut [Outcome]) {
    heading("bench: build (release)");
    let builds: [(&str, &[&str], &[Subject]); 2] = [
        ("build pcap_read_loop", &["--example", "pcap_read_loop"], &[Subject::Libpcap]),
        (
            "build nbad-sensor",
            &["--bin", "nbad-sensor"],
            &[Subject::Replay, Subject::Detect, Subject::Baseline],
        ),
    ];
    for (step, target_args, subjects) in builds {
        let mut build = cmd::cargo(["build", "--release", "-p", "nbad-sensor"]);
        build.args(target_args).current_dir(root);
        if let Err(err) = cmd::run(step, &mut build) {
            eprintln!("    {err:#}: measuring the rest");
            for outcome in outcomes.iter_mut().filter(|o| subjects.contains(&o.subject)) {
                outcome.failure = Some(format!("not built: {err:#}"));
            }
        }
    }
}

#[derive(Debug)]
struct Bench<'a> {
    capture: &'a BenchCapture,
    xtask: PathBuf,
    pcap_loop: PathBuf,
    sensor: PathBuf,
    run_dir: PathBuf,
    sink: Option<peers::ExportSink>,
    limit: Duration,
}

impl Bench<'_> {
    fn run_once(&self, outcome: &mut Outcome, repetition: u32) -> Result<()> {
        let subject = outcome.subject;
        let mut command = self.command(subject, repetition)?;
        outcome.command = cmd::display(&command);
        let label = format!("{}-{repetition}", subject.key());
        let finished = match measure::measure(&mut command, &self.run_dir, &label, self.limit) {
            Ok(finished) => finished,
            Err(err) => {
                outcome.failure = Some(format!("{err:#}"));
                note(&format!("{:<40} FAILED: {err:#}", subject.label()));
                return Ok(());
            }
        };
        let checked = if finished.timed_out {
            Err(format!(
                "killed after {} s (--timeout-s); stderr ends: {}",
                self.limit.as_secs(),
                last_lines(&finished.stderr, 3)
            ))
        } else if finished.status.success() {
            self.check(subject, repetition, &finished, outcome)
        } else {
            Err(format!("exited with {}; stderr ends: {}", finished.status, last_lines(&finished.stderr, 5)))
        };
        match checked {
            Ok(()) => {
                let s = finished.sample;
                note(&format!(
                    "{:<40} run {repetition}: {:>8.3} s wall {:>8.3} s CPU {:>8.1} MiB peak RSS",
                    subject.label(),
                    s.wall_s,
                    s.cpu_s(),
                    s.rss_mib()
                ));
                outcome.samples.push(s);
            }
            Err(reason) => {
                note(&format!("{:<40} FAILED: {reason}", subject.label()));
                outcome.failure = Some(reason);
            }
        }
        Ok(())
    }

    fn command(&self, subject: Subject, repetition: u32) -> Result<Command> {
        let pcap = &self.capture.pcap;
        Ok(match subject {
            Subject::RawRead => {
                let mut c = Command::new(&self.xtask);
                c.arg("raw-read").arg(pcap);
                c
            }
            Subject::Libpcap => {
                let mut c = Command::new(&self.pcap_loop);
                c.arg(pcap);
                c
            }
            Subject::Replay | Subject::Detect | Subject::Baseline => {
                let input = if subject == Subject::Baseline { &self.capture.head } else { pcap };
                let mut c = Command::new(&self.sensor);
                c.arg("replay");
                if subject == Subject::Detect {
                    // The built-in defaults: every detector on, alerts written.
                    c.args(["--alerts", "/dev/null"]);
                } else {
                    c.arg("-c").arg(self.flows_only_config()?);
                }
                c.args(["--flows", "/dev/null", "--stats"])
                    .arg(self.stats_path(subject, repetition))
                    .arg(input);
                c
            }
            Subject::Softflowd => {
                let sink = self.sink.as_ref().context("no export sink")?;
                peers::softflowd(pcap, self.capture.meta.flows, sink, &self.run_dir)?
            }
            Subject::Suricata => {
                let log_dir = self.run_dir.join(format!("suricata-{repetition}"));
                peers::suricata(pcap, &self.run_dir.join("suricata.yaml"), &log_dir)?
            }
        })
    }

    /// A configuration with detection off: the flow-records-only run.
    fn flows_only_config(&self) -> Result<PathBuf> {
        let path = self.run_dir.join("flows-only.toml");
        if !path.exists() {
            fs::write(&path, "[detection]\nenabled = false\n")
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
        Ok(path)
    }

    fn stats_path(&self, subject: Subject, repetition: u32) -> PathBuf {
        self.run_dir.join(format!("{}-{repetition}-stats.json", subject.key()))
    }

    /// Whether a run that exited 0 did the whole job; records what the report needs from it.
    fn check(
        &self,
        subject: Subject,
        repetition: u32,
        finished: &Finished,
        outcome: &mut Outcome,
    ) -> Result<(), String> {
        let meta = &self.capture.meta;
        match subject {
            Subject::RawRead => expect_line(&finished.stdout, &format!("bytes={}", meta.bytes)),
            Subject::Libpcap => expect_line(&finished.stdout, &format!("packets={}", meta.packets)),
            Subject::Replay | Subject::Detect | Subject::Baseline => {
                let path = self.stats_path(subject, repetition);
                let stats = SensorStats::load(&path).map_err(|e| format!("{e:#}"))?;
                let expected = if subject == Subject::Baseline { HEAD_PACKETS } else { meta.packets };
                if stats.capture.packets_read != expected {
                    return Err(format!(
                        "the sensor read {} packets of {expected}",
                        stats.capture.packets_read
                    ));
                }
                if subject == Subject::Replay {
                    outcome.active_peak = Some(stats.flows.active_peak);
                    outcome.notes = vec![format!(
                        "flows created {}, active peak {}, records {}, malformed {}",
                        stats.flows.created,
                        stats.flows.active_peak,
                        stats.flows.records,
                        stats.decode.malformed_total
                    )];
                }
                Ok(())
            }
            Subject::Softflowd => {
                // Its summary: "Packets processed: N", "Flows exported: N (N records) in ...".
                let summary: Vec<&str> = finished
                    .stdout
                    .lines()
                    .filter(|l| l.starts_with("Packets processed") || l.starts_with("Flows exported"))
                    .collect();
                outcome.notes = vec![summary.join("; ")];
                Ok(())
            }
            Subject::Suricata => {
                let log_dir = self.run_dir.join(format!("suricata-{repetition}"));
                let events = peers::count_and_remove_eve(&log_dir).map_err(|e| format!("{e:#}"))?;
                outcome.notes = vec![format!("{events} flow events in eve.json")];
                Ok(())
            }
        }
    }
}

fn expect_line(stdout: &str, line: &str) -> Result<(), String> {
    if stdout.lines().any(|l| l.trim() == line) {
        Ok(())
    } else {
        Err(format!("expected `{line}` on stdout, got: {}", last_lines(stdout, 3)))
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(n)..].join(" | ");
    if tail.is_empty() { "(nothing)".to_owned() } else { tail }
}
