//! `protocol::identify` per call on a mix of first payloads: a TLS
//! ClientHello, an HTTP GET, a random 512-byte payload (what an encrypted or
//! mid-stream segment looks like: it matches nothing), an SMB2 NEGOTIATE
//! and a DNS query; plus the random payload alone over UDP, and the
//! ClientHello's JA4 and server-flight parsing for scale.
//!
//! The payloads are built in memory; the ClientHello is the one in
//! benign_mixed/ndpi__teams.pcap, frame 37 (the unit tests use it too).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nbad_sensor::protocol::{Transport, identify};

const TEAMS_CLIENT_HELLO: &str = "16030100a9010000a5030360b1cff355f9377c96a878656306f72f5c72727716b59b00c45c52265db40aff00001ec02fc02bc030c02ccca9cca8c009c013c00ac014009c009d002f0035000a0100005eff0100010000000023002100001e6d6f62696c652e706970652e617269612e6d6963726f736f66742e636f6d0017000000230000000d00140012040308040401050308050501080606010201000b00020100000a00080006001d00170018";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits"))
        .collect()
}

/// An SMB2 NEGOTIATE request in its NetBIOS session header (dialects 2.02 to 3.1.1).
fn smb_negotiate() -> Vec<u8> {
    let mut smb = b"\xfeSMB".to_vec();
    smb.extend_from_slice(&64u16.to_le_bytes());
    smb.resize(64, 0);
    smb.extend_from_slice(&[0x24, 0, 5, 0, 1, 0, 0, 0, 0x7f, 0, 0, 0]);
    smb.resize(64 + 36, 0);
    for dialect in [0x0202u16, 0x0210, 0x0300, 0x0302, 0x0311] {
        smb.extend_from_slice(&dialect.to_le_bytes());
    }
    let mut p = vec![0];
    p.extend_from_slice(&u32::try_from(smb.len()).expect("short").to_be_bytes()[1..]);
    p.extend_from_slice(&smb);
    p
}

fn payloads() -> Vec<(&'static str, Transport, Vec<u8>)> {
    let mut rng = fastrand::Rng::with_seed(7);
    let random: Vec<u8> = (0..512).map(|_| rng.u8(..)).collect();
    let dns =
        b"\xbc\x1f\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x1c\x00\x01"
            .to_vec();
    let get = b"GET /index.html HTTP/1.1\r\nHost: www.example.org\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: */*\r\n\r\n".to_vec();
    vec![
        ("tls_client_hello", Transport::Tcp, hex(TEAMS_CLIENT_HELLO)),
        ("http_get", Transport::Tcp, get),
        ("random_512", Transport::Tcp, random),
        ("smb_negotiate", Transport::Tcp, smb_negotiate()),
        ("dns_query", Transport::Udp, dns),
    ]
}

fn identify_bench(c: &mut Criterion) {
    let payloads = payloads();
    let mut group = c.benchmark_group("identify");
    for (name, transport, payload) in &payloads {
        group.throughput(Throughput::Elements(1));
        group.bench_function(*name, |b| b.iter(|| identify(black_box(*transport), black_box(payload))));
    }
    let random = &payloads[2].2;
    group.bench_function("random_512_udp", |b| {
        b.iter(|| identify(black_box(Transport::Udp), black_box(random)))
    });
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function("mix", |b| {
        b.iter(|| {
            for (_, transport, payload) in &payloads {
                black_box(identify(*transport, black_box(payload)));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, identify_bench);
criterion_main!(benches);
