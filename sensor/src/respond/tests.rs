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
