//! The incident record: a document of its own (ECS `event.dataset = "nbad.incident"`) that tells
//! a host's incident as the attack's story, emitted when the incident opens and when it
//! escalates.
//!
//! It travels as an [`Alert`] whose [`Alert::record`] is set, so that every alert output (the
//! `--alerts` file, the spool and every sink) carries it without a second path: its `event.id` is
//! its own (the incident and the record's sequence number), `message` is the narrative,
//! `event.risk_score` the incident's risk (0–100), and `detector` the detector of the alert that
//! opened or escalated it. [`to_ecs`] renders it; `nbad.incident.record` holds the record as the
//! alert model's JSON, so `alerts send` reads it back whole.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::attack::{self, Technique};
use super::{Alert, Detector, ECS_VERSION, rfc3339};

/// Why the record was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    /// The host's first alert opened the incident.
    Opened,
    /// A new stage joined, or the risk entered a higher severity band.
    Escalated,
}

impl IncidentAction {
    /// ECS `event.action`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "incident_opened",
            Self::Escalated => "incident_escalated",
        }
    }
}

/// One stage of the incident, as far as it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStep {
    /// The stage's name ([`attack::Stage::name`]), or `other` (impact, unmapped).
    pub stage: String,
    /// Its first alert, ns since the epoch.
    pub first_ns: u64,
    /// Its latest alert.
    pub last_ns: u64,
    /// The detectors that raised its alerts, in order of first appearance.
    pub detectors: Vec<Detector>,
    /// Alerts in the stage.
    pub alerts: u32,
    /// Peers its alerts named (at most 8).
    pub peers: Vec<IpAddr>,
    /// What its first alert said.
    pub first_message: String,
}

/// The incident as told by a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// Opened or escalated.
    pub action: IncidentAction,
    /// Record number within the incident (0 for the opening one).
    pub sequence: u32,
    /// When the incident opened, ns since the epoch.
    pub opened_ns: u64,
    /// Its steps, in the order they began.
    pub steps: Vec<StageStep>,
    /// The accumulated risk (see `detect::incident`).
    pub risk: f64,
}

impl IncidentRecord {
    /// The ATT&CK techniques of its steps' detectors, each once, in order.
    #[must_use]
    pub fn techniques(&self) -> Vec<Technique> {
        let mut out: Vec<Technique> = Vec::new();
        for step in &self.steps {
            for d in &step.detectors {
                for t in attack::techniques(*d, None, None, &[]) {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }
}

/// The ECS document of an incident record.
pub(super) fn to_ecs(a: &Alert, r: &IncidentRecord) -> Value {
    let steps: Vec<Value> = r
        .steps
        .iter()
        .map(|s| {
            json!({
                "stage": s.stage,
                "first": rfc3339(s.first_ns),
                "last": rfc3339(s.last_ns),
                "detectors": s.detectors.iter().map(|d| d.name()).collect::<Vec<_>>(),
                "alerts": s.alerts,
                "peers": s.peers,
            })
        })
        .collect();
    let mut related: Vec<IpAddr> = vec![a.host];
    for p in r.steps.iter().flat_map(|s| &s.peers) {
        if !related.contains(p) {
            related.push(*p);
        }
    }
    let inc = a.incident.as_ref();
    let mut doc = json!({
        "@timestamp": rfc3339(a.timestamp_ns),
        "ecs": { "version": ECS_VERSION },
        "message": a.message,
        "event": {
            "kind": "alert",
            "id": a.id,
            "module": "nbad",
            "dataset": "nbad.incident",
            "action": r.action.name(),
            "category": ["network", "threat"],
            "type": ["indicator"],
            "risk_score": a.risk_score,
            "severity": a.severity.number(),
            "start": rfc3339(r.opened_ns),
            "end": rfc3339(a.timestamp_ns),
        },
        "rule": { "name": "staged_incident", "description": a.description },
        "source": { "ip": a.host },
        "related": { "ip": related },
        "observer": { "name": a.sensor_id, "type": "sensor", "vendor": "nbad", "product": "nbad-sensor" },
        "nbad": {
            "severity": a.severity.name(),
            "host": super::ecs::host_json(a),
            "evidence": super::ecs::evidence_json(&a.evidence),
            "incident": {
                "id": inc.map(|i| i.id.as_str()),
                "host_risk": inc.map(|i| i.host_risk),
                "alert_count": inc.map(|i| i.alert_count),
                "related": inc.map(|i| i.related.as_slice()),
                "trigger": a.detector.name(),
                "stages": steps,
                "stage_count": r.steps.iter().filter(|s| s.stage != "other").count(),
                "narrative": a.message,
                "record": r,
            },
        },
    });
    if let (Some(threat), Some(obj)) = (attack::ecs_threat(&r.techniques()), doc.as_object_mut()) {
        obj.insert("threat".into(), threat);
    }
    doc
}
