//! Decodes a stream of frames through one decoder, so that state carried between frames — the
//! fragment table above all, with tunnels opened on the way — is exercised: fragments that
//! never complete, overlap, repeat or arrive out of order. The input is a sequence of frames,
//! each a length byte (0–255) then that many bytes; the first byte picks the link type.
//!
//! Never panics; every frame is counted exactly once, as parsed, not IP, malformed or an
//! orphan fragment; the fragment table stays within its bound.

use std::sync::OnceLock;

use crate::capture::LinkType;
use crate::config::DecodeSettings;
use crate::decode::Decoder;

const LINKS: [LinkType; 3] = [LinkType::Ethernet, LinkType::Raw, LinkType::LinuxSll];

fn settings() -> &'static DecodeSettings {
    static SETTINGS: OnceLock<DecodeSettings> = OnceLock::new();
    SETTINGS.get_or_init(|| crate::config::default().decode)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&selector, mut rest)) = data.split_first() else { return };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    let mut decoder = Decoder::new(settings());
    let mut frames = 0u64;
    let mut ts_ns = 1_767_225_600_000_000_000u64;
    while let Some((&len, after)) = rest.split_first() {
        let len = usize::from(len).min(after.len());
        let (frame, next) = after.split_at(len);
        rest = next;
        // 10 ms apart, so that the fragment table's timeout passes within a long input.
        ts_ns += 10_000_000 * u64::from(frame.first().copied().unwrap_or(1) % 8);
        if let Ok(meta) = decoder.decode(link, ts_ns, frame) {
            let k = meta.key;
            assert!((k.addr_lo, k.port_lo) <= (k.addr_hi, k.port_hi), "key not canonical: {k:?}");
        }
        frames += 1;
    }
    let c = decoder.counters;
    let outcomes = c.parsed + c.non_ip + c.malformed.iter().sum::<u64>() + c.orphan_fragments;
    assert_eq!(outcomes, frames, "one counted outcome per frame: {c:?}");
}
