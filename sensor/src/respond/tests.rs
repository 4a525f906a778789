use super::config::NftSettings;
use super::*;
use crate::alert::HostRole;
use crate::alert::tests::sample_alert;

const NOW: u64 = 1_800_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn settings(action: NftAction) -> ResponseSettings {
    ResponseSettings {
        enabled: true,
        dry_run: false,
        min_score: 80,
        max_actions_per_hour: 2,
        never_act: vec!["10.0.0.1/32".parse().expect("net")],
        nftables: NftSettings {
            enabled: true,
            action,
            command: vec!["nft".into()],
            table: "t".into(),
            setup: false,
        },
        ..ResponseSettings::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn an_alert_above_the_score_of_an_active_host_is_acted_on_and_nothing_else_is_a_candidate() {
    let g = Guard::new(settings(NftAction::QuarantineHost), vec![], vec![]);
    let a = sample_alert();
    assert_eq!(g.decide(&a, LearningState::Active, NOW), Decision::Act(a.host));
    let mut low = sample_alert();
    low.risk_score = 79;
    assert_eq!(g.decide(&low, LearningState::Active, NOW), Decision::Ignore);
    let mut health = sample_alert();
    health.detector = Detector::CaptureLoss;
    assert_eq!(g.decide(&health, LearningState::Active, NOW), Decision::Ignore);
}

#[test]
fn never_act_collectors_critical_assets_and_dns_servers_are_refused_with_the_reason() {
    let mut a = sample_alert();
    let refuse = |g: &Guard, a: &Alert, needle: &str| match g.decide(a, LearningState::Active, NOW) {
        Decision::Refuse(why) => assert!(why.contains(needle), "{why}"),
        other => panic!("expected a refusal with {needle:?}, got {other:?}"),
    };
    a.host = ip("10.0.0.1");
    refuse(&Guard::new(settings(NftAction::QuarantineHost), vec![], vec![]), &a, "never_act");
    a.host = ip("10.0.0.5");
    refuse(&Guard::new(settings(NftAction::QuarantineHost), vec![ip("10.0.0.5")], vec![]), &a, "receives");
    let critical = vec!["10.0.0.0/28".parse().expect("net")];
    refuse(&Guard::new(settings(NftAction::QuarantineHost), vec![], critical), &a, "criticality");
    a.host_role = Some(HostRole {
        kind: "server".into(),
        services: vec!["dns/53 (40 clients)".into()],
        peer_group: None,
    });
    refuse(&Guard::new(settings(NftAction::QuarantineHost), vec![], vec![]), &a, "serves");
    a.host_role = None;
    for unspecified in ["0.0.0.0", "255.255.255.255", "224.0.0.251", "::"] {
        a.host = ip(unspecified);
        refuse(&Guard::new(settings(NftAction::QuarantineHost), vec![], vec![]), &a, "not one host");
    }
}

#[test]
fn a_learning_or_stale_host_is_never_acted_on() {
    let g = Guard::new(settings(NftAction::QuarantineHost), vec![], vec![]);
    for state in [LearningState::Learning, LearningState::Stale] {
        assert!(
            matches!(g.decide(&sample_alert(), state, NOW), Decision::Refuse(w) if w.contains("learning"))
        );
    }
}

#[test]
fn block_peer_acts_on_the_peer_and_refuses_an_alert_without_one() {
    let g = Guard::new(settings(NftAction::BlockPeer), vec![], vec![]);
    let a = sample_alert();
    assert_eq!(g.decide(&a, LearningState::Active, NOW), Decision::Act(ip("203.0.113.9")));
    let mut no_peer = sample_alert();
    no_peer.peer = None;
    assert!(matches!(g.decide(&no_peer, LearningState::Active, NOW), Decision::Refuse(_)));
}

#[test]
fn the_rate_limit_counts_a_rolling_hour_and_one_action_per_address_is_in_force() {
    let mut g = Guard::new(settings(NftAction::QuarantineHost), vec![], vec![]);
    let mut a = sample_alert();
    let expires = g.record(a.host, &a, NOW);
    assert_eq!(expires, NOW + 3_600 * SEC);
    assert!(matches!(g.decide(&a, LearningState::Active, NOW), Decision::Refuse(w) if w.contains("already")));
    a.host = ip("10.0.0.6");
    g.record(a.host, &a, NOW + SEC);
    a.host = ip("10.0.0.7");
    assert!(
        matches!(g.decide(&a, LearningState::Active, NOW + 2 * SEC), Decision::Refuse(w) if w.contains("rate limit"))
    );
    // An hour after the first two actions, room again (the first two have also expired).
    let later = NOW + 3_600 * SEC + 2 * SEC;
    assert_eq!(g.expired(later).len(), 2);
    assert_eq!(g.decide(&a, LearningState::Active, later), Decision::Act(a.host));
}

/// An HTTP receiver on loopback that answers 200 to every request and keeps the bodies.
fn http_receiver() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (port, rx)
}

#[test]
fn the_webhook_posts_the_alert_through_its_spool_and_the_audit_log_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, bodies) = http_receiver();
    let text = format!(
        "[alerts]\nspool_dir = {:?}\n[response]\nenabled = true\ndry_run = false\naudit_log = {:?}\n\
         [response.webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\n",
        dir.path().join("spool").display().to_string(),
        dir.path().join("audit.jsonl").display().to_string(),
    );
    let cfg = crate::config::from_str(&text, "<test>").expect("valid config");
    let settings = cfg.response.clone();
    let guard = Guard::new(settings.clone(), vec![], vec![]);
    let (responder, feed) = Responder::start(settings, guard, "t").expect("response starts");
    let alert = sample_alert();
    feed.offer(&alert, &alert, LearningState::Active);
    let body = bodies.recv_timeout(Duration::from_secs(20)).expect("the webhook was called");
    assert!(body.contains(&alert.id), "{body}");
    responder.finish();
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    let event: serde_json::Value =
        serde_json::from_str(audit.lines().next().expect("one event")).expect("ECS JSON");
    assert_eq!(event.pointer("/event/action").and_then(serde_json::Value::as_str), Some("webhook"));
    assert_eq!(event.pointer("/event/outcome").and_then(serde_json::Value::as_str), Some("success"));
    assert_eq!(event.pointer("/event/dataset").and_then(serde_json::Value::as_str), Some("nbad.response"));
}
