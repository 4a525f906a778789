//! From findings to alerts: allow-list, risk score, minimum score,
//! suppression of repeats, and correlation into incidents.
//!
//! - **Allow-list**: an entry matches on host (network), detector (or all),
//!   peer (network) and port, until it expires (packet time); a match drops the
//!   finding and counts it.
//! - **Score**: `100 × (0.35 + 0.65 × strength) × confidence × criticality`,
//!   where strength (0–1) measures how far the observation went past its
//!   threshold, confidence (0–1) is the detector's and rule's own, and the
//!   criticality factor is `0.6 + 0.1 × criticality` (criticality 1–5 from
//!   `[[detection.assets]]`, 3 by default). Clamped to 1–100.
//! - **Verdicts** ([`super::verdict`]): a suppression an analyst's benign
//!   verdict made silences a finding in its scope and bound; a threshold that
//!   false-positive verdicts raised for the host's peer group must be crossed
//!   too. Both are counted; the evidence of a finding that goes past either
//!   says so.
//! - **Suppression**: a finding for the same (host, detector, peer) within
//!   `suppress_window_s` of the last alert raised for it is counted, not
//!   raised, unless its score is at least 15 points higher (an escalation).
//! - **Incidents**: a host's alerts that follow each other within
//!   `incident_window_s` share one incident; its id is derived from the host
//!   and the time it opened. It orders its alerts into the stages of an attack
//!   and emits incident records as it opens and escalates ([`super::incident`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Candidate;
use super::config::DetectionSettings;
use super::incident::Incidents;
use super::verdict::scope::{Finding, Match};
use super::verdict::{Book, GroupKey};
use crate::alert::{Alert, Detector, Severity, alert_id};

/// Points by which a repeat must beat the last alert to escape suppression.
const ESCALATION: u8 = 15;

/// Counters of the alert stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlertCounters {
    /// Findings the detectors produced.
    pub findings: u64,
    /// Dropped by the allow-list.
    pub allowed: u64,
    /// Below the minimum score.
    pub below_min_score: u64,
    /// Suppressed as repeats.
    pub suppressed: u64,
    /// Silenced by a suppression an analyst's verdict made.
    pub verdict_suppressed: u64,
    /// Under a threshold that analysts' false-positive verdicts raised.
    pub below_raised_threshold: u64,
    /// Raised.
    pub raised: u64,
    /// Incidents opened.
    pub incidents: u64,
    /// Incident records emitted (openings and escalations).
    pub incident_records: u64,
}

/// The alert stage's state.
#[derive(Debug, Default)]
pub struct AlertStage {
    last: BTreeMap<(IpAddr, Detector, Option<IpAddr>), (u64, u8)>,
    incidents: Incidents,
    /// Incident records to emit after the alerts that caused them.
    records: Vec<Alert>,
    /// What happened to findings.
    pub counters: AlertCounters,
    /// Raised alerts per detector, in [`Detector::ALL`] order.
    pub per_detector: [u64; Detector::ALL.len()],
}

/// The risk score of a finding.
#[must_use]
pub fn risk_score(strength: f64, confidence: f64, criticality: u8) -> u8 {
    let crit = 0.6 + 0.1 * f64::from(criticality.clamp(1, 5));
    let raw = 100.0 * (0.35 + 0.65 * strength.clamp(0.0, 1.0)) * confidence.clamp(0.0, 1.0) * crit;
    raw.round().clamp(1.0, 100.0) as u8
}

impl AlertStage {
    /// Turns a finding into an alert, or counts why not. `book` holds the verdicts' suppressions
    /// and threshold raises; `group` is the host's peer group.
    pub fn raise(
        &mut self,
        mut c: Candidate,
        settings: &DetectionSettings,
        sensor_id: &str,
        book: &mut Book,
        group: Option<u16>,
    ) -> Option<Alert> {
        self.counters.findings += 1;
        let now = c.ts_ns;
        if settings.allow.iter().any(|a| {
            a.host.contains(&c.host)
                && a.detector.is_none_or(|d| d == c.detector)
                && a.peer.is_none_or(|p| c.peer.is_some_and(|ip| p.contains(&ip)))
                && a.port.is_none_or(|p| c.port == Some(p))
                && a.expires_ns.is_none_or(|e| now < e)
        }) {
            self.counters.allowed += 1;
            return None;
        }
        if !self.apply_verdicts(&mut c, settings, book, group) {
            return None;
        }
        let asset = settings.assets.iter().find(|a| a.cidr.contains(&c.host));
        let criticality = asset.map_or(3, |a| a.criticality);
        let score = risk_score(c.strength, c.confidence, criticality);
        if score < settings.min_score {
            self.counters.below_min_score += 1;
            return None;
        }
        let key = (c.host, c.detector, c.peer);
        let window = u64::try_from(settings.suppress_window.as_nanos()).unwrap_or(u64::MAX);
        if let Some(&(at, prev)) = self.last.get(&key)
            && now.saturating_sub(at) < window
            && score < prev.saturating_add(ESCALATION)
        {
            self.counters.suppressed += 1;
            return None;
        }
        self.last.insert(key, (now, score));
        let id = alert_id(sensor_id, c.detector, c.host, c.peer, c.port, c.evidence.window_end_ns);
        self.counters.raised += 1;
        if let Some(i) = Detector::ALL.iter().position(|d| *d == c.detector) {
            self.per_detector[i] += 1;
        }
        Some(Alert {
            id,
            timestamp_ns: now,
            sensor_id: sensor_id.to_owned(),
            detector: c.detector,
            description: c.description.to_owned(),
            message: c.message,
            risk_score: score,
            severity: Severity::from_score(score),
            host: c.host,
            peer: c.peer,
            port: c.port,
            transport: c.transport.map(str::to_owned),
            community_id: c.flow.map(|f| f.community_id()),
            host_criticality: criticality,
            host_owner: asset.and_then(|a| a.owner.clone()),
            evidence: c.evidence,
            incident: None,
            host_role: None,
            record: None,
        })
    }

    /// What analysts' verdicts say of a finding: `false` when a suppression silences it or it
    /// stays under a raised threshold; otherwise its evidence names the suppressions it went
    /// past and the raise it crossed.
    fn apply_verdicts(
        &mut self,
        c: &mut Candidate,
        settings: &DetectionSettings,
        book: &mut Book,
        group: Option<u16>,
    ) -> bool {
        let now = c.ts_ns;
        let finding = Finding::of(c.detector, c.host, c.peer, c.port, &c.evidence);
        let mut beyond = Vec::new();
        for s in &mut book.suppressions {
            match s.check(&finding, now) {
                Match::Within => {
                    s.hits += 1;
                    book.counters.suppressed += 1;
                    self.counters.verdict_suppressed += 1;
                    return false;
                }
                Match::Beyond => beyond.push(s.describe()),
                Match::Outside => {}
            }
        }
        let key = GroupKey::new(c.detector, &finding.rule, c.host, group);
        let (factor, fps) = book.raise_factor(&key, &settings.verdicts);
        let e = &mut c.evidence;
        if factor > 1.0 && e.threshold > 0.0 {
            let upward = e.observed >= e.threshold;
            let raised = if upward { e.threshold * factor } else { e.threshold / factor };
            if (upward && e.observed < raised) || (!upward && e.observed > raised) {
                book.counters.below_raised_threshold += 1;
                self.counters.below_raised_threshold += 1;
                return false;
            }
            e.details.insert(
                "threshold_raised".into(),
                serde_json::json!({
                    "factor": factor,
                    "threshold": raised,
                    "original_threshold": e.threshold,
                    "false_positives": fps,
                    "group": key.group,
                }),
            );
        }
        if !beyond.is_empty() {
            e.details.insert("past_suppressions".into(), serde_json::json!(beyond));
        }
        true
    }

    /// Puts a raised alert (its learned role already set) into its host's incident; an
    /// incident record to emit after it goes into [`Self::take_records`].
    pub fn correlate(&mut self, alert: &mut Alert, settings: &DetectionSettings) {
        if let Some(record) = self.incidents.join(alert, settings) {
            self.records.push(record);
        }
        self.counters.incidents = self.incidents.opened;
        self.counters.incident_records = self.incidents.records;
    }

    /// Incident records emitted since the last call.
    pub fn take_records(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.records)
    }

    /// Forgets suppression and incident entries older than their windows.
    pub fn expire(&mut self, now_ns: u64, settings: &DetectionSettings) {
        let window = u64::try_from(settings.suppress_window.as_nanos()).unwrap_or(u64::MAX);
        self.last.retain(|_, (at, _)| now_ns.saturating_sub(*at) < window);
        self.incidents.expire(now_ns, settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_grows_with_strength_confidence_and_criticality() {
        assert!(risk_score(1.0, 1.0, 5) == 100);
        assert!(risk_score(0.0, 0.5, 3) < risk_score(1.0, 0.5, 3));
        assert!(risk_score(0.5, 0.5, 3) < risk_score(0.5, 0.9, 3));
        assert!(risk_score(0.5, 0.8, 1) < risk_score(0.5, 0.8, 5));
        assert!(risk_score(0.0, 0.0, 1) >= 1);
    }
}
