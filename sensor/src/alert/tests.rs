use std::net::{IpAddr, Ipv4Addr};

use super::*;

pub(crate) fn sample_alert() -> Alert {
    let host = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    let peer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    let window_end_ns = 1_700_000_060_000_000_000;
    Alert {
        id: alert_id("sensor-1", Detector::Exfiltration, host, Some(peer), Some(443), window_end_ns),
        timestamp_ns: window_end_ns,
        sensor_id: "sensor-1".into(),
        detector: Detector::Exfiltration,
        description: "outbound volume far above the host's baseline".into(),
        message: "10.0.0.5 sent 52 MB to 203.0.113.9:443 in 60 s".into(),
        risk_score: 82,
        severity: Severity::from_score(82),
        host,
        peer: Some(peer),
        port: Some(443),
        transport: Some("tcp".into()),
        community_id: Some("1:abc=".into()),
        host_criticality: 3,
        host_owner: Some("finance".into()),
        evidence: Evidence {
            metric: "bytes_out_bucket".into(),
            observed: 52e6,
            baseline_mean: Some(1e5),
            baseline_band: Some([1e4, 1e6]),
            threshold: 1e7,
            learning_state: LearningState::Active,
            window_start_ns: window_end_ns - 60_000_000_000,
            window_end_ns,
            community_ids: vec!["1:abc=".into()],
            details: serde_json::Map::new(),
        },
        incident: Some(IncidentRef { id: "inc-1".into(), host_risk: 82, alert_count: 1, related: vec![] }),
        host_role: None,
        record: None,
    }
}

#[test]
fn alert_id_is_stable_and_depends_on_content() {
    let a = sample_alert();
    let again = alert_id("sensor-1", Detector::Exfiltration, a.host, a.peer, a.port, a.timestamp_ns);
    assert_eq!(a.id, again);
    assert_eq!(a.id.len(), 32);
    let other = alert_id("sensor-1", Detector::Scan, a.host, a.peer, a.port, a.timestamp_ns);
    assert_ne!(a.id, other);
}

#[test]
fn ecs_document_carries_the_required_fields() {
    let doc = sample_alert().to_ecs();
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["rule"]["name"], "exfiltration");
    assert_eq!(doc["event"]["risk_score"], 82);
    assert_eq!(doc["event"]["severity"], 3);
    assert_eq!(doc["source"]["ip"], "10.0.0.5");
    assert_eq!(doc["destination"]["ip"], "203.0.113.9");
    assert_eq!(doc["destination"]["port"], 443);
    assert_eq!(doc["network"]["community_id"], "1:abc=");
    assert_eq!(doc["nbad"]["evidence"]["learning_state"], "active");
    assert_eq!(doc["nbad"]["incident"]["id"], "inc-1");
    assert_eq!(doc["@timestamp"], "2023-11-14T22:14:20.000000Z");
}

#[test]
fn ecs_document_carries_the_attack_mapping() {
    let doc = sample_alert().to_ecs();
    assert_eq!(doc["threat"]["framework"], "MITRE ATT&CK");
    assert_eq!(doc["threat"]["tactic"]["id"][0], "TA0010");
    assert_eq!(doc["threat"]["tactic"]["name"][0], "Exfiltration");
    assert_eq!(doc["threat"]["technique"]["id"], serde_json::json!(["T1041", "T1048"]));
    let mut health = sample_alert();
    health.detector = Detector::CaptureLoss;
    assert!(health.to_ecs().get("threat").is_none(), "the sensor's own health maps to no technique");
}

#[test]
fn alert_round_trips_through_json() {
    let a = sample_alert();
    let text = serde_json::to_string(&a).expect("encode");
    let back: Alert = serde_json::from_str(&text).expect("decode");
    assert_eq!(a, back);
}

#[test]
fn severity_bands_follow_the_score() {
    assert_eq!(Severity::from_score(0), Severity::Low);
    assert_eq!(Severity::from_score(39), Severity::Low);
    assert_eq!(Severity::from_score(40), Severity::Medium);
    assert_eq!(Severity::from_score(70), Severity::High);
    assert_eq!(Severity::from_score(100), Severity::Critical);
}
