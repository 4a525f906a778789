//! Per-sink counters, the send-latency histogram, and the plain snapshot the rest of the sensor
//! reads ([`DeliveryMetrics`], serde `Serialize`, for the stats JSON and a Prometheus endpoint).
//!
//! Counters are atomics bumped by the sink's own task; the histogram (microseconds,
//! 1 µs – 1 h, 3 significant digits) sits behind a mutex taken once per request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::spool::SpoolMetrics;

/// Everything delivery measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliveryMetrics {
    /// The shared spool.
    pub spool: SpoolMetrics,
    /// One entry per sink, in configuration order.
    pub sinks: Vec<SinkMetrics>,
    /// Alerts submitted while no sink was configured (there is no spool then).
    pub unrouted: u64,
}

/// One sink's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SinkMetrics {
    /// `name` from the configuration.
    pub name: String,
    /// `type` from the configuration.
    pub kind: String,
    /// Alerts the receiver acknowledged (a bulk 409 counts: it already had them).
    pub sent: u64,
    /// Requests (or connections) that failed.
    pub failed: u64,
    /// Alerts sent again after a failure.
    pub retried: u64,
    /// Alerts written to the dead-letter file.
    pub dead_lettered: u64,
    /// Alerts below the sink's `min_score`, skipped.
    pub filtered: u64,
    /// Spooled alerts this sink has not had acknowledged yet.
    pub spool_depth: u64,
    /// Age of the oldest of them, in milliseconds (0 when none).
    pub oldest_age_ms: u64,
    /// False from a failed send until the next successful one.
    pub healthy: bool,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// Send latency, microseconds.
    pub latency_us: LatencySummary,
}

/// Quantiles of a latency histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// A sink's live counters.
#[derive(Debug)]
pub(crate) struct SinkStats {
    pub name: String,
    pub kind: &'static str,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub filtered: AtomicU64,
    /// The cursor: first sequence number not acknowledged.
    pub cursor: AtomicU64,
    /// Spool time of the oldest record read but not acknowledged, ms since the epoch; 0 = none.
    pub oldest_pending_ms: AtomicU64,
    pub healthy: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    latency: Mutex<Histogram<u64>>,
}

impl SinkStats {
    pub(crate) fn new(name: &str, kind: &'static str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            cursor: AtomicU64::new(0),
            oldest_pending_ms: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid"),
            ),
        }
    }

    pub(crate) fn record_latency(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).clamp(1, 3_600_000_000);
        let mut h = self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = h.record(us);
    }

    pub(crate) fn set_error(&self, reason: Option<&str>) {
        self.healthy.store(reason.is_none(), Relaxed);
        if let Some(reason) = reason {
            *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(reason.to_owned());
        }
    }

    /// The snapshot, with the spool's `next_seq` and the wall clock `now_ms` for the gauges.
    pub(crate) fn snapshot(&self, next_seq: u64, now_ms: u64) -> SinkMetrics {
        let latency = {
            let h = self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            LatencySummary {
                count: h.len(),
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            }
        };
        let oldest = self.oldest_pending_ms.load(Relaxed);
        SinkMetrics {
            name: self.name.clone(),
            kind: self.kind.to_owned(),
            sent: self.sent.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            spool_depth: next_seq.saturating_sub(self.cursor.load(Relaxed).max(1)),
            oldest_age_ms: if oldest == 0 { 0 } else { now_ms.saturating_sub(oldest) },
            healthy: self.healthy.load(Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
            latency_us: latency,
        }
    }
}
