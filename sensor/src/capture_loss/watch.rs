//! The live sensor's capture-loss watch: a thread that samples the [`StatsHub`] every few
//! seconds, keeps the windowed ratio for the metrics endpoint, and raises the `capture_loss`
//! alert through [`LossMonitor`].
//!
//! Until the alert stage exists, a raised alert is logged as one journal line (warning level)
//! and kept in a small queue that the alert stage will drain ([`LossWatch::take_alerts`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{LossMonitor, LossPolicy, LossSample};
use crate::alert::Alert;
use crate::metrics::SharedRatio;
use crate::stats::StatsHub;

/// Alerts kept for the alert stage at most; older ones are dropped first.
const QUEUE: usize = 16;
/// How often the stop flag is looked at between samples.
const POLL: Duration = Duration::from_millis(200);

/// The running watch; dropping it stops the thread.
#[derive(Debug)]
pub struct LossWatch {
    stop: Arc<AtomicBool>,
    alerts: Arc<Mutex<VecDeque<Alert>>>,
    thread: Option<JoinHandle<()>>,
}

impl LossWatch {
    /// Samples `hub` every `every`, storing the windowed ratio in `ratio`.
    pub fn start(
        hub: Arc<StatsHub>,
        sensor_id: String,
        policy: LossPolicy,
        every: Duration,
        ratio: Arc<SharedRatio>,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let alerts = Arc::new(Mutex::new(VecDeque::new()));
        let (flag, queue) = (Arc::clone(&stop), Arc::clone(&alerts));
        let thread = std::thread::Builder::new()
            .name("nbad-loss".into())
            .spawn(move || {
                let mut monitor = LossMonitor::new(policy);
                let mut next = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    if Instant::now() < next {
                        std::thread::sleep(POLL);
                        continue;
                    }
                    next += every;
                    let s = hub.snapshot();
                    let now_ns = crate::clock::wall_ns();
                    let sample = LossSample {
                        at_ns: now_ns,
                        packets: s.capture.packets_read,
                        kernel_dropped: s.capture.kernel_dropped,
                        ack_events: s.capture_loss.ack_events,
                        unseen_ack_events: s.capture_loss.unseen_ack_events,
                    };
                    let alert = monitor.check(&sensor_id, sample);
                    ratio.set(monitor.ratio().map_or(0.0, |r| r.combined()));
                    if let Some(alert) = alert {
                        eprintln!("nbad-sensor: warning: {}", alert.message);
                        if let Ok(mut q) = queue.lock() {
                            if q.len() >= QUEUE {
                                q.pop_front();
                            }
                            q.push_back(alert);
                        }
                    }
                }
            })
            .context("cannot start the capture-loss thread")?;
        Ok(Self { stop, alerts, thread: Some(thread) })
    }

    /// The `capture_loss` alerts raised since the last call, oldest first.
    pub fn take_alerts(&self) -> Vec<Alert> {
        self.alerts.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default()
    }
}

impl Drop for LossWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
