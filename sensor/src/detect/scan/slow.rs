//! Slow scans: probes spread over hours, too thin for any one bucket (one
//! host every ten minutes), accumulated over a sliding window of
//! `slow_window_s` seconds.
//!
//! When a bucket closes, each source's spreads that saw a failure are merged
//! in: per (transport, port) the hosts that failed there, per host the
//! (transport, port) targets that failed, each with the time it last failed,
//! and the spread's attempt and failure counts. A target older than the
//! window is forgotten (a spread with none left is dropped, counts and all),
//! so the rule looks at what failed in the last `slow_window_s`, and a spread
//! whose count reached the floor once alerts again only when it has grown by
//! half since (or after its targets aged out).
//!
//! Bounds: at most [`MAX_KEYS`] spreads per source and direction and
//! [`MAX_TARGETS`] targets per spread (the floors are a few dozen); at most
//! `slow_max_sources` sources. A source whose only failure so far is one
//! target is kept compact, without spreads, until its second (a spoofed SYN
//! flood brings tens of thousands of those; a slow scanner outgrows it at its
//! second target). A source arriving at a full table is counted in `dropped`;
//! when a bucket closes with the table over 90 % full, the compact ones,
//! oldest first, are evicted down to 75 % (`evicted`).

use std::net::IpAddr;

use serde_json::json;

use super::{DESCRIPTION, MAX_LISTED, ScanAcc, Settings, Spread, Target, target_name};
use crate::alert::Detector;
use crate::detect::host::Map;
use crate::detect::{BucketCtx, Candidate, strength, transport_name};

/// Spreads followed per source and direction.
pub const MAX_KEYS: usize = 256;
/// Failed targets remembered per spread.
pub const MAX_TARGETS: usize = 1_024;

/// The failed targets of one spread within the window.
#[derive(Debug, Clone)]
struct SlowSpread<T> {
    /// Target → last time it failed (bucket end, ns).
    failed_targets: Map<T, u64>,
    /// When the spread was first merged.
    first_ns: u64,
    attempts: u64,
    failed: u64,
    /// Targets counted when it last alerted (0: never).
    alerted: usize,
}

impl<T: std::hash::Hash + Eq + Copy> SlowSpread<T> {
    fn new(now_ns: u64) -> Self {
        Self { failed_targets: Map::default(), first_ns: now_ns, attempts: 0, failed: 0, alerted: 0 }
    }

    fn merge(&mut self, sp: &Spread<T>, now_ns: u64) {
        self.attempts += sp.attempts;
        self.failed += sp.failed;
        for (t, failed) in &sp.targets {
            if !*failed {
                continue;
            }
            if let Some(at) = self.failed_targets.get_mut(t) {
                *at = now_ns;
            } else if self.failed_targets.len() < MAX_TARGETS {
                self.failed_targets.insert(*t, now_ns);
            }
        }
    }

    fn ratio(&self) -> f64 {
        if self.attempts == 0 { 1.0 } else { self.failed as f64 / self.attempts as f64 }
    }

    /// Whether the spread passes `min` and has grown enough since it last alerted.
    fn due(&self, min: u64, min_ratio: f64) -> bool {
        let n = self.failed_targets.len();
        n as u64 >= min && self.ratio() >= min_ratio && (self.alerted == 0 || n * 2 >= self.alerted * 3)
    }

    fn prune(&mut self, oldest_ns: u64) {
        self.failed_targets.retain(|_, at| *at >= oldest_ns);
        if self.failed_targets.len() < self.alerted {
            self.alerted = self.failed_targets.len();
        }
    }
}

/// A source's one failed target, before it has a second.
#[derive(Debug, Clone, Copy)]
struct Single {
    key: Target,
    host: IpAddr,
    at_ns: u64,
    /// (attempts, failed) of its port's spread and of its host's.
    port_counts: (u64, u64),
    host_counts: (u64, u64),
}

/// One source's slow spreads.
#[derive(Debug, Clone, Default)]
struct SlowAcc {
    by_port: Map<Target, SlowSpread<IpAddr>>,
    by_host: Map<IpAddr, SlowSpread<Target>>,
    /// Merged in the bucket now closing.
    touched: bool,
    last_ns: u64,
}

impl SlowAcc {
    /// Spreads seeded with a single failed target.
    fn from_single(one: &Single) -> Self {
        let mut acc = Self::default();
        let port = acc.by_port.entry(one.key).or_insert_with(|| SlowSpread::new(one.at_ns));
        port.failed_targets.insert(one.host, one.at_ns);
        (port.attempts, port.failed) = one.port_counts;
        let host = acc.by_host.entry(one.host).or_insert_with(|| SlowSpread::new(one.at_ns));
        host.failed_targets.insert(one.key, one.at_ns);
        (host.attempts, host.failed) = one.host_counts;
        acc
    }
}

fn counts<T>(sp: Option<&Spread<T>>) -> (u64, u64) {
    sp.map_or((0, 0), |sp| (sp.attempts, sp.failed))
}

/// The first two failed (port, host) pairs of a bucket, if any failed.
fn failed_pairs(acc: &ScanAcc) -> (Option<(Target, IpAddr)>, bool) {
    let mut pairs = acc
        .by_port
        .iter()
        .flat_map(|(k, sp)| sp.targets.iter().filter(|(_, failed)| **failed).map(move |(h, _)| (*k, *h)));
    let first = pairs.next();
    (first, pairs.next().is_some())
}

/// Every source's slow spreads.
#[derive(Debug, Default)]
pub struct SlowScans {
    sources: Map<IpAddr, SlowAcc>,
    /// Sources with one failed target so far, kept compact.
    singles: Map<IpAddr, Single>,
    /// Sources not admitted (table full).
    pub dropped: u64,
    /// Sources evicted to make room.
    pub evicted: u64,
}

impl SlowScans {
    /// Merges a source's bucket into its slow spreads (only spreads that saw a failure).
    pub fn merge(&mut self, source: IpAddr, acc: &ScanAcc, now_ns: u64, s: &Settings) {
        let (Some(first), more) = failed_pairs(acc) else { return };
        let known = self.sources.contains_key(&source) || self.singles.contains_key(&source);
        if !known && self.sources.len() + self.singles.len() >= Settings::cap(s.slow_max_sources) {
            self.dropped += 1;
            return;
        }
        if !self.sources.contains_key(&source) {
            let single = self.singles.get(&source).copied();
            if !more && single.is_none_or(|one| (one.key, one.host) == first) {
                let (key, host) = first;
                let (p, h) = (counts(acc.by_port.get(&key)), counts(acc.by_host.get(&host)));
                let (p0, h0) = single.map_or(((0, 0), (0, 0)), |one| (one.port_counts, one.host_counts));
                let one = Single {
                    key,
                    host,
                    at_ns: now_ns,
                    port_counts: (p0.0 + p.0, p0.1 + p.1),
                    host_counts: (h0.0 + h.0, h0.1 + h.1),
                };
                self.singles.insert(source, one);
                return;
            }
            let seeded =
                self.singles.remove(&source).map(|one| SlowAcc::from_single(&one)).unwrap_or_default();
            self.sources.insert(source, seeded);
        }
        let Some(slow) = self.sources.get_mut(&source) else { return };
        slow.touched = true;
        slow.last_ns = now_ns;
        for (key, sp) in &acc.by_port {
            if sp.failed == 0 && !sp.targets.values().any(|f| *f) {
                continue;
            }
            if !slow.by_port.contains_key(key) && slow.by_port.len() >= MAX_KEYS {
                continue;
            }
            slow.by_port.entry(*key).or_insert_with(|| SlowSpread::new(now_ns)).merge(sp, now_ns);
        }
        for (host, sp) in &acc.by_host {
            if sp.failed == 0 && !sp.targets.values().any(|f| *f) {
                continue;
            }
            if !slow.by_host.contains_key(host) && slow.by_host.len() >= MAX_KEYS {
                continue;
            }
            slow.by_host.entry(*host).or_insert_with(|| SlowSpread::new(now_ns)).merge(sp, now_ns);
        }
    }

    /// A fast rule alerted on `source`: what its spreads hold now is reported.
    pub fn mark_alerted(&mut self, source: IpAddr) {
        if let Some(slow) = self.sources.get_mut(&source) {
            for sp in slow.by_port.values_mut() {
                sp.alerted = sp.alerted.max(sp.failed_targets.len());
            }
            for sp in slow.by_host.values_mut() {
                sp.alerted = sp.alerted.max(sp.failed_targets.len());
            }
        }
    }

    /// The slow finding of `source`, if one of its spreads merged in this
    /// bucket is due: the spread with the most failed targets.
    pub fn evaluate(&mut self, source: IpAddr, ctx: &BucketCtx<'_>) -> Option<Candidate> {
        let s = &ctx.settings.scan;
        let window_ns = Settings::window_ns(s.slow_window_s);
        let oldest = ctx.end_ns.saturating_sub(window_ns);
        let slow = self.sources.get_mut(&source).filter(|a| a.touched)?;
        for sp in slow.by_port.values_mut() {
            sp.prune(oldest);
        }
        for sp in slow.by_host.values_mut() {
            sp.prune(oldest);
        }
        let h = slow
            .by_port
            .iter()
            .filter(|(_, sp)| sp.due(s.slow_min_hosts, s.min_failed_ratio))
            .max_by(|a, b| a.1.failed_targets.len().cmp(&b.1.failed_targets.len()).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| *k);
        let v = slow
            .by_host
            .iter()
            .filter(|(_, sp)| sp.due(s.slow_min_ports, s.min_failed_ratio))
            .max_by(|a, b| a.1.failed_targets.len().cmp(&b.1.failed_targets.len()).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| *k);
        let h_n = h.and_then(|k| slow.by_port.get(&k)).map_or(0, |sp| sp.failed_targets.len());
        let v_n = v.and_then(|k| slow.by_host.get(&k)).map_or(0, |sp| sp.failed_targets.len());
        let hours = s.slow_window_s as f64 / 3_600.0;
        let mut cand;
        if let Some(key) =
            h.filter(|_| h_n as f64 / s.slow_min_hosts as f64 >= v_n as f64 / s.slow_min_ports as f64)
        {
            let sp = slow.by_port.get_mut(&key)?;
            let n = sp.failed_targets.len();
            cand = Candidate::new(
                Detector::Scan,
                DESCRIPTION,
                ctx,
                "distinct_failed_hosts_in_window",
                n as f64,
                s.slow_min_hosts as f64,
            );
            cand.strength = strength(n as f64, s.slow_min_hosts as f64) * (0.5 + 0.5 * sp.ratio());
            cand.transport = transport_name(key.0);
            if matches!(key.0, 6 | 17 | 132) {
                cand.port = Some(key.1);
            }
            let mut hosts: Vec<(u64, IpAddr)> = sp.failed_targets.iter().map(|(h, t)| (*t, *h)).collect();
            hosts.sort_unstable();
            let first = sp.first_ns.max(oldest);
            let listed: Vec<String> =
                hosts.iter().rev().take(2 * MAX_LISTED).map(|h| h.1.to_string()).collect();
            details(&mut cand, "slow_horizontal", s.slow_window_s, sp.attempts, sp.failed, sp.ratio(), first);
            cand.evidence.details.insert("targets".into(), json!(listed));
            cand.message = format!(
                "{source} probed {n} hosts on {} within {hours:.0} h, {:.0} % failed (slow horizontal scan)",
                target_name(key),
                sp.ratio() * 100.0
            );
            sp.alerted = n;
        } else if let Some(target) = v {
            let sp = slow.by_host.get_mut(&target)?;
            let n = sp.failed_targets.len();
            cand = Candidate::new(
                Detector::Scan,
                DESCRIPTION,
                ctx,
                "distinct_failed_ports_in_window",
                n as f64,
                s.slow_min_ports as f64,
            );
            cand.strength = strength(n as f64, s.slow_min_ports as f64) * (0.5 + 0.5 * sp.ratio());
            cand.peer = Some(target);
            let mut ports: Vec<Target> = sp.failed_targets.keys().copied().collect();
            ports.sort_unstable();
            let first = sp.first_ns.max(oldest);
            details(&mut cand, "slow_vertical", s.slow_window_s, sp.attempts, sp.failed, sp.ratio(), first);
            cand.evidence.details.insert(
                "ports_sample".into(),
                json!(ports.iter().take(20).map(|t| target_name(*t)).collect::<Vec<_>>()),
            );
            cand.message = format!(
                "{source} probed {n} ports on {target} within {hours:.0} h, {:.0} % failed (slow vertical scan)",
                sp.ratio() * 100.0
            );
            sp.alerted = n;
        } else {
            return None;
        }
        cand.evidence.window_start_ns = oldest;
        cand.confidence = 0.7;
        Some(cand)
    }

    /// Ends the bucket: targets older than the window forgotten, empty
    /// sources dropped, and a nearly full table thinned.
    pub fn prune(&mut self, now_ns: u64, s: &Settings) {
        let oldest = now_ns.saturating_sub(Settings::window_ns(s.slow_window_s));
        self.sources.retain(|_, acc| {
            acc.touched = false;
            if acc.last_ns >= oldest {
                return true;
            }
            for sp in acc.by_port.values_mut() {
                sp.prune(oldest);
            }
            for sp in acc.by_host.values_mut() {
                sp.prune(oldest);
            }
            acc.by_port.retain(|_, sp| !sp.failed_targets.is_empty());
            acc.by_host.retain(|_, sp| !sp.failed_targets.is_empty());
            !acc.by_port.is_empty() || !acc.by_host.is_empty()
        });
        self.singles.retain(|_, one| one.at_ns >= oldest);
        let cap = Settings::cap(s.slow_max_sources);
        let total = self.sources.len() + self.singles.len();
        if total * 10 > cap * 9 {
            let mut thin: Vec<(u64, IpAddr)> =
                self.singles.iter().map(|(ip, one)| (one.at_ns, *ip)).collect();
            thin.sort_unstable();
            for (_, ip) in thin.into_iter().take(total.saturating_sub(cap * 3 / 4)) {
                self.singles.remove(&ip);
                self.evicted += 1;
            }
        }
    }
}

fn details(
    cand: &mut Candidate,
    rule: &str,
    window_s: i64,
    attempts: u64,
    failed: u64,
    ratio: f64,
    first_ns: u64,
) {
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(rule));
    d.insert("window_s".into(), json!(window_s));
    d.insert("attempts".into(), json!(attempts));
    d.insert("failed".into(), json!(failed));
    d.insert("failed_ratio".into(), json!((ratio * 1000.0).round() / 1000.0));
    d.insert("first_failure".into(), json!(crate::alert::rfc3339(first_ns)));
}
