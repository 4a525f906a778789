//! `nbad-sensor selftest`: every detector checked on traffic the sensor
//! generates itself.
//!
//! [`scenario`] builds a capture of a small office (addresses in 10.1.0.0/24
//! inside, documentation ranges outside): forty minutes of ordinary traffic
//! from every host, so that baselines are learned (the self-test's settings
//! shorten the learning period to 30 minutes), then one episode per detector,
//! each by its own host, and one host that stays ordinary throughout. The
//! capture goes through the real pipeline (file source, decoder, flow
//! workers, analysis stage); [`run`] checks that each detector raised an alert
//! for its host (and, for detectors with several rules, by the rule the
//! episode is for), that the lateral-movement host's incident record tells
//! its story, and that the ordinary host raised none.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::alert::{Alert, Detector};
use crate::capture::file::FileSource;
use crate::config::{self, Config};
use crate::detect::Engine;
use crate::flow::{EndReason, FlowHasher};
use crate::pipeline::analysis::AlertHook;
use crate::pipeline::{self, RunOptions};
use crate::synth::{self, Rng, Timeline, flags};

/// Start of the scenario (2023-11-14T22:13:20Z), on a bucket boundary.
const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
/// When the episodes start: after the learning period.
const EPISODES: u64 = T0 + 45 * MIN;

/// The self-test's configuration: the defaults, with a 30-minute learning period
/// (and `host_outlier`'s distributions usable after 20 buckets instead of 60).
pub const CONFIG: &str = r#"
[sensor]
id = "selftest"
home_networks = ["10.1.0.0/24"]

[detection]
learning_period_s = 1800
min_learning_buckets = 20

[detection.host_outlier]
min_buckets = 20
"#;

fn inside(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, 0, n))
}

fn outside(a: u8, b: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, a, b))
}

fn doc(b: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, b))
}

/// The resolver inside the office.
fn resolver() -> IpAddr {
    inside(2)
}

/// Each episode: the detector, its host (at fault, or the victim of a
/// flood), the rule that must name it (`""`: any), what it does.
pub const EPISODES_TABLE: [(Detector, u8, &str, &str); 27] = [
    (Detector::Exfiltration, 10, "", "uploads 20 MB to an outside host in 40 s"),
    (Detector::DnsTunnel, 11, "", "sends 60 queries with 48-character random labels under one domain"),
    (Detector::IcmpTunnel, 12, "", "exchanges 40 echo packets of varying sizes with an outside host"),
    (Detector::ProtocolMismatch, 13, "", "speaks SSH to an outside host on port 443"),
    (Detector::Scan, 14, "vertical", "probes 100 ports of one inside host, each answered by a reset"),
    (Detector::Beaconing, 15, "", "opens a small session to one outside host every 30 s, 20 times"),
    (Detector::LongConnection, 16, "", "holds one SSH session for two and a half hours"),
    (Detector::MalformedTraffic, 17, "", "sends 150 TCP packets without any flag (NULL scan probes)"),
    (Detector::Scan, 21, "ip_protocol", "probes 150 IP protocols of one inside host"),
    (Detector::Scan, 22, "icmp_sweep", "pings 20 inside hosts in 2 s, 8 of them silent"),
    (Detector::Scan, 23, "arp_sweep", "asks ARP for 60 addresses in 3 s"),
    (Detector::Scan, 24, "slow_horizontal", "tries port 445 of a new inside host every 90 s, 35 times"),
    (Detector::Scan, 28, "fingerprint", "sends one inside host 12 TCP probes with impossible flags"),
    (Detector::Flood, 25, "syn_flood", "receives 600 SYNs from 512 spoofed sources in one second"),
    (Detector::Flood, 26, "reflection", "receives 300 NTP answers it never asked for in one second"),
    (
        Detector::Flood,
        27,
        "backscatter",
        "receives 300 SYN-ACKs for connections it never opened in one second",
    ),
    (
        Detector::DnsTunnel,
        30,
        "encoded_subdomains",
        "asks for 12 names of 34 hex characters under one domain in 11 s (TXT, MX, CNAME)",
    ),
    (Detector::DnsTunnel, 31, "odd_characters", "asks for one name carrying base64 with '=' and '+'"),
    (Detector::Dga, 32, "nxdomain_random_domains", "is told 10 random-looking domains do not exist"),
    (Detector::ProtocolMismatch, 33, "shell", "hands a Windows console to an outside host on 4444"),
    (
        Detector::ProtocolMismatch,
        34,
        "executable_transfer",
        "receives a Windows executable after a 4-byte length on a raw connection",
    ),
    (Detector::SuspiciousHttp, 35, "c2_series", "POSTs hex-encoded data to a site new to it 4 times"),
    (Detector::SuspiciousHttp, 36, "executable_download", "downloads a Windows executable from a PHP script"),
    (Detector::SuspiciousTls, 37, "tor", "opens TLS to a relay port with Tor's SNI shape, no DNS before"),
    (Detector::Beaconing, 38, "", "calls home inside one kept-open connection every 20 s, 16 times"),
    (Detector::LateralMovement, 40, "fan_out", "opens SMB sessions to 4 inside hosts it never used SMB with"),
    (Detector::HostOutlier, 41, "", "opens HTTPS sessions to 60 outside sites it never talked to, in 30 s"),
];

/// The host that only ever does ordinary things.
pub const ORDINARY_HOST: u8 = 20;

/// The self-test capture.
#[must_use]
pub fn scenario() -> Timeline {
    let mut t = Timeline::default();
    let mut rng = Rng::new(7);
    let mut hosts: Vec<u8> = EPISODES_TABLE.iter().map(|e| e.1).chain([ORDINARY_HOST]).collect();
    hosts.dedup();
    // Ordinary traffic: every host, most minutes, at irregular times, for 40
    // minutes (the ordinary host keeps going until the end of the episodes).
    for minute in 0..120u64 {
        for (i, &h) in hosts.iter().enumerate() {
            if (minute >= 40 && h != ORDINARY_HOST) || rng.below(4) == 0 {
                continue;
            }
            let at = T0 + minute * MIN + (i as u64) * SEC + rng.below(50 * SEC);
            let port =
                40_000 + u16::try_from(minute % 1000).unwrap_or(0) * 10 + u16::try_from(i).unwrap_or(0);
            let name = format!("www{}.example.com", rng.below(3));
            t.push(
                at,
                synth::ethernet(
                    &[],
                    &synth::udp((inside(h), port), (resolver(), 53), &synth::dns_query(1, &name)),
                ),
            );
            // Sizes spread over three orders of magnitude, to one of five servers.
            let up = 200usize << rng.below(10);
            let down = 1_000usize << rng.below(8);
            let server = outside(113, 10 + u8::try_from(rng.below(5)).unwrap_or(0));
            t.tcp_session(
                &[],
                (inside(h), port + 1),
                (server, 8080),
                at + SEC,
                &[(up, down)],
                50_000_000,
                false,
            );
        }
    }
    let ep = |d: Detector| EPISODES_TABLE.iter().find(|e| e.0 == d).map_or(0, |e| e.1);
    let by_rule = |r: &str| EPISODES_TABLE.iter().find(|e| e.2 == r).map_or(0, |e| e.1);
    // exfiltration: 40 × 500 kB up, one per second.
    let exchanges = vec![(500_000usize, 100usize); 40];
    t.tcp_session(
        &[],
        (inside(ep(Detector::Exfiltration)), 50_000),
        (doc(50), 8080),
        EPISODES,
        &exchanges,
        SEC,
        false,
    );
    // dns_tunnel: random base32 labels.
    const B32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    for q in 0..60u64 {
        let label: String =
            (0..48).map(|_| char::from(B32[usize::try_from(rng.below(32)).unwrap_or(0)])).collect();
        let name = format!("{label}.t.tunnel-example.net");
        let src = (inside(ep(Detector::DnsTunnel)), 51_000);
        let frame =
            synth::udp(src, (resolver(), 53), &synth::dns_query(u16::try_from(q).unwrap_or(0), &name));
        t.push(EPISODES + q * 500_000_000, synth::ethernet(&[], &frame));
    }
    // icmp_tunnel: varying payload sizes, both directions.
    let host = inside(ep(Detector::IcmpTunnel));
    for i in 0..40u16 {
        let size = 100 + usize::from(i * 37 % 900);
        let at = EPISODES + u64::from(i) * SEC;
        t.push(at, synth::ethernet(&[], &synth::echo(host, doc(7), true, 9, i, &vec![0x5a; size])));
        t.push(
            at + 20_000_000,
            synth::ethernet(&[], &synth::echo(doc(7), host, false, 9, i, &vec![0x5a; size])),
        );
    }
    // protocol_mismatch: SSH on 443.
    let (c, s) = ((inside(ep(Detector::ProtocolMismatch)), 52_000), (outside(113, 9), 443));
    let banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
    let mut at = EPISODES;
    for (from_client, f, payload) in [
        (true, flags::SYN, &b""[..]),
        (false, flags::SYN | flags::ACK, &b""[..]),
        (true, flags::ACK, &b""[..]),
        (false, flags::PSH | flags::ACK, &banner[..]),
        (true, flags::PSH | flags::ACK, &banner[..]),
        (true, flags::FIN | flags::ACK, &b""[..]),
        (false, flags::FIN | flags::ACK, &b""[..]),
    ] {
        let ip =
            if from_client { synth::tcp(c, s, f, 1, 1, payload) } else { synth::tcp(s, c, f, 1, 1, payload) };
        t.push(at, synth::ethernet(&[], &ip));
        at += 10_000_000;
    }
    // scan: 100 ports, each reset.
    let (scanner, target) = (inside(by_rule("vertical")), inside(99));
    for p in 1..=100u16 {
        let at = EPISODES + u64::from(p) * 100_000_000;
        t.push(at, synth::ethernet(&[], &synth::tcp((scanner, 53_000), (target, p), flags::SYN, 1, 0, &[])));
        t.push(
            at + 1_000_000,
            synth::ethernet(
                &[],
                &synth::tcp((target, p), (scanner, 53_000), flags::RST | flags::ACK, 0, 2, &[]),
            ),
        );
    }
    // beaconing: 20 small sessions, 30 s apart.
    for n in 0..20u16 {
        let at = EPISODES + u64::from(n) * 30 * SEC;
        t.tcp_session(
            &[],
            (inside(ep(Detector::Beaconing)), 54_000 + n),
            (outside(113, 77), 8443),
            at,
            &[(320, 1_200)],
            10_000_000,
            false,
        );
    }
    // long_connection: 150 exchanges a minute apart, from minute 5.
    let exchanges = vec![(100usize, 100usize); 150];
    t.tcp_session(
        &[],
        (inside(ep(Detector::LongConnection)), 55_000),
        (doc(20), 22),
        T0 + 5 * MIN,
        &exchanges,
        MIN,
        false,
    );
    // malformed_traffic: TCP packets with no flag at all.
    let host = inside(ep(Detector::MalformedTraffic));
    for n in 0..150u64 {
        let ip = synth::tcp((host, 56_000), (inside(99), 80), 0, 1, 0, &[]);
        t.push(EPISODES + n * 200_000_000, synth::ethernet(&[], &ip));
    }
    scan_episodes(&mut t);
    flood_episodes(&mut t);
    dns_episodes(&mut t, &mut rng);
    application_episodes(&mut t, &mut rng);
    unsupervised_episodes(&mut t);
    t
}

/// An SMB2 NEGOTIATE request or response (MS-SMB2 2.2.1) in its 4-byte session header.
fn smb2_negotiate(response: bool) -> Vec<u8> {
    let mut smb = b"\xfeSMB".to_vec();
    smb.extend_from_slice(&64u16.to_le_bytes());
    smb.resize(16, 0);
    smb.push(u8::from(response));
    smb.resize(64, 0);
    // The body: structure size 36 (request) or 65 (response), one dialect, SMB 3.1.1.
    let size: u16 = if response { 65 } else { 36 };
    smb.extend_from_slice(&size.to_le_bytes());
    smb.extend_from_slice(&[1, 0, 0, 0, 0x11, 0x03, 0, 0]);
    let len = u32::try_from(smb.len()).unwrap_or(0).to_be_bytes();
    let mut p = vec![0, len[1], len[2], len[3]];
    p.extend_from_slice(&smb);
    p
}

/// Lateral movement, and a host unlike itself and its peers that no rule names.
fn unsupervised_episodes(t: &mut Timeline) {
    // lateral_movement: SMB2 sessions (NEGOTIATE, answered) to four inside hosts, 3 s apart.
    let host = inside(40);
    let (request, response) = (smb2_negotiate(false), smb2_negotiate(true));
    for i in 0..4u8 {
        let at = EPISODES + u64::from(i) * 3 * SEC;
        let port = 49_000 + u16::from(i);
        t.tcp_exchange((host, port), (inside(150 + i), 445), at, &[(true, &request), (false, &response)]);
    }
    // host_outlier: ordinary-sized HTTPS sessions to 60 outside sites never seen before.
    let host = inside(41);
    for i in 0..60u8 {
        let at = EPISODES + u64::from(i) * 500_000_000;
        let port = 49_100 + u16::from(i);
        t.tcp_session(&[], (host, port), (outside(120, 1 + i), 443), at, &[(600, 8_000)], 10_000_000, false);
    }
}

/// Hex of `n` pseudo-random bytes.
fn hex(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rng.below(256))).collect()
}

/// The DNS rules that look beyond one bucket, and DGA.
fn dns_episodes(t: &mut Timeline, rng: &mut Rng) {
    // encoded_subdomains: dnscat2's pace, 12 hex names in 11 s.
    let host = host_of("encoded_subdomains");
    for (i, qtype) in [16u16, 15, 5].iter().cycle().take(12).enumerate() {
        let name = format!("{}.c2-example.org", hex(rng, 17));
        let q = synth::dns_query_typed(u16::try_from(i).unwrap_or(0), &name, *qtype);
        let at = EPISODES + i as u64 * SEC;
        t.push(at, synth::ethernet(&[], &synth::udp((host, 50_100), (resolver(), 53), &q)));
    }
    // odd_characters: base64 with its padding, in one name.
    let host = host_of("odd_characters");
    let name = "H4sICN03+2QAA3Rlc3QudHh0AAvJyCxWAKJE==.files-example.org";
    let q = synth::dns_query(7, name);
    t.push(EPISODES, synth::ethernet(&[], &synth::udp((host, 50_200), (resolver(), 53), &q)));
    // dga: ten random .com names, each answered NXDOMAIN.
    let host = host_of("nxdomain_random_domains");
    const LETTERS: &[u8] = b"bcdfghjklmnpqrstvwxz";
    for i in 0..10u16 {
        let label: String =
            (0..12).map(|_| char::from(LETTERS[usize::try_from(rng.below(20)).unwrap_or(0)])).collect();
        let name = format!("{label}.com");
        let at = EPISODES + u64::from(i) * 3 * SEC;
        let q = synth::dns_query(100 + i, &name);
        t.push(at, synth::ethernet(&[], &synth::udp((host, 50_300 + i), (resolver(), 53), &q)));
        let r = synth::dns_nxdomain(100 + i, &name);
        t.push(at + 5_000_000, synth::ethernet(&[], &synth::udp((resolver(), 53), (host, 50_300 + i), &r)));
    }
}

/// The rules on identified application payloads.
fn application_episodes(t: &mut Timeline, rng: &mut Rng) {
    // shell: a reverse shell's console banner.
    let banner = b"Microsoft Windows [Version 10.0.19045.3803]\r\n(c) Microsoft Corporation. All rights reserved.\r\n\r\nC:\\Users\\bob>";
    t.tcp_exchange(
        (host_of("shell"), 49_700),
        (outside(113, 66), 4444),
        EPISODES,
        &[(true, &banner[..]), (false, b"whoami\n")],
    );
    // executable_transfer: a stager's length prefix, then the stage.
    let stage = synth::pe_header(1_400);
    t.tcp_exchange(
        (host_of("executable_transfer"), 49_800),
        (outside(113, 67), 4444),
        EPISODES,
        &[(false, &[0x00, 0x6a, 0x0b, 0x00][..]), (false, &stage)],
    );
    // c2_series: four POSTs of hex-encoded random data to a numeric host new to the sender.
    let (host, server) = (host_of("c2_series"), outside(113, 68));
    for i in 0..4u16 {
        let body = format!("o={}", hex(rng, 96));
        let post = format!(
            "POST /gate.php HTTP/1.1\r\nHost: update-example.net\r\nUser-Agent: Mozilla/5.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let at = EPISODES + u64::from(i) * 40 * SEC;
        t.tcp_exchange(
            (host, 49_900 + i),
            (server, 80),
            at,
            &[(true, post.as_bytes()), (false, b"HTTP/1.1 200 OK\r\n\r\n")],
        );
    }
    // executable_download: a PE from a PHP script.
    let mut answer =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1400\r\n\r\n".to_vec();
    answer.extend_from_slice(&synth::pe_header(1_200));
    let request = b"GET /load.php?e=1 HTTP/1.1\r\nHost: files-example.org\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0)\r\n\r\n";
    t.tcp_exchange(
        (host_of("executable_download"), 50_000),
        (outside(113, 69), 80),
        EPISODES,
        &[(true, &request[..]), (false, &answer)],
    );
    // tor: TLS to 9001 with Tor's SNI shape, by address (no DNS before).
    let hello = synth::tls_client_hello(Some("www.q4cyamnc6mtokjurvdclt.com"));
    t.tcp_exchange((host_of("tor"), 50_100), (outside(113, 70), 9001), EPISODES, &[(true, &hello)]);
    // in-flow beaconing: one kept-open connection, a small call every 20 s, answered.
    let host = inside(38);
    let mut steps: Vec<(bool, Vec<u8>)> = Vec::new();
    for _ in 0..16 {
        steps.push((true, vec![0x17; 120]));
        steps.push((false, vec![0x17; 60]));
    }
    let (c, s) = ((host, 50_200), (outside(113, 71), 8443));
    let (mut cs, mut ss) = (1_000u32, 5_000u32);
    let push = |t: &mut Timeline, at: u64, from_client: bool, f: u8, cs: u32, ss: u32, p: &[u8]| {
        let ip = if from_client { synth::tcp(c, s, f, cs, ss, p) } else { synth::tcp(s, c, f, ss, cs, p) };
        t.push(at, synth::ethernet(&[], &ip));
    };
    push(t, EPISODES, true, flags::SYN, cs, 0, &[]);
    push(t, EPISODES + 1_000_000, false, flags::SYN | flags::ACK, cs + 1, ss, &[]);
    (cs, ss) = (cs + 1, ss + 1);
    for (n, (from_client, p)) in steps.iter().enumerate() {
        let at = EPISODES + (n as u64 / 2) * 20 * SEC + (n as u64 % 2) * 50_000_000 + 2_000_000;
        push(t, at, *from_client, flags::PSH | flags::ACK, cs, ss, p);
        let len = u32::try_from(p.len()).unwrap_or(0);
        if *from_client {
            cs = cs.wrapping_add(len);
        } else {
            ss = ss.wrapping_add(len);
        }
    }
}

fn host_of(rule: &str) -> IpAddr {
    inside(EPISODES_TABLE.iter().find(|e| e.2 == rule).map_or(0, |e| e.1))
}

/// The scan rules beyond the classic vertical scan.
fn scan_episodes(t: &mut Timeline) {
    // ip_protocol: one bare probe per IP protocol (those without ports, and
    // none the decoder opens as a tunnel or an extension header).
    let (scanner, target) = (host_of("ip_protocol"), inside(98));
    for (i, proto) in (61..=255u8).filter(|p| !matches!(p, 132 | 136)).take(150).enumerate() {
        let at = EPISODES + i as u64 * 20_000_000;
        t.push(at, synth::ethernet(&[], &synth::raw_ip(scanner, target, proto, &[0; 8])));
    }
    // icmp_sweep: 20 hosts in 2 s, 12 answer.
    let pinger = host_of("icmp_sweep");
    for i in 0..20u8 {
        let (at, host) = (EPISODES + u64::from(i) * 100_000_000, inside(100 + i));
        t.push(at, synth::ethernet(&[], &synth::echo(pinger, host, true, 77, u16::from(i), &[0; 56])));
        if i < 12 {
            t.push(
                at + 500_000,
                synth::ethernet(&[], &synth::echo(host, pinger, false, 77, u16::from(i), &[0; 56])),
            );
        }
    }
    // arp_sweep: 60 addresses in 3 s.
    let IpAddr::V4(sweeper) = host_of("arp_sweep") else { return };
    for i in 0..60u8 {
        t.push(
            EPISODES + u64::from(i) * 50_000_000,
            synth::arp_request(sweeper.octets(), [10, 1, 0, 130 + i]),
        );
    }
    // fingerprint: nmap -O's odd-flag probes (SYN+FIN+PSH+URG, NULL, FIN+PSH+URG).
    let prober = host_of("fingerprint");
    for (i, f) in [flags::SYN | flags::FIN | flags::PSH | flags::URG, 0, flags::FIN | flags::PSH | flags::URG]
        .iter()
        .cycle()
        .take(12)
        .enumerate()
    {
        let port = if i % 2 == 0 { 135 } else { 41_296 };
        let probe = synth::tcp((prober, 58_000 + i as u16), (inside(97), port), *f, 1, 0, &[]);
        t.push(EPISODES + i as u64 * 30_000_000, synth::ethernet(&[], &probe));
    }
    // slow_horizontal: one unanswered SYN to 445 of a new host every 90 s.
    let slow = host_of("slow_horizontal");
    for i in 0..35u8 {
        let at = EPISODES + u64::from(i) * 90 * SEC;
        t.push(
            at,
            synth::ethernet(&[], &synth::tcp((slow, 57_000), (inside(200 + i), 445), flags::SYN, 1, 0, &[])),
        );
    }
}

/// A spoofed address of the documentation ranges: 512 of them.
fn spoofed(n: u16) -> IpAddr {
    let last = u8::try_from(n / 2 % 256).unwrap_or(0);
    if n.is_multiple_of(2) { IpAddr::V4(Ipv4Addr::new(203, 0, 113, last)) } else { doc(last) }
}

/// Floods at three inside hosts, one second each.
fn flood_episodes(t: &mut Timeline) {
    let victim = host_of("syn_flood");
    for n in 0..600u16 {
        let at = EPISODES + 10 * SEC + u64::from(n) * 1_600_000;
        let syn = synth::tcp((spoofed(n), 1_024 + n), (victim, 80), flags::SYN, 7, 0, &[]);
        t.push(at, synth::ethernet(&[], &syn));
    }
    let victim = host_of("reflection");
    for n in 0..300u16 {
        let at = EPISODES + 10 * SEC + u64::from(n) * 3_000_000;
        t.push(at, synth::ethernet(&[], &synth::udp((spoofed(n), 123), (victim, 41_000), &[0x17; 440])));
    }
    let victim = host_of("backscatter");
    for n in 0..300u16 {
        let at = EPISODES + 10 * SEC + u64::from(n) * 3_000_000;
        let syn_ack = synth::tcp((spoofed(n), 80), (victim, 20_000 + n), flags::SYN | flags::ACK, 9, 1, &[]);
        t.push(at, synth::ethernet(&[], &syn_ack));
    }
}

/// Runs the scenario through the pipeline and returns its alerts.
pub fn alerts_of_scenario() -> anyhow::Result<Vec<Alert>> {
    let cfg: Config = config::from_str(CONFIG, "<selftest>")?;
    let dir = tempfile::tempdir().context("selftest: cannot create a temporary directory")?;
    let path = dir.path().join("selftest.pcap");
    let file = std::fs::File::create(&path).with_context(|| format!("{}: cannot create", path.display()))?;
    scenario()
        .write_pcap(std::io::BufWriter::new(file))
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .context("selftest: cannot write the capture")?;
    let mut source = FileSource::new(&[path])?;
    let collected: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let sink = Arc::clone(&collected);
    let opts = RunOptions {
        flows: None,
        stats: config::OutputTarget::None,
        periodic_stats: None,
        tick: pipeline::REPLAY_TICK,
        stop: Arc::default(),
        end_reason: EndReason::EndOfCapture,
        hasher: FlowHasher::with_seed(1),
        engine: Some(Engine::new(&cfg, None)),
        alerts: None,
        hub: None,
        side_alerts: None,
        settings: None,
        export: None,
        control: None,
        respond: None,
        hold: None,
        on_alerts: Some(AlertHook(Box::new(move |a: &[Alert]| {
            if let Ok(mut v) = sink.lock() {
                v.extend_from_slice(a);
            }
        }))),
    };
    pipeline::run(&cfg, &mut source, opts)?;
    let alerts = collected.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(alerts)
}

/// Runs the self-test; an error when a check fails.
pub fn run() -> anyhow::Result<()> {
    let alerts = alerts_of_scenario()?;
    let mut failed = 0;
    for (detector, host, rule, what) in EPISODES_TABLE {
        let hit = alerts.iter().find(|a| {
            a.record.is_none()
                && a.detector == detector
                && a.host == inside(host)
                && (rule.is_empty() || a.evidence.details.get("rule").and_then(|r| r.as_str()) == Some(rule))
        });
        let name =
            if rule.is_empty() { detector.name().to_owned() } else { format!("{}/{rule}", detector.name()) };
        match hit {
            Some(a) => {
                println!("PASS  {name:<22} {} {what}: score {} ({})", inside(host), a.risk_score, a.message)
            }
            None => {
                failed += 1;
                println!("FAIL  {name:<22} {} {what}: no alert", inside(host));
            }
        }
    }
    let lateral = inside(EPISODES_TABLE.iter().find(|e| e.0 == Detector::LateralMovement).map_or(0, |e| e.1));
    // The latest record of its incident: the one the lateral movement escalated.
    let story = alerts.iter().rev().find(|a| a.host == lateral && a.record.is_some());
    match story {
        Some(r) if r.message.contains("lateral movement at") => {
            println!("PASS  {:<22} {lateral} incident record: {}", "staged_incident", r.message);
        }
        _ => {
            failed += 1;
            println!(
                "FAIL  {:<22} {lateral} no incident record telling the lateral movement",
                "staged_incident"
            );
        }
    }
    let ordinary: Vec<&Alert> =
        alerts.iter().filter(|a| a.host == inside(ORDINARY_HOST) && a.record.is_none()).collect();
    if ordinary.is_empty() {
        println!("PASS  {:<22} {} ordinary traffic raised no alert", "false_alerts", inside(ORDINARY_HOST));
    } else {
        failed += 1;
        for a in ordinary {
            println!("FAIL  {:<22} {} ordinary traffic raised: {}", "false_alerts", a.host, a.message);
        }
    }
    let records = alerts.iter().filter(|a| a.record.is_some()).count();
    println!("{} alerts and {records} incident records in total", alerts.len() - records);
    if failed > 0 {
        anyhow::bail!("selftest: {failed} check(s) failed");
    }
    println!("selftest: every check passed");
    Ok(())
}
