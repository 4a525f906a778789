//! What the console remembers of the run: the most recent alerts and incident records, fed by
//! the same alert hook the sinks use, and the verdicts given through the console.
//!
//! Bounded: at most `max_alerts` alerts and as many incident records; the oldest go first.
//! The engine's own ledger (for verdicts) is separate and larger; this is only what the pages
//! list.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::alert::Alert;
use crate::alert::incident::IncidentRecord;

/// One incident as its latest record tells it.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The incident's id.
    pub id: String,
    /// The latest record (its alert carries the host, the risk score and the message).
    pub latest: Arc<Alert>,
}

impl Incident {
    /// The record itself.
    #[must_use]
    pub fn record(&self) -> Option<&IncidentRecord> {
        self.latest.record.as_deref()
    }
}

/// A verdict given through the console, as shown on its alert's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The alert or incident id.
    pub id: String,
    /// The verdict's name.
    pub verdict: String,
    /// Who gave it.
    pub author: String,
    /// What it did, in words.
    pub outcome: String,
}

#[derive(Debug, Default)]
struct Inner {
    alerts: VecDeque<Arc<Alert>>,
    records: VecDeque<Arc<Alert>>,
    given: VecDeque<Given>,
    raised: u64,
}

/// The shared store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    cap: usize,
}

impl Store {
    /// A store keeping at most `cap` alerts and `cap` incident records.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self { inner: Arc::default(), cap: cap.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A page handler that panicked leaves plain data behind: still readable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a batch of alerts as the analysis stage raises them.
    pub fn add(&self, alerts: &[Alert]) {
        let mut s = self.lock();
        for a in alerts {
            let a = Arc::new(a.clone());
            if a.record.is_some() {
                s.records.push_back(a);
                if s.records.len() > self.cap {
                    s.records.pop_front();
                }
            } else {
                s.raised += 1;
                s.alerts.push_back(a);
                if s.alerts.len() > self.cap {
                    s.alerts.pop_front();
                }
            }
        }
    }

    /// Alerts raised since the start (not only those remembered).
    #[must_use]
    pub fn raised(&self) -> u64 {
        self.lock().raised
    }

    /// The remembered alerts, newest first.
    #[must_use]
    pub fn alerts(&self) -> Vec<Arc<Alert>> {
        self.lock().alerts.iter().rev().cloned().collect()
    }

    /// The alert with `id`, if remembered.
    #[must_use]
    pub fn alert(&self, id: &str) -> Option<Arc<Alert>> {
        self.lock().alerts.iter().rev().find(|a| a.id == id).cloned()
    }

    /// Remembered alerts of `host`, newest first.
    #[must_use]
    pub fn alerts_of(&self, host: std::net::IpAddr) -> Vec<Arc<Alert>> {
        self.lock().alerts.iter().rev().filter(|a| a.host == host).cloned().collect()
    }

    /// Remembered alerts of incident `id`, oldest first.
    #[must_use]
    pub fn alerts_in(&self, id: &str) -> Vec<Arc<Alert>> {
        self.lock()
            .alerts
            .iter()
            .filter(|a| a.incident.as_ref().is_some_and(|i| i.id == id))
            .cloned()
            .collect()
    }

    /// Incidents by their latest record, highest risk first.
    #[must_use]
    pub fn incidents(&self) -> Vec<Incident> {
        let s = self.lock();
        let mut out: Vec<Incident> = Vec::new();
        for r in s.records.iter().rev() {
            let Some(id) = r.incident.as_ref().map(|i| i.id.clone()) else { continue };
            if !out.iter().any(|i| i.id == id) {
                out.push(Incident { id, latest: Arc::clone(r) });
            }
        }
        out.sort_by(|a, b| {
            let risk = |i: &Incident| i.record().map_or(0.0, |r| r.risk);
            risk(b).total_cmp(&risk(a)).then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// Notes a verdict given through the console.
    pub fn note_given(&self, given: Given) {
        let mut s = self.lock();
        s.given.push_back(given);
        if s.given.len() > self.cap {
            s.given.pop_front();
        }
    }

    /// Verdicts given through the console on `id`, oldest first.
    #[must_use]
    pub fn given_on(&self, id: &str) -> Vec<Given> {
        self.lock().given.iter().filter(|g| g.id == id).cloned().collect()
    }
}
