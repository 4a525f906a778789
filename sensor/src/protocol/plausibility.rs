//! Plausibility over recall: bytes that open no protocol (random, encrypted
//! or compressed data, the middle of a TCP stream, ordinary text) must not
//! be identified as anything.

use std::collections::BTreeMap;

use super::{Transport, identify};

/// Payloads per transport in the random test.
const ROUNDS: usize = 200_000;
/// Highest share of random payloads that may be identified, overall.
const MAX_RATE: f64 = 0.001;

/// A payload length as first payloads come: many short ones, some full segments.
fn length(rng: &mut fastrand::Rng) -> usize {
    match rng.u8(..4) {
        0 => rng.usize(1..16),
        1 => rng.usize(16..128),
        2 => rng.usize(128..600),
        _ => rng.usize(600..1500),
    }
}

#[test]
fn random_payloads_are_almost_never_identified() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0fd1_7a11);
    let mut fired: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut payload = Vec::with_capacity(1500);
    for _ in 0..ROUNDS {
        payload.clear();
        let len = length(&mut rng);
        payload.extend((0..len).map(|_| rng.u8(..)));
        for (transport, label) in [(Transport::Tcp, "tcp"), (Transport::Udp, "udp")] {
            let found = identify(transport, &payload);
            if !found.is_unknown() {
                *fired.entry((label, found.name())).or_default() += 1;
            }
        }
    }
    let total: usize = fired.values().sum();
    let rate = total as f64 / (2 * ROUNDS) as f64;
    eprintln!("random payloads identified: {total} of {} ({:.4} %): {fired:?}", 2 * ROUNDS, rate * 100.0);
    assert!(rate <= MAX_RATE, "{rate}: {fired:?}");
    // No single identifier may fire on more than a few in 10 000.
    for (&(transport, name), &count) in &fired {
        assert!(count <= ROUNDS / 2500, "{name} over {transport}: {count}");
    }
}

#[test]
fn mid_stream_text_is_not_a_protocol_opening() {
    let lines: [&[u8]; 16] = [
        b"<p>Welcome to our website. Please log in to continue.</p>\r\n",
        b"  <div class=\"nav\"><a href=\"/\">Home</a></div>\n",
        b"The quick brown fox jumps over the lazy dog.\r\n",
        b"USER MANUAL\r\n\r\nChapter 1: Getting started\r\n",
        b"Nick Cave and the Bad Seeds\r\n",
        b"220 volts is the mains voltage here\r\n",
        b"PASS the salt, please\r\n",
        b"Content of the file follows\r\n",
        b"{\"user\": \"alice\", \"id\": 42}\n",
        b"body { margin: 0; padding: 0; }\n",
        b"-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n",
        b"* Connected to example.org (93.184.216.34) port 80\n",
        b"+ set -e\n+ make all\n",
        b": a comment line in a config\n",
        b"1. First item\r\n2. Second item\r\n",
        b"Received: from mx.example.org by host with ESMTP\r\n",
    ];
    for line in lines {
        for transport in [Transport::Tcp, Transport::Udp] {
            let found = identify(transport, line);
            assert!(found.is_unknown(), "{:?} over {transport:?}: {found:?}", String::from_utf8_lossy(line));
        }
    }
}
