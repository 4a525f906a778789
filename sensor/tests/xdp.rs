//! XDP capture against the real kernel: the program from `ebpf/nbad-ebpf`, attached by
//! `capture::xdp` to the host side of a veth pair whose other end lives in a network namespace
//! the test creates.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN, creating namespaces); as anyone else the tests that
//! touch the kernel are reported as skipped (`nbad_tests::gate`), which fails a CI run.
//!
//! Network safety: every packet is sent from inside the test's namespace onto its own veth
//! link; addresses are 10.198.N.0/30 and fd98:0:N::/64 on that link only, with no route out.
//! Every send is a fixed count, every wait has a deadline, and the namespace and veth are
//! removed by a Drop guard; leftovers of earlier runs (prefix `nbx`, dead pid) are removed first.
//!
//! XDP sees only what an interface *receives*: here the packets sent from the namespace. On a
//! SPAN port or TAP both directions arrive as received traffic and both are counted.
//!
//! Senders are pinned to CPU 0 (`taskset`): veth runs the receiver's XDP on the sender's CPU,
//! and the program counts "first N packets" per CPU, so pinning makes sample counts exact.

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use nbad_common::{DIR_FROM_HI, DIR_FROM_LO, FlowKey, IP_V4, SampleReason, XdpCounter, icmp_counterpart};
use nbad_sensor::capture::LinkType;
use nbad_sensor::capture::xdp::{AttachedMode, FlowDelta, XdpCapture, XdpError, XdpMode, XdpSettings};
use nbad_sensor::config::DecodeSettings;
use nbad_sensor::decode::Decoder;
use nbad_sensor::flow::community_id::icmp_port_equivalents;
use nbad_tests::gate::{self, Need, Ran};

/// Longest any helper command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// Longest the test waits for the kernel to have counted what was sent.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);
const PYTHON: &str = "/usr/bin/python3";
const PREFIX: &str = "nbx";

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn counts_and_samples_udp_icmp_and_tcp_sent_over_a_veth() {
    let Some(link) = VethLink::create('a') else { return };
    let settings = XdpSettings::default();
    let mut capture = XdpCapture::attach(&link.host, XdpMode::Native, &settings).expect("native XDP on veth");
    assert_eq!(capture.mode(), &AttachedMode::Native);
    assert!(capture.clock().uncertainty_ns < 50_000_000, "clock measured tightly: {:?}", capture.clock());
    link.configure_addresses();

    // 20 UDP datagrams of 100 payload bytes (IPv4 length 128), received by a real socket so the
    // test also sees that the program passes them on.
    let receiver = UdpSocket::bind((link.v4_host, 9999)).expect("bind the UDP receiver on the veth address");
    receiver.set_read_timeout(Some(Duration::from_secs(2))).expect("set a read timeout");
    link.python(
        UDP_SCRIPT,
        &[&link.v4_ns.to_string(), "40001", &link.v4_host.to_string(), "9999", "20", "100"],
    );
    let mut received = 0;
    let mut buf = [0u8; 2048];
    while received < 20 && receiver.recv(&mut buf).is_ok() {
        received += 1;
    }
    assert_eq!(received, 20, "every datagram passed the XDP program and reached the socket");

    // 5 echo requests (56 data bytes: IPv4 length 84); the host answers, on egress.
    let replies = link.python(PING_SCRIPT, &[&link.v4_host.to_string(), "5"]);
    assert_eq!(replies.trim(), "5", "the host answered every echo request");

    // 12 DNS queries: 8 sampled as flow start, 4 more as DNS under the token bucket.
    link.python(UDP_SCRIPT, &[&link.v4_ns.to_string(), "40002", &link.v4_host.to_string(), "53", "12", "40"]);

    // One TCP connection to a listener on the host side.
    let listener = TcpListener::bind((link.v4_host, 0)).expect("bind the TCP listener on the veth address");
    let port = listener.local_addr().expect("listener address").port();
    let server = thread::spawn(move || serve_one_connection(&listener));
    link.python(TCP_SCRIPT, &[&link.v4_host.to_string(), &port.to_string()]);
    let server_read = server.join().expect("the TCP server thread");
    assert_eq!(server_read, b"hello over xdp".len());

    // Keys as userspace builds them: the host (.1) is the lower endpoint, so everything sent from
    // the namespace is direction 1 (from the higher endpoint).
    let udp_key = key_v4(link.v4_host, 9999, link.v4_ns, 40001, 17);
    let dns_key = key_v4(link.v4_host, 53, link.v4_ns, 40002, 17);
    let icmp_key = key_v4(link.v4_host, 0, link.v4_ns, 8, 1);
    let flows = settle(&mut capture, &[(udp_key, 20), (dns_key, 12), (icmp_key, 5)]);

    let udp = flow(&flows, &udp_key);
    assert_eq!((udp.packets, udp.bytes), ([0, 20], [0, 20 * 128]), "{udp:?}");
    assert_eq!(udp.first_ns[DIR_FROM_LO], 0, "nothing came from the host side");
    assert_wall_clock(udp.first_ns[DIR_FROM_HI]);
    assert!(udp.first_ns[DIR_FROM_HI] <= udp.last_ns[DIR_FROM_HI]);
    let icmp = flow(&flows, &icmp_key);
    assert_eq!((icmp.packets, icmp.bytes), ([0, 5], [0, 5 * 84]), "{icmp:?}");
    let tcp = flows
        .iter()
        .find(|f| f.key.proto == 6 && f.key.port_lo == port)
        .expect("the TCP connection is a flow keyed by the listener's port");
    assert_eq!(tcp.key, key_v4(link.v4_host, port, link.v4_ns, tcp.key.port_hi, 6));
    assert!(tcp.packets[DIR_FROM_HI] >= 4, "SYN, ACK, data, FIN at least: {tcp:?}");
    assert_eq!(tcp.tcp_flags[DIR_FROM_HI] & 0x13, 0x13, "SYN, ACK and FIN seen: {tcp:?}");

    // Samples: the UDP flow's first 8 datagrams (by their sequence numbers), every echo request,
    // and every DNS query.
    let mut udp_seqs = Vec::new();
    let (mut echoes, mut dns_start, mut dns_extra) = (0, 0, 0);
    capture.samples(|s| {
        assert_eq!(usize::try_from(s.header.cap_len).expect("u32 fits"), s.data.len());
        assert_eq!(s.header.wire_len as usize, s.data.len(), "short frames are captured whole");
        assert_wall_clock(s.ts_ns);
        if s.header.key == udp_key {
            udp_seqs.push(u32::from_be_bytes(s.data[42..46].try_into().expect("4 bytes")));
        } else if s.header.key == icmp_key {
            echoes += 1;
        } else if s.header.key == dns_key {
            match s.reason {
                Some(SampleReason::FlowStart) => dns_start += 1,
                Some(SampleReason::Dns) => dns_extra += 1,
                other => panic!("unexpected sample reason {other:?}"),
            }
        }
    });
    assert_eq!(udp_seqs, (0..8).collect::<Vec<u32>>(), "the first 8 UDP datagrams, in order");
    assert_eq!(echoes, 5, "every echo request is sampled");
    assert_eq!((dns_start, dns_extra), (8, 4), "8 flow-start samples, then DNS beyond them");

    let c = capture.counters().expect("read the counters");
    assert_counters_consistent(&c);
    assert!(c.get(XdpCounter::NotIp) >= 1, "the namespace's ARP request was seen: {c:?}");
    assert!(c.get(XdpCounter::Sampled) >= 8 + 5 + 12, "{c:?}");
    assert_eq!(c.get(XdpCounter::RingFull) + c.get(XdpCounter::FlowMapFull), 0, "{c:?}");

    // A second poll reports only what is new; a forgotten flow starts again from zero.
    let again = capture.poll_flows().expect("poll again");
    assert!(again.iter().all(|f| f.key != udp_key), "no new UDP packets, no UDP delta: {again:?}");
    assert_eq!(capture.forget(&udp_key).expect("forget the UDP flow"), None, "nothing new since the poll");
    link.python(
        UDP_SCRIPT,
        &[&link.v4_ns.to_string(), "40001", &link.v4_host.to_string(), "9999", "3", "100"],
    );
    let after = settle(&mut capture, &[(udp_key, 3)]);
    assert_eq!(flow(&after, &udp_key).packets, [0, 3]);

    let host = link.host.clone();
    drop(capture);
    assert!(!ip_link_details(&host).contains("xdp"), "detached on drop: {}", ip_link_details(&host));
}

#[test]
fn attach_failures_say_why_and_auto_falls_back_to_skb_mode() {
    let Some(_ran) = root() else { return };
    clean_leftovers();
    let missing = format!("{PREFIX}{}zz", std::process::id());
    let err =
        XdpCapture::attach(&missing, XdpMode::Auto, &XdpSettings::default()).expect_err("no such interface");
    assert!(matches!(err, XdpError::InterfaceNotFound { .. }), "{err}");
    assert!(err.to_string().contains(&missing), "{err}");

    let dummy = NoNativeXdpLink::create();
    let err = XdpCapture::attach(&dummy.0, XdpMode::Native, &XdpSettings::default())
        .expect_err("dummy has no native XDP");
    assert!(matches!(err, XdpError::NativeUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("does not support native"), "{err}");

    let auto = XdpCapture::attach(&dummy.0, XdpMode::Auto, &XdpSettings::default()).expect("auto falls back");
    let AttachedMode::SkbFallback { native_error } = auto.mode() else {
        panic!("expected the skb fallback, got {}", auto.mode());
    };
    assert!(native_error.contains("does not support native"), "{native_error}");
    assert!(ip_link_details(&dummy.0).contains("xdpgeneric"), "{}", ip_link_details(&dummy.0));

    let err =
        XdpCapture::attach(&dummy.0, XdpMode::Skb, &XdpSettings::default()).expect_err("already attached");
    assert!(matches!(err, XdpError::AlreadyAttached { .. }), "{err}");

    drop(auto);
    let skb =
        XdpCapture::attach(&dummy.0, XdpMode::Skb, &XdpSettings::default()).expect("free again after drop");
    assert_eq!(skb.mode(), &AttachedMode::Skb);
}

#[test]
fn attach_without_privileges_names_the_missing_capabilities() {
    const CHILD: &str = "NBX_XDP_TEST_WITHOUT_CAPABILITIES";
    let missing = format!("{PREFIX}{}zz", std::process::id());
    if std::env::var_os(CHILD).is_some() {
        // Re-run of this test with an empty capability set (see below). The interface does not
        // exist, so even a wrongly privileged run could not attach anywhere.
        let err = XdpCapture::attach(&missing, XdpMode::Auto, &XdpSettings::default())
            .expect_err("no capabilities, no XDP");
        assert!(matches!(err, XdpError::Permission { .. }), "{err}");
        println!("child error: {err}");
        return;
    }
    let Some(_ran) = root() else { return };
    let exe = std::env::current_exe().expect("the test binary's path");
    let exe = exe.to_str().expect("a UTF-8 path");
    let test = "attach_without_privileges_names_the_missing_capabilities";
    let out = run_env(
        &["setpriv", "--bounding-set=-all", "--inh-caps=-all", exe, "--exact", test, "--nocapture"],
        (CHILD, "1"),
    );
    assert!(out.contains("child error:") && out.contains("CAP_BPF and CAP_NET_ADMIN"), "{out}");
}

#[test]
fn kernel_flow_keys_match_the_userspace_decoder_for_crafted_frames() {
    let Some(link) = VethLink::create('b') else { return };
    let mut capture =
        XdpCapture::attach(&link.host, XdpMode::Native, &XdpSettings::default()).expect("attach");
    let frames = crafted_frames(&link);
    link.send_raw(frames.iter().map(|(_, f)| f.as_slice()));

    let mut decoder = Decoder::new(&DecodeSettings { gre: false, vxlan: false, vxlan_ports: Vec::new() });
    let mut expected = Vec::new();
    for (what, frame) in &frames {
        if let Ok(meta) = decoder.decode(LinkType::Ethernet, 0, frame) {
            expected.push((*what, meta));
        }
    }
    assert_eq!(expected.len(), frames.len() - 7, "all but 6 broken frames and the orphan fragment decode");
    let wanted: Vec<(FlowKey, u64)> = expected.iter().map(|(_, m)| (m.key, 1)).collect();
    let flows = settle(&mut capture, &wanted);
    for (what, meta) in &expected {
        let f = flows.iter().find(|f| f.key == meta.key).unwrap_or_else(|| {
            panic!(
                "{what}: the kernel has no flow with the decoder's key {:?}; kernel keys: {:#?}",
                meta.key, flows
            )
        });
        let dir = usize::from(!meta.from_lo);
        assert_eq!(f.packets[dir], 1, "{what}: direction");
        assert_eq!(f.bytes[dir], u64::from(meta.ip_len), "{what}: IP length");
        assert_eq!(f.tcp_flags[dir], meta.tcp_flags, "{what}: TCP flags");
    }

    // A later fragment: userspace takes the ports its first fragment had (or skips an orphan,
    // as here); the kernel keeps no fragment table and accounts it without ports (documented).
    let later = key_v4(link.v4_host, 0, link.v4_ns, 0, 17);
    assert!(flows.iter().any(|f| f.key == later), "later fragment accounted with ports 0");

    let mut sampled = 0;
    capture.samples(|s| {
        if let Some((what, frame)) = frames.iter().find(|(_, f)| f.as_slice() == s.data) {
            let meta = decoder.decode(LinkType::Ethernet, 0, frame);
            if let Ok(meta) = meta {
                assert_eq!(s.header.key, meta.key, "{what}: sample key");
                assert_eq!(usize::from(s.header.direction), usize::from(!meta.from_lo), "{what}");
            }
            sampled += 1;
        }
    });
    let c = capture.counters().expect("counters");
    assert_counters_consistent(&c);
    let accounted = usize::try_from(c.get(XdpCounter::Parsed)).expect("fits");
    assert_eq!(sampled, accounted, "every accounted frame is a flow's first packet, sampled whole");
    assert_eq!(c.get(XdpCounter::Seen), frames.len() as u64, "only the crafted frames arrived: {c:?}");
    assert_eq!(accounted, expected.len() + 1, "the decodable frames and the orphan fragment: {c:?}");
    assert_eq!(c.get(XdpCounter::NotIp), 2, "ARP and a 5-tag stack: {c:?}");
    assert_eq!(c.get(XdpCounter::Truncated), 2, "cut IPv4 header, cut TCP header: {c:?}");
    assert_eq!(c.get(XdpCounter::Malformed), 2, "IHL 4, TCP data offset 4: {c:?}");
}

/// The poller reads the flows the program marked active, not the whole map: once the flows
/// have been read, polls of an idle link read nothing, and a new packet gets its flow (and only
/// flows with news) read again, counted exactly.
#[test]
fn polls_read_only_the_flows_that_had_packets_since_they_were_last_read() {
    let Some(link) = VethLink::create('e') else { return };
    let mut capture =
        XdpCapture::attach(&link.host, XdpMode::Native, &XdpSettings::default()).expect("attach");
    let datagram = |sport: u16, seq: u8| {
        let packet = ipv4(link.v4_ns, link.v4_host, 17, &[], 0, &udp(sport, 9997, &[seq; 32]));
        eth(&link, &[], 0x0800, &packet)
    };
    let ports = [41001, 41002, 41003];
    let frames: Vec<Vec<u8>> = ports
        .iter()
        .flat_map(|&p| (0..4).map(move |seq| (p, seq)))
        .map(|(p, seq)| datagram(p, seq))
        .collect();
    link.send_raw(frames.iter().map(Vec::as_slice));
    let keys = ports.map(|p| key_v4(link.v4_host, 9997, link.v4_ns, p, 17));
    let flows = settle(&mut capture, &keys.map(|k| (k, 4)));
    for key in &keys {
        assert_eq!((flow(&flows, key).packets, flow(&flows, key).bytes), ([0, 4], [0, 4 * 60]));
    }

    // Any mark still due is read by the next poll; after that an idle link costs no reads.
    capture.poll_flows().expect("poll");
    let before = capture.poll_stats();
    for _ in 0..5 {
        assert_eq!(capture.poll_flows().expect("poll"), Vec::new(), "nothing new");
    }
    let idle = capture.poll_stats();
    assert_eq!(idle.flows_read, before.flows_read, "idle flows are not read: {idle:?}");
    assert_eq!(idle.full_walks, 0, "no walk of the whole map: {idle:?}");

    link.send_raw([datagram(41002, 9).as_slice()]);
    let after = settle(&mut capture, &[(keys[1], 1)]);
    assert_eq!((flow(&after, &keys[1]).packets, flow(&after, &keys[1]).bytes), ([0, 1], [0, 60]));
    assert!(after.iter().all(|f| f.key != keys[0] && f.key != keys[2]), "{after:?}");
    let stats = capture.poll_stats();
    assert!(stats.flows_read > idle.flows_read, "{stats:?}");
    assert!(stats.flows_read - idle.flows_read <= after.len() as u64, "only flows with news: {stats:?}");
    let c = capture.counters().expect("counters");
    assert!(c.get(XdpCounter::ActiveReported) >= 4, "one mark per flow and epoch: {c:?}");
    assert_eq!(c.get(XdpCounter::ActiveFull), 0, "{c:?}");
}

#[test]
fn token_bucket_bounds_dns_samples_beyond_the_flow_start() {
    let Some(link) = VethLink::create('c') else { return };
    let settings = XdpSettings {
        samples_per_direction: 2,
        sample_rate_per_sec: 1,
        sample_burst: 3,
        ..XdpSettings::default()
    };
    let mut capture = XdpCapture::attach(&link.host, XdpMode::Native, &settings).expect("attach");
    let query = |seq: u8| {
        let mut payload = vec![0u8; 20];
        payload[0] = seq;
        eth(&link, &[], 0x0800, &ipv4(link.v4_ns, link.v4_host, 17, &[], 0, &udp(40053, 53, &payload)))
    };
    let frames: Vec<Vec<u8>> = (0..20).map(query).collect();
    let started = Instant::now();
    link.send_raw(frames.iter().map(Vec::as_slice));
    let key = key_v4(link.v4_host, 53, link.v4_ns, 40053, 17);
    settle(&mut capture, &[(key, 20)]);
    let mut reasons = Vec::new();
    capture.samples(|s| reasons.push(s.reason));
    let c = capture.counters().expect("counters");
    // 2 flow-start samples, then a full bucket of 3; refills at 1/s add at most one per second
    // the sending took.
    let refill = usize::try_from(started.elapsed().as_secs()).expect("fits");
    let extra = reasons.iter().filter(|r| **r == Some(SampleReason::Dns)).count();
    assert_eq!(reasons.iter().filter(|r| **r == Some(SampleReason::FlowStart)).count(), 2);
    assert!((3..=3 + refill).contains(&extra), "{extra} DNS samples, {c:?}");
    assert_eq!(c.get(XdpCounter::RateLimited) as usize, 20 - 2 - extra, "{c:?}");
    assert_counters_consistent(&c);
}

#[test]
fn icmp_counterparts_agree_with_community_id() {
    for v6 in [false, true] {
        for t in 0..=u8::MAX {
            let expected = match icmp_port_equivalents(v6, t, 7) {
                (_, counterpart, false) => Some(u8::try_from(counterpart).expect("a type")),
                (_, _, true) => None,
            };
            assert_eq!(icmp_counterpart(v6, t), expected, "v6 {v6}, type {t}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic.

/// Sends `count` UDP datagrams of `size` bytes (a 4-byte sequence number first).
const UDP_SCRIPT: &str = r"
import socket, sys
src, sport, dst, dport, n, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))
for i in range(n):
    s.sendto(i.to_bytes(4, 'big') + bytes(size - 4), (dst, dport))
";

/// Sends `count` ICMP echo requests with 56 data bytes, one a time, and prints how many were
/// answered (each wait at most a second).
const PING_SCRIPT: &str = r"
import socket, struct, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1.0)
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
replies = 0
for seq in range(n):
    msg = struct.pack('!BBHHH', 8, 0, 0, 0x4e42, seq) + bytes(56)
    msg = msg[:2] + struct.pack('!H', csum(msg)) + msg[4:]
    s.sendto(msg, (dst, 0))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            data = s.recv(2048)
        except socket.timeout:
            break
        if data[20] == 0 and struct.unpack('!H', data[26:28])[0] == seq:
            replies += 1
            break
print(replies)
";

/// Connects, sends a greeting, half-closes, and reads until the server closes.
const TCP_SCRIPT: &str = r"
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b'hello over xdp')
c.shutdown(socket.SHUT_WR)
while c.recv(1024):
    pass
c.close()
";

/// Sends hex-encoded Ethernet frames as they are on the namespace's end of the veth.
const RAW_SCRIPT: &str = r"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('n0', 0))
for h in sys.argv[1:]:
    s.send(bytes.fromhex(h))
";

/// Accepts one connection within 10 s, reads it to the end and closes it; returns bytes read.
fn serve_one_connection(listener: &TcpListener) -> usize {
    listener.set_nonblocking(true).expect("non-blocking listener");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
                let mut data = Vec::new();
                let _ = stream.read_to_end(&mut data);
                return data.len();
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    0
}

/// Polls until every `(key, packets)` has at least that many packets in total, or the settle
/// limit passes; returns the deltas merged per flow.
fn settle(capture: &mut XdpCapture, wanted: &[(FlowKey, u64)]) -> Vec<FlowDelta> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut merged: Vec<FlowDelta> = Vec::new();
    loop {
        for d in capture.poll_flows().expect("poll the flows") {
            match merged.iter_mut().find(|m| m.key == d.key) {
                Some(m) => {
                    for i in 0..2 {
                        m.packets[i] += d.packets[i];
                        m.bytes[i] += d.bytes[i];
                    }
                    (m.tcp_flags, m.last_ns) = (d.tcp_flags, d.last_ns);
                }
                None => merged.push(d),
            }
        }
        let done = wanted.iter().all(|(key, n)| {
            merged.iter().find(|m| m.key == *key).is_some_and(|m| m.packets[0] + m.packets[1] >= *n)
        });
        if done || Instant::now() > deadline {
            return merged;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn flow<'a>(flows: &'a [FlowDelta], key: &FlowKey) -> &'a FlowDelta {
    flows.iter().find(|f| f.key == *key).unwrap_or_else(|| panic!("no flow {key:?} in {flows:#?}"))
}

fn assert_counters_consistent(c: &nbad_sensor::capture::xdp::XdpCounters) {
    let get = |x| c.get(x);
    let outcomes = get(XdpCounter::Parsed)
        + get(XdpCounter::NotIp)
        + get(XdpCounter::Truncated)
        + get(XdpCounter::Malformed);
    assert_eq!(get(XdpCounter::Seen), outcomes, "every frame has exactly one parse outcome: {c:?}");
    let sampling = get(XdpCounter::Sampled) + get(XdpCounter::RingFull) + get(XdpCounter::RateLimited);
    assert!(sampling <= get(XdpCounter::Parsed), "at most one sampling outcome per packet: {c:?}");
    assert!(get(XdpCounter::FlowMapFull) <= get(XdpCounter::Parsed), "{c:?}");
}

/// A plausible wall-clock time: after 2020 and within a minute of now.
fn assert_wall_clock(ns: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    let now = u64::try_from(now.as_nanos()).expect("fits");
    assert!(ns > 1_577_836_800_000_000_000 && ns.abs_diff(now) < 60_000_000_000, "{ns} vs now {now}");
}

// ---------------------------------------------------------------------------------------------
// Crafted frames.

/// Frames covering the parser's paths, named; all from the namespace's MAC to the host's.
fn crafted_frames(link: &VethLink) -> Vec<(&'static str, Vec<u8>)> {
    let (h4, n4) = (link.v4_host, link.v4_ns);
    let (h6, n6) = (link.v6_host(), link.v6_ns());
    let v4 = |proto, opts: &[u8], frag, l4: &[u8]| ipv4(n4, h4, proto, opts, frag, l4);
    let mut tcp_syn = tcp(5001, 80, 0x02);
    let mut bad_tcp = tcp(5002, 80, 0x02);
    bad_tcp[12] = 4 << 4;
    let icmp_v6 = |t, c| icmp(t, c, 8);
    // IPv6 with hop-by-hop then destination options, then UDP.
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    ext.extend(udp(6001, 6002, &[1, 2, 3]));
    // IPv6 first fragment (offset 0, more fragments) carrying UDP.
    let mut frag6 = vec![17, 0, 0, 1, 0, 0, 0, 42];
    frag6.extend(udp(6003, 6004, &[0; 8]));
    tcp_syn.extend([0u8; 4]);
    let five_tags = [(0x8100, 1), (0x8100, 2), (0x8100, 3), (0x8100, 4), (0x8100, 5)];
    let arp = {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend(link.ns_mac);
        a.extend(n4.octets());
        a.extend([0; 6]);
        a.extend(h4.octets());
        a
    };
    vec![
        ("UDP", eth(link, &[], 0x0800, &v4(17, &[], 0, &udp(5000, 6000, &[0; 10])))),
        ("UDP, VLAN 42", eth(link, &[(0x8100, 42)], 0x0800, &v4(17, &[], 0, &udp(5000, 6000, &[0; 10])))),
        (
            "UDP, QinQ 100/200",
            eth(link, &[(0x88a8, 100), (0x8100, 200)], 0x0800, &v4(17, &[], 0, &udp(5000, 6000, &[0; 10]))),
        ),
        ("TCP SYN, IPv4 options", eth(link, &[], 0x0800, &v4(6, &[1, 1, 1, 1], 0, &tcp_syn))),
        ("TCP, host to namespace", eth(link, &[], 0x0800, &ipv4(h4, n4, 6, &[], 0, &tcp(80, 5003, 0x12)))),
        ("ICMP echo request", eth(link, &[], 0x0800, &v4(1, &[], 0, &icmp(8, 0, 16)))),
        ("ICMP port unreachable", eth(link, &[], 0x0800, &v4(1, &[], 0, &icmp(3, 3, 16)))),
        ("ICMP timestamp", eth(link, &[], 0x0800, &v4(1, &[], 0, &icmp(13, 0, 20)))),
        ("SCTP", eth(link, &[], 0x0800, &v4(132, &[], 0, &udp(7000, 7001, &[0; 8])))),
        ("GRE", eth(link, &[], 0x0800, &v4(47, &[], 0, &[0, 0, 0x08, 0x00]))),
        ("IPv4 first fragment", eth(link, &[], 0x0800, &v4(17, &[], 0x2000, &udp(5004, 6000, &[0; 16])))),
        ("IPv4 later fragment", {
            // Another datagram's fragment (identification 0x4321): an orphan to userspace.
            let mut f = eth(link, &[], 0x0800, &v4(17, &[], 0x0003, &[0; 16]));
            f[18..20].copy_from_slice(&[0x43, 0x21]);
            f
        }),
        ("IPv6 UDP", eth(link, &[], 0x86dd, &ipv6(n6, h6, 17, &udp(6000, 6001, &[0; 10])))),
        ("IPv6 hop-by-hop + dest-opts", eth(link, &[], 0x86dd, &ipv6(n6, h6, 0, &ext))),
        ("IPv6 first fragment", eth(link, &[], 0x86dd, &ipv6(n6, h6, 44, &frag6))),
        ("ICMPv6 echo request", eth(link, &[], 0x86dd, &ipv6(n6, h6, 58, &icmp_v6(128, 0)))),
        (
            "ICMPv6 neighbour solicitation, VLAN 7",
            eth(link, &[(0x8100, 7)], 0x86dd, &ipv6(n6, h6, 58, &icmp_v6(135, 0))),
        ),
        ("ARP", eth(link, &[], 0x0806, &arp)),
        ("5 VLAN tags", eth(link, &five_tags, 0x0800, &v4(17, &[], 0, &udp(1, 2, &[])))),
        ("cut IPv4 header", eth(link, &[], 0x0800, &v4(17, &[], 0, &[])[..10])),
        ("cut TCP header", eth(link, &[], 0x0800, &v4(6, &[], 0, &tcp(5005, 80, 0x02)[..10]))),
        ("IHL 4", {
            let mut f = eth(link, &[], 0x0800, &v4(17, &[], 0, &udp(5006, 6000, &[])));
            f[14] = 0x44;
            f
        }),
        ("TCP data offset 4", eth(link, &[], 0x0800, &v4(6, &[], 0, &bad_tcp))),
    ]
}

fn eth(link: &VethLink, tags: &[(u16, u16)], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + payload.len());
    f.extend(link.host_mac);
    f.extend(link.ns_mac);
    for (tpid, vid) in tags {
        f.extend(tpid.to_be_bytes());
        f.extend(vid.to_be_bytes());
    }
    f.extend(ether_type.to_be_bytes());
    f.extend(payload);
    f
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, options: &[u8], frag: u16, payload: &[u8]) -> Vec<u8> {
    let header_len = 20 + options.len();
    let total = u16::try_from(header_len + payload.len()).expect("small packet");
    let mut h = vec![0x40 | u8::try_from(header_len / 4).expect("IHL"), 0];
    h.extend(total.to_be_bytes());
    h.extend([0x12, 0x34]);
    h.extend(frag.to_be_bytes());
    h.extend([64, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    h.extend(options);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend(payload);
    h
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend(u16::try_from(payload.len()).expect("small packet").to_be_bytes());
    h.extend([next, 64]);
    h.extend(src);
    h.extend(dst);
    h.extend(payload);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(u16::try_from(8 + payload.len()).expect("small datagram").to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend([0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn icmp(icmp_type: u8, code: u8, len: usize) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0, 0x4e, 0x42, 0, 1];
    m.resize(len.max(8), 0);
    m
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 =
        bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    !u16::try_from(sum).expect("folded")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_v4(lo: Ipv4Addr, port_lo: u16, hi: Ipv4Addr, port_hi: u16, proto: u8) -> FlowKey {
    FlowKey {
        addr_lo: lo.to_ipv6_mapped().octets(),
        addr_hi: hi.to_ipv6_mapped().octets(),
        port_lo,
        port_hi,
        proto,
        ip_version: IP_V4,
        ..FlowKey::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces and links.

/// A veth pair: `host` in the test's namespace (XDP attaches here), `n0` inside namespace `ns`.
/// Removed on drop.
struct VethLink {
    ns: String,
    host: String,
    subnet: u8,
    v4_host: Ipv4Addr,
    v4_ns: Ipv4Addr,
    host_mac: [u8; 6],
    ns_mac: [u8; 6],
    /// The test's gate: it passed (root), and the test's time is reported when the link goes.
    _ran: Ran,
}

impl VethLink {
    /// Creates the namespace and the pair (links up, no addresses yet); `None` when not root.
    fn create(tag: char) -> Option<Self> {
        let ran = root()?;
        clean_leftovers();
        let pid = std::process::id();
        let name = format!("{PREFIX}{pid}{tag}");
        let subnet = u8::try_from((pid * 7 + u32::from(tag)) % 250 + 1).expect("below 256");
        let link = Self {
            ns: name.clone(),
            host: format!("{name}h"),
            subnet,
            v4_host: Ipv4Addr::new(10, 198, subnet, 1),
            v4_ns: Ipv4Addr::new(10, 198, subnet, 2),
            host_mac: [0x02, 0x00, 0xc6, subnet, 0, 1],
            ns_mac: [0x02, 0x00, 0xc6, subnet, 0, 2],
            _ran: ran,
        };
        let mac = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        run(&["ip", "netns", "add", &link.ns]);
        let (host_mac, ns_mac) = (mac(link.host_mac), mac(link.ns_mac));
        run(&["ip", "link", "add", &link.host, "address", &host_mac, "type", "veth", "peer", "name", "n0"]
            .into_iter()
            .chain(["address", &ns_mac, "netns", &link.ns])
            .collect::<Vec<_>>());
        // No IPv6 autoconfiguration noise from the namespace: the tests count frames exactly.
        link.ns_run(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        link.ns_run(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        run(&["ip", "link", "set", &link.host, "up"]);
        run(&["ip", "-n", &link.ns, "link", "set", "n0", "up"]);
        run(&["ip", "-n", &link.ns, "link", "set", "lo", "up"]);
        // The host side gets its addresses now (the crafted frames are addressed to them); the
        // namespace side only when a test wants real sockets there.
        run(&["ip", "addr", "add", &format!("{}/30", link.v4_host), "dev", &link.host]);
        run(&["ip", "addr", "add", &format!("fd98:0:{:x}::1/64", link.subnet), "dev", &link.host, "nodad"]);
        Some(link)
    }

    /// Gives the namespace end its IPv4 address, for socket traffic.
    fn configure_addresses(&self) {
        self.ns_run(&["ip", "addr", "add", &format!("{}/30", self.v4_ns), "dev", "n0"]);
    }

    fn v6_host(&self) -> [u8; 16] {
        self.v6(1)
    }

    fn v6_ns(&self) -> [u8; 16] {
        self.v6(2)
    }

    fn v6(&self, host: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..2].copy_from_slice(&[0xfd, 0x98]);
        a[5] = self.subnet;
        a[15] = host;
        a
    }

    fn ns_run(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend(args);
        run(&all)
    }

    /// Sends Ethernet frames out of the namespace's end, as they are (AF_PACKET).
    fn send_raw<'a>(&self, frames: impl IntoIterator<Item = &'a [u8]>) {
        let hex: Vec<String> = frames.into_iter().map(hex).collect();
        self.python(RAW_SCRIPT, &hex.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Runs a Python script inside the namespace, pinned to CPU 0; returns its stdout.
    fn python(&self, script: &str, args: &[&str]) -> String {
        let mut all = vec!["taskset", "-c", "0", PYTHON, "-c", script];
        all.extend(args);
        self.ns_run(&all)
    }
}

impl Drop for VethLink {
    fn drop(&mut self) {
        // Deleting the host end removes the pair at once; the namespace goes after it.
        let _ = run_quiet(&["ip", "link", "del", &self.host]);
        let _ = run_quiet(&["ip", "netns", "del", &self.ns]);
    }
}

/// An interface whose driver has no native XDP (dummy, ifb or bridge, whichever this kernel
/// has), in the test's namespace but never up and without addresses: nothing is sent on it.
struct NoNativeXdpLink(String);

impl NoNativeXdpLink {
    fn create() -> Self {
        let name = format!("{PREFIX}{}d", std::process::id());
        for kind in ["dummy", "ifb", "bridge"] {
            if run_quiet(&["ip", "link", "add", &name, "type", kind]).is_ok() {
                return Self(name);
            }
        }
        panic!("this kernel has none of dummy, ifb, bridge: no interface without native XDP to test with");
    }
}

impl Drop for NoNativeXdpLink {
    fn drop(&mut self) {
        let _ = run_quiet(&["ip", "link", "del", &self.0]);
    }
}

fn ip_link_details(interface: &str) -> String {
    run(&["ip", "-d", "link", "show", "dev", interface])
}

/// Root is what creating namespaces and loading XDP programs take here; anyone else has the
/// test reported as skipped (`nbad_tests::gate`). The guard reports the test's time when dropped.
fn root() -> Option<Ran> {
    gate::require(&[Need::Root])
}

/// Removes interfaces and namespaces named `nbx<pid>...` whose process is gone.
fn clean_leftovers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let stale = |name: &str| {
            let digits: String =
                name.strip_prefix(PREFIX).unwrap_or("").chars().take_while(char::is_ascii_digit).collect();
            !digits.is_empty() && !Path::new(&format!("/proc/{digits}")).exists()
        };
        let links = run(&["ip", "-o", "link", "show"]);
        for name in
            links.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n))
        {
            if stale(name) {
                let _ = run_quiet(&["ip", "link", "del", name]);
            }
        }
        let namespaces = run(&["ip", "netns", "list"]);
        for name in namespaces.lines().filter_map(|l| l.split_whitespace().next()) {
            if stale(name) {
                let _ = run_quiet(&["ip", "netns", "del", name]);
            }
        }
    });
}

/// Runs a command with a deadline and panics, showing its output, unless it succeeds.
fn run(args: &[&str]) -> String {
    match run_quiet(args) {
        Ok(stdout) => stdout,
        Err(why) => panic!("{}: {why}", args.join(" ")),
    }
}

/// [`run`] with one more environment variable.
fn run_env(args: &[&str], env: (&str, &str)) -> String {
    match run_with(args, Some(env)) {
        Ok(stdout) => stdout,
        Err(why) => panic!("{}: {why}", args.join(" ")),
    }
}

fn run_quiet(args: &[&str]) -> Result<String, String> {
    run_with(args, None)
}

fn run_with(args: &[&str], env: Option<(&str, &str)>) -> Result<String, String> {
    let mut command = Command::new(args[0]);
    command.args(&args[1..]);
    if let Some((key, value)) = env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + COMMAND_LIMIT;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {COMMAND_LIMIT:?}; killed"));
            }
            None => thread::sleep(Duration::from_millis(5)),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{}; stderr: {}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}
