//! Hostile traffic aimed at the detectors' state: each input is built to grow one kind of
//! state without end, and the sensor must replay it to the end with every table at its cap,
//! counting what it refused or forgot.
//!
//! - `dns_names`: hundreds of thousands of unique DNS names from one host, under 2 000
//!   registered domains (the per-host bucket caps names and domains, the DNS windows forget
//!   domains, the answer cache is not touched by queries);
//! - `fan_out`: one host opening connections to 300 000 distinct (peer, port) pairs within a
//!   minute (the bucket caps peers and ports; every unanswered peer is a flood victim, capped
//!   by `flood.max_victims`; scan follows one source);
//! - `tls_hellos`: 20 000 TLS ClientHellos, each with 4 000 extensions (about 16 KB), on
//!   connections that stay open (the parser reads a bounded part, pending hellos are capped);
//! - `fragments`: 300 000 first IP fragments that are never completed (the fragment table is
//!   fixed; what it overwrote is counted).
//!
//! For each: the replay exits 0, the counters of the caps it aims at are non-zero, and the
//! peak RSS stays under [`RSS_BOUND`] (printed; docs/RELIABILITY.md records a run).
//! `NBAD_HOSTILE_SCALE=N` multiplies every input's size (default 1).

use std::ffi::OsStr;
use std::time::Duration;

use anyhow::{Result, ensure};
use nbad_tests::detection::long_input::{Frame, ipv4_header_checksum, write_pcap};
use nbad_tests::sensor::{self, lookup};
use serde_json::Value;

/// 2026-01-01T00:00:00Z, µs.
const T0_US: u64 = 1_767_225_600_000_000;
/// What the whole process may reach on any of these inputs.
const RSS_BOUND: u64 = 256 << 20;
/// The hostile inside host, and the others.
const HOST: [u8; 4] = [10, 9, 0, 5];
const RESOLVER: [u8; 4] = [10, 9, 0, 53];

fn scale() -> u64 {
    std::env::var("NBAD_HOSTILE_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// Ethernet + IPv4 (`more_fragments`, `ident`) + `l4` (already holding its header).
fn ipv4(
    ts_us: u64,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ident: u16,
    more_fragments: bool,
    l4: &[u8],
) -> Frame {
    let mut f = Vec::with_capacity(34 + l4.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&u16::try_from(20 + l4.len()).unwrap_or(u16::MAX).to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    if more_fragments {
        ip[6] = 0x20;
    }
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    Frame { ts_us, data: f }
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap_or(u16::MAX).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65_535u16.to_be_bytes());
    t.extend_from_slice(payload);
    t
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;
const PSH_ACK: u8 = 0x18;

/// A DNS query for `name`, type A.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).unwrap_or(63));
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// A TLS 1.2 ClientHello record with `extensions` empty GREASE-like extensions (type
/// 0x0a0a + n, length 0) and an SNI.
fn client_hello(extensions: u16) -> Vec<u8> {
    let mut ext = Vec::new();
    let sni = b"hostile.example";
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&u16::try_from(sni.len() + 5).unwrap_or(0).to_be_bytes());
    ext.extend_from_slice(&u16::try_from(sni.len() + 3).unwrap_or(0).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&u16::try_from(sni.len()).unwrap_or(0).to_be_bytes());
    ext.extend_from_slice(sni);
    for n in 0..extensions {
        ext.extend_from_slice(&(0x1000u16.wrapping_add(n)).to_be_bytes());
        ext.extend_from_slice(&[0, 0]);
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap_or(u16::MAX).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&u16::try_from(hs.len()).unwrap_or(u16::MAX).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn dns_names(n: u64) -> Vec<Frame> {
    (0..n)
        .map(|i| {
            // Five minutes, five buckets; every name unique, 2 000 registered domains.
            let at = T0_US + i * 300_000_000 / n;
            let name =
                format!("{:016x}.n{}.d{}.com", i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i % 7, i % 2_000);
            let q = dns_query(u16::try_from(i % 65_536).unwrap_or(0), &name);
            ipv4(
                at,
                HOST,
                RESOLVER,
                17,
                0,
                false,
                &udp(40_000 + u16::try_from(i % 20_000).unwrap_or(0), 53, &q),
            )
        })
        .collect()
}

fn fan_out(n: u64) -> Vec<Frame> {
    (0..n)
        .map(|i| {
            let at = T0_US + i * 50_000_000 / n;
            let [_, a, b, c] = u32::try_from(i % 60_000).unwrap_or(0).to_be_bytes();
            let peer = [100, 64 + (a & 0x3f), b, c];
            let port = 1 + u16::try_from(i % 65_000).unwrap_or(0);
            let sport = 1_024 + u16::try_from(i % 60_000).unwrap_or(0);
            ipv4(at, HOST, peer, 6, 0, false, &tcp(sport, port, 1, SYN, &[]))
        })
        .collect()
}

fn tls_hellos(n: u64) -> Vec<Frame> {
    let hello = client_hello(4_000);
    let mut frames = Vec::new();
    for i in 0..n {
        let at = T0_US + i * 30_000_000 / n;
        let [_, _, b, c] = u32::try_from(i).unwrap_or(0).to_be_bytes();
        let server = [198, 51, b, c];
        let sport = 20_000 + u16::try_from(i % 40_000).unwrap_or(0);
        frames.push(ipv4(at, HOST, server, 6, 0, false, &tcp(sport, 443, 1, SYN, &[])));
        frames.push(ipv4(at + 100, server, HOST, 6, 0, false, &tcp(443, sport, 9, SYN_ACK, &[])));
        frames.push(ipv4(at + 200, HOST, server, 6, 0, false, &tcp(sport, 443, 2, ACK, &[])));
        frames.push(ipv4(at + 300, HOST, server, 6, 0, false, &tcp(sport, 443, 2, PSH_ACK, &hello)));
    }
    frames
}

fn fragments(n: u64) -> Vec<Frame> {
    (0..n)
        .map(|i| {
            let at = T0_US + i * 20_000_000 / n;
            let ident = u16::try_from(i % 65_536).unwrap_or(0);
            let [_, _, b, c] = u32::try_from(i / 65_536).unwrap_or(0).to_be_bytes();
            let dst = [192, 0, b, c];
            ipv4(at, HOST, dst, 17, ident, true, &udp(5_000, 6_000, &[0x5a; 48]))
        })
        .collect()
}

/// Replays `frames` with `config` (TOML added to a home network of 10/8); returns the
/// statistics after checking the run ended well and stayed under the bound.
fn replay(name: &str, frames: &[Frame], config: &str) -> Result<Value> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let pcap = dir.join(format!("{name}.pcap"));
    write_pcap(&pcap, frames)?;
    let cfg = dir.join("sensor.toml");
    std::fs::write(
        &cfg,
        format!("[sensor]\nhome_networks = [\"10.0.0.0/8\"]\n[flows]\nworkers = 1\n{config}"),
    )?;
    let stats = dir.join("stats.json");
    let args: [&OsStr; 10] = [
        OsStr::new("replay"),
        OsStr::new("-c"),
        cfg.as_os_str(),
        OsStr::new("--quiet"),
        OsStr::new("--flows"),
        OsStr::new("/dev/null"),
        OsStr::new("--alerts"),
        OsStr::new("/dev/null"),
        OsStr::new("--stats"),
        stats.as_os_str(),
    ];
    let mut argv: Vec<&OsStr> = args.to_vec();
    argv.push(pcap.as_os_str());
    let run = sensor::run(&argv, dir, Duration::from_secs(900))?;
    ensure!(run.succeeded(), "{name}: {}", run.describe());
    let stats = sensor::read_stats(&stats)?;
    println!(
        "{name}: {} packets, peak RSS {:.1} MiB in {:.1} s; engine caps {}; decode {}",
        frames.len(),
        run.peak_rss as f64 / 1_048_576.0,
        run.elapsed.as_secs_f64(),
        stats["detection"]["engine"]["capped"],
        stats["decode"]
    );
    ensure!(
        run.peak_rss > 0 && run.peak_rss < RSS_BOUND,
        "{name}: peak RSS {} bytes, over {RSS_BOUND}",
        run.peak_rss
    );
    Ok(stats)
}

fn count(stats: &Value, path: &str) -> u64 {
    lookup(stats, path).and_then(Value::as_u64).unwrap_or(0)
}

#[test]
fn unique_dns_names_by_the_hundred_thousand_stay_within_the_caps() -> Result<()> {
    let stats = replay("dns_names", &dns_names(400_000 * scale()), "")?;
    for cap in ["host_dns_names", "host_dns_domains", "dns_windows"] {
        ensure!(count(&stats, &format!("detection.engine.capped.{cap}")) > 0, "{cap} never reached: {stats}");
    }
    ensure!(count(&stats, "detection.observed.dns") == 400_000 * scale(), "every query observed: {stats}");
    Ok(())
}

#[test]
fn one_host_reaching_hundreds_of_thousands_of_peers_and_ports_stays_within_the_caps() -> Result<()> {
    let stats = replay("fan_out", &fan_out(300_000 * scale()), "max_flows = 1000000\n")?;
    for cap in ["host_peers", "host_ports"] {
        ensure!(count(&stats, &format!("detection.engine.capped.{cap}")) > 0, "{cap} never reached: {stats}");
    }
    // Every unanswered peer is a flood "victim" of the host: the flood detector's cap.
    ensure!(
        count(&stats, "detection.engine.flood.victims_dropped") > 0,
        "max_victims never reached: {stats}"
    );
    Ok(())
}

#[test]
fn tls_hellos_with_thousands_of_extensions_stay_within_the_caps() -> Result<()> {
    let n = 20_000 * scale();
    let stats = replay("tls_hellos", &tls_hellos(n), "")?;
    ensure!(count(&stats, "detection.observed.identified") >= n, "every hello identified: {stats}");
    ensure!(count(&stats, "detection.engine.capped.app_pending") > 0, "pending hellos never capped: {stats}");
    Ok(())
}

#[test]
fn fragments_that_never_complete_stay_within_the_fragment_table() -> Result<()> {
    let n = 300_000 * scale();
    let stats = replay("fragments", &fragments(n), "")?;
    ensure!(count(&stats, "decode.fragments") == n, "every fragment counted: {stats}");
    ensure!(count(&stats, "decode.fragments_overwritten") > 0, "the table never overwrote: {stats}");
    Ok(())
}
