//! OCSF Detection Finding (class_uid 2004, category Findings), the alternative JSON schema.
//!
//! Mapping: `finding_info.uid` and `metadata.uid` are the alert's `event.id`; `finding_info.
//! analytic` names the detector as a rule; the host at fault is `evidences[0].src_endpoint`,
//! the peer `dst_endpoint`; severity bands map to `severity_id` 2 (Low) … 5 (Critical) and
//! `risk_level_id` 1 … 4; the evidence and incident that have no OCSF attribute travel under
//! `unmapped.nbad`.

use serde_json::{Map, Value, json};

use super::{PRODUCT, VENDOR, VERSION, millis};
use crate::alert::{Alert, Severity, attack};

/// OCSF schema version the documents follow.
pub(crate) const OCSF_VERSION: &str = "1.3.0";

fn severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// The alert as an OCSF Detection Finding.
pub(crate) fn detection_finding(a: &Alert) -> Value {
    let ev = &a.evidence;
    let (severity_id, severity_name) = severity(a.severity);
    let risk_level_id = severity_id - 1;
    let mut dst = Map::new();
    if let Some(peer) = a.peer {
        dst.insert("ip".into(), json!(peer));
    }
    if let Some(port) = a.port {
        dst.insert("port".into(), json!(port));
    }
    let mut evidence = json!({ "src_endpoint": { "ip": a.host } });
    if let Some(obj) = evidence.as_object_mut() {
        if !dst.is_empty() {
            obj.insert("dst_endpoint".into(), Value::Object(dst));
        }
        let mut conn = Map::new();
        if let Some(t) = &a.transport {
            conn.insert("protocol_name".into(), json!(t));
        }
        if let Some(cid) = &a.community_id {
            conn.insert("community_uid".into(), json!(cid));
        }
        if !conn.is_empty() {
            obj.insert("connection_info".into(), Value::Object(conn));
        }
    }
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200_401,
        "type_name": "Detection Finding: Create",
        "time": millis(a.timestamp_ns),
        "message": a.message,
        "severity_id": severity_id,
        "severity": severity_name,
        "risk_score": a.risk_score,
        "risk_level_id": risk_level_id,
        "risk_level": severity_name,
        "status_id": 1,
        "status": "New",
        "metadata": {
            "version": OCSF_VERSION,
            "uid": a.id,
            "log_name": if a.record.is_some() { "nbad.incident" } else { "nbad.alert" },
            "product": { "name": PRODUCT, "vendor_name": VENDOR, "version": VERSION },
        },
        "finding_info": {
            "uid": a.id,
            "title": a.message,
            "desc": a.description,
            "types": [a.rule_name()],
            "created_time": millis(a.timestamp_ns),
            "first_seen_time": millis(ev.window_start_ns),
            "last_seen_time": millis(ev.window_end_ns),
            "analytic": { "name": a.rule_name(), "uid": a.rule_name(), "type_id": 1, "type": "Rule" },
            "attacks": attack::ocsf_attacks(&attack::of_alert(a)),
            "related_events": a.incident.as_ref().map(|i| i.related.iter().map(|r| json!({ "uid": r })).collect::<Vec<_>>()),
        },
        "device": { "hostname": a.sensor_id, "type_id": 99, "type": "Other" },
        "evidences": [evidence],
        "unmapped": { "nbad": {
            "sensor_id": a.sensor_id,
            "host": { "criticality": a.host_criticality, "owner": a.host_owner },
            "evidence": ev,
            "incident": a.incident,
        } },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::format::tests::sample;

    #[test]
    fn a_scan_alert_is_a_detection_finding_with_its_id_and_endpoints() {
        let a = sample();
        let doc = detection_finding(&a);
        assert_eq!(doc["class_uid"], 2004);
        assert_eq!(doc["type_uid"], 200_401);
        assert_eq!(doc["category_uid"], 2);
        assert_eq!(doc["finding_info"]["uid"], a.id.as_str());
        assert_eq!(doc["severity_id"], 4);
        assert_eq!(doc["evidences"][0]["src_endpoint"]["ip"], "10.0.0.5");
        assert_eq!(doc["evidences"][0]["dst_endpoint"]["port"], 22);
        assert_eq!(doc["time"], 1_767_225_600_000_u64);
        let attack = &doc["finding_info"]["attacks"][0];
        assert_eq!(attack["tactic"]["uid"], "TA0007");
        assert_eq!(attack["technique"]["uid"], "T1046");
    }
}
