//! Multi-queue live capture (`capture.threads`): four libpcap handles in one `PACKET_FANOUT`
//! group on a veth pair built for the test, each read by its own capture thread. A known,
//! bounded set of UDP and TCP flows is sent from the namespace end to the host end; every
//! packet on the link must be read exactly once, by some thread, and every flow must come out
//! as one record with its exact counts.
//!
//! The ground truth for "every packet" is the host end's own interface counters (frames
//! received plus frames sent over the test's window): the link carries nothing but the test's
//! traffic (IPv6 is off on both ends) and what it causes (ARP, TCP handshakes and teardowns).
//!
//! Needs root, `ip netns` and python3; otherwise reported as skipped (`nbad_tests::gate`).

pub mod common;

use std::io::Read as _;
use std::net::{TcpListener, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::live::{
    Link, NET_RAW, delete_leftovers, effective_capabilities, must, require, start_sensor,
    wait_for_packets_read,
};
use common::{direction_totals, is_flow, read_records, read_stats, u64_at, write_file};

const CAPTURE_THREADS: u64 = 4;
const UDP_FLOWS: u16 = 160;
const UDP_FIRST_PORT: u16 = 41_000;
const UDP_DST_PORT: u16 = 40_012;
const DATAGRAMS_PER_FLOW: u64 = 5;
const UDP_PAYLOAD: u64 = 64;
const TCP_FLOWS: u16 = 40;
const TCP_DST_PORT: u16 = 40_013;
const TCP_WRITES: u64 = 3;
const TCP_WRITE_LEN: u64 = 200;

/// Sends 160 UDP flows (source ports 41000..41159) of 5 datagrams of 64 bytes each to
/// DST:40012, then opens 40 TCP connections to DST:40013, writing 3 x 200 bytes on each, and
/// prints the TCP client ports. Args: SRC DST.
const SEND_FLOWS: &str = r#"
import socket, sys
src, dst = sys.argv[1], sys.argv[2]
for i in range(160):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 41000 + i))
    for j in range(5):
        s.sendto(bytes([65 + j]) * 64, (dst, 40012))
    s.close()
ports = []
for i in range(40):
    c = socket.create_connection((dst, 40013), timeout=5)
    ports.append(c.getsockname()[1])
    for j in range(3):
        c.sendall(b"x" * 200)
    c.close()
print(" ".join(map(str, ports)))
"#;

/// Frames received plus frames sent by `interface`, from its kernel counters.
fn frames_on(interface: &str) -> u64 {
    ["rx_packets", "tx_packets"]
        .iter()
        .map(|c| {
            let path = format!("/sys/class/net/{interface}/statistics/{c}");
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .sum()
}

/// The interface's frame count once two reads 200 ms apart agree (the last TCP teardown
/// segments may still be in flight when the clients return), or after `limit`.
fn settled_frames_on(interface: &str, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let mut last = frames_on(interface);
    loop {
        thread::sleep(Duration::from_millis(200));
        let now = frames_on(interface);
        if now == last || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// How many threads of `pid` are named `nbad-capture-*` (the capture threads other than the
/// first, which is the main thread), once there are `expected` of them or after `limit` (the
/// sensor says it captures before it starts its threads).
fn capture_threads_of(pid: u32, expected: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the sensor's threads");
        let names =
            tasks.flatten().map(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default());
        let found = names.filter(|name| name.starts_with("nbad-capture-")).count() as u64;
        if found == expected || Instant::now() >= deadline {
            return found;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Accepts `n` connections and reads each to its end; returns the bytes read from each.
fn serve_tcp(listener: TcpListener, n: u16) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let (mut stream, _) = listener.accept().unwrap_or_else(|e| panic!("connection {i}: {e}"));
            stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
            let mut body = Vec::new();
            stream.read_to_end(&mut body).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            body.len() as u64
        })
        .collect()
}

#[test]
fn four_capture_threads_on_a_veth_read_every_packet_once_and_report_every_flow_once() {
    let Some(_ran) = require() else { return };
    delete_leftovers();
    let link = Link::create(3);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_file(
        dir.path(),
        "fanout.toml",
        &format!(
            "[sensor]\nid = \"fanout-test\"\n\n[capture]\nmode = \"pcap\"\ninterface = \"{}\"\n\
             threads = {CAPTURE_THREADS}\nbuffer_bytes = 4194304\nread_timeout_ms = 50\n\n\
             [flows]\nworkers = 2\n\n[output]\nstats_interval_s = 1\n",
            link.host_if
        ),
    );
    let (flows, stats) = (dir.path().join("flows.json"), dir.path().join("stats.json"));

    // Listeners on the host end: datagrams are delivered (no ICMP port-unreachable flows), and
    // the TCP connections are accepted and read to their end.
    let _udp = UdpSocket::bind((link.host_ip.as_str(), UDP_DST_PORT)).expect("binding the UDP listener");
    let tcp = TcpListener::bind((link.host_ip.as_str(), TCP_DST_PORT)).expect("binding the TCP listener");
    let server = thread::spawn(move || serve_tcp(tcp, TCP_FLOWS));

    let mut sensor = start_sensor(&config, &flows, &stats);
    if !sensor.wait_for_line("capturing on", Duration::from_secs(20)) {
        let _ = sensor.child.kill();
        let _ = sensor.child.wait();
        panic!("the sensor never said it was capturing:\n{}", sensor.all_stderr());
    }
    // Every handle was opened before the capture capabilities went: no thread holds them, and
    // the capture threads beside the main one run.
    let pid = sensor.child.id();
    let others = capture_threads_of(pid, CAPTURE_THREADS - 1, Duration::from_secs(5));
    assert_eq!(others, CAPTURE_THREADS - 1, "nbad-capture-N threads beside the main one");
    let held = effective_capabilities(pid, Duration::from_secs(5), |caps| caps & NET_RAW == 0);
    assert_eq!(held & NET_RAW, 0, "CAP_NET_RAW dropped in every thread: {held:#x}");

    let before = frames_on(&link.host_if);
    let printed = link.python_in_netns(SEND_FLOWS, &[&link.peer_ip, &link.host_ip]);
    let received = server.join().expect("the TCP server thread");
    assert_eq!(received, vec![TCP_WRITES * TCP_WRITE_LEN; usize::from(TCP_FLOWS)], "bytes per connection");
    let tcp_ports: Vec<u16> = printed.split_whitespace().map(|p| p.parse().expect("a client port")).collect();
    assert_eq!(tcp_ports.len(), usize::from(TCP_FLOWS), "{printed}");
    let on_link = settled_frames_on(&link.host_if, Duration::from_secs(5)) - before;

    let seen = wait_for_packets_read(&stats, on_link, Duration::from_secs(10));
    must(&["kill", "-TERM", &sensor.child.id().to_string()]);
    let code = common::wait_or_kill(&mut sensor.child, Duration::from_secs(20));
    let stderr = sensor.all_stderr();
    let code = code.unwrap_or_else(|limit| {
        panic!("still running {limit:?} after SIGTERM (stats had {seen} packets read); stderr:\n{stderr}")
    });
    assert_eq!(code, Some(0), "exit status after SIGTERM; stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{CAPTURE_THREADS} capture threads in PACKET_FANOUT group")),
        "{stderr}"
    );

    // Every frame on the link was read once, none dropped, and the threads' shares add up.
    let stats = read_stats(&stats);
    assert_eq!(
        u64_at(&stats, "/capture/packets_read"),
        on_link,
        "frames read vs frames on the link: {stats}"
    );
    assert_eq!(u64_at(&stats, "/capture/kernel_dropped"), 0, "{stats}");
    let threads = stats.pointer("/capture/threads").and_then(Value::as_array).expect("per-thread figures");
    assert_eq!(threads.len() as u64, CAPTURE_THREADS, "{stats}");
    let per_thread: Vec<u64> = threads.iter().map(|t| u64_at(t, "/packets_read")).collect();
    eprintln!("frames on the link: {on_link}; read per capture thread: {per_thread:?}");
    assert_eq!(per_thread.iter().sum::<u64>(), on_link, "{per_thread:?}");
    assert!(
        per_thread.iter().filter(|&&n| n > 0).count() > 1,
        "more than one thread read packets: {per_thread:?}"
    );
    for t in threads {
        assert_eq!(u64_at(t, "/kernel_dropped"), 0, "{stats}");
    }
    let parsed = u64_at(&stats, "/decode/parsed");
    assert_eq!(parsed + u64_at(&stats, "/decode/non_ip"), on_link, "every frame decoded: {stats}");

    // Every parsed packet is in exactly one flow record, and every flow has exactly one record.
    let records = read_records(&flows);
    let in_records: u64 =
        records.iter().map(|r| u64_at(r, "/source/packets") + u64_at(r, "/destination/packets")).sum();
    assert_eq!(in_records, parsed, "packets in flow records vs packets parsed");
    let (peer, host) = (link.peer_ip.as_str(), link.host_ip.as_str());
    let udp_bytes = DATAGRAMS_PER_FLOW * (20 + 8 + UDP_PAYLOAD);
    for port in UDP_FIRST_PORT..UDP_FIRST_PORT + UDP_FLOWS {
        let flow: Vec<_> = records
            .iter()
            .filter(|r| is_flow(r, "udp", (peer, Some(port)), (host, Some(UDP_DST_PORT))))
            .collect();
        assert_eq!(flow.len(), 1, "one record for UDP flow from port {port}: {flow:?}");
        assert_eq!(direction_totals(&flow), ((DATAGRAMS_PER_FLOW, udp_bytes), (0, 0)), "{flow:?}");
    }
    for &port in &tcp_ports {
        let flow: Vec<_> = records
            .iter()
            .filter(|r| is_flow(r, "tcp", (peer, Some(port)), (host, Some(TCP_DST_PORT))))
            .collect();
        assert_eq!(flow.len(), 1, "one record for TCP flow from port {port}: {flow:?}");
        let ((client_packets, client_bytes), (server_packets, _)) = direction_totals(&flow);
        // SYN, three writes (at least one segment each, on a veth with a 1500-byte MTU exactly
        // one), FIN, ACKs: the payload plus at least 20 + 20 header bytes per packet.
        assert!(client_packets >= TCP_WRITES + 2 && server_packets >= 2, "{flow:?}");
        assert!(client_bytes >= TCP_WRITES * TCP_WRITE_LEN + client_packets * 40, "{flow:?}");
    }
    let udp_and_tcp = usize::from(UDP_FLOWS) + usize::from(TCP_FLOWS);
    let ip_records = records
        .iter()
        .filter(|r| ["udp", "tcp"].contains(&r["network"]["transport"].as_str().unwrap_or("")))
        .count();
    assert_eq!(ip_records, udp_and_tcp, "no other UDP or TCP flow, no flow split in two");
}
