//! The exfiltration regression table: every corpus upload, at three paces, on two kinds of host
//! with a learned baseline, each beside a control without the upload.
//!
//! For each background (a *dense* host active about every minute, a *sparse* one active in
//! about 3 % of its minutes; see [`composite::Background`]) the sensor first learns 26 hours
//! into a state file, with the shipped detection settings (24 h learning period) and the host as
//! the only inside address. Then, from a copy of that state, it replays the next hours with the
//! upload put on the host ([`composite::Upload::paced`]) — or, for the control, without it:
//!
//! | pace | volume | over |
//! |---|---|---|
//! | `5MB/10min` | 5 MB | 10 minutes |
//! | `25MB/20min` | 25 MB | 20 minutes |
//! | `25MB/6h` | 25 MB | 6 hours |
//!
//! An episode is found when an `exfiltration` alert names the host; its time to detect runs
//! from the upload's first packet to the alert, and "before it ends" compares the alert with
//! the upload's last packet.

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::composite::{Background, Upload, merge};
use super::long_input::{EPOCH_S, write_pcap};
use super::{Alert, replay};
use crate::Corpus;

/// The host every composite is put on.
pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 20, 30, 40);
/// Hours of background learned before an episode.
pub const LEARN_H: u64 = 26;
/// The paces: name, bytes, seconds.
pub const PACES: [(&str, u64, u64); 3] =
    [("5MB/10min", 5_000_000, 600), ("25MB/20min", 25_000_000, 1_200), ("25MB/6h", 25_000_000, 21_600)];
/// Seconds of background replayed after the episode ends (time for the last buckets to close).
const AFTER_S: u64 = 600;

/// The benign captures a dense host is made of (one busy client each).
pub const DENSE: [&str; 6] = [
    "benign_mixed/ppa__http.cap",
    "benign_mixed/ndpi__443-firefox.pcap",
    "benign_mixed/zeek__bro.org.pcap",
    "benign_mixed/ndpi__teams.pcap",
    "benign_mixed/zeek__workshop_2011_browse.pcap",
    "benign_mixed/sanders__tcp_ports.pcapng",
];

/// The configuration: shipped detection settings, the host alone inside.
#[must_use]
pub fn config() -> String {
    format!("[sensor]\nid = \"exfil-table\"\nhome_networks = [\"{HOST}/32\"]\n")
}

/// One background: its name, seconds between copies, and seed.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// "dense" or "sparse".
    pub name: &'static str,
    /// Mean seconds between copies.
    pub every_s: f64,
    /// Seed of the jitter.
    pub seed: u64,
}

/// The two backgrounds.
pub const KINDS: [Kind; 2] =
    [Kind { name: "dense", every_s: 60.0, seed: 11 }, Kind { name: "sparse", every_s: 1_800.0, seed: 29 }];

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Background name.
    pub background: &'static str,
    /// The upload capture (corpus path), or "control".
    pub episode: String,
    /// Pace name.
    pub pace: &'static str,
    /// Exfiltration alerts on the host: (rule, window, seconds after the upload started).
    pub found: Vec<(String, String, f64)>,
    /// The upload lasted this long, in seconds.
    pub upload_s: f64,
    /// Alerts of any detector on the host (for controls: false alerts).
    pub alerts: Vec<Alert>,
}

impl Row {
    /// The first exfiltration alert's time to detect, in seconds.
    #[must_use]
    pub fn time_to_detect(&self) -> Option<f64> {
        self.found.iter().map(|f| f.2).reduce(f64::min)
    }

    /// Found, and before the upload ended.
    #[must_use]
    pub fn before_end(&self) -> bool {
        self.time_to_detect().is_some_and(|t| t <= self.upload_s)
    }
}

/// The uploads of the corpus that can be put on the host: (capture, uploader).
pub fn uploads(corpus: &Corpus) -> Vec<(String, Ipv4Addr)> {
    super::CASES
        .iter()
        .filter(|c| c.capture.starts_with("exfil_bulk_upload/"))
        .filter_map(|c| match c.expect {
            super::Expect::Alert { host, .. } | super::Expect::Miss { host, .. } => {
                host.parse::<Ipv4Addr>().ok().map(|ip| (c.capture.to_owned(), ip))
            }
            _ => None,
        })
        .filter(|(capture, _)| corpus.root().join(capture).is_file())
        .collect()
}

/// Builds and replays the whole table in `scratch`; `log` gets one line per row as it goes.
pub fn run(corpus: &Corpus, scratch: &Path, mut log: impl FnMut(&str)) -> Result<(Vec<Row>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let uploads = uploads(corpus);
    for kind in KINDS {
        let paths: Vec<std::path::PathBuf> = DENSE.iter().map(|p| corpus.root().join(p)).collect();
        let refs: Vec<&Path> = paths.iter().map(std::path::PathBuf::as_path).collect();
        let bg = Background::new(&refs, HOST, kind.every_s, kind.seed)?;
        let learn_end = LEARN_H * 3_600;
        let learning = scratch.join(format!("{}-learning.pcap", kind.name));
        write_pcap(&learning, &bg.frames(0, learn_end))?;
        let state = scratch.join(format!("{}-state.json", kind.name));
        let dir = tempfile::tempdir()?;
        let learned = replay(&[&learning], &config(), Some(&state), false, dir.path())
            .with_context(|| format!("learning the {} background", kind.name))?;
        log(&format!("{} background: {} alerts while learning", kind.name, learned.alerts.len()));
        if let Some(keep) = std::env::var_os("NBAD_EXFIL_KEEP") {
            fs::create_dir_all(&keep)?;
            fs::copy(&learning, Path::new(&keep).join(format!("{}-learning.pcap", kind.name)))?;
        }
        fs::remove_file(&learning)?;
        for (pace, bytes, secs) in PACES {
            let tail_end = learn_end + secs + AFTER_S;
            // The control.
            let control =
                episode_row(kind.name, "control", pace, &bg, None, &state, learn_end, tail_end, scratch)?;
            log(&control.line());
            rows.push(control);
            for (capture, uploader) in &uploads {
                if std::env::var("NBAD_EXFIL_ONLY").is_ok_and(|only| !capture.contains(&only)) {
                    continue;
                }
                let upload = match Upload::from_capture(&corpus.root().join(capture), *uploader, HOST) {
                    Ok(u) => u,
                    Err(e) => {
                        if kind.name == KINDS[0].name && pace == PACES[0].0 {
                            skipped.push(format!("{capture}: {e:#}"));
                        }
                        continue;
                    }
                };
                let seed = kind.seed ^ u64::from(u32::from(*uploader)) ^ bytes ^ secs;
                let (frames, last_us) = upload.paced(bytes, secs, learn_end, seed);
                let upload_s = (last_us as f64 / 1e6) - (EPOCH_S + learn_end) as f64;
                let mut row = episode_row(
                    kind.name,
                    capture,
                    pace,
                    &bg,
                    Some(frames),
                    &state,
                    learn_end,
                    tail_end.max(learn_end + upload_s.ceil() as u64 + AFTER_S),
                    scratch,
                )?;
                row.upload_s = upload_s;
                log(&row.line());
                rows.push(row);
            }
        }
    }
    Ok((rows, skipped))
}

#[expect(clippy::too_many_arguments, reason = "one call site per row kind; a struct would only rename them")]
fn episode_row(
    background: &'static str,
    episode: &str,
    pace: &'static str,
    bg: &Background,
    upload: Option<Vec<super::long_input::Frame>>,
    state: &Path,
    from_s: u64,
    to_s: u64,
    scratch: &Path,
) -> Result<Row> {
    let tail = bg.frames(from_s, to_s);
    let frames = match upload {
        Some(u) => merge(tail, u),
        None => tail,
    };
    let pcap = scratch.join("episode.pcap");
    write_pcap(&pcap, &frames)?;
    if let Some(keep) = std::env::var_os("NBAD_EXFIL_KEEP") {
        // For a look at one row: the episode and the learned state, kept.
        let keep = Path::new(&keep);
        fs::create_dir_all(keep)?;
        let name = format!("{background}-{}-{}", episode.replace('/', "_"), pace.replace('/', "_"));
        fs::copy(&pcap, keep.join(format!("{name}.pcap")))?;
        fs::copy(state, keep.join(format!("{background}-state.json")))?;
    }
    let copy = scratch.join("state-copy.json");
    fs::copy(state, &copy)?;
    let dir = tempfile::tempdir()?;
    let outcome = replay(&[&pcap], &config(), Some(&copy), false, dir.path())
        .with_context(|| format!("{background} {episode} {pace}"))?;
    let start_ns = (EPOCH_S + from_s) * 1_000_000_000;
    let host = HOST.to_string();
    let alerts: Vec<Alert> = outcome.alerts.into_iter().filter(|a| a.host == host).collect();
    let found = alerts
        .iter()
        .filter(|a| a.detector == "exfiltration")
        .map(|a| {
            (
                a.rule.clone().unwrap_or_default(),
                a.window.clone().unwrap_or_default(),
                a.ts_ns.saturating_sub(start_ns) as f64 / 1e9,
            )
        })
        .collect();
    Ok(Row { background, episode: episode.to_owned(), pace, found, upload_s: (to_s - from_s) as f64, alerts })
}

impl Row {
    /// One line for the log.
    #[must_use]
    pub fn line(&self) -> String {
        if self.episode == "control" {
            let list: Vec<String> = self.alerts.iter().map(Alert::describe).collect();
            return format!(
                "{} control {}: {} alerts {list:?}",
                self.background,
                self.pace,
                self.alerts.len()
            );
        }
        match self.time_to_detect() {
            Some(t) => format!(
                "{} {} {}: found after {t:.0} s (upload {:.0} s){}: {:?}",
                self.background,
                self.episode,
                self.pace,
                self.upload_s,
                if self.before_end() { "" } else { ", after it ended" },
                self.found.iter().map(|f| format!("{}/{}", f.0, f.1)).collect::<Vec<_>>()
            ),
            None => format!(
                "{} {} {}: missed (other alerts: {:?})",
                self.background,
                self.episode,
                self.pace,
                self.alerts.iter().map(Alert::describe).collect::<Vec<_>>()
            ),
        }
    }
}

/// The table as Markdown: per pace and background, found / before the end / median time to
/// detect, then every row.
#[must_use]
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| background | pace | found | before it ended | median time to detect | controls' alerts |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    for kind in KINDS {
        for (pace, _, _) in PACES {
            let eps: Vec<&Row> = rows
                .iter()
                .filter(|r| r.background == kind.name && r.pace == pace && r.episode != "control")
                .collect();
            let controls: usize = rows
                .iter()
                .filter(|r| r.background == kind.name && r.pace == pace && r.episode == "control")
                .map(|r| r.alerts.len())
                .sum();
            let found = eps.iter().filter(|r| r.time_to_detect().is_some()).count();
            let before = eps.iter().filter(|r| r.before_end()).count();
            let mut ttd: Vec<f64> = eps.iter().filter_map(|r| r.time_to_detect()).collect();
            ttd.sort_by(f64::total_cmp);
            let med = ttd.get(ttd.len() / 2).map_or("-".to_owned(), |t| format!("{t:.0} s"));
            let _ = writeln!(
                out,
                "| {} | {pace} | {found}/{} | {before}/{} | {med} | {controls} |",
                kind.name,
                eps.len(),
                eps.len()
            );
        }
    }
    let _ = writeln!(out, "\n| background | upload | pace | result |");
    let _ = writeln!(out, "|---|---|---|---|");
    for r in rows.iter().filter(|r| r.episode != "control") {
        let result = match r.time_to_detect() {
            Some(t) => format!(
                "{} after {t:.0} s of {:.0} s ({})",
                if r.before_end() { "found" } else { "found late" },
                r.upload_s,
                r.found.first().map(|f| format!("{}, {}", f.0, f.1)).unwrap_or_default()
            ),
            None => "missed".to_owned(),
        };
        let _ = writeln!(out, "| {} | {} | {} | {result} |", r.background, r.episode, r.pace);
    }
    out
}
