//! `lateral_movement` through the engine: a small office ([`office`]) learns for eight hours, then one workstation reaches into other inside hosts on administrative services.

use std::net::IpAddr;

use crate::alert::{Alert, Detector};
use crate::detect::testing::{
    FILE_SERVER, MIN, OFFICE_CONFIG, SEC, T0, engine, office, run, session, workstation,
};

const HOME: &str = "10.0.0.0/8";
/// Minutes of ordinary office traffic before the episode.
const LEARN_MIN: u64 = 480;
/// When the episode starts.
const EPISODE: u64 = T0 + LEARN_MIN * MIN;

fn lateral(alerts: &[Alert]) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.detector == Detector::LateralMovement && a.record.is_none()).collect()
}

fn rule(a: &Alert) -> &str {
    a.evidence.details.get("rule").and_then(|r| r.as_str()).unwrap_or("-")
}

/// Workstation 0 opens SMB sessions to workstations 1–4 within one bucket (buckets start on
/// whole minutes of the epoch, 40 s into each minute of [`T0`]).
pub(crate) fn smb_fan_out() -> Vec<crate::flow::FlowRecord> {
    (1..=4u8)
        .map(|n| {
            let at = EPISODE + 41 * SEC + u64::from(n) * 3 * SEC;
            session((workstation(0), 61_000 + u16::from(n)), (workstation(n), 445), at, 3_000, 4_000)
        })
        .collect()
}

#[test]
fn a_workstation_reaching_four_new_hosts_over_smb_is_lateral_fan_out() {
    let mut records = office(LEARN_MIN + 5, true);
    records.extend(smb_fan_out());
    let alerts = run(&mut engine(HOME, OFFICE_CONFIG), &records);
    let found = lateral(&alerts);
    assert_eq!(found.len(), 1, "{found:#?}");
    let a = found[0];
    assert_eq!((a.host, rule(a), a.port), (workstation(0), "fan_out", Some(445)));
    assert_eq!(a.evidence.observed, 4.0);
    assert_eq!(a.evidence.details["targets"].as_array().map(Vec::len), Some(4));
    let expected = a.evidence.details["expected_new_peers"].as_f64().expect("expected peers");
    assert!(expected < 0.5, "the office rarely reaches a new host over SMB: {expected}");
    assert!(a.message.contains("smb with 4 inside hosts"), "{}", a.message);
    let ecs = a.to_ecs();
    assert_eq!(ecs["threat"]["technique"]["id"][0], "T1021");
    assert_eq!(ecs["threat"]["technique"]["subtechnique"]["id"][0], "T1021.002");
}

#[test]
fn rdp_from_one_workstation_to_another_is_an_unusual_target() {
    let mut records = office(LEARN_MIN + 5, false);
    records.push(session(
        (workstation(5), 61_000),
        (workstation(1), 3389),
        EPISODE + 10 * SEC,
        50_000,
        400_000,
    ));
    let alerts = run(&mut engine(HOME, OFFICE_CONFIG), &records);
    let found = lateral(&alerts);
    assert_eq!(found.len(), 1, "{found:#?}");
    let a = found[0];
    assert_eq!(
        (a.host, rule(a), a.peer, a.port),
        (workstation(5), "unusual_target", Some(workstation(1)), Some(3389))
    );
    assert_eq!(a.evidence.details["targets"][0]["peer_clients_before"], 0);
    assert_eq!(a.to_ecs()["threat"]["technique"]["subtechnique"]["id"][0], "T1021.001");
}

#[test]
fn a_new_client_of_an_established_file_server_is_not_lateral_movement() {
    let mut records = office(LEARN_MIN + 5, true);
    let server = IpAddr::from(FILE_SERVER);
    records.push(session((workstation(5), 61_000), (server, 445), EPISODE + 10 * SEC, 2_000, 30_000));
    let mut e = engine(HOME, OFFICE_CONFIG);
    let alerts = run(&mut e, &records);
    assert!(lateral(&alerts).is_empty(), "{:#?}", lateral(&alerts));
    let role = e.role_of(server).expect("the file server is tracked");
    assert_eq!(role.kind, "server");
    assert_eq!(role.services, ["smb/445 (6 clients)"]);
    assert_eq!(e.role_of(workstation(0)).map(|r| r.kind), Some("client".to_owned()));
}

#[test]
fn nothing_is_raised_while_the_host_is_still_learning() {
    // The same four SMB sessions in the office's first minutes: every pair is new then.
    let mut records = office(20, true);
    records.extend(smb_fan_out().into_iter().map(|mut r| {
        let shift = EPISODE - T0;
        for d in [&mut r.client, &mut r.server] {
            d.first_ns -= shift;
            d.last_ns -= shift;
        }
        r.start_ns -= shift;
        r.end_ns -= shift;
        r
    }));
    let alerts = run(&mut engine(HOME, OFFICE_CONFIG), &records);
    assert!(lateral(&alerts).is_empty(), "{:#?}", lateral(&alerts));
}

#[test]
fn the_dce_rpc_call_on_a_dynamic_port_after_the_endpoint_mapper_is_the_same_administrative_use() {
    let mut e = engine(HOME, OFFICE_CONFIG);
    let (host, target, other) = (workstation(5), workstation(1), workstation(2));
    let at = T0 + 30 * SEC;
    for r in [
        session((host, 61_000), (target, 135), at, 300, 400),
        session((host, 61_001), (target, 49_667), at + SEC, 2_000, 1_500),
        session((host, 61_002), (other, 49_667), at + 2 * SEC, 2_000, 1_500),
    ] {
        e.advance(r.start_ns);
        e.record(&r);
    }
    let h = e.hosts.get(&host).expect("tracked");
    assert_eq!(h.bucket.inside.admin_connections, 2, "the endpoint mapper and the call that followed it");
    assert_eq!(h.baseline.admin_pairs.len(), 1, "one pair: (target, 135)");
    assert_eq!(h.bucket.inside.admin.iter().map(|u| u.port).collect::<Vec<_>>(), [135, 135]);
}
