//! The live lab (`nbad_tests::lab`): real clients and servers in network
//! namespaces, and the sensor on a mirror of the router's inside interface,
//! as on a switch's SPAN port.
//!
//! Two sensors capture the same mirrored traffic at once, one with XDP on
//! `span0` and one with libpcap on `span1`, while the lab runs its benign
//! traffic, the 4 MiB upload and SSH on port 443. Then, from their flow
//! records:
//!
//! - XDP sees both directions of a connection (it sees received packets
//!   only; the mirror makes both directions "received");
//! - the upload's client side carries at least the file's bytes;
//! - SSH on port 443 and the DNS lookups are there, as flows to the right
//!   servers;
//! - XDP and libpcap count the upload flow the same, packet for packet and
//!   byte for byte.
//!
//! Needs root and the lab's programs (`cargo xtask setup` installs them):
//! otherwise it is reported as skipped, naming the packages (`nbad_tests::gate`),
//! and a CI run fails.
//! Takes about 20 s.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use nbad_tests::flows::{self, FlowKey};
use nbad_tests::gate;
use nbad_tests::lab::servers::{REPORT_LEN, UPLOAD_LEN};
use nbad_tests::lab::topology::span_if;
use nbad_tests::lab::{Episode, Lab, LabOptions, Node, SensorOutput, config_with, preflight};
use nbad_tests::sensor;
use serde_json::Value;

const TCP: u8 = 6;

#[test]
fn xdp_on_a_mirror_port_sees_both_directions_and_counts_like_libpcap() -> Result<()> {
    let Some(_ran) = gate::require(&preflight::needs()) else { return Ok(()) };
    let bin = sensor::sensor_bin()?;
    let config_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/lab.toml");
    let base = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;

    // Generic (skb) mode: frames reach the program through the same backlog as they reach
    // libpcap on the other mirror port, so the two sensors see the same frames. In native mode a
    // veth hands frames to XDP through a 256-slot ring, which can overflow on mirrored bursts when
    // the CPUs are starved (a CI run under heavy load once counted 47 fewer upload packets on the
    // native side, before the program ran). The native path's exact counts are tested on a veth
    // without a mirror (sensor/tests/xdp.rs, live_pcap.rs).
    let xdp_config = config_with(&base, "xdp", &span_if(0))?
        .replace("[capture.xdp]\n", "[capture.xdp]\nattach = \"skb\"\n");
    if !xdp_config.contains("attach = \"skb\"") {
        bail!("configs/lab.toml no longer has a [capture.xdp] table");
    }
    let lab = Lab::start(LabOptions { mirror_ports: 2 })?;
    let xdp = lab.start_sensor(&bin, &xdp_config, "xdp", None, None)?;
    let pcap = lab.start_sensor(&bin, &config_with(&base, "pcap", &span_if(1))?, "pcap", None, None)?;
    if !xdp.capture_line().contains("with XDP") {
        bail!("the XDP sensor is not capturing with XDP: {}", xdp.capture_line());
    }
    for episode in [Episode::Benign, Episode::Upload, Episode::SshOn443] {
        let outcome = episode.run(&lab).with_context(|| format!("episode {}", episode.key()))?;
        eprintln!("{}: {}", episode.key(), outcome.summary);
    }
    let (xdp, pcap) = (xdp.stop()?, pcap.stop()?);
    let mirror = lab.mirror_filter();
    lab.teardown();
    eprintln!("mirror filter: {mirror:?}");

    let mut failures = Vec::new();
    let mut check = |name: &str, result: Result<()>| {
        if let Err(e) = result {
            failures.push(format!("{name}: {e:#}"));
        }
    };
    check("both sensors exit cleanly on SIGTERM", sensors_exited_cleanly(&xdp, &pcap));
    check("XDP sees both directions of in1's HTTP fetch", http_flow_has_both_directions(&xdp.records));
    check("the upload's client side carries the whole file", upload_carries_the_file(&xdp.records));
    check("SSH on port 443 is a flow from in2 to ssh:443", ssh_on_443_is_seen(&xdp.records));
    check(
        "every inside host's lookups are flows to the resolver",
        dns_flows_reach_the_resolver(&xdp.records),
    );
    check("XDP and libpcap count the upload flow alike", xdp_and_pcap_agree_on_the_upload(&xdp, &pcap));
    check(
        "TLS, SSH, HTTP and DNS samples reach userspace from the ring buffer",
        samples_reach_userspace(&xdp.stats),
    );
    for (name, sensor) in [("libpcap", &pcap), ("XDP", &xdp)] {
        check(
            &format!("each detector that alerted reports its packet-to-alert latency ({name})"),
            alert_latency(sensor),
        );
    }
    check("the upload raises an exfiltration alert on in1 (libpcap sensor)", upload_alerts(&pcap));
    check("the upload raises an exfiltration alert on in1 (XDP sensor)", upload_alerts(&xdp));
    check("SSH on port 443 raises a protocol_mismatch alert (libpcap sensor)", ssh_on_443_alerts(&pcap));
    check("SSH on port 443 raises a protocol_mismatch alert from XDP's samples", ssh_on_443_alerts(&xdp));
    if !failures.is_empty() {
        bail!("{}\n\nXDP records:\n{}", failures.join("\n"), summarize(&xdp.records));
    }
    Ok(())
}

/// The 4 MiB upload to the sink, a peer new to in1, is reported as exfiltration by in1.
fn upload_alerts(sensor: &SensorOutput) -> Result<()> {
    let hit = sensor.alerts.iter().any(|a| {
        a["rule"]["name"] == "exfiltration"
            && a["source"]["ip"] == "10.77.1.11"
            && a.to_string().contains("10.77.2.50")
    });
    if !hit {
        bail!("no exfiltration alert for in1's upload to the sink; alerts: {:?}", sensor.alerts);
    }
    Ok(())
}

/// Real OpenSSH on port 443 is identified from its banner and alerted on.
fn ssh_on_443_alerts(sensor: &SensorOutput) -> Result<()> {
    let hit = sensor.alerts.iter().any(|a| {
        a["rule"]["name"] == "protocol_mismatch"
            && a["destination"]["port"] == 443
            && a["nbad"]["evidence"]["details"]["protocol"] == "ssh"
    });
    if !hit {
        bail!("no protocol_mismatch alert for SSH on 443; alerts: {:?}", sensor.alerts);
    }
    Ok(())
}

/// The XDP program sends the first packets of each flow direction (and every DNS packet) to
/// userspace; the sensor identifies each sample's protocol and counts it. The benign episode has
/// HTTPS, SSH, HTTP and DNS flows, so each must have been sampled and recognised.
fn samples_reach_userspace(stats: &Value) -> Result<()> {
    if stats.is_null() {
        bail!("the XDP sensor wrote no statistics on exit");
    }
    let mut missing = Vec::new();
    for kind in ["tls", "ssh", "http", "dns"] {
        if num(stats, &format!("/capture/source/samples_{kind}")) == 0 {
            missing.push(kind);
        }
    }
    if !missing.is_empty() {
        bail!("no {missing:?} samples identified; capture statistics: {}", stats["capture"]);
    }
    Ok(())
}

/// The statistics a sensor wrote on exit give the packet-to-alert latency of every detector
/// that raised an alert (`alert_latency`: count, median, 99th percentile, maximum, in
/// milliseconds), and the quantiles are ordered. The figures are printed, not judged: they
/// depend on the machine (BENCHMARKS.md reports them).
fn alert_latency(sensor: &SensorOutput) -> Result<()> {
    let by = &sensor.stats["alert_latency"];
    for a in &sensor.alerts {
        let Some(detector) = a["rule"]["name"].as_str().filter(|d| *d != "staged_incident") else { continue };
        let q = &by[detector];
        let (n, p50, p99, max) =
            (q["count"].as_u64(), q["p50_ms"].as_f64(), q["p99_ms"].as_f64(), q["max_ms"].as_f64());
        let (Some(n), Some(p50), Some(p99), Some(max)) = (n, p50, p99, max) else {
            bail!("no latency for {detector}: alert_latency = {by}");
        };
        if n == 0 || !(p50 <= p99 && p99 <= max) {
            bail!("{detector}: {q}");
        }
    }
    eprintln!("packet-to-alert latency: {by}");
    Ok(())
}

fn sensors_exited_cleanly(xdp: &SensorOutput, pcap: &SensorOutput) -> Result<()> {
    for (name, out) in [("xdp", xdp), ("pcap", pcap)] {
        if !out.clean_exit {
            bail!("the {name} sensor did not exit 0 after SIGTERM; its log:\n{}", out.log);
        }
    }
    Ok(())
}

/// One flow, summed over its records (interim and end).
#[derive(Debug, Default, Clone, Copy)]
struct Sides {
    records: usize,
    src_packets: u64,
    dst_packets: u64,
    src_bytes: u64,
    dst_bytes: u64,
}

fn num(record: &Value, pointer: &str) -> u64 {
    record.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn text<'a>(record: &'a Value, pointer: &str) -> &'a str {
    record.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Flows of `proto` from `client` (any address when `None`) to
/// `server:port`, summed per community id.
fn flows_to(records: &[Value], client: Option<Node>, server: Node, port: u16, proto: &str) -> Vec<Sides> {
    let mut by_id: Vec<(String, Sides)> = Vec::new();
    for r in records {
        let matches = text(r, "/network/transport") == proto
            && text(r, "/destination/ip") == server.ip().to_string()
            && num(r, "/destination/port") == u64::from(port)
            && client.is_none_or(|c| text(r, "/source/ip") == c.ip().to_string());
        if !matches {
            continue;
        }
        let id = text(r, "/network/community_id").to_owned();
        let at = match by_id.iter().position(|(k, _)| *k == id) {
            Some(at) => at,
            None => {
                by_id.push((id, Sides::default()));
                by_id.len() - 1
            }
        };
        let s = &mut by_id[at].1;
        s.records += 1;
        s.src_packets += num(r, "/source/packets");
        s.dst_packets += num(r, "/destination/packets");
        s.src_bytes += num(r, "/source/bytes");
        s.dst_bytes += num(r, "/destination/bytes");
    }
    by_id.into_iter().map(|(_, s)| s).collect()
}

fn one_flow(records: &[Value], client: Node, server: Node, port: u16, proto: &str) -> Result<Sides> {
    let found = flows_to(records, Some(client), server, port, proto);
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no {proto} flow {} -> {}:{port}", client.ip(), server.ip()),
        more => bail!(
            "{} {proto} flows {} -> {}:{port}, expected one: {more:?}",
            more.len(),
            client.ip(),
            server.ip()
        ),
    }
}

fn http_flow_has_both_directions(records: &[Value]) -> Result<()> {
    let http = one_flow(records, Node::In1, Node::Web, 80, "tcp")?;
    if http.src_packets == 0 || http.dst_packets == 0 {
        bail!("one direction is missing: {http:?}");
    }
    // The response (headers and the page) is larger than the request.
    if http.dst_bytes <= http.src_bytes {
        bail!("the server sent no more than the client: {http:?}");
    }
    Ok(())
}

fn upload_carries_the_file(records: &[Value]) -> Result<()> {
    let upload = one_flow(records, Node::In1, Node::Sink, 80, "tcp")?;
    if upload.src_bytes < UPLOAD_LEN {
        bail!("client sent {} bytes, fewer than the {UPLOAD_LEN}-byte file: {upload:?}", upload.src_bytes);
    }
    if upload.dst_packets == 0 {
        bail!("no packets from the sink (ACKs, the 201 response): {upload:?}");
    }
    Ok(())
}

fn ssh_on_443_is_seen(records: &[Value]) -> Result<()> {
    let ssh = one_flow(records, Node::In2, Node::Ssh, 443, "tcp")?;
    if ssh.src_bytes < REPORT_LEN || ssh.dst_packets == 0 {
        bail!("expected the {REPORT_LEN} bytes sent up the session and replies: {ssh:?}");
    }
    let ssh22 = one_flow(records, Node::In3, Node::Ssh, 22, "tcp")?;
    if ssh22.src_packets == 0 || ssh22.dst_packets == 0 {
        bail!("the benign SSH session on :22 lacks a direction: {ssh22:?}");
    }
    Ok(())
}

fn dns_flows_reach_the_resolver(records: &[Value]) -> Result<()> {
    for host in Node::INSIDE {
        let lookups = flows_to(records, Some(host), Node::Dns, 53, "udp");
        if lookups.is_empty() {
            bail!("no DNS flow from {} to the resolver", host.ip());
        }
        if let Some(unanswered) = lookups.iter().find(|s| s.dst_packets == 0) {
            bail!("a lookup from {} has no answer: {unanswered:?}", host.ip());
        }
    }
    Ok(())
}

fn xdp_and_pcap_agree_on_the_upload(xdp: &SensorOutput, pcap: &SensorOutput) -> Result<()> {
    let upload = xdp
        .records
        .iter()
        .find(|r| {
            text(r, "/destination/ip") == Node::Sink.ip().to_string() && num(r, "/destination/port") == 80
        })
        .context("no upload record from the XDP sensor")?;
    let client_port = u16::try_from(num(upload, "/source/port")).context("source port")?;
    let key = FlowKey::new(
        TCP,
        IpAddr::V4(Node::In1.ip()),
        Some(client_port),
        IpAddr::V4(Node::Sink.ip()),
        Some(80),
    );
    let by_xdp = flows::totals_from_records(&xdp.records)?;
    let by_pcap = flows::totals_from_records(&pcap.records)?;
    let (x, p) =
        (by_xdp.get(&key).copied().unwrap_or_default(), by_pcap.get(&key).copied().unwrap_or_default());
    if x != p || x.packets == 0 {
        bail!("{key}: XDP counted {x}, libpcap {p}");
    }
    // Not asserted (the episodes' other flows are not the subject here),
    // but shown, so that a difference elsewhere is visible in the log.
    let diff = flows::diff(&by_pcap, &by_xdp);
    eprintln!(
        "upload {key}: {x} by both; other flows differing between libpcap (expected) and XDP (got): {}",
        if diff.is_empty() { "none".to_owned() } else { format!("\n{}", flows::render_diff(&diff, 20)) }
    );
    Ok(())
}

fn summarize(records: &[Value]) -> String {
    let mut out = String::new();
    for r in records {
        let _ = writeln!(
            out,
            "  {} {} {}:{} -> {}:{}  {}/{} pkts {}/{} bytes",
            text(r, "/event/action"),
            text(r, "/network/transport"),
            text(r, "/source/ip"),
            num(r, "/source/port"),
            text(r, "/destination/ip"),
            num(r, "/destination/port"),
            num(r, "/source/packets"),
            num(r, "/destination/packets"),
            num(r, "/source/bytes"),
            num(r, "/destination/bytes"),
        );
    }
    out
}

#[test]
fn the_lab_config_sets_mode_and_interface_for_each_sensor() -> Result<()> {
    let config_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/lab.toml");
    let base = std::fs::read_to_string(&config_path)?;
    let pcap = config_with(&base, "pcap", "span1")?;
    assert!(pcap.contains("mode = \"pcap\"\n") && pcap.contains("interface = \"span1\"\n"), "{pcap}");
    assert!(!pcap.contains("mode = \"auto\""), "{pcap}");
    assert!(pcap.contains("home_networks = [\"10.77.1.0/24\"]"), "the rest is kept: {pcap}");
    Ok(())
}
