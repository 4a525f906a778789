//! Analysts' verdicts and what they change: the alert ledger, scoped
//! suppressions, per-group threshold raises, and the precision and
//! time-to-detect figures.
//!
//! The [`Book`] owns it all and is saved with the baselines (the state file's
//! `verdicts`), so verdicts survive a restart and an upgrade.
//!
//! - **Ledger**: the last `max_alerts` raised alerts, each reduced to what a
//!   verdict needs ([`Entry`]: detector, rule, host, peer or peer domain, port,
//!   observed value and threshold, its window and incident). A verdict names an
//!   alert id (or an incident id: every ledger alert of the incident).
//! - **Verdicts**: `true_positive`, `false_positive` or `benign_expected`, each
//!   with a reason, an author and an optional expiry. A verdict keeps a copy of
//!   its alert's entry, so figures outlive the ledger.
//! - **Suppressions** ([`scope`]): a `false_positive` or `benign_expected`
//!   verdict silences later findings of the same host (or the CIDR the analyst
//!   gives), detector, rule, peer or peer domain and port whose value stays
//!   within `value_margin` of the judged one, until the expiry. Never a
//!   detector-wide silence. A finding in scope but past the bound is raised and
//!   its evidence names the suppression it escaped.
//! - **Threshold raises**: from `raise_after` false positives of one rule on
//!   one peer group (the host itself when `host_outlier` has not grouped it)
//!   on, that rule's threshold for the group is raised by `raise_step` per
//!   further false positive, at most to `max_raise` times; the alert says so.
//! - **Baseline** (in [`super::baseline`]): a bucket that raised a volume
//!   (exfiltration) alert is held for `hold_s` before it is learned at the
//!   guard weight (a bucket with other findings is learned at it at once). A benign or
//!   false-positive verdict in that time learns it at full weight; a
//!   true-positive verdict keeps it out for good.
//!
//! Time is the sensor's packet clock throughout: a verdict's expiry counts from
//! the clock when it is given (the live sensor's, or the state file's snapshot
//! time when given against a stopped sensor's state).

pub mod figures;
pub mod scope;

use std::collections::VecDeque;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::baseline::{HostBaseline, Metric};
use super::config::DetectionSettings;
use super::exfiltration;
use super::state::State;
use crate::alert::{Alert, Detector, Evidence};

pub use figures::Figures;
pub use scope::Suppression;

/// `[detection.verdicts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Raised alerts remembered for verdicts, most recent first out.
    pub max_alerts: u64,
    /// Suppressions at most; beyond it the one expiring first goes.
    pub max_suppressions: u64,
    /// Expiry of a suppression whose verdict gives none, seconds.
    pub default_expiry_s: i64,
    /// The longest expiry a verdict may give, seconds.
    pub max_expiry_s: i64,
    /// A suppression covers values up to this multiple of the judged alert's value.
    pub value_margin: f64,
    /// How long a bucket that raised a volume (exfiltration) alert waits for a verdict before it
    /// is learned at the guard weight, seconds.
    pub hold_s: i64,
    /// False positives of one rule on one peer group before its threshold rises.
    pub raise_after: u64,
    /// The raise per false positive from `raise_after` on (0.25: ×1.25, ×1.5, ...).
    pub raise_step: f64,
    /// The most a threshold is raised, as a factor.
    pub max_raise: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_alerts: 20_000,
            max_suppressions: 10_000,
            default_expiry_s: 30 * 86_400,
            max_expiry_s: 365 * 86_400,
            value_margin: 1.5,
            hold_s: 3_600,
            raise_after: 3,
            raise_step: 0.25,
            max_raise: 2.0,
        }
    }
}

/// What an analyst says of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A real attack or policy breach.
    TruePositive,
    /// The detector was wrong.
    FalsePositive,
    /// Right about the behaviour, which is expected (a backup job, a scanner of the IT team).
    BenignExpected,
}

impl Kind {
    /// Every kind, as the CLI and the documentation name them.
    pub const ALL: [Self; 3] = [Self::TruePositive, Self::FalsePositive, Self::BenignExpected];

    /// The name in requests, the state file and figures.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::TruePositive => "true_positive",
            Self::FalsePositive => "false_positive",
            Self::BenignExpected => "benign_expected",
        }
    }

    /// The kind named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the alert should not have reached an analyst (it creates a suppression).
    #[must_use]
    pub fn is_benign(self) -> bool {
        !matches!(self, Self::TruePositive)
    }
}

/// What a verdict needs of a raised alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `event.id`.
    pub id: String,
    /// When raised, ns.
    pub ts_ns: u64,
    /// The detector.
    pub detector: Detector,
    /// The rule within it (`details.rule`, else the evidence's metric).
    pub rule: String,
    /// The host at fault.
    pub host: IpAddr,
    /// The peer, where one applies.
    pub peer: Option<IpAddr>,
    /// The peer's domain (registered domain, SNI or HTTP Host), where the evidence names one.
    pub peer_domain: Option<String>,
    /// The port, where one applies.
    pub port: Option<u16>,
    /// The observed value.
    pub observed: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The risk score.
    pub score: u8,
    /// Start of the evidence window, ns (time to detect counts from it).
    pub window_start_ns: u64,
    /// End of the evidence window, ns (a held baseline bucket ends here).
    pub window_end_ns: u64,
    /// The incident it joined.
    pub incident: Option<String>,
    /// The host's peer group when raised.
    pub group: Option<u16>,
    /// The evidence's window name (`details.window`), where it has one.
    #[serde(default)]
    pub window: Option<String>,
}

impl Entry {
    /// The entry of a raised alert.
    #[must_use]
    pub fn of(alert: &Alert, group: Option<u16>) -> Self {
        let e = &alert.evidence;
        Self {
            id: alert.id.clone(),
            ts_ns: alert.timestamp_ns,
            detector: alert.detector,
            rule: scope::rule_of(e),
            host: alert.host,
            peer: alert.peer,
            peer_domain: scope::peer_domain_of(e),
            port: alert.port,
            observed: e.observed,
            threshold: e.threshold,
            score: alert.risk_score,
            window_start_ns: e.window_start_ns,
            window_end_ns: e.window_end_ns,
            incident: alert.incident.as_ref().map(|i| i.id.clone()),
            group,
            window: e.details.get("window").and_then(serde_json::Value::as_str).map(str::to_owned),
        }
    }
}

/// One verdict as given, with a copy of its alert's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The alert judged.
    pub alert: Entry,
    /// What the analyst said.
    pub verdict: Kind,
    /// Why.
    pub reason: String,
    /// Who.
    pub author: String,
    /// When given (the sensor's clock), ns.
    pub given_ns: u64,
    /// When its suppression ends, ns (benign kinds only).
    pub expires_ns: Option<u64>,
}

/// A verdict request, from the CLI or the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// An alert id, or an incident id (every remembered alert of it).
    pub id: String,
    /// `true_positive`, `false_positive` or `benign_expected`.
    pub verdict: String,
    /// Why (required).
    pub reason: String,
    /// Who (required).
    pub author: String,
    /// Seconds until the suppression ends (default `default_expiry_s`).
    #[serde(default)]
    pub expires_s: Option<u64>,
    /// Widen the suppression's host to this network (it must hold the alert's host).
    #[serde(default)]
    pub host_cidr: Option<String>,
}

/// What a verdict did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Alerts judged (one, or an incident's).
    pub alerts: Vec<String>,
    /// Suppressions created.
    pub suppressions: Vec<Suppression>,
    /// Held baseline buckets the verdict settled (learned at full weight, or kept out).
    pub buckets_settled: u32,
    /// Threshold raises now in force because of it: `detector/rule@group ×factor`.
    pub threshold_raises: Vec<String>,
}

impl Outcome {
    /// What the verdict did, in one line (the CLI's message, the console's note).
    #[must_use]
    pub fn summary(&self) -> String {
        let raised = if self.threshold_raises.is_empty() {
            String::new()
        } else {
            format!("; thresholds raised: {}", self.threshold_raises.join(", "))
        };
        format!(
            "recorded for {} alert(s); {} suppression(s) created, {} held bucket(s) settled{raised}",
            self.alerts.len(),
            self.suppressions.len(),
            self.buckets_settled,
        )
    }
}

/// Why a verdict was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    /// No remembered alert or incident has that id.
    #[error("no alert or incident {0:?} is remembered (the ledger keeps the last {1} alerts)")]
    Unknown(String, u64),
    /// The verdict is not one of the kinds.
    #[error("verdict {0:?} is not one of true_positive, false_positive, benign_expected")]
    BadKind(String),
    /// A required field is empty.
    #[error("{0} is required and must not be empty")]
    Missing(&'static str),
    /// The expiry is over the maximum.
    #[error("expires_s {0} is over detection.verdicts.max_expiry_s ({1})")]
    Expiry(u64, i64),
    /// The CIDR does not parse or does not hold the host.
    #[error("host_cidr {0:?} {1}")]
    Cidr(String, &'static str),
}

/// A key of the threshold raises: detector, rule, and peer group (or host).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    /// The detector.
    pub detector: Detector,
    /// The rule.
    pub rule: String,
    /// `group:N` for a peer group, `host:IP` for an ungrouped host.
    pub group: String,
}

impl GroupKey {
    /// The key of `detector`/`rule` for a host in `group`.
    #[must_use]
    pub fn new(detector: Detector, rule: &str, host: IpAddr, group: Option<u16>) -> Self {
        let group = group.map_or_else(|| format!("host:{host}"), |g| format!("group:{g}"));
        Self { detector, rule: rule.to_owned(), group }
    }

    fn describe(&self) -> String {
        format!("{}/{}@{}", self.detector.name(), self.rule, self.group)
    }
}

/// Counters of what verdicts did to findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Findings a suppression silenced.
    pub suppressed: u64,
    /// Findings under a raised threshold.
    pub below_raised_threshold: u64,
    /// Suppressions that expired.
    pub expired: u64,
}

/// What the statistics and the metrics endpoint show of the verdicts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictStats {
    /// Precision per detector and rule, time to detect.
    pub figures: Figures,
    /// Suppressions in force.
    pub suppressions_active: u64,
    /// What verdicts did to findings.
    pub counters: Counters,
}

/// The ledger, verdicts and suppressions: saved with the baselines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Book {
    /// Raised alerts, oldest first.
    pub ledger: VecDeque<Entry>,
    /// Verdicts given, oldest first.
    pub verdicts: Vec<Verdict>,
    /// Suppressions in force.
    pub suppressions: Vec<Suppression>,
    /// False positives per rule and peer group.
    pub false_positives: Vec<(GroupKey, u64)>,
    /// What verdicts did to findings.
    pub counters: Counters,
}

impl Book {
    /// Remembers a raised alert.
    pub fn remember(&mut self, entry: Entry, settings: &Settings) {
        let cap = usize::try_from(settings.max_alerts).unwrap_or(usize::MAX).max(1);
        while self.ledger.len() >= cap {
            self.ledger.pop_front();
        }
        self.ledger.push_back(entry);
    }

    /// The remembered alerts a verdict on `id` judges: the alert, or every alert of the incident.
    #[must_use]
    pub fn judged(&self, id: &str) -> Vec<&Entry> {
        if let Some(e) = self.ledger.iter().rev().find(|e| e.id == id) {
            return vec![e];
        }
        self.ledger.iter().filter(|e| e.incident.as_deref() == Some(id)).collect()
    }

    /// The real alert or incident id behind `shown`, an id as a pseudonymising output wrote it
    /// (`pseudonym` maps a real id to its pseudonym); `None` when `shown` is itself remembered
    /// or names nothing remembered.
    #[must_use]
    pub fn real_id(&self, shown: &str, pseudonym: impl Fn(&str) -> String) -> Option<String> {
        if !self.judged(shown).is_empty() {
            return None;
        }
        self.ledger
            .iter()
            .flat_map(|e| std::iter::once(e.id.as_str()).chain(e.incident.as_deref()))
            .find(|id| pseudonym(id) == shown)
            .map(str::to_owned)
    }

    /// The threshold factor in force for `key` (1 when not raised).
    #[must_use]
    pub fn raise_factor(&self, key: &GroupKey, settings: &Settings) -> (f64, u64) {
        let n = self.false_positives.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n);
        (factor(n, settings), n)
    }

    /// Applies a verdict given at `now_ns`; the caller settles the held buckets of the returned
    /// outcome's alerts (it owns the baselines).
    ///
    /// # Errors
    /// A [`VerdictError`] naming what is wrong; nothing changes then.
    pub fn give(&mut self, req: &Request, now_ns: u64, settings: &Settings) -> Result<Outcome, VerdictError> {
        let kind = Kind::from_name(&req.verdict).ok_or_else(|| VerdictError::BadKind(req.verdict.clone()))?;
        if req.reason.trim().is_empty() {
            return Err(VerdictError::Missing("reason"));
        }
        if req.author.trim().is_empty() {
            return Err(VerdictError::Missing("author"));
        }
        let expires_s = req.expires_s.unwrap_or(u64::try_from(settings.default_expiry_s).unwrap_or(0));
        if i64::try_from(expires_s).map_or(true, |s| s > settings.max_expiry_s) {
            return Err(VerdictError::Expiry(expires_s, settings.max_expiry_s));
        }
        let judged: Vec<Entry> = self.judged(&req.id).into_iter().cloned().collect();
        if judged.is_empty() {
            return Err(VerdictError::Unknown(req.id.clone(), settings.max_alerts));
        }
        let cidr = match req.host_cidr.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let net: IpNet =
                    text.parse().map_err(|_| VerdictError::Cidr(text.to_owned(), "is not a network"))?;
                if judged.iter().any(|e| !net.contains(&e.host)) {
                    return Err(VerdictError::Cidr(text.to_owned(), "does not hold the alert's host"));
                }
                Some(net.trunc())
            }
        };
        let expires_ns =
            kind.is_benign().then(|| now_ns.saturating_add(expires_s.saturating_mul(1_000_000_000)));
        let mut out = Outcome {
            alerts: judged.iter().map(|e| e.id.clone()).collect(),
            suppressions: Vec::new(),
            buckets_settled: 0,
            threshold_raises: Vec::new(),
        };
        for entry in judged {
            // A second verdict on the same alert replaces the first (an analyst changed their
            // mind): figures count each alert once, and the first one's suppression goes.
            if let Some(i) = self.verdicts.iter().position(|v| v.alert.id == entry.id) {
                let old = self.verdicts.remove(i);
                self.suppressions.retain(|s| s.alert_id != old.alert.id);
                if old.verdict == Kind::FalsePositive {
                    self.count_false_positive(&old.alert, -1);
                }
            }
            if let Some(expires_ns) = expires_ns {
                let s = Suppression::of(&entry, kind, req, cidr, expires_ns, settings.value_margin);
                out.suppressions.push(s.clone());
                self.insert_suppression(s, settings);
            }
            if kind == Kind::FalsePositive {
                let key = self.count_false_positive(&entry, 1);
                let (f, n) = self.raise_factor(&key, settings);
                if f > 1.0 {
                    out.threshold_raises
                        .push(format!("{} ×{f:.2} after {n} false positives", key.describe()));
                }
            }
            self.verdicts.push(Verdict {
                alert: entry,
                verdict: kind,
                reason: req.reason.clone(),
                author: req.author.clone(),
                given_ns: now_ns,
                expires_ns,
            });
        }
        Ok(out)
    }

    fn count_false_positive(&mut self, e: &Entry, delta: i64) -> GroupKey {
        let key = GroupKey::new(e.detector, &e.rule, e.host, e.group);
        match self.false_positives.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n = n.saturating_add_signed(delta),
            None if delta > 0 => self.false_positives.push((key.clone(), delta.unsigned_abs())),
            None => {}
        }
        self.false_positives.retain(|(_, n)| *n > 0);
        key
    }

    fn insert_suppression(&mut self, s: Suppression, settings: &Settings) {
        let cap = usize::try_from(settings.max_suppressions).unwrap_or(usize::MAX).max(1);
        while self.suppressions.len() >= cap {
            let first =
                self.suppressions.iter().enumerate().min_by_key(|(_, s)| s.expires_ns).map(|(i, _)| i);
            if let Some(i) = first {
                self.suppressions.remove(i);
            }
        }
        self.suppressions.push(s);
    }

    /// Drops suppressions that ended before `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        let before = self.suppressions.len();
        self.suppressions.retain(|s| now_ns < s.expires_ns);
        self.counters.expired += (before - self.suppressions.len()) as u64;
    }

    /// Precision per detector and rule, and time to detect, from the verdicts.
    #[must_use]
    pub fn figures(&self) -> Figures {
        Figures::of(&self.verdicts)
    }
}

/// Settles the held baseline bucket of the alert `v` judged (learned at full weight after a
/// benign verdict, kept out after a true positive); a benign verdict on an exfiltration alert
/// also teaches the host's volume highs what it measured. Returns whether a bucket was held.
pub fn settle(b: &mut HostBaseline, v: &Verdict, alpha: f64) -> bool {
    let benign = v.verdict.is_benign();
    let values = b.settle(v.alert.window_end_ns, benign, alpha);
    if benign && v.alert.detector == Detector::Exfiltration {
        let bucket_bytes = values.as_ref().and_then(|x| x.get(Metric::BytesOut as usize).copied());
        exfiltration::learn_benign(
            &mut b.volume,
            &v.alert.rule,
            v.alert.window.as_deref(),
            v.alert.observed,
            bucket_bytes,
            v.alert.window_end_ns,
        );
    }
    values.is_some()
}

/// Applies a verdict to a stopped sensor's saved state, at the state's snapshot time.
///
/// # Errors
/// Why the verdict was refused; nothing changes then.
pub fn give_to_state(
    state: &mut State,
    req: &Request,
    settings: &DetectionSettings,
) -> Result<Outcome, VerdictError> {
    let mut out = state.verdicts.give(req, state.saved_at_ns, &settings.verdicts)?;
    for v in state.verdicts.verdicts.iter().rev().take(out.alerts.len()) {
        if let Some(b) = state.hosts.get_mut(&v.alert.host)
            && settle(b, v, settings.baseline_alpha)
        {
            out.buckets_settled += 1;
        }
    }
    Ok(out)
}

/// Notes in a new alert's evidence what verdicts changed in its host's baseline.
pub fn note_baseline(e: &mut Evidence, b: &HostBaseline) {
    if b.verdict_learned > 0 || b.verdict_excluded > 0 {
        e.details.insert(
            "baseline_verdicts".into(),
            serde_json::json!({
                "learned_after_benign": b.verdict_learned,
                "kept_out_after_true_positive": b.verdict_excluded,
            }),
        );
    }
}

/// The threshold factor after `n` false positives.
#[must_use]
pub fn factor(n: u64, s: &Settings) -> f64 {
    if n < s.raise_after || s.raise_after == 0 {
        return 1.0;
    }
    let steps = (n - s.raise_after + 1) as f64;
    (1.0 + s.raise_step * steps).min(s.max_raise)
}

#[cfg(test)]
mod tests;
