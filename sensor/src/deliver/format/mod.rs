//! Alert encodings: ECS JSON (the alert model's own), OCSF Detection Finding, CEF, LEEF 2.0,
//! and the RFC 5424 syslog frame around them; plus reading ECS alerts back for `alerts send`.
//!
//! Each text format has its own escaping rules, implemented and unit-tested in its file. The
//! alert's `event.id` is carried by every format (ECS `event.id`, OCSF `finding_info.uid`,
//! CEF `externalId`, LEEF `externalId`, the syslog MSGID and structured data), so duplicates
//! from at-least-once delivery can be recognised downstream.

pub(crate) mod cef;
pub(crate) mod ecs_in;
pub(crate) mod leef;
pub(crate) mod ocsf;
pub(crate) mod rfc5424;

use serde_json::Value;

use super::config::Format;
use crate::alert::Alert;

/// The product and vendor named in CEF/LEEF headers and OCSF metadata.
pub(crate) const VENDOR: &str = "nbad";
/// See [`VENDOR`].
pub(crate) const PRODUCT: &str = "nbad-sensor";
/// The sensor's version in headers.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The alert as a JSON document in `format` (`Ecs` or `Ocsf`; the text formats have no JSON
/// form and fall back to ECS).
#[must_use]
pub(crate) fn json(alert: &Alert, format: Format) -> Value {
    match format {
        Format::Ocsf => ocsf::detection_finding(alert),
        Format::Ecs | Format::Cef | Format::Leef => alert.to_ecs(),
    }
}

/// The alert as one line of text in `format` (syslog message bodies).
#[must_use]
pub(crate) fn text(alert: &Alert, format: Format) -> String {
    match format {
        Format::Cef => cef::event(alert),
        Format::Leef => leef::event(alert),
        Format::Ecs | Format::Ocsf => json(alert, format).to_string(),
    }
}

/// RFC 3339 UTC with microseconds (what RFC 5424 allows), from ns since the epoch.
pub(crate) use crate::alert::rfc3339;

/// Milliseconds since the epoch of an alert's timestamp.
pub(crate) fn millis(ns: u64) -> u64 {
    ns / 1_000_000
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::IpAddr;

    use crate::alert::{Alert, Detector, Evidence, LearningState, Severity, alert_id};

    /// A scan alert with every optional field set, and hostile characters in the text fields.
    pub(crate) fn sample() -> Alert {
        let host: IpAddr = "10.0.0.5".parse().expect("ip");
        let peer: IpAddr = "198.51.100.7".parse().expect("ip");
        let end = 1_767_225_600_000_000_000;
        let mut details = serde_json::Map::new();
        details.insert("ports".into(), serde_json::json!([22, 80]));
        Alert {
            id: alert_id("s1", Detector::Scan, host, Some(peer), Some(22), end),
            timestamp_ns: end,
            sensor_id: "s1".into(),
            detector: Detector::Scan,
            description: "Horizontal | vertical scan = probing\\many".into(),
            message: "10.0.0.5 probed 120 ports on 198.51.100.7 in 60 s] \"quoted\"\nnext".into(),
            risk_score: 87,
            severity: Severity::from_score(87),
            host,
            peer: Some(peer),
            port: Some(22),
            transport: Some("tcp".into()),
            community_id: Some("1:abc=".into()),
            host_criticality: 3,
            host_owner: Some("it".into()),
            evidence: Evidence {
                metric: "distinct_ports".into(),
                observed: 120.0,
                baseline_mean: Some(3.0),
                baseline_band: Some([0.0, 8.0]),
                threshold: 50.0,
                learning_state: LearningState::Active,
                window_start_ns: end - 60_000_000_000,
                window_end_ns: end,
                community_ids: vec!["1:abc=".into()],
                details,
            },
            incident: None,
            host_role: None,
            record: None,
        }
    }

    #[test]
    fn an_incident_record_is_a_staged_incident_in_every_format() {
        use crate::alert::incident::{IncidentAction, IncidentRecord, StageStep};
        let mut a = sample();
        a.record = Some(Box::new(IncidentRecord {
            action: IncidentAction::Opened,
            sequence: 0,
            opened_ns: a.timestamp_ns,
            steps: vec![StageStep {
                stage: "reconnaissance".into(),
                first_ns: a.timestamp_ns,
                last_ns: a.timestamp_ns,
                detectors: vec![Detector::Scan],
                alerts: 1,
                peers: vec![],
                first_message: "a scan".into(),
            }],
            risk: 87.0,
        }));
        assert!(super::cef::event(&a).contains("|staged_incident|"));
        assert!(super::leef::event(&a).contains("cat=staged_incident"));
        assert!(super::rfc5424::message(&a, 4, "nbad-sensor", "-").contains(" staged_incident [nbad@"));
        let ocsf = super::ocsf::detection_finding(&a);
        assert_eq!(ocsf["metadata"]["log_name"], "nbad.incident");
        assert_eq!(ocsf["finding_info"]["attacks"][0]["technique"]["uid"], "T1046");
    }
}
