//! Metrics that later stages fill in: alerts per detector, the health of each alert sink, and
//! the packet-to-alert latency. The endpoint exposes them now (zeros, no sinks) so that
//! dashboards can be built before the detectors and the delivery stage land.
//!
//! Where they are meant to be fed:
//! - [`AlertCounters::raised`]: once per alert, where the alert stage emits it;
//! - [`SinkHealth`]: by each sink after a delivery attempt (`delivered`, `failed`) and when
//!   its connection state changes (`set_up`);
//! - [`Hooks::alert`]: once per alert, where the alert stage emits it: counts it for its
//!   detector and records the time from the newest packet in its evidence to its emission, in
//!   all ([`Hooks::latency`]) and per detector ([`Hooks::latency_by_detector`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::histogram::{LatencyHistogram, LatencyQuantiles};
use crate::alert::Detector;

/// Every hook, shared by the stages and the endpoint.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Alerts raised, per detector.
    pub alerts: AlertCounters,
    /// Alert sinks.
    pub sinks: SinkHealth,
    /// Packet-to-alert latency.
    pub latency: LatencyHistogram,
    /// Packet-to-alert latency, per detector.
    pub latency_by_detector: DetectorLatency,
}

impl Hooks {
    /// One alert of `detector`, emitted `latency` after the newest packet of its evidence.
    pub fn alert(&self, detector: Detector, latency: std::time::Duration) {
        self.alerts.raised(detector);
        self.latency.record(latency);
        self.latency_by_detector.record(detector, latency);
    }
}

/// One latency histogram per detector.
#[derive(Debug)]
pub struct DetectorLatency {
    hists: [LatencyHistogram; Detector::ALL.len()],
}

impl Default for DetectorLatency {
    fn default() -> Self {
        Self { hists: std::array::from_fn(|_| LatencyHistogram::new()) }
    }
}

impl DetectorLatency {
    /// Records one latency of `detector`.
    pub fn record(&self, detector: Detector, latency: std::time::Duration) {
        if let Some(i) = Detector::ALL.iter().position(|d| *d == detector) {
            self.hists[i].record(latency);
        }
    }

    /// The quantiles of every detector that raised an alert.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(Detector, LatencyQuantiles)> {
        Detector::ALL.iter().zip(&self.hists).filter_map(|(d, h)| h.quantiles().map(|q| (*d, q))).collect()
    }
}

/// Alerts raised per detector.
#[derive(Debug, Default)]
pub struct AlertCounters {
    counts: [AtomicU64; Detector::ALL.len()],
}

impl AlertCounters {
    /// Counts one alert of `detector`.
    pub fn raised(&self, detector: Detector) {
        if let Some(i) = Detector::ALL.iter().position(|d| *d == detector) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(detector, alerts)` for every detector.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(Detector, u64)> {
        Detector::ALL.iter().zip(&self.counts).map(|(d, n)| (*d, n.load(Ordering::Relaxed))).collect()
    }
}

/// One sink's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkState {
    /// The sink can deliver now.
    pub up: bool,
    /// Alerts delivered.
    pub delivered: u64,
    /// Delivery attempts that failed.
    pub failed: u64,
}

/// Health of the alert sinks, by sink name.
#[derive(Debug, Default)]
pub struct SinkHealth {
    sinks: Mutex<BTreeMap<String, SinkState>>,
}

impl SinkHealth {
    fn update(&self, sink: &str, f: impl FnOnce(&mut SinkState)) {
        if let Ok(mut sinks) = self.sinks.lock() {
            f(sinks.entry(sink.to_owned()).or_default());
        }
    }

    /// Whether `sink` can deliver now.
    pub fn set_up(&self, sink: &str, up: bool) {
        self.update(sink, |s| s.up = up);
    }

    /// Sets `sink`'s state from the delivery stage's own cumulative counters.
    pub fn set(&self, sink: &str, up: bool, delivered: u64, failed: u64) {
        self.update(sink, |s| *s = SinkState { up, delivered, failed });
    }

    /// Counts `n` alerts delivered by `sink`.
    pub fn delivered(&self, sink: &str, n: u64) {
        self.update(sink, |s| s.delivered += n);
    }

    /// Counts `n` failed delivery attempts of `sink`.
    pub fn failed(&self, sink: &str, n: u64) {
        self.update(sink, |s| s.failed += n);
    }

    /// Every sink's state, by name.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<String, SinkState> {
        self.sinks.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
