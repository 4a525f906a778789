use std::net::IpAddr;

use super::scope::{Finding, Match};
use super::*;

const SEC: u64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn entry(id: &str, observed: f64, threshold: f64) -> Entry {
    Entry {
        id: id.to_owned(),
        ts_ns: 1_000 * SEC,
        detector: Detector::Exfiltration,
        rule: "peer_upload".into(),
        host: ip("10.0.0.5"),
        peer: Some(ip("203.0.113.9")),
        peer_domain: Some("backup.example".into()),
        port: Some(443),
        observed,
        threshold,
        score: 60,
        window_start_ns: 400 * SEC,
        window_end_ns: 1_000 * SEC,
        incident: Some("inc-1".into()),
        group: None,
        window: Some("10m".into()),
    }
}

fn request(id: &str, verdict: &str) -> Request {
    Request {
        id: id.into(),
        verdict: verdict.into(),
        reason: "nightly backup to the offsite store".into(),
        author: "alice".into(),
        expires_s: Some(86_400),
        host_cidr: None,
    }
}

fn finding(observed: f64) -> Finding {
    Finding {
        detector: Detector::Exfiltration,
        rule: "peer_upload".into(),
        host: ip("10.0.0.5"),
        peer: Some(ip("198.51.100.1")),
        peer_domain: Some("backup.example".into()),
        port: Some(443),
        observed,
    }
}

fn book_with(entries: &[Entry]) -> (Book, Settings) {
    let s = Settings::default();
    let mut b = Book::default();
    for e in entries {
        b.remember(e.clone(), &s);
    }
    (b, s)
}

#[test]
fn a_false_positive_verdict_suppresses_the_same_scope_within_the_value_bound_until_it_expires() {
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6)]);
    let out = b.give(&request("a1", "false_positive"), 2_000 * SEC, &s).expect("verdict accepted");
    assert_eq!(out.alerts, ["a1"]);
    let sup = &out.suppressions[0];
    // The peer is named by its domain (a CDN's addresses change), the bound is 1.5 × the value.
    assert_eq!(sup.peer, None);
    assert_eq!(sup.peer_domain.as_deref(), Some("backup.example"));
    assert!((sup.bound - 150e6).abs() < 1.0);
    assert_eq!(sup.check(&finding(120e6), 3_000 * SEC), Match::Within);
    assert_eq!(sup.check(&finding(400e6), 3_000 * SEC), Match::Beyond);
    assert_eq!(sup.check(&finding(120e6), (2_000 + 86_400) * SEC), Match::Outside, "expired");
}

#[test]
fn a_suppression_never_covers_another_host_rule_port_or_peer() {
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6)]);
    let out = b.give(&request("a1", "benign_expected"), 2_000 * SEC, &s).expect("verdict accepted");
    let sup = &out.suppressions[0];
    let now = 3_000 * SEC;
    let mut other_host = finding(1.0);
    other_host.host = ip("10.0.0.6");
    let mut other_rule = finding(1.0);
    other_rule.rule = "new_peer_upload".into();
    let mut other_port = finding(1.0);
    other_port.port = Some(22);
    let mut other_peer = finding(1.0);
    other_peer.peer_domain = Some("elsewhere.example".into());
    let mut other_detector = finding(1.0);
    other_detector.detector = Detector::DnsTunnel;
    for f in [other_host, other_rule, other_port, other_peer, other_detector] {
        assert_eq!(sup.check(&f, now), Match::Outside, "{f:?}");
    }
}

#[test]
fn a_host_cidr_widens_the_suppression_only_when_it_holds_the_host() {
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6)]);
    let mut req = request("a1", "benign_expected");
    req.host_cidr = Some("10.1.0.0/16".into());
    assert!(matches!(b.give(&req, 0, &s), Err(VerdictError::Cidr(..))));
    req.host_cidr = Some("10.0.0.0/24".into());
    let out = b.give(&req, 0, &s).expect("verdict accepted");
    let mut neighbour = finding(1.0);
    neighbour.host = ip("10.0.0.77");
    assert_eq!(out.suppressions[0].check(&neighbour, SEC), Match::Within);
}

#[test]
fn a_true_positive_verdict_makes_no_suppression() {
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6)]);
    let out = b.give(&request("a1", "true_positive"), 0, &s).expect("verdict accepted");
    assert!(out.suppressions.is_empty());
    assert!(b.suppressions.is_empty());
    assert_eq!(b.verdicts[0].expires_ns, None);
}

#[test]
fn bad_verdicts_are_refused_with_the_reason_and_change_nothing() {
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6)]);
    let before = b.clone();
    assert!(matches!(b.give(&request("nope", "false_positive"), 0, &s), Err(VerdictError::Unknown(..))));
    assert!(matches!(b.give(&request("a1", "maybe"), 0, &s), Err(VerdictError::BadKind(_))));
    let mut r = request("a1", "false_positive");
    r.reason = " ".into();
    assert_eq!(b.give(&r, 0, &s), Err(VerdictError::Missing("reason")));
    let mut r = request("a1", "false_positive");
    r.expires_s = Some(10 * 365 * 86_400);
    assert!(matches!(b.give(&r, 0, &s), Err(VerdictError::Expiry(..))));
    assert_eq!(b, before);
}

#[test]
fn a_verdict_on_an_incident_judges_each_of_its_alerts() {
    let mut second = entry("a2", 3.0, 1.0);
    second.detector = Detector::DnsTunnel;
    second.rule = "unique_subdomains".into();
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6), second]);
    let out = b.give(&request("inc-1", "true_positive"), 0, &s).expect("verdict accepted");
    assert_eq!(out.alerts, ["a1", "a2"]);
    assert_eq!(b.verdicts.len(), 2);
}

#[test]
fn a_second_verdict_on_an_alert_replaces_the_first() {
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6)]);
    b.give(&request("a1", "false_positive"), 0, &s).expect("first verdict");
    b.give(&request("a1", "true_positive"), 0, &s).expect("second verdict");
    assert_eq!(b.verdicts.len(), 1);
    assert_eq!(b.verdicts[0].verdict, Kind::TruePositive);
    assert!(b.suppressions.is_empty(), "the false positive's suppression went with it");
    assert!(b.false_positives.is_empty());
}

#[test]
fn repeated_false_positives_of_a_rule_on_a_group_raise_its_threshold_within_the_limit() {
    let s = Settings::default();
    assert!((factor(2, &s) - 1.0).abs() < 1e-9);
    assert!((factor(3, &s) - 1.25).abs() < 1e-9);
    assert!((factor(4, &s) - 1.5).abs() < 1e-9);
    assert!((factor(40, &s) - s.max_raise).abs() < 1e-9);
    let entries: Vec<Entry> = (0..3)
        .map(|i| {
            let mut e = entry(&format!("a{i}"), 100e6, 50e6);
            e.host = ip(&format!("10.0.0.{}", 10 + i));
            e.group = Some(7);
            e.incident = None;
            e
        })
        .collect();
    let (mut b, s) = book_with(&entries);
    for e in &entries[..2] {
        let out = b.give(&request(&e.id, "false_positive"), 0, &s).expect("verdict");
        assert!(out.threshold_raises.is_empty());
    }
    let out = b.give(&request("a2", "false_positive"), 0, &s).expect("verdict");
    assert_eq!(out.threshold_raises, ["exfiltration/peer_upload@group:7 ×1.25 after 3 false positives"]);
    let key = GroupKey::new(Detector::Exfiltration, "peer_upload", ip("10.0.0.99"), Some(7));
    assert_eq!(b.raise_factor(&key, &s), (1.25, 3), "any host of the group");
    let other = GroupKey::new(Detector::Exfiltration, "peer_upload", ip("10.0.0.99"), Some(8));
    assert_eq!(b.raise_factor(&other, &s).0, 1.0, "not another group");
}

#[test]
fn the_ledger_keeps_the_most_recent_alerts_and_verdicts_keep_their_copy() {
    let s = Settings { max_alerts: 2, ..Settings::default() };
    let mut b = Book::default();
    for i in 0..3 {
        b.remember(entry(&format!("a{i}"), 1.0, 1.0), &s);
    }
    assert_eq!(b.ledger.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
    b.give(&request("a1", "true_positive"), 0, &s).expect("verdict");
    b.remember(entry("a3", 1.0, 1.0), &s);
    b.remember(entry("a4", 1.0, 1.0), &s);
    assert_eq!(b.figures().overall.true_positive, 1, "figures outlive the ledger");
}

#[test]
fn suppressions_expire_on_the_packet_clock_and_are_counted() {
    let (mut b, s) = book_with(&[entry("a1", 100e6, 50e6)]);
    b.give(&request("a1", "false_positive"), 0, &s).expect("verdict");
    b.expire(86_399 * SEC);
    assert_eq!(b.suppressions.len(), 1);
    b.expire(86_400 * SEC);
    assert!(b.suppressions.is_empty());
    assert_eq!(b.counters.expired, 1);
}

#[test]
fn precision_and_time_to_detect_come_from_the_verdicts() {
    let mut entries = Vec::new();
    for (i, incident) in [(0, "i1"), (1, "i1"), (2, "i2"), (3, "x"), (4, "y")] {
        let mut e = entry(&format!("a{i}"), 1.0, 1.0);
        e.incident = Some(incident.into());
        e.window_start_ns = 100 * SEC * (i + 1);
        e.ts_ns = e.window_start_ns + 60 * SEC * (i + 1);
        entries.push(e);
    }
    let (mut b, s) = book_with(&entries);
    for (id, v) in [
        ("a0", "true_positive"),
        ("a1", "true_positive"),
        ("a2", "true_positive"),
        ("a3", "false_positive"),
        ("a4", "benign_expected"),
    ] {
        b.give(&request(id, v), 0, &s).expect("verdict");
    }
    let f = b.figures();
    assert_eq!((f.overall.true_positive, f.overall.false_positive, f.overall.benign_expected), (3, 1, 1));
    assert_eq!(f.overall.precision, Some(0.75));
    // i1: evidence from 100 s, first alert at 160 s; i2: 300 s → 480 s.
    let ttd: Vec<(&str, f64)> = f.detections.iter().map(|d| (d.incident.as_str(), d.seconds)).collect();
    assert_eq!(ttd, [("i1", 60.0), ("i2", 180.0)]);
    assert_eq!(f.ttd_max_s, Some(180.0));
    assert!(f.to_text().contains("75.0 %"), "{}", f.to_text());
}

#[test]
fn a_held_bucket_is_learned_at_full_weight_after_a_benign_verdict_and_kept_out_after_a_true_positive() {
    use crate::detect::baseline::{HostBaseline, Lifecycle};
    let life = Lifecycle { learning_ns: 0, min_buckets: 1, stale_ns: u64::MAX };
    let values = [1e6; Metric::COUNT];
    let mut kept = HostBaseline::new(0);
    let mut learned = HostBaseline::new(0);
    for b in [&mut kept, &mut learned] {
        b.learn(&[10.0; Metric::COUNT], 500 * SEC, 0.01, 1.0, &life);
        b.hold(&values, 1_000 * SEC, &life, (0.01, 0.1));
    }
    let mean = |b: &HostBaseline| b.metric(Metric::BytesOut).typical();
    assert!((mean(&kept) - 10.0).abs() < 1e-6, "held, not learned yet");
    let mut v = Verdict {
        alert: entry("a1", 1e6, 5e5),
        verdict: Kind::TruePositive,
        reason: "r".into(),
        author: "a".into(),
        given_ns: 0,
        expires_ns: None,
    };
    assert!(settle(&mut kept, &v, 0.01));
    assert!(kept.held.is_empty());
    assert!((mean(&kept) - 10.0).abs() < 1e-6, "kept out for good");
    v.verdict = Kind::BenignExpected;
    assert!(settle(&mut learned, &v, 0.01));
    assert!(mean(&learned) > 1_000.0, "learned at full weight: {}", mean(&learned));
    assert_eq!((learned.verdict_learned, kept.verdict_excluded), (1, 1));
}

#[test]
fn a_held_bucket_without_a_verdict_is_learned_at_the_guard_weight_after_the_hold() {
    use crate::detect::baseline::{HostBaseline, Lifecycle};
    let life = Lifecycle { learning_ns: 0, min_buckets: 1, stale_ns: u64::MAX };
    let mut b = HostBaseline::new(0);
    b.learn(&[10.0; Metric::COUNT], 500 * SEC, 0.01, 1.0, &life);
    b.hold(&[1e6; Metric::COUNT], 1_000 * SEC, &life, (0.01, 0.1));
    b.release_held(1_000 * SEC + 3_599 * SEC, 3_600 * SEC, (0.01, 0.1));
    assert_eq!(b.held.len(), 1);
    b.release_held(1_000 * SEC + 3_600 * SEC, 3_600 * SEC, (0.01, 0.1));
    assert!(b.held.is_empty());
    let m = b.metric(Metric::BytesOut).typical();
    assert!(m > 10.0 && m < 1e6, "learned, at a reduced weight: {m}");
}

#[test]
fn an_id_copied_from_a_pseudonymising_output_finds_its_alert() {
    let (b, _) = book_with(&[entry("a1", 1.0, 1.0)]);
    let pseudonym = |id: &str| format!("p-{id}");
    assert_eq!(b.real_id("p-a1", pseudonym), Some("a1".to_owned()));
    assert_eq!(b.real_id("p-inc-1", pseudonym), Some("inc-1".to_owned()), "an incident's id too");
    assert_eq!(b.real_id("a1", pseudonym), None, "a real id needs no mapping");
    assert_eq!(b.real_id("p-zz", pseudonym), None);
}
