//! `nbad-sensor run` capturing live with libpcap, on a veth pair built for the test: one end in
//! the host namespace (where the sensor listens), the other in a network namespace of its own
//! from which a known, bounded set of packets is sent to the host end. Nothing leaves that link:
//! its two addresses sit in a /30 inside 10.199.0.0/16 and no other route is added anywhere.
//!
//! Needs root, `ip netns` and python3 (which sends the traffic from inside the namespace); when
//! one is missing the test is reported as skipped (`nbad_tests::gate`), which fails a CI run.

pub mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::live::{
    BPF, Link, NET_ADMIN, NET_RAW, PREFIX, delete_leftovers, effective_capabilities, must, require,
    start_sensor, try_run, wait_for_packets_read,
};
use common::{direction_totals, is_flow, read_records, read_stats, str_at, u64_at, write_file};

const UDP_SRC_PORT: u16 = 40_001;
const UDP_DST_PORT: u16 = 40_002;
const DATAGRAMS: u64 = 20;
const UDP_PAYLOAD: u64 = 100;
const PINGS: u64 = 5;
/// ICMP echo payload; each echo packet is 20 (IPv4) + 8 (ICMP) + this many bytes.
const PING_PAYLOAD: u64 = 56;

/// Sends exactly 20 datagrams of 100 bytes from SRC:40001 to DST:40002. Args: SRC DST.
const SEND_UDP: &str = r#"
import socket, sys, time
src, dst = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 40001))
for i in range(20):
    s.sendto(bytes([65 + i]) * 100, (dst, 40002))
    time.sleep(0.01)
"#;

/// Sends exactly 5 ICMP echo requests (56-byte payload, 0.2 s apart) to DST and prints how many
/// were answered. Arg: DST.
const SEND_PINGS: &str = r#"
import socket, struct, sys, time
dst = sys.argv[1]
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(2.0)
payload = b"nbad-live-test-" + b"x" * 41
replies = 0
for seq in range(5):
    header = struct.pack("!BBHHH", 8, 0, 0, 0x4E42, seq)
    header = struct.pack("!BBHHH", 8, 0, checksum(header + payload), 0x4E42, seq)
    sock.sendto(header + payload, (dst, 0))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            packet = sock.recv(2048)
        except socket.timeout:
            break
        ihl = (packet[0] & 0x0F) * 4
        kind, _, _, ident, rseq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
        if kind == 0 and ident == 0x4E42 and rseq == seq:
            replies += 1
            break
    time.sleep(0.2)
print(replies)
"#;

#[test]
fn live_capture_on_a_veth_accounts_known_udp_and_icmp_flows_and_stops_cleanly_on_sigterm() {
    live_capture_accounts_known_flows("pcap", 0, 200);
}

/// XDP sees what arrives on the interface: on the host end of the veth, the packets the namespace
/// sends (on a SPAN port, that is everything). The echo replies leave through it and are not seen.
#[test]
fn xdp_capture_on_a_veth_accounts_the_same_ingress_flows_as_libpcap() {
    live_capture_accounts_known_flows("xdp", 1, 200);
}

/// Regression: the XDP source's map was read only every poll interval, so SIGTERM lost the
/// packets since the last poll. With a 10 s interval, everything the test sends falls in that
/// window: the final poll at shutdown must account for it.
#[test]
fn xdp_capture_accounts_the_last_poll_interval_at_sigterm() {
    live_capture_accounts_known_flows("xdp", 2, 10_000);
}

fn live_capture_accounts_known_flows(mode: &str, tag: u32, poll_ms: u32) {
    let Some(_ran) = require() else { return };
    delete_leftovers();
    let link = Link::create(tag);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_file(
        dir.path(),
        "live.toml",
        &format!(
            "[sensor]\nid = \"live-test\"\n\n[capture]\nmode = \"{mode}\"\ninterface = \"{}\"\n\
             read_timeout_ms = 50\n\n[capture.xdp]\npoll_interval_ms = {poll_ms}\n\n\
             [flows]\nworkers = 1\n\n[output]\nstats_interval_s = 1\n",
            link.host_if
        ),
    );
    let (flows, stats) = (dir.path().join("flows.json"), dir.path().join("stats.json"));

    // A listener on the host end, so the datagrams are delivered rather than answered with ICMP
    // port-unreachable (which would be a third flow).
    let listener =
        UdpSocket::bind((link.host_ip.as_str(), UDP_DST_PORT)).expect("binding the host-side listener");
    listener.set_read_timeout(Some(Duration::from_secs(5))).expect("setting a read timeout");

    let mut sensor = start_sensor(&config, &flows, &stats);
    if !sensor.wait_for_line("capturing on", Duration::from_secs(20)) {
        let _ = sensor.child.kill();
        let _ = sensor.child.wait();
        panic!("the sensor never said it was capturing:\n{}", sensor.all_stderr());
    }

    // Once capture is open, what opened it is gone: CAP_NET_RAW always, CAP_BPF unless the
    // XDP path still reads its maps (bpf(2) wants it); CAP_NET_ADMIN stays.
    // The sensor drops them one at a time: wait for all that this mode drops, not just the first.
    let dropped = if mode == "xdp" { NET_RAW } else { NET_RAW | BPF };
    let held = effective_capabilities(sensor.child.id(), Duration::from_secs(5), |caps| caps & dropped == 0);
    assert_eq!(held & NET_RAW, 0, "CAP_NET_RAW dropped: {held:#x}");
    assert_eq!(held & BPF != 0, mode == "xdp", "CAP_BPF kept only for XDP: {held:#x}");
    assert_ne!(held & NET_ADMIN, 0, "CAP_NET_ADMIN kept: {held:#x}");

    link.python_in_netns(SEND_UDP, &[&link.peer_ip, &link.host_ip]);
    let mut buf = [0u8; 2048];
    for i in 0..DATAGRAMS {
        let (len, from) =
            listener.recv_from(&mut buf).unwrap_or_else(|e| panic!("datagram {i} not delivered: {e}"));
        assert_eq!((len as u64, from.to_string()), (UDP_PAYLOAD, format!("{}:{UDP_SRC_PORT}", link.peer_ip)));
    }
    let replies = link.python_in_netns(SEND_PINGS, &[&link.host_ip]);
    assert_eq!(replies.trim(), PINGS.to_string(), "echo replies received in the namespace");

    // Let the capture catch up before stopping it: the stats file is rewritten every second.
    let ingress_only = mode == "xdp";
    let expected_packets = if ingress_only { DATAGRAMS + PINGS } else { DATAGRAMS + 2 * PINGS };
    let seen = wait_for_packets_read(&stats, expected_packets, Duration::from_secs(5));

    must(&["kill", "-TERM", &sensor.child.id().to_string()]);
    let code = common::wait_or_kill(&mut sensor.child, Duration::from_secs(20));
    let stderr = sensor.all_stderr();
    let code = code.unwrap_or_else(|limit| {
        panic!(
            "the sensor was still running {limit:?} after SIGTERM and was killed; its periodic stats \
             file had counted {seen} packets read 5 s after the traffic; stderr:\n{stderr}"
        )
    });
    assert_eq!(code, Some(0), "exit status after SIGTERM; stderr:\n{stderr}");
    assert!(stderr.contains("stopped:"), "a final summary on stderr:\n{stderr}");

    let records = read_records(&flows);
    let udp: Vec<_> = records
        .iter()
        .filter(|r| {
            is_flow(r, "udp", (&link.peer_ip, Some(UDP_SRC_PORT)), (&link.host_ip, Some(UDP_DST_PORT)))
        })
        .collect();
    let header = 20 + 8;
    assert_eq!(direction_totals(&udp), ((DATAGRAMS, DATAGRAMS * (header + UDP_PAYLOAD)), (0, 0)), "{udp:?}");

    let icmp: Vec<_> =
        records.iter().filter(|r| is_flow(r, "icmp", (&link.peer_ip, None), (&link.host_ip, None))).collect();
    let echo = PINGS * (header + PING_PAYLOAD);
    let replies = if ingress_only { (0, 0) } else { (PINGS, echo) };
    assert_eq!(direction_totals(&icmp), ((PINGS, echo), replies), "{icmp:?}");

    for r in udp.iter().chain(&icmp) {
        assert!(["shutdown", "idle_timeout"].contains(&str_at(r, "/event/reason")), "{r}");
        assert_eq!(str_at(r, "/observer/name"), "live-test", "{r}");
    }
    let stats = read_stats(&stats);
    assert!(u64_at(&stats, "/capture/packets_read") >= expected_packets, "{stats}");
    if ingress_only {
        assert!(stderr.contains("with XDP in native mode"), "{stderr}");
        assert!(u64_at(&stats, "/capture/source/parsed") >= expected_packets, "{stats}");
    }
    assert!(u64_at(&stats, "/flows/ended/shutdown") >= 1, "{stats}");
}

/// With `capture.mode = "auto"`, an interface where XDP cannot attach (native mode requested on a
/// bridge, whose driver has no native XDP) is captured with libpcap instead, and the log says why.
#[test]
fn auto_mode_falls_back_to_libpcap_and_says_why() {
    let Some(_ran) = require() else { return };
    delete_leftovers();
    let bridge = format!("{PREFIX}{}br", std::process::id());
    must(&["ip", "link", "add", &bridge, "type", "bridge"]);
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            try_run(&["ip", "link", "del", &self.0]);
        }
    }
    let _cleanup = Cleanup(bridge.clone());
    must(&["ip", "link", "set", &bridge, "up"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_file(
        dir.path(),
        "auto.toml",
        &format!(
            "[capture]\nmode = \"auto\"\ninterface = \"{bridge}\"\nread_timeout_ms = 50\n\n\
             [capture.xdp]\nattach = \"native\"\n"
        ),
    );
    let (flows, stats) = (dir.path().join("flows.json"), dir.path().join("stats.json"));
    let mut sensor = start_sensor(&config, &flows, &stats);
    let capturing = sensor.wait_for_line("capturing on", Duration::from_secs(20));
    must(&["kill", "-TERM", &sensor.child.id().to_string()]);
    let code = common::wait_or_kill(&mut sensor.child, Duration::from_secs(20));
    let stderr = sensor.all_stderr();
    assert!(capturing, "{stderr}");
    assert_eq!(code, Ok(Some(0)), "{stderr}");
    assert!(stderr.contains("XDP cannot be used on"), "{stderr}");
    assert!(stderr.contains("falling back to libpcap"), "{stderr}");
    assert!(stderr.contains("with libpcap (XDP fallback)"), "{stderr}");
}

/// With `capture.mode = "xdp"` the same failure stops the sensor with the reason (exit 1).
#[test]
fn xdp_mode_stops_with_the_reason_when_xdp_cannot_attach() {
    let Some(_ran) = require() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let config =
        write_file(dir.path(), "xdp.toml", "[capture]\nmode = \"xdp\"\ninterface = \"nbadt-none0\"\n");
    let out = common::run_sensor(["run".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("nbadt-none0") && out.stderr.contains("XDP"), "{}", out.stderr);
}
