//! The scan rules through the engine, on flow records and observations as the
//! flow table and the observer make them.

use std::net::IpAddr;

use crate::alert::{Alert, Detector};
use crate::decode::tcp_flags;
use crate::detect::testing::{SEC, T0, dir, engine, obs, record, run, v4};
use crate::flow::record::tcp_state::{RST, SYN};
use crate::observe::ObsKind;

const HOME: &str = "10.0.0.0/8";

fn scans(alerts: &[Alert]) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.detector == Detector::Scan).collect()
}

fn rule(a: &Alert) -> &str {
    a.evidence.details.get("rule").and_then(|r| r.as_str()).unwrap_or("-")
}

/// An unanswered SYN from `src` to `dst:port` at `at`.
fn syn(src: IpAddr, dst: IpAddr, port: u16, at: u64) -> crate::flow::FlowRecord {
    record(6, (src, 40_000), (dst, port), dir(1, 60, tcp_flags::SYN, at), dir(0, 0, 0, 0), SYN)
}

#[test]
fn ip_protocol_scan_spreads_over_protocols_and_alerts_as_ip_protocol() {
    let (scanner, target) = (v4(10, 0, 0, 5), v4(10, 0, 0, 9));
    let records: Vec<_> = (0..=255u8)
        .filter(|p| !matches!(p, 1 | 6 | 17 | 58 | 132))
        .map(|p| record(p, (scanner, 0), (target, 0), dir(1, 20, 0, T0 + SEC), dir(0, 0, 0, 0), 0))
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0].host, scanner);
    assert_eq!(found[0].peer, Some(target));
    assert_eq!(rule(found[0]), "ip_protocol");
    assert_eq!(found[0].evidence.observed, 251.0);
}

#[test]
fn a_scanned_host_answering_with_icmp_errors_raises_nothing() {
    // nmap -D: UDP probes from 30 decoys; the target answers each with a
    // port unreachable, one ICMP flow per decoy.
    let target = v4(10, 0, 0, 9);
    let mut records = Vec::new();
    for d in 0..30u8 {
        let decoy = v4(192, 0, 2, d + 1);
        for port in 1..=25u16 {
            records.push(record(
                17,
                (decoy, 5_000),
                (target, port),
                dir(1, 40, 0, T0 + SEC),
                dir(0, 0, 0, 0),
                0,
            ));
        }
        records.push(record(1, (target, 3), (decoy, 3), dir(25, 70, 0, T0 + 2 * SEC), dir(0, 0, 0, 0), 0));
    }
    let alerts = run(&mut engine(HOME, ""), &records);
    assert!(alerts.iter().all(|a| a.host != target), "{alerts:#?}");
    assert_eq!(scans(&alerts).len(), 30, "each decoy probed 25 ports: {alerts:#?}");
}

#[test]
fn vertical_scan_of_three_hosts_in_one_bucket_names_all_three() {
    let scanner = v4(10, 42, 42, 253);
    let targets = [v4(10, 42, 42, 25), v4(10, 42, 42, 50), v4(10, 42, 42, 56)];
    let mut records = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        for port in 1..=(100 + 10 * i as u16) {
            records.push(syn(scanner, *t, port, T0 + SEC));
        }
    }
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    let listed = found[0].evidence.details["targets"].as_array().expect("targets listed");
    let hosts: Vec<&str> = listed.iter().filter_map(|t| t["host"].as_str()).collect();
    assert_eq!(hosts, ["10.42.42.56", "10.42.42.50", "10.42.42.25"]);
    assert!(found[0].message.contains("and 2 more hosts"), "{}", found[0].message);
}

#[test]
fn unreachable_quoting_a_probe_counts_it_refused() {
    let (scanner, target) = (v4(10, 0, 0, 5), v4(10, 0, 0, 9));
    let mut e = engine(HOME, "");
    e.advance(T0 + SEC);
    for port in 1..=30u16 {
        let kind = ObsKind::Unreachable { orig_proto: 17, orig_dst: target, orig_dport: port };
        e.observation(&obs(T0 + SEC, target, scanner, 1, kind));
    }
    // The probes' records come at the UDP idle timeout, in the next bucket.
    let records: Vec<_> = (1..=30u16)
        .map(|p| record(17, (scanner, 5_000), (target, p), dir(1, 40, 0, T0 + 61 * SEC), dir(0, 0, 0, 0), 0))
        .collect();
    let alerts = run(&mut e, &records);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0].evidence.details["refused"], 30);
}

#[test]
fn unreachables_answering_no_probe_of_the_receiver_raise_nothing() {
    // A flood victim's resets to reflected SYN-ACKs, refused by a router: the
    // victim made no probe.
    let (victim, router) = (v4(10, 10, 10, 10), v4(172, 99, 233, 20));
    let mut e = engine(HOME, "");
    e.advance(T0 + SEC);
    for n in 0..200u8 {
        let kind = ObsKind::Unreachable { orig_proto: 6, orig_dst: v4(50, 117, 9, n), orig_dport: 443 };
        e.observation(&obs(T0 + SEC, router, victim, 1, kind));
    }
    let alerts = run(&mut e, &[]);
    assert!(scans(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn ping_sweep_of_eighteen_hosts_in_under_two_seconds_alerts_without_a_failure_ratio() {
    let pinger = v4(10, 0, 0, 5);
    let mut e = engine(HOME, "");
    for n in 0..18u8 {
        let at = T0 + SEC + u64::from(n) * 90_000_000;
        let target = v4(10, 0, 1, n + 1);
        let request = ObsKind::IcmpEcho { reply: false, payload_len: 56 };
        e.observation(&obs(at, pinger, target, 1, request));
        // 41 % unanswered: hosts 11..18 stay silent.
        if n < 11 {
            let reply = ObsKind::IcmpEcho { reply: true, payload_len: 56 };
            e.observation(&obs(at + 1_000_000, target, pinger, 1, reply));
        }
    }
    let alerts = run(&mut e, &[]);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(rule(found[0]), "icmp_sweep");
    assert_eq!(found[0].evidence.observed, 18.0);
    assert_eq!(found[0].evidence.details["sequential_ratio"], 1.0);
    assert_eq!(found[0].evidence.details["unanswered_ratio"], 0.389);
}

#[test]
fn arp_sweep_alerts_and_two_requests_a_minute_do_not() {
    let (sweeper, quiet) = (v4(192, 168, 1, 250), v4(192, 168, 1, 2));
    let mut e = engine("192.168.1.0/24", "");
    for n in 0..245u8 {
        let at = T0 + SEC + u64::from(n) * 8_000_000;
        e.observation(&obs(at, sweeper, v4(192, 168, 1, n + 1), 0, ObsKind::ArpRequest));
    }
    for minute in 0..10u64 {
        for gw in [1u8, 254] {
            let at = T0 + minute * 60 * SEC + u64::from(gw) * 100_000_000;
            e.observation(&obs(at, quiet, v4(192, 168, 1, gw), 0, ObsKind::ArpRequest));
        }
    }
    let alerts = run(&mut e, &[]);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0].host, sweeper);
    assert_eq!(rule(found[0]), "arp_sweep");
    assert_eq!(found[0].evidence.observed, 245.0);
}

#[test]
fn slow_scan_of_one_host_every_ten_minutes_alerts_within_six_hours() {
    let scanner = v4(198, 51, 100, 7);
    let records: Vec<_> =
        (0..36u8).map(|n| syn(scanner, v4(10, 0, 2, n + 1), 445, T0 + u64::from(n) * 600 * SEC)).collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(rule(found[0]), "slow_horizontal");
    assert_eq!(found[0].evidence.observed, 30.0, "it fires as the 30th host fails");
    assert_eq!(found[0].port, Some(445));
}

#[test]
fn slow_probes_spread_wider_than_the_window_do_not_alert() {
    let scanner = v4(198, 51, 100, 7);
    // One host every 20 minutes: at most 18 within 6 h.
    let records: Vec<_> =
        (0..40u8).map(|n| syn(scanner, v4(10, 0, 2, n + 1), 445, T0 + u64::from(n) * 1_200 * SEC)).collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    assert!(scans(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn resets_from_the_target_count_as_refused() {
    let (scanner, target) = (v4(10, 0, 0, 5), v4(10, 0, 0, 9));
    let records: Vec<_> = (1..=25u16)
        .map(|p| {
            record(
                6,
                (scanner, 40_000),
                (target, p),
                dir(1, 60, tcp_flags::SYN, T0 + SEC),
                dir(1, 40, tcp_flags::RST | tcp_flags::ACK, T0 + SEC),
                SYN | RST,
            )
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0].evidence.details["refused"], 25);
}

#[test]
fn a_bad_sweep_window_is_refused_naming_the_key_and_range() {
    let text = "[detection.scan]\nsweep_window_s = 0\n";
    let err = crate::config::from_str(text, "<test>").expect_err("invalid");
    let msg = format!("{err}");
    assert!(msg.contains("detection.scan.sweep_window_s") && msg.contains("1 to 300"), "{msg}");
}

#[test]
fn a_dozen_odd_flag_probes_to_one_host_alert_as_fingerprinting() {
    let (prober, target) = (v4(172, 16, 16, 128), v4(172, 16, 16, 150));
    let mut e = engine("172.16.0.0/12", "");
    for (n, what) in ["syn_fin", "null_scan", "xmas_scan"].iter().cycle().take(12).enumerate() {
        e.observation(&obs(T0 + SEC + n as u64 * 10_000_000, prober, target, 6, ObsKind::Evasive(what)));
    }
    // Five are not enough.
    let other = v4(172, 16, 16, 9);
    for n in 0..5u64 {
        e.observation(&obs(T0 + 2 * SEC + n, other, target, 6, ObsKind::Evasive("null_scan")));
    }
    let alerts = run(&mut e, &[]);
    let found = scans(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!((found[0].host, found[0].peer), (prober, Some(target)));
    assert_eq!(rule(found[0]), "fingerprint");
    assert_eq!(
        found[0].evidence.details["combinations"],
        serde_json::json!(["null_scan", "xmas_scan", "syn_fin"])
    );
}
