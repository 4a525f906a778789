//! ECS rendering of an [`Alert`].
//!
//! Field choices: `event.kind = "alert"`, `event.module = "nbad"`,
//! `event.dataset = "nbad.alert"`; `source.ip` is the inside host at fault,
//! `destination.*` the peer where one applies; `rule.name` is the detector's
//! name; evidence, incident and host facts live under `nbad.*`; the MITRE ATT&CK mapping
//! ([`super::attack`]) is `threat.*`.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::Alert;

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// RFC 3339 UTC with microseconds, from ns since the epoch.
#[must_use]
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// `nbad.host`: configured criticality and owner, and the learned role.
pub(super) fn host_json(a: &Alert) -> Value {
    let mut host = json!({ "criticality": a.host_criticality, "owner": a.host_owner });
    if let (Some(role), Some(obj)) = (&a.host_role, host.as_object_mut()) {
        obj.insert("role".into(), json!(role.kind));
        obj.insert("services".into(), json!(role.services));
        if let Some(g) = &role.peer_group {
            obj.insert("peer_group".into(), json!(g));
        }
    }
    host
}

/// `nbad.evidence`.
pub(super) fn evidence_json(ev: &super::Evidence) -> Value {
    json!({
        "metric": ev.metric,
        "observed": ev.observed,
        "baseline_mean": ev.baseline_mean,
        "baseline_band": ev.baseline_band,
        "threshold": ev.threshold,
        "learning_state": ev.learning_state.name(),
        "window_start": rfc3339(ev.window_start_ns),
        "window_end": rfc3339(ev.window_end_ns),
        "community_ids": ev.community_ids,
        "details": ev.details,
    })
}

pub(super) fn to_ecs(a: &Alert) -> Value {
    if let Some(record) = &a.record {
        return super::incident::to_ecs(a, record);
    }
    let ev = &a.evidence;
    let mut destination = Map::new();
    if let Some(peer) = a.peer {
        destination.insert("ip".into(), json!(peer));
    }
    if let Some(port) = a.port {
        destination.insert("port".into(), json!(port));
    }
    let mut network = Map::new();
    if let Some(t) = &a.transport {
        network.insert("transport".into(), json!(t));
    }
    if let Some(cid) = &a.community_id {
        network.insert("community_id".into(), json!(cid));
    }
    let mut doc = json!({
        "@timestamp": rfc3339(a.timestamp_ns),
        "ecs": { "version": ECS_VERSION },
        "message": a.message,
        "event": {
            "kind": "alert",
            "id": a.id,
            "module": "nbad",
            "dataset": "nbad.alert",
            "category": a.detector.categories(),
            "type": ["indicator"],
            "risk_score": a.risk_score,
            "severity": a.severity.number(),
            "start": rfc3339(ev.window_start_ns),
            "end": rfc3339(ev.window_end_ns),
        },
        "rule": { "name": a.detector.name(), "description": a.description },
        "source": { "ip": a.host },
        "observer": { "name": a.sensor_id, "type": "sensor", "vendor": "nbad", "product": "nbad-sensor" },
        "nbad": {
            "severity": a.severity.name(),
            "host": host_json(a),
            "evidence": evidence_json(&a.evidence),
        },
    });
    if let Some(obj) = doc.as_object_mut() {
        if !destination.is_empty() {
            obj.insert("destination".into(), Value::Object(destination));
        }
        if !network.is_empty() {
            obj.insert("network".into(), Value::Object(network));
        }
        if let Some(threat) = super::attack::ecs_threat(&super::attack::of_alert(a)) {
            obj.insert("threat".into(), threat);
        }
        if let Some(inc) = &a.incident
            && let Some(nbad) = obj.get_mut("nbad").and_then(Value::as_object_mut)
        {
            nbad.insert(
                "incident".into(),
                json!({
                    "id": inc.id,
                    "host_risk": inc.host_risk,
                    "alert_count": inc.alert_count,
                    "related": inc.related,
                }),
            );
        }
    }
    doc
}
