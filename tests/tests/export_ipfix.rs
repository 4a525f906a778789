//! IPFIX and NetFlow v9 export, checked against real collectors from Debian on loopback.
//!
//! For corpus captures of several link types (Ethernet with IPv4 and IPv6, 802.1Q-tagged
//! Ethernet, Linux cooked capture with `lo` frames and IPv6, raw IP, ICMP), one `nbad-sensor
//! replay` per capture exports every flow record (interim ones included) to three collectors
//! at once, and the per-flow packet and byte sums each collector stored equal the sums of the
//! sensor's own JSON records:
//!
//! | collector | IPFIX biflow (RFC 5103) | IPFIX unidirectional | NetFlow v9 |
//! |---|---|---|---|
//! | nfdump `nfcapd` 1.7.1 | yes (reverse counters stored as `out_*`) | yes | yes (unidirectional) |
//! | pmacct `nfacctd` 1.7.7 | no: reverse counters ignored (TCP, UDP), ICMP mis-accounted | yes | yes (unidirectional) |
//!
//! NetFlow v9 has no reverse elements, so the sensor exports it unidirectional only. Neither
//! collector takes IPFIX over TCP; TCP export is checked against a receiver of the test's own
//! and Wireshark's dissector. The Wireshark test captures the export on loopback with tshark
//! (root) and requires no malformed packet and no expert warning in the IPFIX and v9
//! dissection. A last test stalls the collector: the replay still completes, and every record
//! is sent or counted as dropped.

use std::ffi::OsStr;
use std::io::Read as _;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use nbad_tests::flows::{self, FlowTotals, grand_total};
use nbad_tests::gate::{self, Need};
use nbad_tests::receivers::flow_collectors::{Nfacctd, Nfcapd, nfdump_totals};
use nbad_tests::receivers::{not_installed, wait_until};
use nbad_tests::{Corpus, sensor};
use serde_json::Value;

/// Captures of different link types (see `flow_accounting.rs` for what each holds).
const CAPTURES: [&str; 5] = [
    "benign_mixed/ndpi__1kxun.pcap",
    "exfil_bulk_upload/sv__filecontainer-smb.pcap",
    "proto_nonstandard_port/ndpi__vmess-tcp.pcapng",
    "malformed/zeek__payload-syn.pcap",
    "icmp_tunnel/ndpi__icmp-tunnel.pcap",
];

const REPLAY_LIMIT: Duration = Duration::from_secs(120);

/// The three export modes, as `[[output.ipfix]]` keys.
const MODES: [(&str, &str); 3] = [
    ("ipfix-biflow", "protocol = \"ipfix\"\nrecord_mode = \"biflow\""),
    ("ipfix-unidirectional", "protocol = \"ipfix\"\nrecord_mode = \"unidirectional\""),
    ("netflow9", "protocol = \"netflow9\"\nrecord_mode = \"unidirectional\""),
];

/// A configuration exporting to `collectors` (`name`, port, mode keys) with detection off,
/// under observation domain `domain` (each replay is a new exporting process, whose sequence
/// numbers start at 0: a domain of its own keeps the collector from counting that as loss).
fn config(dir: &Path, collectors: &[(String, String, &str)], domain: u32) -> Result<PathBuf> {
    let mut text = String::from("[sensor]\nid = \"export-test\"\n[detection]\nenabled = false\n");
    for (name, address, keys) in collectors {
        text.push_str(&format!(
            "[[output.ipfix]]\nname = \"{name}\"\ncollector = \"{address}\"\nflush_interval_ms = 50\n\
             observation_domain_id = {domain}\n{keys}\n"
        ));
    }
    let path = dir.join("sensor.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// One replay: the sensor's JSON records summed per flow, and its final stats.
fn replay(config: &Path, capture: &Path, scratch: &Path) -> Result<(FlowTotals, Value)> {
    let flows_path = scratch.join("flows.json");
    let stats_path = scratch.join("stats.json");
    let _ = std::fs::remove_file(&flows_path);
    let args: Vec<&OsStr> = vec![
        OsStr::new("replay"),
        OsStr::new("--quiet"),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--flows"),
        flows_path.as_os_str(),
        OsStr::new("--stats"),
        stats_path.as_os_str(),
        capture.as_os_str(),
    ];
    let run = sensor::run(&args, scratch, REPLAY_LIMIT)?;
    ensure!(run.succeeded(), "{}", run.describe());
    let records = sensor::read_json_lines(&flows_path)?;
    let stats = sensor::read_stats(&stats_path)?;
    Ok((flows::totals_from_records(&records)?, stats))
}

/// Every exporter in `stats` sent every record it was offered.
fn all_sent(stats: &Value) -> Result<()> {
    let export =
        stats.pointer("/output/export").and_then(Value::as_array).context("no output.export in stats")?;
    for x in export {
        let n = |k: &str| x.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
        ensure!(n("offered") > 0 && n("sent") == n("offered"), "exporter did not send everything: {x}");
        ensure!(n("template_sends") >= 1, "no template sent: {x}");
    }
    Ok(())
}

fn merge(into: &mut FlowTotals, from: &FlowTotals) {
    for (k, t) in from {
        into.entry(*k).or_default().add(t.packets, t.bytes);
    }
}

fn compare(what: &str, want: &FlowTotals, got: &FlowTotals) -> Result<()> {
    let mismatches = flows::diff(want, got);
    if !mismatches.is_empty() {
        bail!(
            "{what}: {} of {} flows differ from the sensor's JSON records (expected = JSON, got = collector):\n{}",
            mismatches.len(),
            want.len(),
            flows::render_diff(&mismatches, 12)
        );
    }
    let total = grand_total(want);
    println!(
        "{what}: {} flows, {} packets, {} bytes: equal to the JSON records",
        want.len(),
        total.packets,
        total.bytes
    );
    Ok(())
}

/// Replays every capture with export to `collectors`; returns the JSON totals of all of them.
fn replay_all(corpus: &Corpus, dir: &Path, collectors: &[(String, String, &str)]) -> Result<FlowTotals> {
    let mut want = FlowTotals::new();
    for (domain, c) in (1..).zip(CAPTURES) {
        let cfg = config(dir, collectors, domain)?;
        let path = corpus.path(corpus.entry(c)?);
        let (totals, stats) = replay(&cfg, &path, dir).with_context(|| format!("replaying {c}"))?;
        all_sent(&stats).with_context(|| format!("replaying {c}"))?;
        merge(&mut want, &totals);
    }
    Ok(want)
}

#[test]
fn nfcapd_stores_the_packets_and_bytes_of_every_flow_in_ipfix_biflow_unidirectional_and_netflow9()
-> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else { return Ok(()) };
    let Some(_ran) = gate::require(&[
        Need::Program { program: "nfcapd", package: "nfdump" },
        Need::Program { program: "nfdump", package: "nfdump" },
    ]) else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut collectors = Vec::new();
    let mut started = Vec::new();
    for (name, keys) in MODES {
        let Some(n) = Nfcapd::start(dir.path())? else {
            not_installed("nfcapd");
            return Ok(());
        };
        collectors.push((name.to_owned(), format!("127.0.0.1:{}", n.port), keys));
        started.push((name, n));
    }
    let want = replay_all(&corpus, dir.path(), &collectors)?;
    for (name, n) in started {
        let (records, log) = n.stop_and_read()?;
        let got = nfdump_totals(&records)?;
        compare(&format!("nfcapd, {name}"), &want, &got).with_context(|| log.clone())?;
        // nfcapd's summary line at exit counts sequence numbers that did not follow on.
        ensure!(log.contains("Sequence Errors: 0"), "nfcapd saw sequence errors ({name}): {log}");
    }
    Ok(())
}

#[test]
fn nfacctd_accounts_the_packets_and_bytes_of_every_flow_in_ipfix_and_netflow9_unidirectional() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else { return Ok(()) };
    let Some(_ran) = gate::require(&[Need::Program { program: "nfacctd", package: "pmacct" }]) else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut collectors = Vec::new();
    let mut started = Vec::new();
    // pmacct does not account biflow records (see the module docs): unidirectional only.
    for &(name, keys) in &MODES[1..] {
        let Some(n) = Nfacctd::start(dir.path())? else {
            not_installed("nfacctd");
            return Ok(());
        };
        collectors.push((name.to_owned(), format!("127.0.0.1:{}", n.port), keys));
        started.push((name, n));
    }
    let want = replay_all(&corpus, dir.path(), &collectors)?;
    let packets = grand_total(&want).packets;
    for (name, n) in started {
        // The print plugin writes once a second: wait until it has printed everything.
        wait_until(Duration::from_secs(20), || n.totals().is_ok_and(|t| grand_total(&t).packets >= packets));
        let got = n.totals()?;
        compare(&format!("nfacctd, {name}"), &want, &got).with_context(|| n.log())?;
    }
    Ok(())
}

/// Sends SIGINT to a capture and waits for it to write its file.
fn stop_capture(child: &mut std::process::Child) -> Result<()> {
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status()?;
    let stopped = wait_until(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
    ensure!(stopped, "tshark did not stop");
    Ok(())
}

#[test]
fn wireshark_dissects_the_ipfix_and_netflow9_export_over_udp_and_tcp_without_a_malformed_record() -> Result<()>
{
    let Some(corpus) = Corpus::open_or_skip()? else { return Ok(()) };
    let Some(_ran) = gate::require(&[Need::Root, Need::Program { program: "tshark", package: "tshark" }])
    else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    // UDP sinks of our own that read and discard (no ICMP unreachable in the capture), and a
    // TCP receiver that counts the bytes of the IPFIX stream.
    let udp: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    for s in &udp {
        let s = s.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while s.recv(&mut buf).is_ok() {}
        });
    }
    let tcp = TcpListener::bind("127.0.0.1:0")?;
    let tcp_port = tcp.local_addr()?.port();
    let tcp_reader = std::thread::spawn(move || -> u64 {
        let Ok((mut c, _)) = tcp.accept() else { return 0 };
        let mut all = Vec::new();
        let _ = c.read_to_end(&mut all);
        all.len() as u64
    });
    let ports: Vec<u16> = udp.iter().map(|s| s.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    let filter = format!(
        "udp port {} or udp port {} or udp port {} or tcp port {tcp_port}",
        ports[0], ports[1], ports[2]
    );
    let pcap = dir.path().join("export.pcapng");
    let mut tshark = Command::new("tshark")
        .args(["-i", "lo", "-f", &filter, "-w"])
        .arg(&pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("tshark.log"))?)
        .spawn()
        .context("starting tshark")?;
    let capturing = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path().join("tshark.log")).is_ok_and(|l| l.contains("Capturing on"))
    });
    ensure!(capturing, "tshark did not start capturing");
    std::thread::sleep(Duration::from_millis(500));

    let collectors = vec![
        ("biflow".to_owned(), format!("127.0.0.1:{}", ports[0]), MODES[0].1),
        ("uni".to_owned(), format!("127.0.0.1:{}", ports[1]), MODES[1].1),
        ("v9".to_owned(), format!("127.0.0.1:{}", ports[2]), MODES[2].1),
        ("tcp".to_owned(), format!("127.0.0.1:{tcp_port}"), "protocol = \"ipfix\"\ntransport = \"tcp\""),
    ];
    let cfg = config(dir.path(), &collectors, 1)?;
    let path = corpus.path(corpus.entry(CAPTURES[0])?);
    let (_, stats) = replay(&cfg, &path, dir.path())?;
    all_sent(&stats)?;
    std::thread::sleep(Duration::from_millis(500));
    stop_capture(&mut tshark)?;
    let received = tcp_reader.join().map_err(|_| anyhow::anyhow!("the TCP receiver panicked"))?;

    let export = stats.pointer("/output/export").and_then(Value::as_array).context("no export stats")?;
    let n = |name: &str, k: &str| {
        export.iter().find(|x| x["name"] == name).and_then(|x| x.get(k)).and_then(Value::as_u64).unwrap_or(0)
    };
    ensure!(
        received == n("tcp", "bytes"),
        "TCP receiver got {received} bytes, the exporter sent {}",
        n("tcp", "bytes")
    );

    let mut decode = vec!["-r".to_owned(), pcap.display().to_string()];
    for p in &ports {
        decode.extend(["-d".to_owned(), format!("udp.port=={p},cflow")]);
    }
    decode.extend(["-d".to_owned(), format!("tcp.port=={tcp_port},cflow")]);
    let bad = Command::new("tshark")
        .args(&decode)
        .args([
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ])
        .output()?;
    ensure!(bad.status.success(), "tshark -r failed: {}", String::from_utf8_lossy(&bad.stderr));
    let bad = String::from_utf8_lossy(&bad.stdout);
    ensure!(bad.trim().is_empty(), "Wireshark flags these frames (number, expert message):\n{bad}");
    // Every message the exporters counted was dissected as NetFlow/IPFIX.
    let frames = Command::new("tshark")
        .args(&decode)
        .args(["-Y", "cflow", "-T", "fields", "-e", "cflow.version"])
        .output()?;
    let versions = String::from_utf8_lossy(&frames.stdout);
    // A TCP segment may carry several IPFIX messages: count the versions in each frame.
    let (mut v9, mut v10) = (0u64, 0u64);
    for v in versions.lines().flat_map(|l| l.split(',')) {
        match v.trim() {
            "9" => v9 += 1,
            "10" => v10 += 1,
            _ => {}
        }
    }
    let sent = |name: &str| n(name, "messages") + n(name, "template_sends");
    ensure!(
        v9 == sent("v9"),
        "Wireshark dissected {v9} NetFlow v9 messages, the exporter sent {}",
        sent("v9")
    );
    let ipfix = sent("biflow") + sent("uni") + sent("tcp");
    ensure!(v10 == ipfix, "Wireshark dissected {v10} IPFIX messages, the exporters sent {ipfix}");
    println!("Wireshark: {v10} IPFIX and {v9} NetFlow v9 messages, none malformed, no expert warning");
    Ok(())
}

#[test]
fn a_collector_that_is_down_never_blocks_the_pipeline_and_every_record_is_sent_or_counted_as_dropped()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let capture = dir.path().join("demo.pcap");
    let gen_args: [&OsStr; 2] = [OsStr::new("generate"), capture.as_os_str()];
    let generated = sensor::run(&gen_args, dir.path(), Duration::from_secs(60))?;
    ensure!(generated.succeeded(), "{}", generated.describe());
    // Nothing listens on this TCP port: every connect is refused and retried with a backoff of
    // up to a second, while the queue of 4 records fills and drops.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let collectors = vec![(
        "down".to_owned(),
        format!("127.0.0.1:{port}"),
        "transport = \"tcp\"\nqueue_records = 4\nretry_initial_ms = 1000\nretry_max_ms = 1000",
    )];
    let cfg = config(dir.path(), &collectors, 1)?;
    let started = std::time::Instant::now();
    let (json, stats) = replay(&cfg, &capture, dir.path())?;
    let x = &stats.pointer("/output/export/0").cloned().context("no export stats")?;
    let n = |k: &str| x.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
    let written = stats.pointer("/output/flow_records_written").and_then(Value::as_u64).unwrap_or(0);
    ensure!(written > 0 && n("offered") == written, "every JSON record is offered to the exporter: {x}");
    ensure!(n("dropped_queue_full") > 0, "the queue of 4 filled and dropped: {x}");
    ensure!(n("send_errors") > 0 && n("sent") == 0, "nothing could be sent: {x}");
    ensure!(
        n("offered")
            == n("sent")
                + n("dropped_queue_full")
                + n("dropped_send_error")
                + n("dropped_shutdown")
                + n("queued"),
        "every record is sent or counted as dropped: {x}"
    );
    // The drain at the end is 10 s; the replay itself does not wait for the collector.
    ensure!(started.elapsed() < Duration::from_secs(40), "the replay took {:?}", started.elapsed());
    println!(
        "collector down: {} flows in JSON, {} records offered, all counted: {x}",
        grand_total(&json).packets,
        n("offered")
    );
    Ok(())
}
