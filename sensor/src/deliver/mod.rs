//! Alert delivery to collectors and SIEMs: at-least-once, no alert lost.
//!
//! Every alert is first appended to an on-disk [`spool`] (CRC-checked records in segment
//! files, bounded in bytes, fsync policy from the config). One task per configured sink reads
//! the spool from that sink's own cursor, sends in batches and moves the cursor only when the
//! receiver acknowledged (or the alert was dead-lettered for good); a segment is deleted once
//! every sink's cursor has passed it. So a receiver that is down, a full network, or a sensor
//! killed with SIGKILL loses nothing: on restart the spool is replayed from each cursor before
//! new alerts. Duplicates can happen (at-least-once) and carry the same `event.id`.
//!
//! - [`config`]: `[alerts]` and `[[alerts.sinks]]`, raw and validated (`validate.rs` checks,
//!   `effective.rs` prints them back).
//! - [`spool`]: segments, records, cursors, recovery, the full policy.
//! - `sink/`: one module per receiver, all of one shape (settings → batch → encode → send).
//! - `format/`: ECS, OCSF 2004, CEF, LEEF 2.0, RFC 5424, and ECS read back for `alerts send`.
//! - `runner.rs`: the per-sink loop (batch, retry, dead letter, cursor); `retry.rs`: error
//!   classes and backoff; `dead_letter.rs`; [`metrics`].
//! - [`cli`]: `nbad-sensor alerts send`.
//!
//! Threads: [`Delivery::submit`] runs on the caller's thread (serialise + one `write`); the
//! sinks run on one `nbad-deliver` thread holding a single-threaded tokio runtime.

pub mod cli;
pub mod config;
mod dead_letter;
mod effective;
pub(crate) mod format;
pub mod metrics;
mod retry;
mod runner;
mod sink;
pub mod spool;
mod validate;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

pub use config::{
    DeliverySettings, Format, FsyncPolicy, SinkKind, SinkSettings, SyslogProtocol, TlsSettings,
};
pub use format::ecs_in::{NotAnAlert, parse_line};
pub use metrics::{DeliveryMetrics, LatencySummary, SinkMetrics};
pub use sink::BuildError;
pub use spool::{SpoolError, SpoolMetrics};

use self::dead_letter::DeadLetter;
use self::metrics::SinkStats;
use self::runner::{Control, SinkTask};
use self::sink::Sink;
use self::spool::Spool;
use self::spool::reader::Reader;
use crate::alert::Alert;

/// Why delivery could not start or take an alert.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The spool could not be opened or written, or is full.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A sink's settings could not be turned into a client (CA file, client certificate, URL).
    #[error(transparent)]
    Sink(#[from] BuildError),
    /// The alert could not be serialised.
    #[error("cannot serialise the alert: {0}")]
    Encode(#[from] serde_json::Error),
    /// The delivery thread could not be started.
    #[error("cannot start the alert delivery thread: {0}")]
    Thread(std::io::Error),
}

/// Alert deliveries still pending in the spool when a command ended: they stay there for the
/// next start (or `alerts send`). The command line maps this to its own exit code (3), so that
/// scripts can tell "ran, but the collector did not get everything" from a failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{pending} alert deliveries are still pending after {} s of delivery; they stay in the spool {} for the next run (or `nbad-sensor alerts send`)",
    waited.as_secs_f64(),
    spool.display()
)]
pub struct Undelivered {
    /// Deliveries pending, summed over the sinks (an alert two sinks lack counts twice).
    pub pending: u64,
    /// The spool directory.
    pub spool: std::path::PathBuf,
    /// How long delivery was given.
    pub waited: Duration,
}

/// The running delivery: the spool and the sink tasks.
#[derive(Debug)]
pub struct Delivery {
    spool: Option<Arc<Spool>>,
    stats: Vec<Arc<SinkStats>>,
    control: watch::Sender<Control>,
    thread: Option<JoinHandle<()>>,
    unrouted: AtomicU64,
}

impl Delivery {
    /// Opens the spool (recovering what a previous run left), builds every sink and starts the
    /// delivery thread. Nothing is connected here: an unreachable receiver does not stop the
    /// start, it shows in the log and the metrics. With no sinks configured there is no spool
    /// and [`submit`](Self::submit) only counts (`unrouted`).
    pub fn start(settings: &DeliverySettings, sensor_id: &str) -> Result<Self, DeliverError> {
        let (control, control_rx) = watch::channel(Control::Run);
        if settings.sinks.is_empty() {
            return Ok(Self {
                spool: None,
                stats: Vec::new(),
                control,
                thread: None,
                unrouted: AtomicU64::new(0),
            });
        }
        let spool = Arc::new(Spool::open(settings)?);
        let dead = Arc::new(DeadLetter::new(&settings.dead_letter));
        let mut tasks = Vec::with_capacity(settings.sinks.len());
        let mut stats = Vec::with_capacity(settings.sinks.len());
        for s in &settings.sinks {
            let sink = Sink::build(s, sensor_id)?;
            let st = Arc::new(SinkStats::new(&s.name, s.kind.type_name()));
            let reader = Reader::open(&spool, &s.name);
            st.cursor.store(reader.cursor(), Relaxed);
            stats.push(Arc::clone(&st));
            tasks.push(SinkTask {
                sink,
                reader,
                settings: s.clone(),
                stats: st,
                dead: Arc::clone(&dead),
                spool: Arc::clone(&spool),
                control: control_rx.clone(),
            });
        }
        let fsync_every = match settings.fsync {
            FsyncPolicy::Interval(every) => Some(every),
            FsyncPolicy::Always | FsyncPolicy::Never => None,
        };
        let ticker_spool = Arc::clone(&spool);
        let mut ticker_control = control_rx;
        let thread = std::thread::Builder::new()
            .name("nbad-deliver".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("nbad-sensor: cannot start the alert delivery runtime: {e}; alerts stay in the spool");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut set = tokio::task::JoinSet::new();
                    for task in tasks {
                        set.spawn(task.run());
                    }
                    if let Some(every) = fsync_every {
                        // The `interval` policy's timer: a quiet spool is synced too.
                        set.spawn(async move {
                            while *ticker_control.borrow() == Control::Run {
                                tokio::select! {
                                    () = tokio::time::sleep(every) => {
                                        if let Err(e) = ticker_spool.flush() {
                                            eprintln!("nbad-sensor: {e}");
                                        }
                                    }
                                    changed = ticker_control.changed() => if changed.is_err() { break },
                                }
                            }
                        });
                    }
                    while set.join_next().await.is_some() {}
                });
            })
            .map_err(DeliverError::Thread)?;
        Ok(Self { spool: Some(spool), stats, control, thread: Some(thread), unrouted: AtomicU64::new(0) })
    }

    /// Appends `alert` to the spool; the sinks pick it up from there. Cheap (serialisation and
    /// one `write`), except when the spool is full: then it blocks for at most
    /// `alerts.full_wait_ms` and returns [`SpoolError::Full`] (counted in `spool.refused`).
    pub fn submit(&self, alert: &Alert) -> Result<(), DeliverError> {
        let Some(spool) = &self.spool else {
            self.unrouted.fetch_add(1, Relaxed);
            return Ok(());
        };
        let json = serde_json::to_vec(alert)?;
        spool.append(&json)?;
        Ok(())
    }

    /// A snapshot of the spool's and every sink's counters.
    #[must_use]
    pub fn metrics(&self) -> DeliveryMetrics {
        let Some(spool) = &self.spool else {
            return DeliveryMetrics { unrouted: self.unrouted.load(Relaxed), ..DeliveryMetrics::default() };
        };
        let spool_metrics = spool.metrics();
        let now = spool::now_ms();
        DeliveryMetrics {
            sinks: self.stats.iter().map(|s| s.snapshot(spool_metrics.next_seq, now)).collect(),
            spool: spool_metrics,
            unrouted: self.unrouted.load(Relaxed),
        }
    }

    /// Delivers what is spooled for at most `drain_timeout`, then stops the sinks (their
    /// cursors are saved after every acknowledged batch) and syncs the spool. What was not
    /// delivered stays spooled for the next start. Returns the final metrics.
    pub fn shutdown(mut self, drain_timeout: Duration) -> DeliveryMetrics {
        self.stop(drain_timeout);
        self.metrics()
    }

    fn stop(&mut self, drain_timeout: Duration) {
        self.control.send_replace(Control::Drain(tokio::time::Instant::now() + drain_timeout));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!(
                "nbad-sensor: the alert delivery thread panicked; undelivered alerts stay in the spool"
            );
        }
        if let Some(spool) = &self.spool
            && let Err(e) = spool.flush()
        {
            eprintln!("nbad-sensor: {e}");
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests;
