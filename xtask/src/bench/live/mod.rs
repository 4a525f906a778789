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
//! mode), optionally only the first `--live-packets` of it. With `--live-flows N`, a synthetic
//! capture instead: `--live-packets` (default 3 000 000) small UDP frames round-robin over N
//! concurrent flows (see `synthetic`), the shape in which every poll of the XDP path finds
//! every flow changed.
//!
//! The XDP path runs twice: at the bench configuration's 200 ms poll interval and at the
//! sensor's default of 1 s, because its cost grows with the number of flows read per poll.
//! With `--threads N` the libpcap path runs a second time with `capture.threads = N`, and the
//! report gives that run's figures as ratios to the one-thread run of the same repetition
//! (runs of one invocation only: the machine may be shared and noisy).
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

mod capture;
mod counts;
pub(super) mod latency;
mod net;
mod report;
mod subjects;
pub(super) mod synthetic;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nbad_tests::lab::exec;
use nbad_tests::lab::{config_with, preflight};

use self::capture::LiveCapture;
use self::counts::clock_ticks;
use self::net::{Lab, RX_IF, TX_IF};
use self::report::{Run, print_run, write_report};
use self::subjects::{Bench, Subject, write_suricata_config};
use super::capture::BenchCapture;
use super::{BenchArgs, peers};
use crate::cmd::{self, heading, note};
use crate::setup::Apt;
use crate::target_dir;

/// The sensor's configuration; `capture.mode` and `capture.interface` are rewritten per run.
const CONFIG: &str = "configs/bench-live-sensor.toml";

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
    let live = match args.live_flows {
        Some(flows) => {
            synthetic::ensure(&bench_dir, flows, args.live_packets.unwrap_or(synthetic::DEFAULT_PACKETS))?
        }
        None => LiveCapture::ensure(&bench_dir, capture, args.live_packets)?,
    };
    let run_dir = bench_dir.join("last-live-run");
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir).with_context(|| format!("clearing {}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let base = fs::read_to_string(root.join(CONFIG)).with_context(|| format!("reading {CONFIG}"))?;
    let mut sensors = vec![Subject::Xdp, Subject::XdpDefaultPoll, Subject::Libpcap];
    if args.threads.is_some() {
        sensors.push(Subject::LibpcapThreads);
    }
    for &subject in &sensors {
        let mode = subject.mode().context("a sensor subject")?;
        let mut config = config_with(&base, mode, RX_IF)?;
        if let Some(ms) = subject.poll_interval_ms() {
            config = with_poll_interval(&config, ms)?;
        }
        if let (Subject::LibpcapThreads, Some(n)) = (subject, args.threads) {
            config = with_capture_threads(&config, n)?;
        }
        fs::write(run_dir.join(format!("{}.toml", subject.key())), config)
            .context("writing a sensor configuration")?;
    }
    let mut subjects = vec![Subject::SenderOnly];
    subjects.extend(sensors);
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

/// `config` with `threads = n` added to its `[capture]` table.
fn with_capture_threads(config: &str, n: u64) -> Result<String> {
    ensure!(config.lines().any(|l| l.trim() == "[capture]"), "{CONFIG} has no [capture] table");
    ensure!(!config.lines().any(|l| l.trim_start().starts_with("threads")), "{CONFIG} sets threads already");
    let lines: Vec<String> = config
        .lines()
        .flat_map(|line| {
            let mut out = vec![line.to_owned()];
            if line.trim() == "[capture]" {
                out.push(format!("threads = {n}"));
            }
            out
        })
        .collect();
    Ok(lines.join("\n") + "\n")
}

/// `config` with its `poll_interval_ms` line (in `[capture.xdp]`) set to `ms`.
fn with_poll_interval(config: &str, ms: u32) -> Result<String> {
    let mut found = false;
    let lines: Vec<String> = config
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("poll_interval_ms") {
                found = true;
                format!("poll_interval_ms = {ms}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    ensure!(found, "{CONFIG} sets no capture.xdp.poll_interval_ms to override");
    Ok(lines.join("\n") + "\n")
}
