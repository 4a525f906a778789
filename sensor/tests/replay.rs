//! `nbad-sensor replay` end to end: the demo capture the sensor generates itself (see
//! `sensor/src/synth/demo.rs` for every episode in it) and small captures built here with the same
//! `synth::Timeline`, replayed by the real binary; the tests read the ECS records and the
//! statistics it writes. Expected packet and byte counts are derived from how the synthetic
//! traffic is built, not copied from an earlier run.

pub mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

use common::{direction_totals, is_flow, read_records, read_stats, run_sensor, str_at, u64_at, write_file};
use nbad_sensor::synth::demo::{DURATION_NS, START_NS};
use nbad_sensor::synth::{Timeline, ethernet, udp};
use serde_json::Value;

const SEC: u64 = 1_000_000_000;
const SENSOR_ID: &str = "replay-test";
/// IPv4 header plus TCP header without options, as `synth::tcp` builds them.
const IPV4_TCP_HEADERS: u64 = 40;
/// `Timeline::tcp_session` cuts payload into segments of at most this many bytes.
const SEGMENT: usize = 1400;
/// The demo's long upload: 200 exchanges of 200 000 bytes up and 1 400 down, one second apart.
const UPLOAD: (&str, u16, &str, u16) = ("10.0.0.66", 51_000, "203.0.113.50", 443);

/// What one replay left behind.
#[derive(Debug)]
struct Replay {
    records: Vec<Value>,
    stats: Value,
}

/// Writes a configuration with `sensor.id = SENSOR_ID` and `flows_keys` under `[flows]`.
fn config(dir: &Path, name: &str, flows_keys: &str) -> PathBuf {
    write_file(dir, name, &format!("[sensor]\nid = \"{SENSOR_ID}\"\n\n[flows]\n{flows_keys}\n"))
}

/// Replays `pcaps` with `config`, requiring exit 0; outputs go to `dir/<tag>.*`.
fn replay(dir: &Path, tag: &str, config: &Path, pcaps: &[&Path]) -> Replay {
    let flows = dir.join(format!("{tag}.flows.json"));
    let stats = dir.join(format!("{tag}.stats.json"));
    let mut args = vec!["replay".into(), "--config".into(), config.as_os_str().to_owned()];
    args.extend([
        "--flows".into(),
        flows.as_os_str().to_owned(),
        "--stats".into(),
        stats.as_os_str().to_owned(),
    ]);
    args.extend(pcaps.iter().map(|p| p.as_os_str().to_owned()));
    let out = run_sensor(&args);
    out.assert_code(0, &format!("replay ({tag})"));
    Replay { records: read_records(&flows), stats: read_stats(&stats) }
}

/// `nbad-sensor generate --seed SEED dir/demo-SEED.pcap`.
fn generate_demo(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("demo-{seed}.pcap"));
    let seed = seed.to_string();
    run_sensor(["generate".as_ref(), "--seed".as_ref(), seed.as_ref(), path.as_os_str()])
        .assert_code(0, "generate");
    path
}

/// The demo (seed 1) replayed once with two workers, shared by the tests that only read it.
fn demo() -> &'static Replay {
    static DEMO: OnceLock<Replay> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let pcap = generate_demo(dir.path(), 1);
        let cfg = config(dir.path(), "demo.toml", "workers = 2");
        replay(dir.path(), "demo", &cfg, &[&pcap])
    })
}

fn write_timeline(timeline: Timeline, path: &Path) {
    let file = BufWriter::new(File::create(path).expect("creating the capture"));
    timeline.write_pcap(file).expect("writing the capture").flush().expect("flushing the capture");
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a literal address")
}

/// Packets and IP bytes per direction, `((client packets, client bytes), (server packets,
/// server bytes))`, of an IPv4 `Timeline::tcp_session`, from how it builds a session: the client
/// sends SYN and ACK, per exchange its data segments and one ACK, then FIN and the last ACK (or
/// one RST); the server sends SYN-ACK, its data segments, and FIN (none after a reset).
fn tcp_session_totals(exchanges: &[(usize, usize)], reset: bool) -> ((u64, u64), (u64, u64)) {
    let segments = |bytes: usize| bytes.div_ceil(SEGMENT) as u64;
    let (mut client, mut server) = ((2, 2 * IPV4_TCP_HEADERS), (1, IPV4_TCP_HEADERS));
    for &(up, down) in exchanges {
        client.0 += segments(up) + 1;
        client.1 += up as u64 + (segments(up) + 1) * IPV4_TCP_HEADERS;
        server.0 += segments(down);
        server.1 += down as u64 + segments(down) * IPV4_TCP_HEADERS;
    }
    let (client_tail, server_tail) = if reset { (1, 0) } else { (2, 1) };
    client = (client.0 + client_tail, client.1 + client_tail * IPV4_TCP_HEADERS);
    server = (server.0 + server_tail, server.1 + server_tail * IPV4_TCP_HEADERS);
    (client, server)
}

/// A flow's identity regardless of direction: protocol, VLAN tags, and its two endpoints sorted.
type FlowId = (String, String, String, (String, Option<u64>), (String, Option<u64>));

fn flow_id(r: &Value) -> FlowId {
    let endpoint = |side: &str| {
        (
            str_at(r, &format!("/{side}/ip")).to_owned(),
            r.pointer(&format!("/{side}/port")).and_then(Value::as_u64),
        )
    };
    let (a, b) = (endpoint("source"), endpoint("destination"));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let tag = |pointer: &str| r.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_owned();
    (
        str_at(r, "/network/iana_number").to_owned(),
        tag("/network/vlan/id"),
        tag("/network/inner/vlan/id"),
        lo,
        hi,
    )
}

/// Packets and bytes per flow, summed over its records.
fn totals<'a>(records: impl IntoIterator<Item = &'a Value>) -> BTreeMap<FlowId, (u64, u64)> {
    let mut map = BTreeMap::new();
    for r in records {
        let entry = map.entry(flow_id(r)).or_insert((0, 0));
        entry.0 += u64_at(r, "/network/packets");
        entry.1 += u64_at(r, "/network/bytes");
    }
    map
}

fn packets(records: &[Value]) -> u64 {
    records.iter().map(|r| u64_at(r, "/network/packets")).sum()
}

fn records_of<'a>(
    records: &'a [Value],
    transport: &str,
    client: (&str, Option<u16>),
    server: (&str, Option<u16>),
) -> Vec<&'a Value> {
    records.iter().filter(|r| is_flow(r, transport, client, server)).collect()
}

fn ts_ns(record: &Value, pointer: &str) -> u64 {
    let text = str_at(record, pointer);
    let time = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{pointer} = {text:?}: {e}"));
    let since = time.duration_since(UNIX_EPOCH).expect("a time after the epoch");
    u64::try_from(since.as_nanos()).expect("a time before 2554")
}

#[test]
fn every_demo_record_is_an_ecs_network_event_stamped_with_the_sensor_id() {
    let demo = demo();
    assert!(demo.records.len() > 1000, "the demo holds over a thousand flows: {}", demo.records.len());
    for r in &demo.records {
        assert_eq!(str_at(r, "/event/kind"), "event", "{r}");
        assert_eq!(r.pointer("/event/category"), Some(&serde_json::json!(["network"])), "{r}");
        let interim = match str_at(r, "/event/action") {
            "flow_end" => false,
            "flow_interim" => true,
            other => panic!("unexpected event.action {other:?} in {r}"),
        };
        let phase = if interim { "info" } else { "end" };
        assert_eq!(r.pointer("/event/type"), Some(&serde_json::json!(["connection", phase])), "{r}");
        assert_eq!(str_at(r, "/event/reason") == "active_timeout", interim, "{r}");

        let (start, end) = (ts_ns(r, "/event/start"), ts_ns(r, "/event/end"));
        assert_eq!(ts_ns(r, "/@timestamp"), end, "@timestamp is the end of the record: {r}");
        assert!(START_NS <= start && start <= end && end <= START_NS + DURATION_NS + 60 * SEC, "{r}");
        // RFC 3339 with microseconds is what the record carries; duration is in nanoseconds.
        assert_eq!(u64_at(r, "/event/duration") / 1_000, (end - start) / 1_000, "{r}");

        let src: IpAddr = str_at(r, "/source/ip").parse().expect("source.ip is an address");
        let dst: IpAddr = str_at(r, "/destination/ip").parse().expect("destination.ip is an address");
        assert_eq!(src.is_ipv4(), dst.is_ipv4(), "{r}");
        assert_eq!(str_at(r, "/network/type"), if src.is_ipv4() { "ipv4" } else { "ipv6" }, "{r}");
        let ((sp, sb), (dp, db)) = direction_totals(&[r]);
        assert_eq!(sp + dp, u64_at(r, "/network/packets"), "{r}");
        assert_eq!(sb + db, u64_at(r, "/network/bytes"), "{r}");

        let (transport, iana) = (str_at(r, "/network/transport"), str_at(r, "/network/iana_number"));
        let expected_iana = match transport {
            "tcp" => "6",
            "udp" => "17",
            "icmp" => "1",
            "ipv6-icmp" => "58",
            other => panic!("the demo has no {other:?} flows: {r}"),
        };
        assert_eq!(iana, expected_iana, "{r}");
        let has_ports = matches!(transport, "tcp" | "udp");
        assert_eq!(r.pointer("/source/port").is_some(), has_ports, "{r}");
        assert_eq!(r.pointer("/destination/port").is_some(), has_ports, "{r}");
        assert_eq!(r.pointer("/nbad/tcp").is_some(), transport == "tcp", "{r}");

        let community_id = str_at(r, "/network/community_id");
        assert!(community_id.starts_with("1:") && community_id.len() == 30, "base64 of a SHA-1: {r}");
        assert_eq!(str_at(r, "/observer/name"), SENSOR_ID, "{r}");
    }
}

#[test]
fn packets_in_records_add_up_to_the_packets_the_decoder_parsed() {
    let demo = demo();
    let stats = &demo.stats;
    assert_eq!(packets(&demo.records), u64_at(stats, "/decode/parsed"));
    assert_eq!(demo.records.len() as u64, u64_at(stats, "/flows/records"));
    assert_eq!(demo.records.len() as u64, u64_at(stats, "/output/flow_records_written"));
    let interim = demo.records.iter().filter(|r| str_at(r, "/event/action") == "flow_interim").count();
    assert_eq!(interim as u64, u64_at(stats, "/flows/interim_records"));
    assert_eq!(u64_at(stats, "/flows/active"), 0, "every flow is flushed at the end of a replay");
}

#[test]
fn long_upload_is_reported_while_running_and_its_totals_match_the_scenario() {
    let (client, cport, server, sport) = UPLOAD;
    let mut upload = records_of(&demo().records, "tcp", (client, Some(cport)), (server, Some(sport)));
    upload.sort_by_key(|r| ts_ns(r, "/event/start"));
    // The session runs from 120 s for about 203 s (200 exchanges one second apart): with the
    // default 60 s active timeout that is three interim records and the final one.
    let reasons: Vec<&str> = upload.iter().map(|r| str_at(r, "/event/reason")).collect();
    assert_eq!(reasons, ["active_timeout", "active_timeout", "active_timeout", "tcp_close"]);
    for r in &upload[..3] {
        assert_eq!(str_at(r, "/event/action"), "flow_interim", "{r}");
        // Expiry runs on a one-second wheel: an interim record covers at most 61 s.
        assert!(u64_at(r, "/event/duration") <= 61 * SEC, "{r}");
        assert_eq!(str_at(r, "/nbad/tcp/state"), "established", "{r}");
    }
    for pair in upload.windows(2) {
        assert!(ts_ns(pair[0], "/event/end") < ts_ns(pair[1], "/event/start"), "records do not overlap");
    }
    let exchanges = vec![(200_000, 1_400); 200];
    assert_eq!(direction_totals(&upload), tcp_session_totals(&exchanges, false));
}

/// A record without packets is only ever the end of a flow whose last packets an interim record
/// already reported (the demo's minute of pings: reported by the timer at its active timeout,
/// then silent until its idle timeout): it says how and when the flow ended, and nothing else
/// is empty.
#[test]
fn an_empty_record_only_ends_a_flow_after_its_interim_record() {
    let records = &demo().records;
    for (i, r) in records.iter().enumerate().filter(|(_, r)| u64_at(r, "/network/packets") == 0) {
        assert_eq!(str_at(r, "/event/action"), "flow_end", "{r}");
        let id = str_at(r, "/network/community_id");
        let earlier = records[..i].iter().rev().find(|p| str_at(p, "/network/community_id") == id);
        assert!(
            earlier.is_some_and(|p| str_at(p, "/event/action") == "flow_interim"),
            "an empty record not after an interim one: {r}"
        );
    }
}

#[test]
fn reset_connection_ends_with_reason_tcp_reset() {
    let reset =
        records_of(&demo().records, "tcp", ("10.0.0.12", Some(52_000)), ("198.51.100.99", Some(8443)));
    assert_eq!(reset.len(), 1, "{reset:?}");
    let r = reset[0];
    assert_eq!(str_at(r, "/event/reason"), "tcp_reset", "{r}");
    assert_eq!(str_at(r, "/nbad/tcp/state"), "reset", "{r}");
    assert_eq!(direction_totals(&reset), tcp_session_totals(&[(100, 0)], true));
}

#[test]
fn vlan_tagged_flow_carries_its_vlan_id_and_untagged_flows_carry_none() {
    let records = &demo().records;
    let vlan = records_of(records, "tcp", ("10.0.1.20", Some(53_000)), ("10.0.2.30", Some(445)));
    assert_eq!(vlan.len(), 1, "{vlan:?}");
    assert_eq!(str_at(vlan[0], "/network/vlan/id"), "100");
    assert_eq!(vlan[0].pointer("/network/inner"), None, "single-tagged: {}", vlan[0]);
    assert_eq!(direction_totals(&vlan), tcp_session_totals(&[(4_000, 60_000)], false));

    let (client, cport, server, sport) = UPLOAD;
    for r in records_of(records, "tcp", (client, Some(cport)), (server, Some(sport))) {
        assert_eq!(r.pointer("/network/vlan"), None, "untagged: {r}");
    }
}

#[test]
fn qinq_flow_carries_outer_and_inner_vlan_ids() {
    let qinq = records_of(&demo().records, "tcp", ("10.0.3.20", Some(53_001)), ("198.51.100.7", Some(80)));
    assert_eq!(qinq.len(), 1, "{qinq:?}");
    assert_eq!(str_at(qinq[0], "/network/vlan/id"), "200");
    assert_eq!(str_at(qinq[0], "/network/inner/vlan/id"), "300");
    assert_eq!(direction_totals(&qinq), tcp_session_totals(&[(500, 9_000)], false));
}

#[test]
fn gre_and_vxlan_payloads_are_accounted_as_their_inner_flows() {
    let demo = demo();
    let gre = records_of(&demo.records, "udp", ("172.16.0.5", Some(33_333)), ("172.16.9.9", Some(53)));
    let vxlan = records_of(&demo.records, "udp", ("172.17.0.5", Some(44_444)), ("172.17.9.9", Some(53)));
    for (name, flow) in [("GRE", gre), ("VXLAN", vxlan)] {
        assert_eq!(flow.len(), 1, "{name} inner flow: {flow:?}");
        assert_eq!(u64_at(flow[0], "/network/packets"), 1, "{name}: {}", flow[0]);
    }
    assert_eq!(u64_at(&demo.stats, "/decode/decapsulated"), 2);
    let tunnel_endpoints = ["10.0.0.250", "192.0.2.250"];
    let outer: Vec<&Value> = demo
        .records
        .iter()
        .filter(|r| tunnel_endpoints.contains(&str_at(r, "/source/ip")))
        .filter(|r| tunnel_endpoints.contains(&str_at(r, "/destination/ip")))
        .collect();
    assert!(outer.is_empty(), "decapsulated tunnels are not flows of their own: {outer:?}");
}

#[test]
fn fragmented_datagram_is_one_flow_counting_both_fragments() {
    let demo = demo();
    let frag = records_of(&demo.records, "udp", ("10.0.0.14", Some(40_000)), ("198.51.100.30", Some(5001)));
    assert_eq!(frag.len(), 1, "{frag:?}");
    // IPv4 total lengths: 20 + 8 (UDP header) + 1472 for the first fragment, 20 + 20 for the last.
    assert_eq!(direction_totals(&frag), ((2, 1500 + 40), (0, 0)));
    assert_eq!(u64_at(&demo.stats, "/decode/fragments"), 2);
    assert_eq!(u64_at(&demo.stats, "/decode/orphan_fragments"), 0);
}

#[test]
fn ipv6_session_is_reported_with_ipv6_addresses() {
    let v6 = records_of(&demo().records, "tcp", ("fd00::10", Some(54_000)), ("2001:db8::80", Some(443)));
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert_eq!(str_at(v6[0], "/network/type"), "ipv6");
    assert_eq!(str_at(v6[0], "/event/reason"), "tcp_close");
}

#[test]
fn malformed_and_non_ip_frames_are_counted_and_not_accounted_to_flows() {
    let demo = demo();
    let decode = &demo.stats["decode"];
    assert_eq!(decode["malformed"], serde_json::json!({"bad_tcp_header": 1, "truncated_ip": 1}));
    assert_eq!(u64_at(decode, "/malformed_total"), 2);
    assert_eq!(u64_at(decode, "/non_ip"), 1, "the ARP request");
    assert_eq!(u64_at(&demo.stats, "/capture/packets_read"), u64_at(decode, "/parsed") + 3);
    // Both malformed frames go from 10.0.0.15 to 10.0.0.16, hosts that otherwise never talk.
    let touched = demo.records.iter().any(|r| {
        let mut ends = [str_at(r, "/source/ip"), str_at(r, "/destination/ip")];
        ends.sort_unstable();
        ends == ["10.0.0.15", "10.0.0.16"]
    });
    assert!(!touched, "the malformed frames make no flow");
}

#[test]
fn replaying_the_same_capture_twice_gives_the_same_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = generate_demo(dir.path(), 1);
    let cfg = config(dir.path(), "demo.toml", "workers = 2");
    let again = replay(dir.path(), "again", &cfg, &[&pcap]);
    let sorted = |records: &[Value]| {
        let mut lines: Vec<String> = records.iter().map(Value::to_string).collect();
        lines.sort();
        lines
    };
    assert!(sorted(&again.records) == sorted(&demo().records), "the two replays' records differ");
    let counters = |stats: &Value| {
        let mut counters = serde_json::json!({"capture": stats["capture"], "decode": stats["decode"], "flows": stats["flows"]});
        // The peak across workers sums per-worker counts sampled at different moments.
        counters["flows"].as_object_mut().expect("stats.flows is an object").remove("active_peak");
        counters
    };
    assert_eq!(counters(&again.stats), counters(&demo().stats));
}

#[test]
fn flow_totals_do_not_depend_on_the_number_of_workers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = generate_demo(dir.path(), 1);
    let expected = totals(&demo().records);
    for workers in [1, 4] {
        let cfg = config(dir.path(), &format!("w{workers}.toml"), &format!("workers = {workers}"));
        let run = replay(dir.path(), &format!("w{workers}"), &cfg, &[&pcap]);
        assert_eq!(u64_at(&run.stats, "/workers"), workers);
        assert!(totals(&run.records) == expected, "per-flow totals differ with {workers} workers");
    }
}

/// A TCP session from 10.9.0.1:40000 to 192.0.2.80:8080 starting at `start_ns`; with `trailer`,
/// an unrelated UDP datagram follows ten seconds after it ends, moving the replay clock on.
fn session_capture(path: &Path, start_ns: u64, exchanges: &[(usize, usize)], reset: bool, trailer: bool) {
    let mut tl = Timeline::default();
    let client = (ip("10.9.0.1"), 40_000);
    let server = (ip("192.0.2.80"), 8080);
    let end = tl.tcp_session(&[], client, server, start_ns, exchanges, SEC, reset);
    if trailer {
        tl.push(end + 10 * SEC, ethernet(&[], &udp((ip("10.9.0.2"), 5353), (ip("10.9.0.3"), 5353), b"tick")));
    }
    write_timeline(tl, path);
}

const SESSION: &[(usize, usize)] = &[(3_000, 500), (0, 2_900), (1_400, 0)];

fn session_records(records: &[Value]) -> Vec<&Value> {
    records_of(records, "tcp", ("10.9.0.1", Some(40_000)), ("192.0.2.80", Some(8080)))
}

#[test]
fn closed_tcp_session_counts_exact_packets_and_bytes_per_direction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("session.pcap");
    session_capture(&pcap, START_NS, SESSION, false, true);
    let cfg = config(dir.path(), "c.toml", "");
    let run = replay(dir.path(), "session", &cfg, &[&pcap]);
    let session = session_records(&run.records);
    assert_eq!(session.len(), 1, "{session:?}");
    let r = session[0];
    // The trailer comes after the 5 s close linger, so the flow ends as closed, not at the end of
    // the capture.
    assert_eq!(str_at(r, "/event/reason"), "tcp_close", "{r}");
    assert_eq!(str_at(r, "/nbad/tcp/state"), "closed", "{r}");
    assert_eq!(r.pointer("/nbad/tcp/handshake"), Some(&Value::Bool(true)), "{r}");
    let all_flags = serde_json::json!(["FIN", "SYN", "PSH", "ACK"]);
    assert_eq!(r.pointer("/nbad/tcp/source_flags"), Some(&all_flags), "{r}");
    assert_eq!(r.pointer("/nbad/tcp/destination_flags"), Some(&all_flags), "{r}");
    assert_eq!(direction_totals(&session), tcp_session_totals(SESSION, false));
    assert_eq!(direction_totals(&session), ((11, 4_400 + 11 * 40), (6, 3_400 + 6 * 40)), "worked by hand");
}

#[test]
fn reset_tcp_session_still_lingering_at_the_end_of_the_capture_ends_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("reset.pcap");
    session_capture(&pcap, START_NS, &[(100, 0)], true, false);
    let cfg = config(dir.path(), "c.toml", "");
    let run = replay(dir.path(), "reset", &cfg, &[&pcap]);
    let session = session_records(&run.records);
    assert_eq!(session.len(), 1, "{session:?}");
    // The capture ends within the close linger: the record says so, and its state says reset.
    assert_eq!(str_at(session[0], "/event/reason"), "end_of_capture");
    assert_eq!(str_at(session[0], "/nbad/tcp/state"), "reset");
    assert_eq!(
        session[0].pointer("/nbad/tcp/source_flags"),
        Some(&serde_json::json!(["SYN", "RST", "PSH", "ACK"]))
    );
    assert_eq!(direction_totals(&session), ((5, 4 * 40 + 140), (1, 40)));
}

#[test]
fn replaying_two_captures_in_one_run_accounts_the_flows_of_both() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = generate_demo(dir.path(), 1);
    let second = dir.path().join("after-demo.pcap");
    session_capture(&second, START_NS + DURATION_NS + 120 * SEC, SESSION, false, true);
    let cfg = config(dir.path(), "c.toml", "workers = 2");
    let alone = replay(dir.path(), "second", &cfg, &[&second]);
    let both = replay(dir.path(), "both", &cfg, &[&first, &second]);

    let mut expected = totals(&demo().records);
    for (id, (p, b)) in totals(&alone.records) {
        let entry = expected.entry(id).or_insert((0, 0));
        *entry = (entry.0 + p, entry.1 + b);
    }
    assert!(totals(&both.records) == expected, "per-flow totals of [A, B] are not those of A plus B");
    for counter in ["/capture/packets_read", "/decode/parsed"] {
        assert_eq!(
            u64_at(&both.stats, counter),
            u64_at(&demo().stats, counter) + u64_at(&alone.stats, counter)
        );
    }
    let session = session_records(&both.records);
    assert_eq!(session.len(), 1);
    assert_eq!(str_at(session[0], "/event/reason"), "tcp_close");
}

#[test]
fn flow_split_across_two_capture_files_is_reported_as_one_flow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let whole = dir.path().join("whole.pcap");
    session_capture(&whole, START_NS, SESSION, false, true);
    // Cut the file after the eighth frame, as a capture rotated mid-session would be.
    let bytes = std::fs::read(&whole).expect("reading the capture");
    let mut cut = 24;
    for _ in 0..8 {
        let caplen = u32::from_le_bytes(bytes[cut + 8..cut + 12].try_into().expect("4 bytes"));
        cut += 16 + caplen as usize;
    }
    let header = &bytes[..24];
    let head = write_pcap_bytes(dir.path(), "head.pcap", &[header, &bytes[24..cut]]);
    let tail = write_pcap_bytes(dir.path(), "tail.pcap", &[header, &bytes[cut..]]);

    let cfg = config(dir.path(), "c.toml", "");
    let run = replay(dir.path(), "split", &cfg, &[&head, &tail]);
    let session = session_records(&run.records);
    assert_eq!(session.len(), 1, "one flow, not two halves: {session:?}");
    assert_eq!(str_at(session[0], "/event/reason"), "tcp_close");
    assert_eq!(direction_totals(&session), tcp_session_totals(SESSION, false));
}

fn write_pcap_bytes(dir: &Path, name: &str, parts: &[&[u8]]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, parts.concat()).expect("writing a capture");
    path
}

#[test]
fn full_flow_table_evicts_yet_every_packet_is_still_accounted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = generate_demo(dir.path(), 1);
    // An emergency idle timeout equal to the shortest idle timeout frees no room early, so a
    // table of 50 (the demo peaks above 80 concurrent flows) has to evict.
    let cfg = config(dir.path(), "small.toml", "max_flows = 50\nemergency_idle_timeout_s = 60\nworkers = 1");
    let run = replay(dir.path(), "small", &cfg, &[&pcap]);
    let evicted = u64_at(&run.stats, "/flows/evicted");
    assert!(evicted > 0, "{}", run.stats);
    assert!(u64_at(&run.stats, "/flows/emergency_entered") >= 1, "{}", run.stats);
    assert!(u64_at(&run.stats, "/flows/active_peak") <= 50, "{}", run.stats);
    let evicted_records = run.records.iter().filter(|r| str_at(r, "/event/reason") == "evicted").count();
    assert_eq!(evicted_records as u64, evicted);
    assert_eq!(packets(&run.records), u64_at(&demo().stats, "/decode/parsed"));
    assert!(totals(&run.records) == totals(&demo().records), "per-flow totals changed under eviction");
}

#[test]
fn emergency_idle_timeout_makes_room_in_a_full_table_before_anything_is_evicted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = generate_demo(dir.path(), 1);
    let cfg = config(dir.path(), "small.toml", "max_flows = 50\nworkers = 1");
    let run = replay(dir.path(), "small", &cfg, &[&pcap]);
    assert!(u64_at(&run.stats, "/flows/emergency_entered") >= 1, "{}", run.stats);
    assert_eq!(u64_at(&run.stats, "/flows/evicted"), 0, "{}", run.stats);
    assert!(u64_at(&run.stats, "/flows/active_peak") <= 50, "{}", run.stats);
    assert_eq!(packets(&run.records), u64_at(&demo().stats, "/decode/parsed"));
}

/// Regression: eviction took the flows whose next timer was due soonest, and a busy flow's next
/// timer is its active timeout, so the one flow certain to send again was evicted ahead of flows
/// idle for many seconds (and came back mid-stream as a new flow). The table's documentation
/// promises the flows "idle longest relative to their timeout".
#[test]
fn full_table_evicts_idle_flows_before_a_busy_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("pressure.pcap");
    let mut tl = Timeline::default();
    // A busy session: an exchange every second for 120 s, still open when the last UDP flow
    // arrives at 103 s (once it has closed, a session in its linger time is fair game).
    let busy_client = (ip("10.8.0.1"), 50_000);
    let busy_server = (ip("192.0.2.44"), 443);
    tl.tcp_session(&[], busy_client, busy_server, START_NS, &vec![(500, 500); 120], SEC, false);
    // From 5 s on, a new one-packet UDP flow every 2 s: each goes idle at once.
    for i in 0..50u16 {
        let frame = ethernet(&[], &udp((ip("10.8.1.1"), 20_000 + i), (ip("192.0.2.53"), 53), b"query"));
        tl.push(START_NS + 5 * SEC + u64::from(i) * 2 * SEC, frame);
    }
    write_timeline(tl, &pcap);
    // Emergency timeouts equal to the idle ones, so eviction is the only way to make room.
    let cfg = config(dir.path(), "tiny.toml", "max_flows = 10\nemergency_idle_timeout_s = 60\nworkers = 1");
    let run = replay(dir.path(), "tiny", &cfg, &[&pcap]);
    assert!(u64_at(&run.stats, "/flows/evicted") > 0, "{}", run.stats);
    let busy = records_of(&run.records, "tcp", ("10.8.0.1", Some(50_000)), ("192.0.2.44", Some(443)));
    let reasons: Vec<&str> = busy.iter().map(|r| str_at(r, "/event/reason")).collect();
    assert!(!reasons.contains(&"evicted"), "the busy session was evicted: {reasons:?}");
}

/// Regression: statistics are written atomically through `<stats>.tmp`, which is the flows file
/// itself when that is named `<stem>.tmp` beside `<stem>.json`; the records were overwritten and
/// renamed away.
#[test]
fn stats_file_never_overwrites_a_flows_file_named_like_its_temporary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("session.pcap");
    session_capture(&pcap, START_NS, SESSION, false, true);
    let flows = dir.path().join("out.tmp");
    let stats = dir.path().join("out.json");
    let out = run_sensor([
        "replay".as_ref(),
        "--flows".as_ref(),
        flows.as_os_str(),
        "--stats".as_ref(),
        stats.as_os_str(),
        pcap.as_os_str(),
    ]);
    out.assert_code(0, "replay");
    assert!(flows.is_file(), "the flow records at {} are gone", flows.display());
    let records = read_records(&flows);
    assert_eq!(records.len() as u64, u64_at(&read_stats(&stats), "/flows/records"));
}

#[test]
fn replay_without_output_options_writes_records_to_stdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("session.pcap");
    session_capture(&pcap, START_NS, SESSION, false, true);
    let out = run_sensor(["replay".as_ref(), pcap.as_os_str()]);
    out.assert_code(0, "replay with built-in defaults");
    let records: Vec<Value> =
        out.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON record per line")).collect();
    assert_eq!(records.len(), 2, "the session and the trailer: {}", out.stdout);
    assert_eq!(direction_totals(&session_records(&records)), tcp_session_totals(SESSION, false));
    assert!(out.stderr.contains("packets read"), "a summary goes to stderr: {}", out.stderr);
}
