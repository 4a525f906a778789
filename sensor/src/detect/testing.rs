//! Builders for the detectors' unit tests: flow records and observations as
//! the flow table and the observer make them, and an engine with the
//! shipped settings.

use std::net::IpAddr;

use nbad_common::{FlowKey, IP_V4, IP_V6};

use super::Engine;
use crate::alert::Alert;
use crate::flow::record::{DirectionCounters, EndReason, FlowRecord};
use crate::observe::{ObsKind, Observation};

/// One second, ns.
pub const SEC: u64 = 1_000_000_000;
/// A bucket-aligned start (2023-11-14T22:13:20Z).
pub const T0: u64 = 1_700_000_000 * SEC;

/// An engine with the shipped detection settings, `home` inside, and `extra`
/// TOML appended to `[detection]`'s tables.
pub fn engine(home: &str, extra: &str) -> Engine {
    let text = format!("[sensor]\nhome_networks = [\"{home}\"]\n{extra}");
    let config = crate::config::from_str(&text, "<test>").expect("test config is valid");
    Engine::new(&config, None)
}

fn bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// One direction's counters: `packets` packets of `size` bytes from `at` on, `flags` their union.
#[must_use]
pub fn dir(packets: u64, size: u64, flags: u8, at: u64) -> DirectionCounters {
    DirectionCounters {
        packets,
        bytes: packets * size,
        tcp_flags: flags,
        first_ns: if packets > 0 { at } else { 0 },
        last_ns: if packets > 0 { at } else { 0 },
    }
}

/// A flow record, client → server, with the TCP state bits given.
#[must_use]
pub fn record(
    proto: u8,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    c: DirectionCounters,
    s: DirectionCounters,
    tcp_state: u8,
) -> FlowRecord {
    let (cb, sb) = ((bytes(client.0), client.1), (bytes(server.0), server.1));
    let client_is_lo = cb <= sb;
    let (lo, hi) = if client_is_lo { (cb, sb) } else { (sb, cb) };
    let key = FlowKey {
        addr_lo: lo.0,
        addr_hi: hi.0,
        port_lo: lo.1,
        port_hi: hi.1,
        proto,
        ip_version: if client.0.is_ipv4() { IP_V4 } else { IP_V6 },
        ..FlowKey::default()
    };
    let start = [c, s].iter().filter(|d| d.packets > 0).map(|d| d.first_ns).min().unwrap_or(0);
    let end = c.last_ns.max(s.last_ns);
    FlowRecord {
        key,
        client_is_lo,
        reason: EndReason::IdleTimeout,
        start_ns: start,
        end_ns: end,
        client: c,
        server: s,
        tcp_state,
        continued: false,
    }
}

/// An observation of `kind` from `src` to `dst` at `ts_ns`.
#[must_use]
pub fn obs(ts_ns: u64, src: IpAddr, dst: IpAddr, proto: u8, kind: ObsKind) -> Observation {
    Observation { ts_ns, src, dst, sport: 0, dport: 0, proto, kind }
}

/// Runs records (each at its start time) through the engine, ends the input, returns the alerts
/// (without the incident records that follow some of them: see [`run_with_records`]).
pub fn run(engine: &mut Engine, records: &[FlowRecord]) -> Vec<Alert> {
    run_with_records(engine, records).into_iter().filter(|a| a.record.is_none()).collect()
}

/// [`run`], incident records included, in the order the engine emitted them.
pub fn run_with_records(engine: &mut Engine, records: &[FlowRecord]) -> Vec<Alert> {
    let mut sorted: Vec<&FlowRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.start_ns);
    for r in sorted {
        engine.advance(r.start_ns);
        engine.record(r);
    }
    engine.finish();
    engine.take_alerts()
}

/// The address `a.b.c.d`.
#[must_use]
pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::from([a, b, c, d])
}

/// A completed TCP session from `client` to `server` at `at`: `up` bytes sent, `down` received,
/// in five packets each way.
#[must_use]
pub fn session(client: (IpAddr, u16), server: (IpAddr, u16), at: u64, up: u64, down: u64) -> FlowRecord {
    use crate::decode::tcp_flags::{ACK, PSH, SYN};
    use crate::flow::record::tcp_state::{ESTABLISHED, SYN as SYN_SEEN, SYN_ACK};
    record(
        6,
        client,
        server,
        dir(5, up / 5, SYN | ACK | PSH, at),
        dir(5, down / 5, SYN | ACK | PSH, at),
        SYN_SEEN | SYN_ACK | ESTABLISHED,
    )
}

/// One minute, ns.
pub const MIN: u64 = 60 * SEC;
/// The office's file server (SMB), inside.
pub const FILE_SERVER: [u8; 4] = [10, 0, 0, 2];
/// The office's intranet web server, inside.
pub const INTRANET: [u8; 4] = [10, 0, 0, 3];
/// Settings for the office: learning shortened to 30 minutes (the shipped default is a day) and
/// `host_outlier`'s distributions usable after 30 buckets.
pub const OFFICE_CONFIG: &str = "[detection]\nlearning_period_s = 1800\nmin_learning_buckets = 20\n\n\
                                 [detection.host_outlier]\nmin_buckets = 30\n";

/// Workstation `n` (0–5) of the office.
#[must_use]
pub fn workstation(n: u8) -> IpAddr {
    v4(10, 0, 0, 10 + n)
}

/// A small office's ordinary traffic for `minutes` from [`T0`]: in about three minutes of four,
/// each of six workstations talks to one of two outside sites of its own, at a random second,
/// with sizes that vary; in about half of those minutes it also fetches a page from the intranet
/// server and, with `smb`, workstations 0–4 (not 5) read from the file server in about a third
/// (irregularly: nothing in the office is periodic enough to be a beacon).
#[must_use]
pub fn office(minutes: u64, smb: bool) -> Vec<FlowRecord> {
    let mut rng = crate::synth::Rng::new(11);
    let mut out = Vec::new();
    for m in 0..minutes {
        for n in 0..6u8 {
            if rng.below(4) == 0 {
                continue;
            }
            let at = T0 + m * MIN + rng.below(50) * SEC;
            let port = 20_000 + u16::try_from(m % 4_000).unwrap_or(0) * 10 + u16::from(n);
            let ws = workstation(n);
            let site = v4(203, 0, 113, 10 + 2 * n + u8::from(rng.below(2) == 0));
            if rng.below(2) == 0 {
                out.push(session(
                    (ws, port),
                    (IpAddr::from(INTRANET), 80),
                    at,
                    300 << rng.below(4),
                    20_000 << rng.below(4),
                ));
            }
            out.push(session(
                (ws, port + 1),
                (site, 443),
                at + SEC,
                1_000 << rng.below(4),
                40_000 << rng.below(5),
            ));
            if smb && n < 5 && rng.below(3) == 0 {
                out.push(session(
                    (ws, port + 2),
                    (IpAddr::from(FILE_SERVER), 445),
                    at + 2 * SEC,
                    2_000,
                    30_000 << rng.below(3),
                ));
            }
        }
    }
    out
}
