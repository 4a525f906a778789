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
//! for its host and that the ordinary host raised none.

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

/// The self-test's configuration: the defaults, with a 30-minute learning period.
pub const CONFIG: &str = r#"
[sensor]
id = "selftest"
home_networks = ["10.1.0.0/24"]

[detection]
learning_period_s = 1800
min_learning_buckets = 20
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

/// Each episode: the detector, its host, what it does.
pub const EPISODES_TABLE: [(Detector, u8, &str); 8] = [
    (Detector::Exfiltration, 10, "uploads 20 MB to an outside host in 40 s"),
    (Detector::DnsTunnel, 11, "sends 60 queries with 48-character random labels under one domain"),
    (Detector::IcmpTunnel, 12, "exchanges 40 echo packets of varying sizes with an outside host"),
    (Detector::ProtocolMismatch, 13, "speaks SSH to an outside host on port 443"),
    (Detector::Scan, 14, "probes 100 ports of one inside host, each answered by a reset"),
    (Detector::Beaconing, 15, "opens a small session to one outside host every 30 s, 20 times"),
    (Detector::LongConnection, 16, "holds one SSH session for two and a half hours"),
    (Detector::MalformedTraffic, 17, "sends 150 TCP packets without any flag (NULL scan probes)"),
];

/// The host that only ever does ordinary things.
pub const ORDINARY_HOST: u8 = 20;

/// The self-test capture.
#[must_use]
pub fn scenario() -> Timeline {
    let mut t = Timeline::default();
    let mut rng = Rng::new(7);
    let hosts: Vec<u8> = EPISODES_TABLE.iter().map(|e| e.1).chain([ORDINARY_HOST]).collect();
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
    let (scanner, target) = (inside(ep(Detector::Scan)), inside(99));
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
    t
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
        stop: Arc::default(),
        end_reason: EndReason::EndOfCapture,
        hasher: FlowHasher::with_seed(1),
        engine: Some(Engine::new(&cfg, None)),
        alerts: None,
        hub: None,
        side_alerts: None,
        settings: None,
        export: None,
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
    for (detector, host, what) in EPISODES_TABLE {
        let hit = alerts.iter().find(|a| a.detector == detector && a.host == inside(host));
        match hit {
            Some(a) => println!(
                "PASS  {:<18} {} {what}: score {} ({})",
                detector.name(),
                inside(host),
                a.risk_score,
                a.message
            ),
            None => {
                failed += 1;
                println!("FAIL  {:<18} {} {what}: no alert", detector.name(), inside(host));
            }
        }
    }
    let ordinary: Vec<&Alert> = alerts.iter().filter(|a| a.host == inside(ORDINARY_HOST)).collect();
    if ordinary.is_empty() {
        println!("PASS  {:<18} {} ordinary traffic raised no alert", "false_alerts", inside(ORDINARY_HOST));
    } else {
        failed += 1;
        for a in ordinary {
            println!("FAIL  {:<18} {} ordinary traffic raised: {}", "false_alerts", a.host, a.message);
        }
    }
    println!("{} alerts in total", alerts.len());
    if failed > 0 {
        anyhow::bail!("selftest: {failed} check(s) failed");
    }
    println!("selftest: every check passed");
    Ok(())
}
