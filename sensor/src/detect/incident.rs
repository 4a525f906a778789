//! Staged incidents: a host's alerts within `incident_window_s` of each other form one incident,
//! ordered into the stages of an attack (reconnaissance, lateral movement, command and control,
//! exfiltration: [`Stage`], from each alert's ATT&CK tactic), with a risk that grows faster when
//! distinct stages follow each other than when one detector repeats.
//!
//! **Risk.** Each alert adds its score `s`, weighted:
//! - a detector already in the incident adds `s × 0.5^k` (its `k`-th repeat): a scan that goes
//!   on for an hour does not make a campaign;
//! - an alert that brings a stage the incident did not have adds `s × (1 + 0.5 × n)`, `n` being
//!   the stages it had, and `× 1.25` more when the new stage comes after every stage seen so far
//!   (the chain moving forward: scan, then lateral SMB, then a beacon, then an upload);
//! - anything else (a new detector in a stage already there, an alert of no stage) adds `s`.
//!
//! The incident's score (0–100, `event.risk_score` of its records) is `100 × (1 − e^(−risk/100))`:
//! one alert of 60 gives 45, four stages in order give 95 and more. `nbad.incident.host_risk` of
//! every alert is the accumulated risk, rounded.
//!
//! **Records.** An incident record ([`crate::alert::incident`]) is emitted when the incident
//! opens and whenever it escalates: a stage joins, or its score enters a higher severity band.
//! Its message is a one-paragraph narrative: each stage with its time, what its first alert
//! found and the peers it named. Memory: one entry per host with an open incident, at most
//! [`MAX_RELATED`] alert ids and 8 peers per stage each; entries go when their window ends.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sha2::{Digest as _, Sha256};

use super::config::DetectionSettings;
use crate::alert::attack::Stage;
use crate::alert::incident::{IncidentAction, IncidentRecord, StageStep};
use crate::alert::{Alert, Detector, Evidence, IncidentRef, LearningState, Severity, rfc3339};

/// Related alert ids kept per incident.
pub const MAX_RELATED: usize = 32;
/// Peers kept per stage.
const MAX_PEERS: usize = 8;
/// Weight of a repeat of a detector already in the incident, per repeat.
const REPEAT: f64 = 0.5;
/// Bonus per stage already in the incident, for an alert that brings a new one.
const STAGE_BONUS: f64 = 0.5;
/// Extra factor when the new stage comes after every stage seen so far.
const FORWARD: f64 = 1.25;

#[derive(Debug, Clone)]
struct Incident {
    id: String,
    opened_ns: u64,
    last_ns: u64,
    risk: f64,
    alerts: Vec<String>,
    count: u32,
    /// Alerts per detector so far.
    per_detector: BTreeMap<Detector, u32>,
    steps: Vec<(Option<Stage>, StageStep)>,
    /// Records emitted so far.
    records: u32,
    /// Severity band of the last record.
    band: Severity,
}

/// The open incidents, one per host.
#[derive(Debug, Default)]
pub struct Incidents {
    open: BTreeMap<IpAddr, Incident>,
    /// Incidents opened.
    pub opened: u64,
    /// Incident records emitted (openings and escalations).
    pub records: u64,
}

/// The incident's score of an accumulated risk.
#[must_use]
pub fn score_of(risk: f64) -> u8 {
    (100.0 * (1.0 - (-risk / 100.0).exp())).round().clamp(1.0, 100.0) as u8
}

impl Incidents {
    /// Puts `alert` into its host's incident (opening one if needed), sets its
    /// [`IncidentRef`], and returns the incident record to emit, if the incident opened or
    /// escalated.
    pub fn join(&mut self, alert: &mut Alert, settings: &DetectionSettings) -> Option<Alert> {
        let now = alert.timestamp_ns;
        let window = u64::try_from(settings.incident_window.as_nanos()).unwrap_or(u64::MAX);
        let host = alert.host;
        let fresh = self.open.get(&host).is_none_or(|inc| now.saturating_sub(inc.last_ns) > window);
        if fresh {
            self.opened += 1;
            self.open.insert(
                host,
                Incident {
                    id: incident_id(host, now),
                    opened_ns: now,
                    last_ns: now,
                    risk: 0.0,
                    alerts: Vec::new(),
                    count: 0,
                    per_detector: BTreeMap::new(),
                    steps: Vec::new(),
                    records: 0,
                    band: Severity::Low,
                },
            );
        }
        let inc = self.open.get_mut(&host)?;
        let stage = Stage::of_alert(alert);
        let repeats = inc.per_detector.get(&alert.detector).copied().unwrap_or(0);
        let known_stages: Vec<Stage> = inc.steps.iter().filter_map(|s| s.0).collect();
        let s = f64::from(alert.risk_score);
        let new_stage = stage.filter(|st| !known_stages.contains(st));
        let weight = if repeats > 0 {
            REPEAT.powi(i32::try_from(repeats).unwrap_or(i32::MAX))
        } else if let Some(st) = new_stage
            && !known_stages.is_empty()
        {
            let forward = if known_stages.iter().all(|k| *k < st) { FORWARD } else { 1.0 };
            (1.0 + STAGE_BONUS * known_stages.len() as f64) * forward
        } else {
            1.0
        };
        inc.risk += s * weight;
        inc.last_ns = inc.last_ns.max(now);
        inc.count = inc.count.saturating_add(1);
        *inc.per_detector.entry(alert.detector).or_default() += 1;
        // The step of this alert's stage (alerts of no stage share one step, "other").
        let step = match inc.steps.iter_mut().find(|st| st.0 == stage) {
            Some(st) => &mut st.1,
            None => {
                inc.steps.push((
                    stage,
                    StageStep {
                        stage: stage.map_or("other", Stage::name).to_owned(),
                        first_ns: now,
                        last_ns: now,
                        detectors: Vec::new(),
                        alerts: 0,
                        peers: Vec::new(),
                        first_message: alert.message.clone(),
                    },
                ));
                &mut inc.steps.last_mut()?.1
            }
        };
        step.last_ns = step.last_ns.max(now);
        step.alerts += 1;
        if !step.detectors.contains(&alert.detector) {
            step.detectors.push(alert.detector);
        }
        if let Some(p) = alert.peer
            && !step.peers.contains(&p)
            && step.peers.len() < MAX_PEERS
        {
            step.peers.push(p);
        }
        let related = inc.alerts.clone();
        inc.alerts.push(alert.id.clone());
        if inc.alerts.len() > MAX_RELATED {
            inc.alerts.remove(0);
        }
        let host_risk = inc.risk.round().clamp(0.0, f64::from(u32::MAX)) as u32;
        alert.incident = Some(IncidentRef { id: inc.id.clone(), host_risk, alert_count: inc.count, related });
        let score = score_of(inc.risk);
        let band = Severity::from_score(score);
        let action = if fresh {
            IncidentAction::Opened
        } else if new_stage.is_some() || band > inc.band {
            IncidentAction::Escalated
        } else {
            return None;
        };
        inc.band = inc.band.max(band);
        let sequence = inc.records;
        inc.records += 1;
        self.records += 1;
        Some(record(inc, alert, action, sequence, score))
    }

    /// Forgets incidents whose window ended.
    pub fn expire(&mut self, now_ns: u64, settings: &DetectionSettings) {
        let window = u64::try_from(settings.incident_window.as_nanos()).unwrap_or(u64::MAX);
        self.open.retain(|_, i| now_ns.saturating_sub(i.last_ns) <= window);
    }
}

/// The record of `inc` as it stands after `trigger`.
fn record(inc: &Incident, trigger: &Alert, action: IncidentAction, sequence: u32, score: u8) -> Alert {
    let steps: Vec<StageStep> = inc.steps.iter().map(|s| s.1.clone()).collect();
    let staged = inc.steps.iter().filter(|s| s.0.is_some()).count();
    let mut id = Sha256::new();
    id.update(inc.id.as_bytes());
    id.update(sequence.to_be_bytes());
    let id: String = id.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
    let mut details = serde_json::Map::new();
    details.insert("stages".into(), staged.into());
    details.insert("alerts".into(), inc.count.into());
    Alert {
        id,
        timestamp_ns: trigger.timestamp_ns,
        sensor_id: trigger.sensor_id.clone(),
        detector: trigger.detector,
        description: "A host's alerts, ordered into the stages of an attack.".to_owned(),
        message: narrative(inc, trigger, score),
        risk_score: score,
        severity: Severity::from_score(score),
        host: trigger.host,
        peer: None,
        port: None,
        transport: None,
        community_id: None,
        host_criticality: trigger.host_criticality,
        host_owner: trigger.host_owner.clone(),
        evidence: Evidence {
            metric: "incident_risk".to_owned(),
            observed: inc.risk,
            baseline_mean: None,
            baseline_band: None,
            threshold: 0.0,
            learning_state: LearningState::NotApplicable,
            window_start_ns: inc.opened_ns,
            window_end_ns: trigger.timestamp_ns,
            community_ids: Vec::new(),
            details,
        },
        incident: trigger.incident.clone(),
        host_role: trigger.host_role.clone(),
        record: Some(Box::new(IncidentRecord {
            action,
            sequence,
            opened_ns: inc.opened_ns,
            steps,
            risk: inc.risk,
        })),
    }
}

/// `HH:MM:SS` (UTC) of a packet time.
fn clock(ns: u64) -> String {
    let t = rfc3339(ns);
    t.get(11..19).unwrap_or(&t).to_owned()
}

/// One paragraph: the host, each step in order with its time, what it found and its peers, and
/// where the risk stands.
fn narrative(inc: &Incident, trigger: &Alert, score: u8) -> String {
    let mut out = format!("Incident {} on {}", inc.id, trigger.host);
    if let Some(role) = &trigger.host_role {
        out.push_str(&format!(" ({})", role.kind.replace('_', " ")));
    }
    out.push_str(&format!(", opened {}:", rfc3339(inc.opened_ns)));
    for (n, (stage, step)) in inc.steps.iter().enumerate() {
        let what = stage.map_or("another finding", Stage::words);
        let detectors: Vec<&str> = step.detectors.iter().map(|d| d.name()).collect();
        out.push_str(&format!(
            "{} {} at {} — {} ({}",
            if n == 0 { "" } else { ";" },
            what,
            clock(step.first_ns),
            step.first_message.trim_end_matches('.'),
            detectors.join(", ")
        ));
        if step.alerts > 1 {
            out.push_str(&format!(", {} alerts until {}", step.alerts, clock(step.last_ns)));
        }
        if !step.peers.is_empty() {
            let peers: Vec<String> = step.peers.iter().map(ToString::to_string).collect();
            out.push_str(&format!(", peers {}", peers.join(", ")));
        }
        out.push(')');
    }
    let staged = inc.steps.iter().filter(|s| s.0.is_some()).count();
    out.push_str(&format!(
        ". Risk {score} ({}) after {} alert{} in {staged} stage{}.",
        Severity::from_score(score).name(),
        inc.count,
        if inc.count == 1 { "" } else { "s" },
        if staged == 1 { "" } else { "s" }
    ));
    out
}

fn incident_id(host: IpAddr, opened_ns: u64) -> String {
    let mut h = Sha256::new();
    h.update(host.to_string().as_bytes());
    h.update(opened_ns.to_be_bytes());
    let d = h.finalize();
    format!("inc-{}", d[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::alert_id;

    fn alert(detector: Detector, at_s: u64, score: u8, peer: u8) -> Alert {
        let host = IpAddr::from([10, 0, 0, 5]);
        let peer = IpAddr::from([10, 0, 0, peer]);
        let ts = 1_700_000_000_000_000_000 + at_s * 1_000_000_000;
        let mut details = serde_json::Map::new();
        details.insert("rule".into(), "horizontal".into());
        Alert {
            id: alert_id("s", detector, host, Some(peer), None, ts),
            timestamp_ns: ts,
            sensor_id: "s".into(),
            detector,
            description: String::new(),
            message: format!("{} finding", detector.name()),
            risk_score: score,
            severity: Severity::from_score(score),
            host,
            peer: Some(peer),
            port: None,
            transport: None,
            community_id: None,
            host_criticality: 3,
            host_owner: None,
            evidence: Evidence {
                metric: String::new(),
                observed: 0.0,
                baseline_mean: None,
                baseline_band: None,
                threshold: 0.0,
                learning_state: LearningState::Active,
                window_start_ns: ts,
                window_end_ns: ts,
                community_ids: Vec::new(),
                details,
            },
            incident: None,
            host_role: None,
            record: None,
        }
    }

    fn run(seq: &[Detector]) -> (Incidents, Vec<Alert>, u32) {
        let settings = DetectionSettings::default();
        let mut inc = Incidents::default();
        let mut records = Vec::new();
        let mut risk = 0;
        for (i, d) in seq.iter().enumerate() {
            let mut a = alert(*d, i as u64 * 300, 50, 20 + i as u8);
            records.extend(inc.join(&mut a, &settings));
            risk = a.incident.as_ref().map_or(0, |r| r.host_risk);
        }
        (inc, records, risk)
    }

    #[test]
    fn distinct_stages_in_order_raise_the_risk_faster_than_repeats() {
        let chain = [Detector::Scan, Detector::LateralMovement, Detector::Beaconing, Detector::Exfiltration];
        let (_, records, staged) = run(&chain);
        let (_, repeats, repeated) = run(&[Detector::Scan; 4]);
        assert!(staged > 2 * repeated, "staged {staged}, repeated {repeated}");
        assert_eq!(records.len(), 4, "opened, then one escalation per new stage");
        let actions: Vec<IncidentAction> =
            repeats.iter().filter_map(|a| a.record.as_ref().map(|r| r.action)).collect();
        assert_eq!(actions, [IncidentAction::Opened, IncidentAction::Escalated], "opened, then one band up");
        let last = records.last().expect("records");
        let r = last.record.as_ref().expect("a record");
        let stages: Vec<&str> = r.steps.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(stages, ["reconnaissance", "lateral_movement", "command_and_control", "exfiltration"]);
        assert!(last.message.contains("reconnaissance at 22:13:20"), "{}", last.message);
        assert!(last.message.contains("exfiltration at 22:28:20"), "{}", last.message);
        assert!(last.message.contains("peers 10.0.0.21"), "{}", last.message);
        assert!(last.risk_score >= 90, "{}", last.risk_score);
        let doc = last.to_ecs();
        assert_eq!(doc["event"]["dataset"], "nbad.incident");
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(
            doc["threat"]["tactic"]["id"],
            serde_json::json!(["TA0007", "TA0008", "TA0011", "TA0010"])
        );
    }

    #[test]
    fn an_alert_after_the_window_opens_a_new_incident() {
        let settings = DetectionSettings::default();
        let mut inc = Incidents::default();
        let mut a = alert(Detector::Scan, 0, 50, 20);
        let mut b = alert(Detector::Scan, 7_200, 50, 20);
        assert!(inc.join(&mut a, &settings).is_some());
        assert!(inc.join(&mut b, &settings).is_some(), "a second opening");
        assert_ne!(a.incident.map(|i| i.id), b.incident.map(|i| i.id));
        assert_eq!(inc.opened, 2);
    }
}
