//! Progress of a replay, on a thread of its own: a bar on a terminal, a line every few seconds
//! elsewhere.
//!
//! - **Bar** (stderr is a terminal and `--quiet` is not given): indicatif, redrawn 5 times a
//!   second: bytes read of the files' total, rate, ETA, then packets, flows active and alerts
//!   raised.
//! - **Lines** (otherwise): one summary line every `--progress-interval` seconds (0: none), so
//!   a log or CI shows that a long replay is alive and how far it is, and a last one when the
//!   input has been read.
//!
//! What it reads is published by the pipeline anyway ([`ReadProgress`] once per file read,
//! the [`StatsHub`] once per batch), so watching costs the replay nothing.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::capture::file::ReadProgress;
use crate::stats::StatsHub;

/// How the progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A bar on the terminal.
    Bar,
    /// A line every so often.
    Lines(Duration),
    /// Nothing.
    Off,
}

impl Mode {
    /// The mode for a replay: a bar on a terminal unless `quiet`, else lines every
    /// `interval_s` seconds (0: nothing).
    pub(super) fn choose(quiet: bool, interval_s: u64) -> Self {
        if !quiet && std::io::stderr().is_terminal() {
            Self::Bar
        } else if interval_s > 0 {
            Self::Lines(Duration::from_secs(interval_s))
        } else {
            Self::Off
        }
    }
}

/// The running display; [`Progress::finish`] stops it.
#[derive(Debug)]
pub(super) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One look at how far the replay is.
#[derive(Debug, Clone, Copy)]
struct Reading {
    read: u64,
    total: u64,
    packets: u64,
    flows_active: u64,
    alerts: u64,
}

fn reading(read: &ReadProgress, hub: &StatsHub) -> Reading {
    let s = hub.snapshot();
    let alerts = s.detection.as_ref().map_or(0, |d| d.alerts_by_detector.values().sum());
    Reading {
        read: read.read_bytes.load(Ordering::Relaxed),
        total: read.total_bytes,
        packets: s.capture.packets_read,
        flows_active: s.flows.active,
        alerts,
    }
}

impl Progress {
    /// Starts showing the progress of `read` and `hub` in `mode`.
    pub(super) fn start(mode: Mode, read: Arc<ReadProgress>, hub: Arc<StatsHub>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match mode {
            Mode::Off => None,
            Mode::Bar => {
                let stop = Arc::clone(&stop);
                thread::Builder::new().name("progress".into()).spawn(move || bar(&read, &hub, &stop)).ok()
            }
            Mode::Lines(every) => {
                let stop = Arc::clone(&stop);
                thread::Builder::new()
                    .name("progress".into())
                    .spawn(move || lines(&read, &hub, &stop, every))
                    .ok()
            }
        };
        Self { stop, thread }
    }

    /// Stops the display (the bar is cleared; the final summary follows it).
    pub(super) fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sleeps up to `d` in short steps; true when asked to stop.
fn wait(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
    }
    stop.load(Ordering::Relaxed)
}

fn bar(read: &ReadProgress, hub: &StatsHub, stop: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(Some(read.total_bytes), ProgressDrawTarget::stderr_with_hz(5));
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {percent:>3} %\n  {bytes} of {total_bytes} at {bytes_per_sec}, ETA {eta}; {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    loop {
        let r = reading(read, hub);
        bar.set_position(r.read);
        bar.set_message(format!(
            "{} packets, {} flows active, {} alerts",
            count(r.packets),
            count(r.flows_active),
            r.alerts
        ));
        if wait(stop, Duration::from_millis(200)) {
            break;
        }
    }
    bar.finish_and_clear();
}

fn lines(read: &ReadProgress, hub: &StatsHub, stop: &AtomicBool, every: Duration) {
    let started = Instant::now();
    while !wait(stop, every) {
        eprintln!("nbad-sensor: {}", line(&reading(read, hub), started.elapsed()));
    }
    eprintln!("nbad-sensor: {}", line(&reading(read, hub), started.elapsed()));
}

/// One summary line: "replay 45.0 % (812.3 MB of 1.8 GB), 2.1 M packets, 40.6 MB/s, ETA 25 s,
/// 41.2 k flows active, 3 alerts".
fn line(r: &Reading, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = r.read as f64 / secs;
    let pct = if r.total > 0 { r.read as f64 * 100.0 / r.total as f64 } else { 0.0 };
    let eta = if rate > 0.0 && r.total > r.read {
        format!("{:.0} s", (r.total - r.read) as f64 / rate)
    } else {
        "-".to_owned()
    };
    format!(
        "replay {pct:.1} % ({} of {}), {} packets, {}/s, ETA {eta}, {} flows active, {} alerts",
        bytes(r.read),
        bytes(r.total),
        count(r.packets),
        bytes(rate as u64),
        count(r.flows_active),
        r.alerts
    )
}

fn bytes(n: u64) -> String {
    crate::detect::exfiltration::human_bytes(n)
}

/// 1234567 as "1.2 M".
fn count(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.1} G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} k", f / 1e3)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_line_says_how_far_how_fast_and_how_long_is_left() {
        let r = Reading {
            read: 500_000_000,
            total: 1_000_000_000,
            packets: 2_100_000,
            flows_active: 41_200,
            alerts: 3,
        };
        let l = line(&r, Duration::from_secs(10));
        assert_eq!(
            l,
            "replay 50.0 % (500.0 MB of 1.0 GB), 2.1 M packets, 50.0 MB/s, ETA 10 s, 41.2 k flows active, 3 alerts"
        );
    }

    #[test]
    fn quiet_or_no_terminal_means_lines_or_nothing() {
        assert_eq!(Mode::choose(true, 0), Mode::Off);
        assert_eq!(Mode::choose(true, 5), Mode::Lines(Duration::from_secs(5)));
    }
}
