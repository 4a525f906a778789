//! Reads the input as a saved baseline state. Loading must never panic and never half-read: it
//! gives a state or an error. A state that loads must run: an engine built from it takes flow
//! records from its hosts and closes buckets, and what that engine saves loads back equal.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use nbad_common::{FlowKey, IP_V4, IP_V6};

use crate::config::{self, Config};
use crate::detect::{Engine, state};
use crate::flow::record::{DirectionCounters, EndReason, FlowRecord};

const S: u64 = 1_000_000_000;

/// The shipped configuration, built once (building one reads the hostname).
fn cfg() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(config::default)
}

fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A TCP upload from `host` to an outside server at `at_ns`.
fn upload(host: IpAddr, at_ns: u64, bytes: u64) -> FlowRecord {
    let server: IpAddr =
        if host.is_ipv4() { IpAddr::from([203, 0, 113, 7]) } else { "2001:db8::7".parse().unwrap_or(host) };
    let (c, s) = ((mapped(host), 40_000), (mapped(server), 443));
    let client_is_lo = c <= s;
    let (lo, hi) = if client_is_lo { (c, s) } else { (s, c) };
    let dir = |packets, bytes| DirectionCounters {
        packets,
        bytes,
        tcp_flags: 0x1b,
        first_ns: at_ns,
        last_ns: at_ns + S,
    };
    FlowRecord {
        key: FlowKey {
            addr_lo: lo.0,
            addr_hi: hi.0,
            port_lo: lo.1,
            port_hi: hi.1,
            proto: 6,
            ip_version: if host.is_ipv4() { IP_V4 } else { IP_V6 },
            ..FlowKey::default()
        },
        client_is_lo,
        reason: EndReason::TcpClose,
        start_ns: at_ns,
        end_ns: at_ns + S,
        client: dir(bytes / 1_000 + 1, bytes),
        server: dir(4, 240),
        tcp_state: crate::flow::record::tcp_state::ESTABLISHED,
        continued: false,
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(file) = tempfile::NamedTempFile::new() else { return };
    if std::fs::write(file.path(), data).is_err() {
        return;
    }
    let Ok(Some(saved)) = state::load(file.path()) else { return };
    let hosts: Vec<IpAddr> = saved.hosts.keys().copied().take(8).collect();
    let start = saved.saved_at_ns.min(u64::MAX / 4);
    let mut engine = Engine::new(cfg(), Some(saved));
    for (i, host) in hosts.iter().enumerate() {
        let at = start + (i as u64 + 1) * 30 * S;
        engine.advance(at);
        engine.record(&upload(*host, at, 10_000 << i));
    }
    engine.advance(start + 3_600 * S);
    engine.finish();
    let _alerts = engine.take_alerts();
    let after = engine.state();
    let Ok(out) = tempfile::NamedTempFile::new() else { return };
    state::save(out.path(), &after).expect("a state the engine made saves");
    let again = state::load(out.path()).expect("what the engine saved loads").expect("the file is there");
    assert_eq!(again.hosts.len(), after.hosts.len());
    assert_eq!(
        again.hosts.keys().collect::<Vec<_>>(),
        after.hosts.keys().collect::<Vec<_>>(),
        "hosts after a save and a load"
    );
    let names: BTreeMap<_, _> =
        again.services.iter().map(|s| ((s.server, s.port, s.transport), &s.protocol)).collect();
    assert!(names.len() <= again.services.len());
}
