//! Decode throughput over the frames of the synthetic demo capture: the
//! traffic mix the demo shows (TLS sessions, DNS, NTP, pings, a long upload,
//! VLAN, QinQ, IPv6, GRE, VXLAN, fragments, ARP and two malformed frames).
//!
//! The frames are built in memory once: the demo timeline is written as a
//! pcap into a `Vec` and read back with `pcap-parser`, so the bench measures
//! decoding alone, not file I/O.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nbad_sensor::capture::LinkType;
use nbad_sensor::decode::Decoder;
use pcap_parser::{parse_pcap_frame, parse_pcap_header};

/// The demo's frames with their timestamps, in capture order.
fn demo_frames() -> Vec<(u64, Vec<u8>)> {
    let pcap = nbad_sensor::synth::demo::timeline(1)
        .write_pcap(Vec::new())
        .expect("writing a pcap into a Vec cannot fail");
    let (mut rest, header) = parse_pcap_header(&pcap).expect("the demo pcap has a valid file header");
    assert_eq!(header.network.0, 1, "the demo capture is Ethernet");
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (next, frame) = parse_pcap_frame(rest).expect("the demo pcap has valid records");
        let ts_ns = u64::from(frame.ts_sec) * 1_000_000_000 + u64::from(frame.ts_usec) * 1_000;
        frames.push((ts_ns, frame.data.to_vec()));
        rest = next;
    }
    frames
}

fn decode(c: &mut Criterion) {
    let frames = demo_frames();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("demo_capture", |b| {
        let mut decoder = Decoder::new(&nbad_sensor::config::default().decode);
        b.iter(|| {
            for (ts_ns, frame) in &frames {
                // Results are consumed (not just counted) so that nothing is optimised away.
                let _ = black_box(decoder.decode(LinkType::Ethernet, *ts_ns, black_box(frame)));
            }
        });
        assert!(decoder.counters.parsed > 0, "the demo frames decode");
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
