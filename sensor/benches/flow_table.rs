//! Flow-table throughput: packets of a few flows whose entries stay in the
//! CPU caches, against packets spread over 300 000 flows, where nearly every
//! lookup misses the caches (index, slab entry and key compare); plus the
//! flow-key hash on its own.
//!
//! All packets share one timestamp, so no timer-wheel second passes and
//! nothing expires however many iterations criterion runs: what is measured
//! is lookup and per-packet accounting.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nbad_common::FlowKey;
use nbad_sensor::decode::PacketMeta;
use nbad_sensor::flow::{FlowHasher, FlowRecord, FlowTable, Timeouts};
use nbad_sensor::synth::Rng;

/// 2026-01-01T00:00:00Z, ns since the epoch.
const T0: u64 = 1_767_225_600_000_000_000;
/// Flows in the hot case: a few, all in L1.
const HOT_FLOWS: u32 = 16;
/// Packets per iteration in the hot case.
const HOT_PACKETS: usize = 1 << 16;
/// Flows in the cold case: index and slab (~35 MB) far exceed the caches.
const COLD_FLOWS: u32 = 300_000;

/// Flow `n` as a canonical IPv4 TCP key: 10.x.y.z:port → 198.51.100.k:443.
fn key(n: u32) -> FlowKey {
    let mut key = FlowKey { proto: 6, ip_version: 4, ..FlowKey::default() };
    key.addr_lo[10..12].copy_from_slice(&[0xff, 0xff]);
    key.addr_hi[10..12].copy_from_slice(&[0xff, 0xff]);
    let [_, b, c, d] = n.to_be_bytes();
    key.addr_lo[12..].copy_from_slice(&[10, b, c, d]);
    key.addr_hi[12..].copy_from_slice(&[198, 51, 100, (n % 251) as u8]);
    key.port_lo = 30_000 + (n % 30_000) as u16;
    key.port_hi = 443;
    key
}

/// An ACK of flow `n`, alternating direction with `n`.
fn packet(hasher: &FlowHasher, n: u32, ts_ns: u64) -> PacketMeta {
    let key = key(n);
    PacketMeta {
        key,
        hash: hasher.hash(&key),
        ts_ns,
        ip_len: 576,
        packets: 1,
        span_us: 0,
        from_lo: n.is_multiple_of(2),
        tcp_flags: 0x10,
    }
}

/// The default timeouts (TCP idle 300 s, active 60 s).
fn timeouts() -> Timeouts {
    Timeouts::from_settings(&nbad_sensor::config::default().flows)
}

/// A table holding flows `0..flows`, each with one packet seen at `T0`.
fn filled_table(hasher: &FlowHasher, flows: u32) -> FlowTable {
    let mut table = FlowTable::new(timeouts(), 1_000_000, hasher.clone());
    let mut out: Vec<FlowRecord> = Vec::new();
    for n in 0..flows {
        table.observe(&packet(hasher, n, T0), &mut out);
    }
    assert!(out.is_empty(), "filling the table expires nothing");
    table
}

fn observe(c: &mut Criterion) {
    let hasher = FlowHasher::with_seed(0x5eed);
    let mut group = c.benchmark_group("flow_observe");
    group.sample_size(20).measurement_time(Duration::from_secs(4));

    // Hot: round-robin over a few flows that are already in the table.
    let hot: Vec<PacketMeta> = (0..HOT_PACKETS).map(|i| packet(&hasher, i as u32 % HOT_FLOWS, T0)).collect();
    let mut table = filled_table(&hasher, HOT_FLOWS);
    let mut out: Vec<FlowRecord> = Vec::new();
    group.throughput(Throughput::Elements(hot.len() as u64));
    group.bench_function("hot_16_flows", |b| {
        b.iter(|| {
            for m in &hot {
                table.observe(black_box(m), &mut out);
            }
            // A flow's byte counter fills every ~7 M of these packets and rolls
            // the segment with an interim record: rare, and real work.
            out.clear();
        });
    });

    // Cold: one packet for each of 300 000 existing flows, in a shuffled
    // (deterministic) order so the hardware prefetcher cannot follow the slab.
    let mut order: Vec<u32> = (0..COLD_FLOWS).collect();
    let mut rng = Rng::new(7);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let cold: Vec<PacketMeta> = order.iter().map(|&n| packet(&hasher, n, T0)).collect();
    let mut table = filled_table(&hasher, COLD_FLOWS);
    group.throughput(Throughput::Elements(cold.len() as u64));
    group.bench_function("cold_300k_flows", |b| {
        b.iter(|| {
            for m in &cold {
                table.observe(black_box(m), &mut out);
            }
            out.clear();
        });
    });

    // New flows: 300 000 first packets into an empty table (slab and index
    // growth included, as at the start of a capture).
    group.bench_function("new_300k_flows", |b| {
        b.iter_batched(
            || (FlowTable::new(timeouts(), 1_000_000, hasher.clone()), Vec::<FlowRecord>::new()),
            |(mut table, mut out)| {
                for m in &cold {
                    table.observe(black_box(m), &mut out);
                }
                (table, out)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn hash(c: &mut Criterion) {
    let hasher = FlowHasher::with_seed(0x5eed);
    let key = key(12_345);
    c.bench_function("flow_hasher_hash", |b| b.iter(|| hasher.hash(black_box(&key))));
}

criterion_group!(benches, observe, hash);
criterion_main!(benches);
