//! A multi-stage episode on real captures, beside a control: what `lateral_movement`,
//! `host_outlier` and the staged incidents do on long composite inputs.
//!
//! Four inside hosts ([`HOSTS`], 10.9.0.0/24) each get a dense background of benign corpus
//! captures ([`composite::Background`], a copy about every two minutes, different seeds) for
//! [`LEARN_S`]; the sensor learns it into a state file with the test settings (30-minute learning
//! period) and the shipped `host_outlier` and `lateral_movement` settings. Then, from copies of
//! that state, it replays the next [`TAIL_S`] twice: the **episode** run, where the first host
//! ([`HOST`]) scans an inside address, reaches four inside hosts over SMB, beacons out and
//! uploads 25 MB over 20 minutes ([`Stage`]s, each a corpus capture renamed onto the host); and
//! the **control** run, the same background without it.
//!
//! | step | capture | put where |
//! |---|---|---|
//! | scan | `scan/evilfingers__nmap__TCP_SYN_SCAN.pcap` | scanner → HOST, target → 10.9.0.50 |
//! | lateral SMB | `exfil_bulk_upload/zeek__smb2-write.pcap`, four copies | client → HOST, server → 10.9.0.11, .12, .13, .50 |
//! | beacon | `beacon_c2/slips__test-cc-capture-2.pcap` | client → HOST |
//! | upload | `exfil_bulk_upload/sv__smtp2525-bulk-upload.pcap`, paced | uploader → HOST, server → 198.51.100.77 |

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::composite::{Background, Upload, copy_port, merge, shift_host_port};
use super::long_input::{EPOCH_S, Frame, read_ethernet, rewrite_ipv4, write_pcap};
use super::{Alert, TEST_DETECTION, host_hours, replay};
use crate::Corpus;

/// The host the episode is put on.
pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 10);
/// The inside hosts with a background (the episode's host first).
pub const HOSTS: [Ipv4Addr; 4] =
    [HOST, Ipv4Addr::new(10, 9, 0, 11), Ipv4Addr::new(10, 9, 0, 12), Ipv4Addr::new(10, 9, 0, 13)];
/// An inside address with no background: the scan's target and one of the SMB targets.
pub const QUIET: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 50);
/// Seconds of background learned before the episode.
pub const LEARN_S: u64 = 4 * 3_600;
/// Seconds replayed after the learning: the episode and time for the last buckets to close.
pub const TAIL_S: u64 = 3_600;
/// The benign captures the hosts are made of.
pub const BENIGN: [&str; 5] = [
    "benign_mixed/ppa__http.cap",
    "benign_mixed/zeek__workshop_2011_browse.pcap",
    "benign_mixed/sanders__tcp_ports.pcapng",
    "benign_mixed/zeek__bro.org.pcap",
    "benign_mixed/ndpi__443-firefox.pcap",
];

/// One step of the episode: its name, capture, the address map, and its start (seconds after
/// the learning).
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    /// `scan`, `lateral_smb`, `beacon`, `upload`.
    pub name: &'static str,
    /// The corpus capture.
    pub capture: &'static str,
    /// Seconds after the end of the learning.
    pub at_s: u64,
}

/// The episode's steps.
pub const STAGES: [Stage; 4] = [
    Stage { name: "scan", capture: "scan/evilfingers__nmap__TCP_SYN_SCAN.pcap", at_s: 120 },
    Stage { name: "lateral_smb", capture: "exfil_bulk_upload/zeek__smb2-write.pcap", at_s: 600 },
    Stage { name: "beacon", capture: "beacon_c2/slips__test-cc-capture-2.pcap", at_s: 1_200 },
    Stage { name: "upload", capture: "exfil_bulk_upload/sv__smtp2525-bulk-upload.pcap", at_s: 1_800 },
];

/// The configuration: the test settings, 10.9.0.0/24 inside.
#[must_use]
pub fn config() -> String {
    format!("[sensor]\nid = \"staged\"\nhome_networks = [\"10.9.0.0/24\"]\n\n{TEST_DETECTION}")
}

/// `frames` renamed by `map`, started at `start_s` after the epoch, `host`'s ports moved to
/// copy `n`'s.
fn place(frames: &[Frame], map: &BTreeMap<Ipv4Addr, Ipv4Addr>, start_s: u64, n: u64) -> Vec<Frame> {
    let first = frames.first().map_or(0, |f| f.ts_us);
    frames
        .iter()
        .map(|f| {
            let mut data = f.data.clone();
            rewrite_ipv4(&mut data, map);
            shift_host_port(&mut data, HOST, |p| if p < 1024 { p } else { copy_port(p, n) });
            Frame { ts_us: (EPOCH_S + start_s) * 1_000_000 + (f.ts_us - first), data }
        })
        .collect()
}

/// The episode's frames, from `start_s` on.
pub fn episode(corpus: &Corpus, start_s: u64) -> Result<Vec<Frame>> {
    let read = |capture: &str| read_ethernet(&corpus.root().join(capture));
    let ip = |s: &str| s.parse::<Ipv4Addr>().context("address");
    let mut out = Vec::new();
    let scan = read(STAGES[0].capture)?;
    let map = BTreeMap::from([(ip("192.168.1.10")?, HOST), (ip("192.168.1.25")?, QUIET)]);
    out.extend(place(&scan, &map, start_s + STAGES[0].at_s, 1));
    let smb = read(STAGES[1].capture)?;
    for (i, target) in [HOSTS[1], HOSTS[2], HOSTS[3], QUIET].into_iter().enumerate() {
        let map = BTreeMap::from([(ip("10.0.0.11")?, HOST), (ip("10.0.0.12")?, target)]);
        let at = start_s + STAGES[1].at_s + 5 * i as u64;
        out.extend(place(&smb, &map, at, 10 + i as u64));
    }
    let beacon = read(STAGES[2].capture)?;
    let map = BTreeMap::from([(ip("147.32.80.37")?, HOST)]);
    out.extend(place(&beacon, &map, start_s + STAGES[2].at_s, 20));
    let upload = Upload::from_capture(&corpus.root().join(STAGES[3].capture), ip("10.9.18.101")?, HOST)?;
    let (frames, _) = upload.paced(25_000_000, 1_200, start_s + STAGES[3].at_s, 7);
    Ok(merge(out, frames))
}

/// What one run (episode or control) gave.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Alerts (incident records apart).
    pub alerts: Vec<Alert>,
    /// Incident records.
    pub incidents: Vec<Alert>,
    /// Host-hours of inside activity replayed.
    pub host_hours: f64,
}

impl RunResult {
    /// Alerts of `detector` on `host`.
    #[must_use]
    pub fn of(&self, detector: &str, host: Ipv4Addr) -> Vec<&Alert> {
        let host = host.to_string();
        self.alerts.iter().filter(|a| a.detector == detector && a.host == host).collect()
    }
}

/// The whole measurement.
#[derive(Debug, Clone)]
pub struct Report {
    /// The learning replay.
    pub learning: RunResult,
    /// The episode run.
    pub episode: RunResult,
    /// The control run.
    pub control: RunResult,
}

/// Builds the composites under `scratch`, replays them, and returns what each run gave.
pub fn run(corpus: &Corpus, scratch: &Path, mut log: impl FnMut(&str)) -> Result<Report> {
    let paths: Vec<std::path::PathBuf> = BENIGN.iter().map(|p| corpus.root().join(p)).collect();
    let refs: Vec<&Path> = paths.iter().map(std::path::PathBuf::as_path).collect();
    let backgrounds: Vec<Background> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| Background::new(&refs, *h, 120.0, 41 + i as u64))
        .collect::<Result<_>>()?;
    let frames = |from_s: u64, to_s: u64| {
        backgrounds.iter().fold(Vec::new(), |acc, bg| merge(acc, bg.frames(from_s, to_s)))
    };
    let state = scratch.join("state.json");
    let learning_pcap = scratch.join("learning.pcap");
    write_pcap(&learning_pcap, &frames(0, LEARN_S))?;
    let learning = one(&learning_pcap, &state, scratch, "learning")?;
    log(&format!("learning: {} alerts in {:.1} host-hours", learning.alerts.len(), learning.host_hours));
    fs::remove_file(&learning_pcap)?;
    let tail = frames(LEARN_S, LEARN_S + TAIL_S);
    let mut results = Vec::new();
    for with_episode in [true, false] {
        let name = if with_episode { "episode" } else { "control" };
        let pcap = scratch.join(format!("{name}.pcap"));
        let body = if with_episode { merge(tail.clone(), episode(corpus, LEARN_S)?) } else { tail.clone() };
        write_pcap(&pcap, &body)?;
        let copy = scratch.join(format!("{name}-state.json"));
        fs::copy(&state, &copy)?;
        let r = one(&pcap, &copy, scratch, name)?;
        log(&format!(
            "{name}: {} alerts, {} incident records in {:.1} host-hours",
            r.alerts.len(),
            r.incidents.len(),
            r.host_hours
        ));
        fs::remove_file(&pcap)?;
        results.push(r);
    }
    let control = results.pop().context("control run")?;
    let episode = results.pop().context("episode run")?;
    Ok(Report { learning, episode, control })
}

/// One replay of `pcap`, the state loaded from and saved to `state`.
fn one(pcap: &Path, state: &Path, scratch: &Path, name: &str) -> Result<RunResult> {
    let dir = scratch.join(name);
    fs::create_dir_all(&dir)?;
    let outcome =
        replay(&[pcap], &config(), Some(state), true, &dir).with_context(|| format!("the {name} run"))?;
    let flows = outcome.flows_path.as_deref().context("flows written")?;
    let host_hours = host_hours(flows, &["10.9.0.0/24"])?;
    fs::remove_file(flows)?;
    Ok(RunResult { alerts: outcome.alerts, incidents: outcome.incidents, host_hours })
}
