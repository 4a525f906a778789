//! `host_outlier` through the engine, and the learned models across a restart: a small office
//! ([`office`]) learns for eight hours, then one workstation does something no rule is
//! written for.

use std::net::IpAddr;

use crate::alert::{Alert, Detector};
use crate::detect::testing::{MIN, OFFICE_CONFIG, SEC, T0, engine, office, run, session, v4, workstation};
use crate::detect::{Engine, state};
use crate::flow::FlowRecord;

const HOME: &str = "10.0.0.0/8";
const LEARN_MIN: u64 = 480;
const EPISODE: u64 = T0 + LEARN_MIN * MIN;

fn outliers(alerts: &[Alert]) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.detector == Detector::HostOutlier && a.record.is_none()).collect()
}

/// Workstation 2 opens ordinary-sized HTTPS sessions to 60 outside sites it never talked to, in
/// one minute.
fn sixty_new_sites() -> Vec<FlowRecord> {
    (0..60u8)
        .map(|i| {
            let at = EPISODE + u64::from(i) * SEC / 2;
            session(
                (workstation(2), 62_000 + u16::from(i)),
                (v4(198, 51, 100, 1 + i), 443),
                at,
                1_500,
                60_000,
            )
        })
        .collect()
}

#[test]
fn a_workstation_unlike_itself_and_its_peer_group_is_an_outlier_that_names_its_features() {
    let mut records = office(LEARN_MIN + 5, true);
    records.extend(sixty_new_sites());
    let alerts = run(&mut engine(HOME, OFFICE_CONFIG), &records);
    let found = outliers(&alerts);
    assert_eq!(found.len(), 1, "{found:#?}");
    let a = found[0];
    assert_eq!(a.host, workstation(2));
    let features = a.evidence.details["features"].as_array().expect("features");
    let names: Vec<&str> = features.iter().filter_map(|f| f["feature"].as_str()).collect();
    assert!(names.contains(&"new_outside_peers") && names.contains(&"outside_peers"), "{names:?}");
    for f in features {
        let (value, high) =
            (f["value"].as_f64().expect("value"), f["expected_own"][1].as_f64().expect("range"));
        assert!(value > high, "a named feature lies above its expected range: {f}");
        assert!(f["expected_group"][1].as_f64().is_some(), "{f}");
    }
    let group = a.evidence.details["peer_group"].as_str().expect("peer group");
    assert!(group.contains("workstations"), "{group}");
    assert!(a.message.contains("expected up to"), "{}", a.message);
    assert!(a.host_role.as_ref().is_some_and(|r| r.peer_group.is_some()), "{:?}", a.host_role);
}

#[test]
fn the_ordinary_office_raises_no_outlier() {
    let alerts = run(&mut engine(HOME, OFFICE_CONFIG), &office(LEARN_MIN + 60, true));
    assert!(outliers(&alerts).is_empty(), "{:#?}", outliers(&alerts));
}

#[test]
fn learned_models_survive_a_restart_and_still_find_the_episodes() {
    let mut first = engine(HOME, OFFICE_CONFIG);
    let learned = run(&mut first, &office(LEARN_MIN, true));
    assert!(outliers(&learned).is_empty());
    let saved = first.state();
    assert!(!saved.peer_groups.groups.is_empty(), "the office was grouped");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("baselines.json");
    state::save(&path, &saved).expect("saved");
    let loaded = state::load(&path).expect("readable").expect("present");
    assert_eq!(loaded.peer_groups.groups.len(), saved.peer_groups.groups.len());
    for (g, h) in loaded.peer_groups.groups.iter().zip(&saved.peer_groups.groups) {
        assert_eq!((g.id, g.members, g.dist.n), (h.id, h.members, h.dist.n));
    }
    for (ip, b) in &saved.hosts {
        let l = &loaded.hosts[ip];
        assert_eq!(
            (&l.admin_pairs, &l.role, l.outlier.group, l.outlier.dist.n),
            (&b.admin_pairs, &b.role, b.outlier.group, b.outlier.dist.n),
            "{ip}"
        );
        for (x, y) in l.outlier.dist.mean.iter().zip(&b.outlier.dist.mean) {
            assert!((x - y).abs() < 1e-12, "{ip}: {x} != {y}");
        }
    }
    // A sensor started from the file needs no new learning: the office's next minutes with both
    // episodes in them are enough.
    let config = crate::config::from_str(
        &format!("[sensor]\nhome_networks = [\"{HOME}\"]\n{OFFICE_CONFIG}"),
        "<test>",
    )
    .expect("config");
    let mut second = Engine::new(&config, Some(loaded));
    let mut next: Vec<FlowRecord> =
        office(LEARN_MIN + 5, true).into_iter().filter(|r| r.start_ns >= EPISODE).collect();
    next.extend(sixty_new_sites());
    next.extend(crate::detect::lateral::engine_tests::smb_fan_out());
    let alerts = run(&mut second, &next);
    let hosts: Vec<IpAddr> = outliers(&alerts).iter().map(|a| a.host).collect();
    assert_eq!(hosts, [workstation(2)]);
    assert!(
        alerts.iter().any(|a| a.detector == Detector::LateralMovement && a.host == workstation(0)),
        "{alerts:#?}"
    );
}
