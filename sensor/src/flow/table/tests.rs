use super::*;
use crate::flow::FlowRecord;
use crate::flow::entry::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::flow::record::tcp_state;
use nbad_common::FlowKey;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * S;

fn timeouts() -> Timeouts {
    Timeouts {
        tcp_idle: 300 * S,
        udp_idle: 60 * S,
        icmp_idle: 60 * S,
        other_idle: 60 * S,
        tcp_linger: 5 * S,
        active: 60 * S,
        emergency_idle: 10 * S,
    }
}

fn table(max_flows: usize) -> FlowTable {
    FlowTable::new(timeouts(), max_flows, FlowHasher::with_seed(7))
}

/// A packet of flow `n` (distinct ports per n) at `t` ns.
fn pkt(n: u16, proto: u8, t: u64, from_lo: bool, flags: u8, len: u32) -> PacketMeta {
    let mut key = FlowKey { proto, ip_version: 4, ..FlowKey::default() };
    key.addr_lo[15] = 1;
    key.addr_hi[15] = 2;
    key.port_lo = 1000 + n;
    key.port_hi = 80;
    let hash = FlowHasher::with_seed(7).hash(&key);
    PacketMeta { key, hash, ts_ns: t, ip_len: len, packets: 1, span_us: 0, from_lo, tcp_flags: flags }
}

fn reasons(out: &[FlowRecord]) -> Vec<EndReason> {
    out.iter().map(|r| r.reason).collect()
}

#[test]
fn counts_packets_and_bytes_per_direction_and_orients_by_syn() {
    let mut t = table(100);
    let mut out = Vec::new();
    // The higher endpoint sends the SYN: it is the client.
    t.observe(&pkt(1, TCP, T0, false, TCP_SYN, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + 1_000, true, TCP_SYN | TCP_ACK, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + 2_000, false, TCP_ACK, 52), &mut out);
    t.observe(&pkt(1, TCP, T0 + 3_000, false, TCP_ACK, 1052), &mut out);
    t.drain(EndReason::EndOfCapture, &mut out);
    assert_eq!(out.len(), 1);
    let r = out[0];
    assert!(!r.client_is_lo);
    assert_eq!((r.client.packets, r.client.bytes), (3, 1164));
    assert_eq!((r.server.packets, r.server.bytes), (1, 60));
    assert_eq!(r.start_ns, T0);
    assert_eq!(r.end_ns, T0 + 3_000);
    assert_ne!(r.tcp_state & tcp_state::ESTABLISHED, 0);
}

#[test]
fn expires_idle_udp_flow_after_its_timeout() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, UDP, T0, true, 0, 100), &mut out);
    t.observe(&pkt(1, UDP, T0 + S / 10, false, 0, 100), &mut out);
    t.advance(T0 + 59 * S, &mut out);
    assert!(out.is_empty(), "{out:?}");
    t.advance(T0 + 62 * S, &mut out);
    assert_eq!(reasons(&out), [EndReason::IdleTimeout]);
    assert_eq!(out[0].packets(), 2);
    assert!(t.is_empty());
}

#[test]
fn long_flow_emits_interim_records_whose_deltas_sum_to_the_totals() {
    let mut t = table(100);
    let mut out = Vec::new();
    for i in 0..200 {
        t.observe(&pkt(1, UDP, T0 + i * S, true, 0, 1000), &mut out);
    }
    t.advance(T0 + 400 * S, &mut out);
    let interim = out.iter().filter(|r| r.reason == EndReason::ActiveTimeout).count();
    // One interim record per active timeout (60 s) of a 200 s flow.
    assert!((3..=4).contains(&interim), "{:?}", reasons(&out));
    assert!(out.iter().all(|r| r.end_ns - r.start_ns <= 61 * S));
    assert_eq!(out.last().map(|r| r.reason), Some(EndReason::IdleTimeout));
    assert_eq!(out.iter().map(FlowRecord::packets).sum::<u64>(), 200);
    assert_eq!(out.iter().map(FlowRecord::bytes).sum::<u64>(), 200_000);
}

#[test]
fn closes_tcp_flow_after_fin_from_both_sides_and_linger() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, TCP, T0, true, TCP_SYN, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + S, true, TCP_FIN | TCP_ACK, 52), &mut out);
    t.observe(&pkt(1, TCP, T0 + S, false, TCP_FIN | TCP_ACK, 52), &mut out);
    t.advance(T0 + 5 * S, &mut out);
    assert!(out.is_empty());
    t.advance(T0 + 8 * S, &mut out);
    assert_eq!(reasons(&out), [EndReason::TcpClose]);
}

#[test]
fn rst_ends_tcp_flow_with_reset_reason() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, TCP, T0, true, TCP_SYN, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + S, false, TCP_RST | TCP_ACK, 40), &mut out);
    t.advance(T0 + 10 * S, &mut out);
    assert_eq!(reasons(&out), [EndReason::TcpReset]);
}

#[test]
fn new_syn_on_a_closed_five_tuple_starts_a_new_flow() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, TCP, T0, true, TCP_SYN, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + S, true, TCP_RST, 40), &mut out);
    t.observe(&pkt(1, TCP, T0 + 2 * S, true, TCP_SYN, 60), &mut out);
    assert_eq!(reasons(&out), [EndReason::TcpReset]);
    assert_eq!(t.len(), 1);
    assert_eq!(t.counters.created, 2);
}

#[test]
fn full_table_enters_emergency_mode_and_evicts_counting_each_eviction() {
    let mut t = table(100);
    let mut out = Vec::new();
    for n in 0..150u16 {
        t.observe(&pkt(n, UDP, T0 + u64::from(n) * 1_000_000, true, 0, 100), &mut out);
    }
    assert!(t.len() <= 100);
    assert_eq!(t.counters.emergency_entered, 1);
    let evicted = out.iter().filter(|r| r.reason == EndReason::Evicted).count() as u64;
    assert_eq!(evicted, 50);
    assert_eq!(t.counters.ended[EndReason::Evicted as usize], evicted);
    assert!(t.in_emergency());
    // Evicted flows are the oldest ones.
    assert!(out.iter().all(|r| r.key.port_lo < 1000 + 50));
    // The emergency idle timeout (10 s) expires flows until the table is
    // back under 90 %; then the normal timeouts apply again.
    t.advance(T0 + 12 * S, &mut out);
    assert!(t.len() < 90 && !t.in_emergency(), "{} flows", t.len());
    t.advance(T0 + 62 * S, &mut out);
    assert!(t.is_empty());
}

#[test]
fn a_gap_longer_than_the_wheel_expires_everything_once() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, UDP, T0, true, 0, 100), &mut out);
    t.observe(&pkt(2, TCP, T0, true, TCP_SYN, 60), &mut out);
    // Months later.
    t.observe(&pkt(3, UDP, T0 + 90 * 86_400 * S, true, 0, 100), &mut out);
    assert_eq!(reasons(&out), [EndReason::IdleTimeout, EndReason::IdleTimeout]);
    assert_eq!(t.len(), 1);
}

#[test]
fn out_of_order_timestamps_do_not_move_the_clock_back() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, UDP, T0 + 10 * S, true, 0, 100), &mut out);
    t.observe(&pkt(1, UDP, T0 + 5 * S, false, 0, 100), &mut out);
    t.drain(EndReason::EndOfCapture, &mut out);
    assert_eq!(out[0].packets(), 2);
    assert!(out[0].start_ns <= out[0].end_ns);
}

#[test]
fn a_flow_silent_before_its_active_timeout_ends_with_one_record_checked_once() {
    let mut t = table(100);
    let mut out = Vec::new();
    // A TCP flow active for 10 s, then silent until its idle timeout (300 s).
    for i in 0..10 {
        t.observe(&pkt(1, TCP, T0 + i * S, true, TCP_ACK, 100), &mut out);
    }
    for sec in 11..400 {
        t.advance(T0 + sec * S, &mut out);
    }
    assert_eq!(reasons(&out), [EndReason::IdleTimeout]);
    assert_eq!(out[0].packets(), 10);
    assert!(t.counters.timer_checks <= 2, "{} checks", t.counters.timer_checks);
}

#[test]
fn interim_records_appear_while_the_flow_is_still_running() {
    let mut t = table(100);
    let mut out = Vec::new();
    for i in 0..=130 {
        t.observe(&pkt(1, TCP, T0 + i * S, true, TCP_ACK, 100), &mut out);
    }
    // Still running at 130 s: two interim records already, covering 0–59 s and 60–119 s.
    assert_eq!(reasons(&out), [EndReason::ActiveTimeout, EndReason::ActiveTimeout]);
    assert_eq!(out[0].packets(), 60);
    assert_eq!((out[1].start_ns, out[1].end_ns), (T0 + 60 * S, T0 + 119 * S));
}

#[test]
fn eviction_spares_a_busy_flow_and_takes_the_idle_ones() {
    // An emergency timeout as long as the idle timeout, so that room can
    // only be made by eviction.
    let mut t =
        FlowTable::new(Timeouts { emergency_idle: 60 * S, ..timeouts() }, 10, FlowHasher::with_seed(7));
    let mut out = Vec::new();
    // Flow 0 starts first and stays busy; flows 1..=9 speak once.
    t.observe(&pkt(0, UDP, T0, true, 0, 100), &mut out);
    for n in 1..10u16 {
        t.observe(&pkt(n, UDP, T0 + u64::from(n) * S, true, 0, 100), &mut out);
    }
    for i in 10..30 {
        t.observe(&pkt(0, UDP, T0 + i * S, true, 0, 100), &mut out);
    }
    // A new flow finds the table full.
    t.observe(&pkt(99, UDP, T0 + 30 * S, true, 0, 100), &mut out);
    let evicted: Vec<u16> =
        out.iter().filter(|r| r.reason == EndReason::Evicted).map(|r| r.key.port_lo - 1000).collect();
    assert!(!evicted.is_empty());
    assert!(!evicted.contains(&0), "evicted {evicted:?}");
}

#[test]
fn a_segment_about_to_overflow_its_byte_counter_is_closed_with_an_interim_record() {
    let mut t = table(100);
    let mut out = Vec::new();
    let big = 1_500_000_000;
    for i in 0..3 {
        t.observe(&pkt(1, UDP, T0 + i * S, true, 0, big), &mut out);
    }
    t.drain(EndReason::EndOfCapture, &mut out);
    assert_eq!(reasons(&out), [EndReason::ActiveTimeout, EndReason::EndOfCapture]);
    assert_eq!(out.iter().map(FlowRecord::bytes).sum::<u64>(), 3 * u64::from(big));
}

#[test]
fn aggregates_from_the_xdp_path_still_show_the_handshake_and_the_client() {
    let mut t = table(100);
    let mut out = Vec::new();
    // One poll's worth: the client sent SYN, ACK and data (flags unioned), the server SYN-ACK and data.
    let client = PacketMeta {
        packets: 4,
        span_us: 3_000,
        ..pkt(1, TCP, T0 + 3_000_000, true, TCP_SYN | TCP_ACK, 400)
    };
    let server = PacketMeta {
        packets: 2,
        span_us: 1_000,
        ..pkt(1, TCP, T0 + 2_000_000, false, TCP_SYN | TCP_ACK, 1500)
    };
    t.observe(&client, &mut out);
    t.observe(&server, &mut out);
    t.drain(EndReason::EndOfCapture, &mut out);
    let r = out[0];
    assert!(r.client_is_lo, "the earlier aggregate's sender is the client");
    assert_ne!(r.tcp_state & tcp_state::ESTABLISHED, 0);
    assert_eq!((r.client.packets, r.server.packets, r.bytes()), (4, 2, 1900));
    assert_eq!(r.start_ns, T0);
}

/// Regression: an upload that sent its bytes and then sat idle on its open connection (SMB, a
/// kept-alive session) was reported only at the idle timeout, 5 minutes later, so exfiltration
/// saw it after it had ended. A big segment is reported by the timer at its active timeout.
#[test]
fn a_big_segment_that_falls_silent_is_reported_at_its_active_timeout_and_ends_with_an_empty_record() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, TCP, T0, true, TCP_SYN, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + 1_000, false, TCP_SYN | TCP_ACK, 60), &mut out);
    for i in 0..100 {
        t.observe(&pkt(1, TCP, T0 + 2_000 + i * 1_000, true, TCP_ACK, 1_500), &mut out);
    }
    let last = T0 + 2_000 + 99 * 1_000;
    t.advance(T0 + 59 * S, &mut out);
    assert!(out.is_empty(), "{out:?}");
    t.advance(T0 + 61 * S, &mut out);
    assert_eq!(reasons(&out), [EndReason::ActiveTimeout], "reported at the active timeout");
    assert_eq!(out[0].client.bytes, 60 + 100 * 1_500);
    t.advance(last + 299 * S, &mut out);
    assert_eq!(out.len(), 1, "the idle timeout still counts from the last packet");
    t.advance(last + 301 * S, &mut out);
    assert_eq!(reasons(&out), [EndReason::ActiveTimeout, EndReason::IdleTimeout]);
    assert_eq!(out[1].packets(), 0, "the end carries no packets: they were all reported");
    assert!(t.is_empty());
}

#[test]
fn a_small_flow_that_falls_silent_still_ends_with_one_record() {
    let mut t = table(100);
    let mut out = Vec::new();
    t.observe(&pkt(1, TCP, T0, true, TCP_SYN, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + 1_000, false, TCP_SYN | TCP_ACK, 60), &mut out);
    t.observe(&pkt(1, TCP, T0 + 2_000, true, TCP_ACK, 2_000), &mut out);
    t.advance(T0 + 400 * S, &mut out);
    assert_eq!(reasons(&out), [EndReason::IdleTimeout]);
    assert_eq!(out[0].packets(), 3);
}

#[test]
fn eviction_takes_half_open_flows_before_an_established_one_idle_as_long() {
    // One established connection, then a SYN flood in the same second fills the table: the
    // connection's deadline falls in the same wheel second as the flood's, and the flood's
    // unanswered flows go first (found by tests/tests/flood.rs at 500 000 SYNs a second).
    let mut t = table(200);
    let mut out = Vec::new();
    t.observe(&pkt(0, TCP, T0, false, TCP_SYN, 60), &mut out);
    t.observe(&pkt(0, TCP, T0 + 1_000, true, TCP_SYN | TCP_ACK, 60), &mut out);
    t.observe(&pkt(0, TCP, T0 + 2_000, false, TCP_ACK, 52), &mut out);
    for n in 1..=400 {
        t.observe(&pkt(n, TCP, T0 + 10_000 + u64::from(n) * 1_000, false, TCP_SYN, 60), &mut out);
    }
    assert!(t.counters.emergency_entered >= 1);
    let evicted: Vec<&FlowRecord> = out.iter().filter(|r| r.reason == EndReason::Evicted).collect();
    assert!(!evicted.is_empty());
    assert!(
        evicted.iter().all(|r| r.tcp_state & tcp_state::ESTABLISHED == 0),
        "an established connection was evicted before half-open flows"
    );
}
