//! Decodes one frame: the first byte picks the link type, the rest is the
//! frame. The decoder must never panic on wire bytes, and what it returns
//! must be a canonical flow key.

use std::sync::OnceLock;

use crate::capture::LinkType;
use crate::config::DecodeSettings;
use crate::decode::Decoder;

/// The link types in the order the selector byte picks them (`byte % 6`).
const LINKS: [LinkType; 6] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Raw,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

/// The default decode settings (they follow GRE and VXLAN on port 4789, so
/// tunnels are opened too), built once: building a `Config` reads the hostname.
fn settings() -> &'static DecodeSettings {
    static SETTINGS: OnceLock<DecodeSettings> = OnceLock::new();
    SETTINGS.get_or_init(|| crate::config::default().decode)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    // A fresh decoder per input, so that a crash reproduces from its input
    // alone (no fragment state carried over from earlier inputs).
    let mut decoder = Decoder::new(settings());
    let ts_ns = 1_767_225_600_000_000_000;
    if let Ok(meta) = decoder.decode(link, ts_ns, frame) {
        let k = meta.key;
        assert!((k.addr_lo, k.port_lo) <= (k.addr_hi, k.port_hi), "key not canonical: {k:?}");
        assert_eq!(k.pad, [0; 2], "padding must be zero (the kernel hashes raw key bytes)");
        assert!(k.ip_version == 4 || k.ip_version == 6, "ip_version {}", k.ip_version);
        assert_eq!(meta.ts_ns, ts_ns);
    }
    let c = decoder.counters;
    let outcomes = c.parsed + c.non_ip + c.malformed.iter().sum::<u64>() + c.orphan_fragments;
    assert_eq!(outcomes, 1, "one frame, one counted outcome: {c:?}");
}
