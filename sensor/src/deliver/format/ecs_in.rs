//! Reading alerts back from files for `nbad-sensor alerts send`: ECS alert documents (what
//! `--alerts PATH` writes), the alert model's own JSON, and dead-letter lines (which carry the
//! alert under `"alert"`), one per line.
//!
//! An ECS document is mapped back field by field (the inverse of `Alert::to_ecs`); its
//! `event.id` is kept as is, so a re-sent alert is recognisable as the same finding. Times come
//! back with ECS's microsecond precision.

use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use serde_json::Value;

use crate::alert::incident::IncidentRecord;
use crate::alert::{Alert, Detector, Evidence, HostRole, IncidentRef, LearningState, Severity};

/// Why a line is not an alert.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAnAlert(String);

fn field<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, k| v.get(k))
}

fn need<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, NotAnAlert> {
    field(doc, path).filter(|v| !v.is_null()).ok_or_else(|| NotAnAlert(format!("no {path}")))
}

fn string(doc: &Value, path: &str) -> Result<String, NotAnAlert> {
    need(doc, path)?.as_str().map(str::to_owned).ok_or_else(|| NotAnAlert(format!("{path} is not a string")))
}

fn opt_string(doc: &Value, path: &str) -> Option<String> {
    field(doc, path).and_then(Value::as_str).map(str::to_owned)
}

fn ip(doc: &Value, path: &str) -> Result<IpAddr, NotAnAlert> {
    string(doc, path)?.parse().map_err(|_| NotAnAlert(format!("{path} is not an IP address")))
}

fn time_ns(doc: &Value, path: &str) -> Result<u64, NotAnAlert> {
    let text = string(doc, path)?;
    let t = humantime::parse_rfc3339(&text).map_err(|e| NotAnAlert(format!("{path}: {e}")))?;
    let d = t.duration_since(UNIX_EPOCH).map_err(|_| NotAnAlert(format!("{path} is before 1970")))?;
    u64::try_from(d.as_nanos()).map_err(|_| NotAnAlert(format!("{path} is too far in the future")))
}

fn int<T: TryFrom<u64>>(doc: &Value, path: &str) -> Result<T, NotAnAlert> {
    need(doc, path)?
        .as_u64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| NotAnAlert(format!("{path} is not a small non-negative integer")))
}

fn from_json<T: serde::de::DeserializeOwned>(doc: &Value, path: &str) -> Result<T, NotAnAlert> {
    serde_json::from_value(need(doc, path)?.clone()).map_err(|e| NotAnAlert(format!("{path}: {e}")))
}

/// One line of an alerts file as an [`Alert`].
pub fn parse_line(line: &str) -> Result<Alert, NotAnAlert> {
    let doc: Value = serde_json::from_str(line).map_err(|e| NotAnAlert(format!("not JSON: {e}")))?;
    if let Some(inner) = doc.get("alert").filter(|v| v.is_object()) {
        return serde_json::from_value(inner.clone()).map_err(|e| NotAnAlert(format!("alert: {e}")));
    }
    if doc.get("detector").is_some() {
        return serde_json::from_value(doc).map_err(|e| NotAnAlert(format!("alert JSON: {e}")));
    }
    from_ecs(&doc)
}

/// An ECS alert document (as `Alert::to_ecs` writes it) as an [`Alert`].
pub fn from_ecs(doc: &Value) -> Result<Alert, NotAnAlert> {
    if field(doc, "event.kind").and_then(Value::as_str) != Some("alert") {
        return Err(NotAnAlert("not an ECS alert (event.kind is not \"alert\")".into()));
    }
    // An incident record names the detector that opened or escalated it; an alert, its own.
    let is_record = opt_string(doc, "event.dataset").as_deref() == Some("nbad.incident");
    let rule = if is_record { string(doc, "nbad.incident.trigger")? } else { string(doc, "rule.name")? };
    let detector =
        Detector::from_name(&rule).ok_or_else(|| NotAnAlert(format!("rule.name {rule:?} is no detector")))?;
    let record: Option<Box<IncidentRecord>> =
        if is_record { Some(Box::new(from_json(doc, "nbad.incident.record")?)) } else { None };
    let host_role = opt_string(doc, "nbad.host.role").map(|kind| HostRole {
        kind,
        services: from_json(doc, "nbad.host.services").unwrap_or_default(),
        peer_group: opt_string(doc, "nbad.host.peer_group"),
    });
    let risk_score: u8 = int(doc, "event.risk_score")?;
    let severity = opt_string(doc, "nbad.severity")
        .and_then(|s| serde_json::from_value::<Severity>(Value::String(s)).ok())
        .unwrap_or_else(|| Severity::from_score(risk_score));
    let e = "nbad.evidence";
    let learning_state: LearningState = from_json(doc, &format!("{e}.learning_state"))?;
    let evidence = Evidence {
        metric: string(doc, &format!("{e}.metric"))?,
        observed: need(doc, &format!("{e}.observed"))?.as_f64().unwrap_or(f64::NAN),
        baseline_mean: field(doc, &format!("{e}.baseline_mean")).and_then(Value::as_f64),
        baseline_band: from_json(doc, &format!("{e}.baseline_band")).ok(),
        threshold: need(doc, &format!("{e}.threshold"))?.as_f64().unwrap_or(f64::NAN),
        learning_state,
        window_start_ns: time_ns(doc, &format!("{e}.window_start"))?,
        window_end_ns: time_ns(doc, &format!("{e}.window_end"))?,
        community_ids: from_json(doc, &format!("{e}.community_ids")).unwrap_or_default(),
        details: from_json(doc, &format!("{e}.details")).unwrap_or_default(),
    };
    let incident: Option<IncidentRef> = from_json(doc, "nbad.incident").ok();
    Ok(Alert {
        id: string(doc, "event.id")?,
        timestamp_ns: time_ns(doc, "@timestamp")?,
        sensor_id: string(doc, "observer.name")?,
        detector,
        description: opt_string(doc, "rule.description").unwrap_or_default(),
        message: opt_string(doc, "message").unwrap_or_default(),
        risk_score,
        severity,
        host: ip(doc, "source.ip")?,
        peer: ip(doc, "destination.ip").ok(),
        port: int(doc, "destination.port").ok(),
        transport: opt_string(doc, "network.transport"),
        community_id: opt_string(doc, "network.community_id"),
        host_criticality: int(doc, "nbad.host.criticality").unwrap_or(1),
        host_owner: opt_string(doc, "nbad.host.owner"),
        evidence,
        incident,
        host_role,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::format::tests::sample;

    #[test]
    fn an_ecs_line_maps_back_to_the_same_alert() {
        let a = sample();
        let back = parse_line(&a.to_ecs_line()).expect("parses");
        assert_eq!(back, a);
    }

    #[test]
    fn alert_json_and_dead_letter_lines_are_read_too() {
        let a = sample();
        let json = serde_json::to_string(&a).expect("serialize");
        assert_eq!(parse_line(&json).expect("alert json"), a);
        let dead = format!("{{\"sink\":\"x\",\"reason\":\"401\",\"alert\":{json}}}");
        assert_eq!(parse_line(&dead).expect("dead letter"), a);
    }

    #[test]
    fn an_incident_record_and_a_learned_role_map_back_too() {
        use crate::alert::incident::{IncidentAction, StageStep};
        let mut a = sample();
        a.host_role = Some(HostRole {
            kind: "server".into(),
            services: vec!["smb/445 (4 clients)".into()],
            peer_group: Some("2 (servers, 3 hosts)".into()),
        });
        let back = parse_line(&a.to_ecs_line()).expect("alert with a role");
        assert_eq!(back, a);
        // A record names no peer or flow of its own (its steps do).
        (a.peer, a.port, a.transport, a.community_id) = (None, None, None, None);
        a.record = Some(Box::new(IncidentRecord {
            action: IncidentAction::Escalated,
            sequence: 1,
            opened_ns: a.timestamp_ns - 600_000_000_000,
            steps: vec![StageStep {
                stage: "reconnaissance".into(),
                first_ns: a.timestamp_ns - 600_000_000_000,
                last_ns: a.timestamp_ns,
                detectors: vec![Detector::Scan],
                alerts: 2,
                peers: vec![a.host],
                first_message: "a scan".into(),
            }],
            risk: 120.5,
        }));
        let doc = a.to_ecs();
        assert_eq!(doc["event"]["dataset"], "nbad.incident");
        assert_eq!(doc["event"]["action"], "incident_escalated");
        assert_eq!(doc["threat"]["technique"]["id"][0], "T1046");
        let back = parse_line(&doc.to_string()).expect("incident record");
        assert_eq!(back, a);
    }

    #[test]
    fn a_flow_record_is_not_an_alert() {
        let err = parse_line(r#"{"event":{"kind":"event"}}"#).expect_err("rejected");
        assert!(err.to_string().contains("event.kind"), "{err}");
    }
}
