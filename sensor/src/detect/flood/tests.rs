//! The flood rules through the engine, on flow records as the flow table makes them.

use std::net::IpAddr;

use crate::alert::{Alert, Detector};
use crate::decode::tcp_flags::{ACK, RST, SYN};
use crate::detect::testing::{SEC, T0, dir, engine, record, run, v4};
use crate::flow::FlowRecord;
use crate::flow::record::tcp_state;

const HOME: &str = "10.0.0.0/8";

fn floods(alerts: &[Alert]) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.detector == Detector::Flood).collect()
}

fn rule(a: &Alert) -> &str {
    a.evidence.details.get("rule").and_then(|r| r.as_str()).unwrap_or("-")
}

/// The `n`th spoofed address.
fn spoofed(n: u32) -> IpAddr {
    let [a, b, c, d] = (0x2d00_0000u32 + n * 7).to_be_bytes();
    v4(a, b, c, d)
}

fn syn_from(src: IpAddr, dst: (IpAddr, u16), at: u64) -> FlowRecord {
    record(6, (src, 1_024), dst, dir(1, 60, SYN, at), dir(0, 0, 0, 0), tcp_state::SYN)
}

#[test]
fn spoofed_syn_flood_of_thousands_of_sources_in_a_second_alerts_on_the_victim() {
    let victim = v4(10, 10, 10, 10);
    let records: Vec<_> = (0..5_000u32)
        .map(|n| syn_from(spoofed(n), (victim, 25_565), T0 + SEC + u64::from(n) * 150_000))
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0].host, victim);
    assert_eq!(rule(found[0]), "syn_flood");
    assert_eq!(found[0].port, Some(25_565));
    assert_eq!(found[0].evidence.details["direction"], "inbound");
    assert!(found[0].evidence.observed >= 100.0);
}

#[test]
fn background_radiation_of_one_syn_a_second_stays_quiet() {
    let victim = v4(10, 10, 10, 10);
    let records: Vec<_> = (0..900u32)
        .map(|n| syn_from(spoofed(n), (victim, 22 + (n % 50) as u16), T0 + u64::from(n) * SEC))
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    assert!(floods(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn syn_ack_backscatter_for_connections_never_opened_alerts_as_backscatter() {
    let victim = v4(10, 10, 10, 10);
    let records: Vec<_> = (0..2_000u32)
        .map(|n| {
            record(
                6,
                (victim, 10_000 + (n % 5_000) as u16),
                (spoofed(n), 80),
                dir(0, 0, 0, 0),
                dir(1, 60, SYN | ACK, T0 + SEC + u64::from(n) * 100_000),
                tcp_state::SYN_ACK,
            )
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(rule(found[0]), "backscatter");
    assert_eq!(found[0].evidence.details["backscatter"]["syn_ack"], 2_000);
    assert_eq!(found[0].port, Some(80), "the reflectors' port");
    assert!(alerts.iter().all(|a| a.detector != Detector::Scan), "the victim is no scanner: {alerts:#?}");
}

#[test]
fn udp_answers_from_an_amplifier_port_without_requests_alert_as_reflection() {
    let victim = v4(10, 10, 10, 10);
    let records: Vec<_> = (0..1_500u32)
        .map(|n| {
            record(
                17,
                (spoofed(n), 161),
                (victim, 54_609),
                dir(1, 1_400, 0, T0 + SEC + u64::from(n) * 10_000),
                dir(0, 0, 0, 0),
                0,
            )
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(rule(found[0]), "reflection");
    assert_eq!(found[0].port, Some(161));
}

#[test]
fn discovery_answers_from_inside_devices_are_not_a_reflection() {
    // 150 UPnP devices answer one SSDP search within a second.
    let asker = v4(10, 0, 0, 5);
    let records: Vec<_> = (0..150u8)
        .map(|n| {
            record(
                17,
                (v4(10, 0, 1, n), 1_900),
                (asker, 50_000),
                dir(1, 300, 0, T0 + SEC + u64::from(n) * 1_000_000),
                dir(0, 0, 0, 0),
                0,
            )
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    assert!(floods(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn inside_host_flooding_one_outside_port_is_at_fault() {
    let (bot, target) = (v4(10, 0, 0, 66), v4(203, 0, 113, 80));
    let records: Vec<_> = (0..3_000u32)
        .map(|n| {
            let at = T0 + SEC + u64::from(n) * 300_000;
            record(
                6,
                (bot, 1_024 + (n % 60_000) as u16),
                (target, 80),
                dir(1, 60, SYN, at),
                dir(0, 0, 0, 0),
                tcp_state::SYN,
            )
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0].host, bot);
    assert_eq!(found[0].peer, Some(target));
    assert_eq!(found[0].evidence.details["direction"], "outbound");
    assert_eq!(found[0].evidence.metric, "peak_flows_per_s");
}

#[test]
fn fast_vertical_scan_is_not_a_flood() {
    let (scanner, target) = (v4(10, 0, 0, 5), v4(10, 0, 0, 9));
    let records: Vec<_> = (1..=1_000u16)
        .map(|p| {
            record(
                6,
                (scanner, 40_000),
                (target, p),
                dir(1, 60, SYN, T0 + SEC),
                dir(1, 40, RST | ACK, T0 + SEC),
                tcp_state::SYN | tcp_state::RST,
            )
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    assert!(floods(&alerts).is_empty(), "{alerts:#?}");
    assert_eq!(alerts.iter().filter(|a| a.detector == Detector::Scan).count(), 1);
}

#[test]
fn inside_amplifier_answering_with_a_hundred_times_the_bytes_alerts() {
    let (ntp, victim) = (v4(10, 0, 0, 123), v4(198, 51, 100, 9));
    let records: Vec<_> = (0..100u32)
        .map(|n| {
            let at = T0 + SEC + u64::from(n) * 100_000_000;
            record(17, (victim, 80), (ntp, 123), dir(10, 234, 0, at), dir(100, 2_340, 0, at), 0)
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0].host, ntp);
    assert_eq!(rule(found[0]), "amplifier");
    assert_eq!(found[0].peer, Some(victim));
    assert_eq!(found[0].evidence.observed, 100.0);
}

#[test]
fn a_flood_lasting_three_buckets_raises_one_alert_for_its_episode() {
    let victim = v4(10, 10, 10, 10);
    let mut records = Vec::new();
    for minute in 0..3u64 {
        for n in 0..2_000u32 {
            let at = T0 + minute * 60 * SEC + 10 * SEC + u64::from(n) * 200_000;
            records.push(syn_from(spoofed(n + 2_000 * minute as u32), (victim, 443), at));
        }
    }
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
}

#[test]
fn a_busy_host_is_judged_against_its_learned_peak() {
    // 150 unanswered clients a second (an inbound-only capture of a busy
    // server) for 30 quiet minutes, then the same: no flood once learned.
    let server = v4(10, 0, 0, 53);
    let mut records = Vec::new();
    for minute in 0..40u64 {
        for n in 0..150u32 {
            let at = T0 + minute * 60 * SEC + 5 * SEC + u64::from(n) * 6_000_000;
            records.push(record(
                17,
                (spoofed(n), 40_000),
                (server, 53),
                dir(1, 70, 0, at),
                dir(0, 0, 0, 0),
                0,
            ));
        }
    }
    let extra = "[detection]\nmin_learning_buckets = 20\n";
    let alerts = run(&mut engine(HOME, extra), &records);
    let found = floods(&alerts);
    // The first 20 buckets alert (one alert: the episode); once learned, the
    // same rate is the host's normal.
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert!(found[0].evidence.baseline_mean.is_none());
}

#[test]
fn a_bad_amplifier_port_is_refused_naming_the_key_and_range() {
    let text = "[detection.flood]\namplifier_ports = [53, 0]\n";
    let err = crate::config::from_str(text, "<test>").expect_err("invalid");
    let msg = format!("{err}");
    assert!(msg.contains("detection.flood.amplifier_ports[1]") && msg.contains("1 to 65535"), "{msg}");
}

#[test]
fn echo_requests_from_hundreds_of_sources_in_a_second_alert_as_an_icmp_flood() {
    let victim = v4(10, 0, 0, 80);
    let records: Vec<_> = (0..400u32)
        .map(|n| {
            let at = T0 + SEC + u64::from(n) * 2_000_000;
            record(1, (spoofed(n), 8), (victim, 0), dir(3, 84, 0, at), dir(3, 84, 0, at), 0)
        })
        .collect();
    let alerts = run(&mut engine(HOME, ""), &records);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(rule(found[0]), "icmp_flood");
    assert_eq!(found[0].transport.as_deref(), Some("icmp"));
}

// ---- DHCP ------------------------------------------------------------------

use crate::detect::testing::obs;
use crate::observe::ObsKind;
use crate::protocol::dhcp::ClientMessage;

const DISCOVER: u8 = 1;
const REQUEST: u8 = 3;

fn dhcp(
    at: u64,
    src: IpAddr,
    message_type: u8,
    client: [u8; 6],
    relayed: bool,
) -> crate::observe::Observation {
    let m = ClientMessage { message_type: Some(message_type), client, relayed };
    obs(at, src, v4(255, 255, 255, 255), 17, ObsKind::DhcpRequest(m))
}

/// The `n`th made-up client hardware address (locally administered, as tools make them).
fn made_up(n: u32) -> [u8; 6] {
    let [a, b, c, d] = n.to_be_bytes();
    [0x02, 0x5e, a, b, c, d]
}

#[test]
fn one_client_sending_a_hundred_discovers_in_two_seconds_is_a_dhcp_flood() {
    let client = [0xde, 0xad, 0xbe, 0xef, 0xaa, 0xbb];
    let mut e = engine(HOME, "");
    for n in 0..100u64 {
        e.observation(&dhcp(T0 + SEC + n * 20_000_000, v4(0, 0, 0, 0), DISCOVER, client, false));
    }
    let alerts = run(&mut e, &[]);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(rule(found[0]), "dhcp_flood");
    assert_eq!(found[0].host, v4(0, 0, 0, 0));
    assert_eq!(found[0].port, Some(67));
    assert_eq!(found[0].evidence.observed, 100.0);
    assert_eq!(found[0].evidence.details["client_mac"], "de:ad:be:ef:aa:bb");
    assert_eq!(found[0].evidence.details["message_types"]["discover"], 100);
}

#[test]
fn a_client_retransmitting_all_hour_and_renewals_stay_quiet() {
    let mut e = engine(HOME, "");
    // One client without an answer, retransmitting every 8 s for an hour.
    for n in 0..450u64 {
        e.observation(&dhcp(T0 + n * 8 * SEC, v4(0, 0, 0, 0), DISCOVER, [0, 0x0c, 0x29, 1, 2, 3], false));
    }
    // 2 000 clients renewing their leases within a minute (unicast REQUESTs).
    for n in 0..2_000u32 {
        let at = T0 + 120 * SEC + u64::from(n) * 25_000_000;
        e.observation(&dhcp(at, v4(10, 1, (n / 250) as u8, (n % 250) as u8 + 1), REQUEST, made_up(n), false));
    }
    let alerts = run(&mut e, &[]);
    assert!(floods(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn three_hundred_made_up_clients_discovering_within_a_minute_is_starvation_but_relayed_ones_are_not() {
    let mut e = engine(HOME, "");
    // A relay forwarding 1 000 real clients' DISCOVERs (a building at 9 am).
    for n in 0..1_000u32 {
        let at = T0 + SEC + u64::from(n) * 20_000_000;
        e.observation(&dhcp(at, v4(10, 9, 0, 1), DISCOVER, made_up(100_000 + n), true));
    }
    let alerts = run(&mut e, &[]);
    assert!(floods(&alerts).is_empty(), "relayed: {alerts:#?}");

    let mut e = engine(HOME, "");
    for n in 0..300u32 {
        let at = T0 + 5 * 60 * SEC + u64::from(n) * 100_000_000;
        e.observation(&dhcp(at, v4(0, 0, 0, 0), DISCOVER, made_up(n), false));
    }
    let alerts = run(&mut e, &[]);
    let found = floods(&alerts);
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(rule(found[0]), "dhcp_starvation");
    assert_eq!(found[0].host, v4(0, 0, 0, 0));
    assert_eq!(found[0].evidence.observed, 300.0);
    assert_eq!(found[0].evidence.details["locally_administered_ratio"], 1.0);
    assert_eq!(found[0].evidence.details["client_macs"].as_array().map(Vec::len), Some(16));
}

#[test]
fn a_dhcp_flood_from_changing_addresses_stays_one_hosts_episode() {
    // 250 INFORMs of one client over 5 s that straddle a bucket boundary, each from another address.
    let client = [0x90, 0xb1, 0x1c, 0x99, 0x49, 0x29];
    let mut e = engine(HOME, "");
    for n in 0..250u32 {
        let at = T0 + 57 * SEC + u64::from(n) * 20_000_000;
        let src = v4(128, 2, 5, (n % 250) as u8);
        e.observation(&dhcp(at, src, 8, client, false));
    }
    let alerts = run(&mut e, &[]);
    let found = floods(&alerts);
    assert!(!found.is_empty(), "{alerts:#?}");
    assert!(found.iter().all(|a| a.host == found[0].host), "one host: {found:#?}");
}
