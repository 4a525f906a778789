//! Drives a small flow table with a stream of packet descriptions and checks
//! that no packet is lost or counted twice, whatever the order, timing, TCP
//! flags or table pressure.
//!
//! Each 4-byte chunk of the input is one packet:
//!
//! | byte | bits | meaning |
//! |---|---|---|
//! | 0 | 0–3 | flow id (16 flows, twice the table's cap, so eviction and emergency mode run) |
//! | 0 | 4 | direction: sent by the key's lower endpoint |
//! | 0 | 5–6 | protocol: TCP, UDP, ICMP, GRE |
//! | 0 | 7 | IPv6 instead of IPv4 |
//! | 1 | all | TCP flags |
//! | 2 | all | IP length / 8 |
//! | 3 | all | time step (see [`step_ns`]) |

use crate::decode::PacketMeta;
use crate::flow::{EndReason, FlowHasher, FlowRecord, FlowTable, Timeouts};
use nbad_common::FlowKey;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const T0: u64 = 1_767_225_600 * S;
const MAX_FLOWS: usize = 8;
const PROTOS: [u8; 4] = [6, 17, 1, 47];

/// Short timeouts, so a few hundred packets cover idle, linger, active and
/// emergency expiry.
const TIMEOUTS: Timeouts = Timeouts {
    tcp_idle: 30 * S,
    udp_idle: 10 * S,
    icmp_idle: 5 * S,
    other_idle: 5 * S,
    tcp_linger: 2 * S,
    active: 20 * S,
    emergency_idle: S,
};

/// The time from one packet to the next: mostly steps of 50 ms (up to ~12 s),
/// some steps of half a minute, a jump past the wheel's 512 s span, and a
/// step back (captures are not always in time order).
fn step_ns(byte: u8) -> i64 {
    match byte {
        0..=0xef => i64::from(byte) * 50 * MS as i64,
        0xf0..=0xfd => i64::from(byte - 0xef) * 30 * S as i64,
        0xfe => 3_600 * S as i64,
        0xff => -(3 * S as i64),
    }
}

fn key(flow: u8, proto: u8, v6: bool) -> FlowKey {
    let mut key = FlowKey { proto, ip_version: if v6 { 6 } else { 4 }, ..FlowKey::default() };
    if v6 {
        key.addr_lo[0] = 0xfd;
        key.addr_hi[0] = 0xfd;
    } else {
        key.addr_lo[10..12].copy_from_slice(&[0xff, 0xff]);
        key.addr_hi[10..12].copy_from_slice(&[0xff, 0xff]);
    }
    key.addr_lo[15] = 1;
    key.addr_hi[15] = 2 + flow;
    key.port_lo = 40_000 + u16::from(flow);
    key.port_hi = 443;
    key
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let hasher = FlowHasher::with_seed(0x5eed);
    let mut table = FlowTable::new(TIMEOUTS, MAX_FLOWS, hasher.clone());
    let mut out: Vec<FlowRecord> = Vec::new();
    let (mut packets, mut bytes) = (0u64, 0u64);
    let mut now = T0;
    for chunk in data.chunks_exact(4) {
        let [a, flags, len, dt] = [chunk[0], chunk[1], chunk[2], chunk[3]];
        now = now.saturating_add_signed(step_ns(dt)).max(T0);
        let key = key(a & 0x0f, PROTOS[usize::from(a >> 5 & 3)], a & 0x80 != 0);
        let tcp_flags = if key.proto == 6 { flags } else { 0 };
        let meta = PacketMeta {
            key,
            hash: hasher.hash(&key),
            ts_ns: now,
            ip_len: 20 + u32::from(len) * 8,
            packets: 1,
            span_us: 0,
            from_lo: a & 0x10 != 0,
            tcp_flags,
        };
        table.observe(&meta, &mut out);
        packets += 1;
        bytes += u64::from(meta.ip_len);
        assert!(table.len() <= MAX_FLOWS, "{} flows in a table capped at {MAX_FLOWS}", table.len());
    }
    table.drain(EndReason::EndOfCapture, &mut out);
    assert!(table.is_empty(), "a drained table holds {} flows", table.len());

    for r in &out {
        assert!(r.start_ns <= r.end_ns, "record starts after it ends: {r:?}");
        for d in [r.client, r.server] {
            assert!(d.packets == 0 || d.first_ns <= d.last_ns, "direction first > last: {r:?}");
        }
    }
    let emitted: u64 = out.iter().map(FlowRecord::packets).sum();
    assert_eq!(emitted, packets, "packets in records vs packets observed");
    let emitted_bytes: u64 = out.iter().map(FlowRecord::bytes).sum();
    assert_eq!(emitted_bytes, bytes, "bytes in records vs bytes observed");
    let counted: u64 = table.counters.ended.iter().sum();
    assert_eq!(counted, out.len() as u64, "records counted by reason vs records emitted");
}
