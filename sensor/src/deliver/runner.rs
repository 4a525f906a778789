//! The delivery loop, one task per sink, the same for every sink: read a batch from the sink's
//! cursor, drop what is below `min_score`, send, retry what the receiver did not take (capped
//! exponential backoff, full jitter, Retry-After), dead-letter what it refused for good, and
//! only then move the cursor. A failing sink logs one line when it starts failing (and at most
//! one a minute while it keeps failing) and one when it recovers, never one per retry.
//!
//! Shutdown: in [`Control::Drain`] the loop goes on until the sink has had everything that was
//! spooled when the drain began acknowledged, or the deadline passes; an in-flight send or
//! backoff is abandoned at the deadline, and what was not acknowledged stays in the spool for
//! the next start.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::config::SinkSettings;
use super::dead_letter::DeadLetter;
use super::metrics::SinkStats;
use super::retry::{Backoff, SendError};
use super::sink::Sink;
use super::spool::Spool;
use super::spool::reader::{Reader, Spooled};
use crate::alert::Alert;

/// How often a sink that keeps failing logs again.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// How long an idle sink sleeps before looking at the spool again (appends wake it sooner).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What the delivery thread is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Deliver as alerts come.
    Run,
    /// Deliver what is spooled, then stop; stop at this instant in any case.
    Drain(Instant),
}

/// One line when a sink starts failing, then at most one per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct FailureLog {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    failures: u64,
    suppressed: u64,
}

impl FailureLog {
    fn failure(&mut self, sink: &str, kind: &str, reason: &str) {
        self.failures += 1;
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        if self.last_logged.is_some_and(|t| now - t < LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        let repeat = if self.suppressed > 0 {
            format!(" ({} more failures since the last report)", self.suppressed)
        } else {
            String::new()
        };
        eprintln!(
            "nbad-sensor: alert sink {sink} ({kind}) cannot deliver: {reason}; the alerts stay in the spool and are \
             retried with backoff{repeat}"
        );
        self.last_logged = Some(now);
        self.suppressed = 0;
    }

    fn success(&mut self, sink: &str) {
        if let Some(since) = self.failing_since.take() {
            eprintln!(
                "nbad-sensor: alert sink {sink} delivers again after {} failed attempts over {:.0?}",
                self.failures,
                since.elapsed()
            );
        }
        *self = Self::default();
    }
}

/// Runs `fut` unless the drain deadline passes first (`None` then).
async fn or_deadline<T>(control: &mut watch::Receiver<Control>, fut: impl Future<Output = T>) -> Option<T> {
    tokio::pin!(fut);
    loop {
        let deadline = match *control.borrow() {
            Control::Drain(at) => Some(at),
            Control::Run => None,
        };
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => return None,
            changed = control.changed(), if deadline.is_none() => {
                if changed.is_err() {
                    // The handle is gone without a drain: behave as a drain that ended now.
                    return None;
                }
            }
        }
    }
}

/// One sink's delivery task.
#[derive(Debug)]
pub(crate) struct SinkTask {
    pub sink: Sink,
    pub reader: Reader,
    pub settings: SinkSettings,
    pub stats: Arc<SinkStats>,
    pub dead: Arc<DeadLetter>,
    pub spool: Arc<Spool>,
    pub control: watch::Receiver<Control>,
}

impl SinkTask {
    /// Delivers until drained (see the module docs).
    pub(crate) async fn run(mut self) {
        let mut appended = self.spool.watch();
        let mut log = FailureLog::default();
        let mut backoff = Backoff::new(self.settings.retry_initial, self.settings.retry_max);
        let mut drain_target = None;
        self.stats.cursor.store(self.reader.cursor(), Relaxed);
        loop {
            if let Control::Drain(deadline) = *self.control.borrow() {
                let target = *drain_target.get_or_insert_with(|| self.spool.next_seq());
                if self.reader.cursor() >= target || Instant::now() >= deadline {
                    break;
                }
            }
            let records = match self.reader.next_batch(self.settings.batch_max_events) {
                Ok(records) => records,
                Err(e) => {
                    log.failure(&self.settings.name, self.stats.kind, &format!("reading the spool: {e}"));
                    if or_deadline(&mut self.control, tokio::time::sleep(IDLE_POLL)).await.is_none() {
                        break;
                    }
                    continue;
                }
            };
            let Some(last) = records.last().map(|r| r.seq) else {
                self.stats.oldest_pending_ms.store(0, Relaxed);
                if drain_target.is_some() {
                    break;
                }
                tokio::select! {
                    _ = appended.changed() => {}
                    _ = self.control.changed() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            };
            self.stats.oldest_pending_ms.store(records[0].appended_ms, Relaxed);
            if !self.deliver(&records, &mut backoff, &mut log).await {
                break;
            }
            if let Err(e) = self.reader.commit(last + 1) {
                log.failure(&self.settings.name, self.stats.kind, &format!("saving the cursor: {e}"));
            }
            self.stats.cursor.store(self.reader.cursor(), Relaxed);
        }
    }

    fn dead_letter(&self, payload: &[u8], reason: &str) {
        self.stats.dead_lettered.fetch_add(1, Relaxed);
        if let Err(e) = self.dead.write(&self.settings.name, reason, payload) {
            eprintln!(
                "nbad-sensor: alert sink {}: cannot write the dead-letter file {}: {e}; alert: {}",
                self.settings.name,
                self.dead.path().display(),
                String::from_utf8_lossy(payload)
            );
        }
    }

    /// Sends `records` until each is acknowledged or dead-lettered. False when the drain
    /// deadline cut it short (nothing after the last commit counts as delivered then).
    async fn deliver(&mut self, records: &[Spooled], backoff: &mut Backoff, log: &mut FailureLog) -> bool {
        let name = self.settings.name.clone();
        let mut pending: Vec<(&Spooled, Alert)> = Vec::with_capacity(records.len());
        for r in records {
            match serde_json::from_slice::<Alert>(&r.payload) {
                Ok(a) if a.risk_score >= self.settings.min_score => pending.push((r, a)),
                Ok(_) => {
                    self.stats.filtered.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    self.dead_letter(&r.payload, &format!("spooled record {} is not an alert: {e}", r.seq))
                }
            }
        }
        let mut first = true;
        while !pending.is_empty() {
            if !first {
                self.stats.retried.fetch_add(pending.len() as u64, Relaxed);
            }
            first = false;
            let batch: Vec<Alert> = pending.iter().map(|(_, a)| a.clone()).collect();
            let started = std::time::Instant::now();
            let Some(outcome) = or_deadline(&mut self.control, self.sink.send(&batch)).await else {
                return false;
            };
            self.stats.record_latency(started.elapsed());
            let (retry_after, reason) = match outcome {
                Ok(rejected) => {
                    self.stats.sent.fetch_add((batch.len() - rejected.len()) as u64, Relaxed);
                    let mut again = Vec::new();
                    let mut last_reason = None;
                    let mut retry_after = None;
                    for (i, err) in rejected {
                        match err {
                            SendError::Permanent { reason } => {
                                self.dead_letter(&pending[i].0.payload, &reason)
                            }
                            SendError::Retriable { reason, retry_after: after } => {
                                again.push(i);
                                last_reason = Some(reason);
                                retry_after = retry_after.max(after);
                            }
                        }
                    }
                    let Some(reason) = last_reason else {
                        log.success(&name);
                        self.stats.set_error(None);
                        backoff.reset();
                        return true;
                    };
                    let mut keep = again.into_iter().peekable();
                    let mut index = 0;
                    pending.retain(|_| {
                        let kept = keep.next_if_eq(&index).is_some();
                        index += 1;
                        kept
                    });
                    (
                        retry_after,
                        format!("{} of {} alerts not accepted: {reason}", pending.len(), batch.len()),
                    )
                }
                Err(SendError::Permanent { reason }) => {
                    for (r, _) in &pending {
                        self.dead_letter(&r.payload, &reason);
                    }
                    log.failure(
                        &name,
                        self.stats.kind,
                        &format!(
                            "{} alerts dead-lettered to {}: {reason}",
                            pending.len(),
                            self.dead.path().display()
                        ),
                    );
                    self.stats.set_error(Some(&reason));
                    return true;
                }
                Err(SendError::Retriable { reason, retry_after }) => {
                    self.stats.failed.fetch_add(1, Relaxed);
                    (retry_after, reason)
                }
            };
            self.stats.set_error(Some(&reason));
            log.failure(&name, self.stats.kind, &reason);
            let delay = backoff.next(retry_after);
            if or_deadline(&mut self.control, tokio::time::sleep(delay)).await.is_none() {
                return false;
            }
        }
        true
    }
}
