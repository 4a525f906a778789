//! Flow-table exhaustion: a SYN flood from random spoofed sources and ports, replayed against a
//! table capped far below the flood's flows, while ordinary hosts keep established connections
//! open through it.
//!
//! What must hold: the table stays at its cap (the sensor's peak RSS stays bounded, under the
//! memory budget `check-config --memory-budget` computes for the test's configuration, and is
//! printed with the bytes per flow it implies and its share of the budget); emergency mode engages and is counted; flows are
//! evicted, but never an ordinary host's established connection (every packet of those
//! connections is accounted, and none of their records ends `evicted`); the flood is reported
//! (`flood` on the victim); and when the flood stops the table recovers: nothing is evicted
//! after it, and connections that start later are accounted normally.
//!
//! `NBAD_FLOOD_PACKETS` sets the flood's size (default 300 000; docs/RELIABILITY.md records a
//! run with 10 million against the release binary, `NBAD_SENSOR_BIN=target/release/nbad-sensor`);
//! `NBAD_FLOOD_PCAP=PATH` keeps the capture there, to replay it by hand.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use nbad_tests::detection::long_input::{Frame, ipv4_header_checksum, write_pcap};
use nbad_tests::sensor::{self, lookup};
use serde_json::Value;

/// The flood's start, µs since the epoch (2026-01-01T00:00:00Z).
const T0_US: u64 = 1_767_225_600_000_000;
/// The flood lasts this long.
const FLOOD_US: u64 = 20_000_000;
/// Quiet time after it, with only the ordinary connections.
const AFTER_US: u64 = 40_000_000;
/// The table's cap.
const MAX_FLOWS: u64 = 20_000;
/// Ordinary clients, each with one established connection through the flood.
const CLIENTS: u8 = 20;
const VICTIM: [u8; 4] = [10, 77, 0, 80];
/// Sources the scan detector follows per bucket: each spoofed source is one, at about 1.6 KiB
/// each, so this cap, not the flood, bounds that detector's memory.
const SCAN_SOURCES: u64 = 8_192;
/// What the whole process may reach with these caps.
const RSS_BOUND: u64 = 80 << 20;
/// Inside hosts with a baseline at most: the capture has 21 (the clients and the victim). The
/// cap (and the smallest libpcap ring, which a replay does not open) keeps the memory budget
/// that `check-config --memory-budget` computes for this file to what the run can use, so that
/// comparing the peak with it means something.
const MAX_HOSTS: u64 = 1_024;

/// An Ethernet + IPv4 + TCP frame (no options) with `payload` bytes of zeros.
fn tcp(ts_us: u64, src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8, payload: usize) -> Frame {
    let mut f = Vec::with_capacity(54 + payload);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = u16::try_from(40 + payload).unwrap_or(u16::MAX);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.0);
    ip[16..20].copy_from_slice(&dst.0);
    let sum = ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[4..8].copy_from_slice(&(ts_us as u32).to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65_535u16.to_be_bytes());
    f.extend_from_slice(&t);
    f.resize(54 + payload, 0);
    Frame { ts_us, data: f }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

/// The input, and per ordinary connection (client address) the packets it sent.
fn build(flood_packets: u64) -> (Vec<Frame>, BTreeMap<[u8; 4], u64>) {
    let mut frames = Vec::with_capacity(usize::try_from(flood_packets).unwrap_or(0) + 10_000);
    let mut sent = BTreeMap::new();
    // Ordinary connections: handshake before the flood, a request and an answer every second
    // through it and after it, a close at the end.
    let end_us = T0_US + FLOOD_US + AFTER_US;
    for i in 0..CLIENTS {
        let client = ([10, 77, 1, 10 + i], 50_000 + u16::from(i));
        let server = ([192, 0, 2, 10 + i], 443);
        let start = T0_US - 2_000_000 + u64::from(i) * 1_000;
        frames.push(tcp(start, client, server, SYN, 0));
        frames.push(tcp(start + 500, server, client, SYN_ACK, 0));
        frames.push(tcp(start + 1_000, client, server, ACK, 0));
        let mut packets = 3;
        let mut t = start + 1_000_000;
        while t < end_us - 1_000_000 {
            frames.push(tcp(t, client, server, PSH_ACK, 200));
            frames.push(tcp(t + 2_000, server, client, PSH_ACK, 1_200));
            packets += 2;
            t += 1_000_000;
        }
        frames.push(tcp(end_us - 500_000, client, server, FIN_ACK, 0));
        frames.push(tcp(end_us - 499_000, server, client, FIN_ACK, 0));
        frames.push(tcp(end_us - 498_000, client, server, ACK, 0));
        sent.insert(client.0, packets + 3);
    }
    // Connections that start after the flood, to see the table work normally again.
    for i in 0..CLIENTS {
        let client = ([10, 77, 2, 10 + i], 40_000);
        let server = ([192, 0, 2, 200], 80);
        let at = T0_US + FLOOD_US + 15_000_000 + u64::from(i) * 100_000;
        frames.push(tcp(at, client, server, SYN, 0));
        frames.push(tcp(at + 300, server, client, SYN_ACK, 0));
        frames.push(tcp(at + 600, client, server, ACK, 0));
        frames.push(tcp(at + 900, client, server, PSH_ACK, 300));
        frames.push(tcp(at + 1_200, server, client, FIN_ACK, 0));
        frames.push(tcp(at + 1_500, client, server, FIN_ACK, 0));
        sent.insert(client.0, 6);
    }
    // The flood: random spoofed sources from 100.64/10 and random ports, SYNs only.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..flood_packets {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_be_bytes();
        let src = ([100, 64 | (b[0] & 0x3f), b[1], b[2]], u16::from_be_bytes([b[3], b[4]]) | 1024);
        frames.push(tcp(T0_US + n * FLOOD_US / flood_packets.max(1), src, (VICTIM, 80), SYN, 0));
    }
    frames.sort_by_key(|f| f.ts_us);
    (frames, sent)
}

/// The highest resident set size of process `pid` so far (`VmHWM`), bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// `nbad-sensor check-config --memory-budget FILE`: the bytes the sensor may hold with its caps.
fn memory_budget(bin: &Path, config: &Path) -> Result<u64> {
    let out = std::process::Command::new(bin)
        .args([OsStr::new("check-config"), OsStr::new("--memory-budget"), config.as_os_str()])
        .output()
        .context("running check-config")?;
    ensure!(out.status.success(), "check-config failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().with_context(|| format!("check-config --memory-budget printed {text:?}"))
}

#[test]
fn a_syn_flood_fills_the_table_without_evicting_established_connections() -> Result<()> {
    let flood_packets: u64 =
        std::env::var("NBAD_FLOOD_PACKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let (frames, sent) = build(flood_packets);
    let pcap = std::env::var_os("NBAD_FLOOD_PCAP").map_or_else(|| dir.join("flood.pcap"), Into::into);
    write_pcap(&pcap, &frames)?;
    drop(frames);
    let config = dir.join("flood.toml");
    std::fs::write(
        &config,
        format!(
            "[sensor]\nhome_networks = [\"10.77.0.0/16\"]\n[capture]\nmode = \"pcap\"\nbuffer_bytes = 1048576\n\
             [flows]\nworkers = 1\nmax_flows = {MAX_FLOWS}\n\
             [detection]\nbucket_s = 60\nmax_hosts = {MAX_HOSTS}\n[detection.scan]\nmax_sources = {SCAN_SOURCES}\n"
        ),
    )?;
    let (flows, stats, alerts) = (dir.join("flows.json"), dir.join("stats.json"), dir.join("alerts.json"));
    let bin = sensor::sensor_bin()?;
    let budget = memory_budget(&bin, &config)?;
    let started = Instant::now();
    let mut child = std::process::Command::new(&bin)
        .args([OsStr::new("replay"), OsStr::new("-c"), config.as_os_str(), OsStr::new("--quiet")])
        .args([OsStr::new("--flows"), flows.as_os_str(), OsStr::new("--stats"), stats.as_os_str()])
        .args([OsStr::new("--alerts"), alerts.as_os_str(), pcap.as_os_str()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr"))?)
        .spawn()
        .context("starting the sensor")?;
    let mut peak = 0;
    let status = loop {
        peak = peak.max(peak_rss(child.id()).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        ensure!(started.elapsed() < Duration::from_secs(600), "the replay ran for 10 minutes");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    ensure!(status.success(), "the replay failed: {status}\n{stderr}");

    let stats = sensor::read_stats(&stats)?;
    let num = |path: &str| lookup(&stats, path).and_then(Value::as_u64).unwrap_or(0);
    let (emergencies, evicted, peak_flows) =
        (num("flows.emergency_entered"), num("flows.evicted"), num("flows.active_peak"));
    println!(
        "{flood_packets} flood packets against a {MAX_FLOWS}-flow table: peak {peak_flows} flows, \
         emergency mode entered {emergencies} times, {evicted} flows evicted, peak RSS {:.1} MiB \
         ({:.0} bytes per flow at the cap, the whole process included), {:.1} s",
        peak as f64 / 1_048_576.0,
        peak as f64 / MAX_FLOWS as f64,
        started.elapsed().as_secs_f64()
    );
    ensure!(emergencies >= 1, "emergency mode never engaged: {stats}");
    ensure!(evicted > 0, "nothing was evicted: {stats}");
    ensure!(peak_flows <= MAX_FLOWS, "{peak_flows} flows tracked at once, over the cap of {MAX_FLOWS}");
    println!(
        "memory budget for this configuration {:.1} MiB: the peak is {:.0} % of it",
        budget as f64 / 1_048_576.0,
        peak as f64 * 100.0 / budget as f64
    );
    ensure!(peak > 0 && peak < RSS_BOUND, "peak RSS {peak} bytes, over {RSS_BOUND} with these caps");
    ensure!(peak < budget, "peak RSS {peak} bytes, over the memory budget of {budget} bytes for these caps");

    // Ordinary connections: every packet accounted, never evicted; no eviction after the flood.
    let flood_end_ns = (T0_US + FLOOD_US) * 1_000;
    let mut got: BTreeMap<[u8; 4], u64> = BTreeMap::new();
    let mut evicted_late = 0;
    // Read line by line: a large flood writes gigabytes of evicted records.
    for line in std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&flows)?)) {
        let line = line?;
        let line = line.as_str();
        let evicted = line.contains("\"reason\":\"evicted\"");
        if !line.contains("\"ip\":\"10.77.") && !evicted {
            continue;
        }
        let r: Value = serde_json::from_str(line)?;
        let end_ns =
            r["event"]["end"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok()).map_or(0, |t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            });
        if evicted && end_ns > flood_end_ns + 1_000_000_000 {
            evicted_late += 1;
        }
        let Some(client) = r["source"]["ip"].as_str().and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
        else {
            continue;
        };
        if client.octets()[..2] != [10, 77] {
            continue;
        }
        ensure!(!evicted, "an ordinary connection was evicted: {line}");
        *got.entry(client.octets()).or_default() += r["network"]["packets"].as_u64().unwrap_or(0);
    }
    ensure!(got == sent, "ordinary connections' packets: sent {sent:?}, accounted {got:?}");
    ensure!(evicted_late == 0, "{evicted_late} flows evicted after the flood had stopped");

    let alerts = sensor::read_json_lines(&alerts)?;
    let victim = std::net::Ipv4Addr::from(VICTIM).to_string();
    ensure!(
        alerts.iter().any(|a| a["rule"]["name"] == "flood"
            && a.to_string().contains(&victim)
            && a.pointer("/nbad/evidence/details/capture_degraded/flows_evicted").is_some()),
        "no flood alert on {victim} marked capture_degraded (raised while the table evicted): {} alerts",
        alerts.len()
    );
    Ok(())
}

#[test]
fn the_flood_input_is_what_it_says() {
    let (frames, sent) = build(1_000);
    assert_eq!(sent.len(), 2 * usize::from(CLIENTS));
    let syns = frames.iter().filter(|f| f.data[47] == SYN && f.data[30..34] == VICTIM).count();
    assert_eq!(syns, 1_000);
    assert!(frames.windows(2).all(|w| w[0].ts_us <= w[1].ts_us));
    assert!(Path::new("/proc/self/status").is_file());
}
