//! `scan`: one source probing many hosts on a port (horizontal), many ports or
//! IP protocols on a host (vertical), or sweeping addresses with ICMP echo or
//! ARP, most of the probes failing; fast (one bucket), as a sweep (a few
//! seconds) or slow (hours).
//!
//! | rule | window | fires when | from |
//! |---|---|---|---|
//! | `horizontal` | one bucket | ≥ `min_hosts` hosts on one (transport, port), ≥ `min_failed_ratio` of the attempts failed | records |
//! | `vertical` | one bucket | ≥ `min_ports` (transport, port) targets on one host, the same ratio | records |
//! | `ip_protocol` | one bucket | a vertical spread of ≥ `min_ports` distinct IP protocols (nmap -sO) | records |
//! | `fingerprint` | one bucket | ≥ `fingerprint_min_probes` TCP probes with flags no stack sends (NULL, FIN+PSH+URG, SYN+FIN, SYN+RST) to one host, and neither rule above | evasive-packet observations |
//! | `icmp_sweep` | `sweep_window_s`, sliding | ≥ `sweep_min_targets` hosts sent an echo request (or answering one sent to a broadcast address) | echo observations |
//! | `arp_sweep` | `sweep_window_s`, sliding | ≥ `sweep_min_targets` addresses asked for in broadcast ARP who-has | ARP observations |
//! | `slow_horizontal`, `slow_vertical` | `slow_window_s`, sliding | ≥ `slow_min_hosts` hosts on one port, or ≥ `slow_min_ports` ports on one host, that failed, and ≥ `min_failed_ratio` of the attempts failed | buckets merged |
//!
//! **Attempts.** One per connection a source opened (the first record of a
//! flow with at least one packet from the client, so a reflected SYN-ACK
//! aimed at a victim does not make the victim a prober). Targets are keyed by
//! (IANA protocol, port): TCP, UDP and SCTP by their port, an ICMP request by
//! its type, any other IP protocol by (protocol, 0), so an IP-protocol scan
//! spreads over 256 targets instead of collapsing into one. ICMP errors and
//! ICMP replies are never attempts: a scanned host's port-unreachable answers
//! would otherwise make it look like it probes its scanner.
//!
//! **Failure.** An attempt failed when a TCP handshake did not complete (no
//! SYN-ACK, or a reset before it completed), or a UDP, ICMP or other flow got
//! no answer. A TCP reset from the target, and an ICMP unreachable naming the
//! probe it answers (its quoted header, [`crate::observe::ObsKind::Unreachable`]),
//! are counted as *refused*: positive failure evidence, in the evidence's
//! `refused`. An unreachable only ever qualifies a probe the source made (its
//! record may come a bucket later, at the UDP idle timeout, so unreachables
//! wait for it through the next bucket, at most [`MAX_PENDING`] per source):
//! a flood victim's answers to backscatter, refused by a router, are not
//! probes. Sweeps need no failure ratio: the fan-out rate is the signal.
//!
//! **Invariants and bounds.** A port or host is followed from its first
//! failed attempt (a client whose connections all succeed costs no memory);
//! the bucket's accumulators hold at most 4 096 keys per source and
//! 4 096 targets per key, for at most `max_sources` sources
//! (`sources_dropped` counts the rest). Sweeps and slow state have their own
//! caps and eviction counters ([`sweep`], [`slow`]). One alert per source per
//! rule family per bucket; it names every target that passed (up to
//! [`MAX_LISTED`]) in `nbad.evidence.details.targets`.

pub mod slow;
pub mod sweep;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::Check;
use super::host::{FlowRef, Map, Set};
use super::{BucketCtx, Candidate, strength, transport_name};
use crate::alert::{Detector, LearningState};
use crate::config::ConfigError;
use crate::flow::FlowRecord;
use crate::flow::record::tcp_state;

const DESCRIPTION: &str = "One source probed many hosts on one port, many ports or protocols on one host, \
     or swept addresses with ICMP echo or ARP, most probes failing (a scan).";

/// Targets remembered per port or per host in a bucket.
const MAX_TARGETS: usize = 4_096;
/// Ports or hosts tracked per source per bucket.
const MAX_KEYS: usize = 4_096;
/// Targets named in one alert's evidence.
pub const MAX_LISTED: usize = 16;
/// Unreachables remembered per source while their probe's record is due.
pub const MAX_PENDING: usize = 4_096;

/// A probe's target on a host: (IANA protocol, port). ICMP requests use their
/// type as the port; protocols without ports use 0.
pub type Target = (u8, u16);

/// `[detection.scan]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// Distinct hosts on one port from one source in a bucket (horizontal).
    pub min_hosts: u64,
    /// Distinct ports (or IP protocols) on one host from one source in a bucket (vertical).
    pub min_ports: u64,
    /// Share of those attempts that failed, at least.
    pub min_failed_ratio: f64,
    /// Sources tracked per bucket at most.
    pub max_sources: i64,
    /// Length of the sliding window of the sweep rules, seconds.
    pub sweep_window_s: i64,
    /// Distinct addresses one source pinged or asked for in ARP within the window.
    pub sweep_min_targets: u64,
    /// Length of the sliding window of the slow rules, seconds.
    pub slow_window_s: i64,
    /// Distinct hosts on one port that failed within the slow window.
    pub slow_min_hosts: u64,
    /// Distinct ports on one host that failed within the slow window.
    pub slow_min_ports: u64,
    /// Sources followed by the slow rules at most.
    pub slow_max_sources: i64,
    /// TCP probes with impossible flags from one source to one host in a bucket (OS fingerprinting).
    pub fingerprint_min_probes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_hosts: 20,
            min_ports: 20,
            min_failed_ratio: 0.5,
            max_sources: 65_536,
            sweep_window_s: 10,
            sweep_min_targets: 12,
            slow_window_s: 6 * 3_600,
            slow_min_hosts: 30,
            slow_min_ports: 30,
            slow_max_sources: 16_384,
            fingerprint_min_probes: 6,
        }
    }
}

impl Settings {
    /// Checks every key against the range documented in `configs/sensor.example.toml`.
    pub(crate) fn validate(&self, c: &Check<'_>) -> Result<(), ConfigError> {
        c.positive("scan.min_hosts", self.min_hosts)?;
        c.positive("scan.min_ports", self.min_ports)?;
        c.float("scan.min_failed_ratio", self.min_failed_ratio, 0.0, 1.0)?;
        c.int("scan.max_sources", self.max_sources, 1, 10_000_000, "")?;
        c.int("scan.sweep_window_s", self.sweep_window_s, 1, 300, "seconds")?;
        c.int(
            "scan.sweep_min_targets",
            i64::try_from(self.sweep_min_targets).unwrap_or(i64::MAX),
            2,
            1_000,
            "",
        )?;
        c.int("scan.slow_window_s", self.slow_window_s, 600, 7 * 86_400, "seconds")?;
        c.int("scan.slow_min_hosts", i64::try_from(self.slow_min_hosts).unwrap_or(i64::MAX), 2, 100_000, "")?;
        c.int("scan.slow_min_ports", i64::try_from(self.slow_min_ports).unwrap_or(i64::MAX), 2, 100_000, "")?;
        c.int("scan.slow_max_sources", self.slow_max_sources, 1, 10_000_000, "")?;
        let probes = i64::try_from(self.fingerprint_min_probes).unwrap_or(i64::MAX);
        c.int("scan.fingerprint_min_probes", probes, 2, 10_000, "")?;
        Ok(())
    }

    fn cap(v: i64) -> usize {
        usize::try_from(v).unwrap_or(usize::MAX)
    }

    fn window_ns(s: i64) -> u64 {
        u64::try_from(s).unwrap_or(0).saturating_mul(1_000_000_000)
    }
}

/// Counters of the scan detector's bounded state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanCounters {
    /// Attempts of sources not followed because `max_sources` were followed in the bucket.
    pub sources_dropped: u64,
    /// Sweep observations of sources not followed because the sweep table was full.
    pub sweep_sources_dropped: u64,
    /// Sources not admitted to the slow rules because their table was full.
    pub slow_sources_dropped: u64,
    /// Sources with a single failed target evicted from a nearly full slow table.
    pub slow_sources_evicted: u64,
}

/// Attempts on one port (or one host) in the bucket.
#[derive(Debug, Clone)]
struct Spread<T> {
    /// Targets, and whether any attempt on each failed.
    targets: Map<T, bool>,
    attempts: u64,
    failed: u64,
    refused: u64,
    example: Option<FlowRef>,
}

impl<T> Default for Spread<T> {
    fn default() -> Self {
        Self { targets: Map::default(), attempts: 0, failed: 0, refused: 0, example: None }
    }
}

impl<T: std::hash::Hash + Eq + Copy> Spread<T> {
    fn add(&mut self, target: T, failed: bool, refused: bool, flow: FlowRef) {
        self.note(target, failed);
        self.attempts += 1;
        self.failed += u64::from(failed);
        self.refused += u64::from(refused);
        if self.example.is_none() {
            self.example = Some(flow);
        }
    }

    fn note(&mut self, target: T, failed: bool) {
        if let Some(f) = self.targets.get_mut(&target) {
            *f |= failed;
        } else if self.targets.len() < MAX_TARGETS {
            self.targets.insert(target, failed);
        }
    }

    fn ratio(&self) -> f64 {
        // Only refusals seen so far (records not yet in): every one is a failure.
        if self.attempts == 0 { 1.0 } else { self.failed as f64 / self.attempts as f64 }
    }

    fn hit(&self, min: u64, min_ratio: f64) -> bool {
        self.targets.len() as u64 >= min && self.ratio() >= min_ratio
    }

    fn score(&self, min: u64) -> f64 {
        strength(self.targets.len() as f64, min as f64) * (0.5 + 0.5 * self.ratio())
    }
}

/// One source's attempts in the bucket.
#[derive(Debug, Clone, Default)]
pub struct ScanAcc {
    by_port: Map<Target, Spread<IpAddr>>,
    by_host: Map<IpAddr, Spread<Target>>,
    /// Per host: TCP probes with impossible flags, and which combinations (bits of [`ODD_FLAGS`]).
    odd: Map<IpAddr, (u64, u8)>,
}

/// The flag combinations no stack sends, as the observer names them.
pub const ODD_FLAGS: [&str; 4] = ["null_scan", "xmas_scan", "syn_fin", "syn_rst"];

impl ScanAcc {
    /// Accounts one connection attempt. A port or host is followed from its
    /// first failed attempt on: a client whose connections all succeed costs
    /// two lookups per connection and no memory (the failed ratio then
    /// counts the successes after the first failure).
    pub fn attempt(&mut self, dst: IpAddr, key: Target, failed: bool, refused: bool, flow: FlowRef) {
        if let Some(sp) = self.by_port.get_mut(&key) {
            sp.add(dst, failed, refused, flow);
        } else if failed && self.by_port.len() < MAX_KEYS {
            self.by_port.entry(key).or_default().add(dst, failed, refused, flow);
        }
        if let Some(sp) = self.by_host.get_mut(&dst) {
            sp.add(key, failed, refused, flow);
        } else if failed && self.by_host.len() < MAX_KEYS {
            self.by_host.entry(dst).or_default().add(key, failed, refused, flow);
        }
    }
}

/// What a flow record says about a probe, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The target host.
    pub dst: IpAddr,
    /// The target on it.
    pub key: Target,
    /// The attempt failed.
    pub failed: bool,
    /// The target refused it (a TCP reset).
    pub refused: bool,
}

/// Whether an ICMP message of `icmp_type` is an error (v4: unreachable,
/// source quench, redirect, time exceeded, parameter problem; v6: unreachable,
/// packet too big, time exceeded, parameter problem).
#[must_use]
pub fn is_icmp_error(proto: u8, icmp_type: u16) -> bool {
    match proto {
        1 => matches!(icmp_type, 3 | 4 | 5 | 11 | 12),
        58 => matches!(icmp_type, 1..=4),
        _ => false,
    }
}

/// Whether an ICMP message of `icmp_type` asks for an answer a prober wants
/// (v4: echo, timestamp, information, address mask; v6: echo, node information).
fn is_icmp_request(proto: u8, icmp_type: u16) -> bool {
    match proto {
        1 => matches!(icmp_type, 8 | 13 | 15 | 17),
        58 => matches!(icmp_type, 128 | 139),
        _ => false,
    }
}

/// Whether a record opens a connection attempt by its client: the first
/// record of a flow whose client sent something, and not an ICMP error or
/// reply (those answer someone else's attempt).
#[must_use]
pub fn is_attempt(r: &FlowRecord) -> bool {
    if r.continued || r.client.packets == 0 {
        return false;
    }
    match r.key.proto {
        1 | 58 => is_icmp_request(r.key.proto, r.client_endpoint().1),
        _ => true,
    }
}

/// Whether a connection attempt failed: a TCP handshake that did not complete
/// (no SYN-ACK, or reset before completion), or a UDP/ICMP/other flow with no
/// answer.
#[must_use]
pub fn attempt_failed(r: &FlowRecord) -> bool {
    match r.key.proto {
        6 => {
            // A handshake that never completed: a SYN without SYN-ACK, or a
            // probe (FIN, NULL, XMAS, ACK) answered by a reset or not at all.
            let s = r.tcp_state;
            s & tcp_state::ESTABLISHED == 0
                && (s & tcp_state::SYN != 0 || s & tcp_state::RST != 0 || r.server.packets == 0)
        }
        _ => r.server.packets == 0,
    }
}

/// The probe a record describes, if it is a connection attempt.
#[must_use]
pub fn probe(r: &FlowRecord) -> Option<Probe> {
    if !is_attempt(r) {
        return None;
    }
    let (dst, port) = r.server_endpoint();
    let key = match r.key.proto {
        6 | 17 | 132 => (r.key.proto, port),
        1 | 58 => (r.key.proto, r.client_endpoint().1),
        p => (p, 0),
    };
    let failed = attempt_failed(r);
    let refused = r.key.proto == 6
        && r.tcp_state & tcp_state::ESTABLISHED == 0
        && r.server.tcp_flags & crate::decode::tcp_flags::RST != 0;
    Some(Probe { dst, key, failed, refused })
}

/// The scan detector's state: the bucket's attempts per source, the sweeps,
/// the slow windows.
#[derive(Debug, Default)]
pub struct Scans {
    bucket: Map<IpAddr, ScanAcc>,
    /// Unreachables waiting for the record of the probe they answer: this
    /// bucket's and the previous one's.
    pending: [Map<IpAddr, Set<(IpAddr, Target)>>; 2],
    sweeps: sweep::Sweeps,
    slow: slow::SlowScans,
    counters: ScanCounters,
}

impl Scans {
    /// Accounts one flow record.
    pub fn record(&mut self, r: &FlowRecord, s: &Settings) {
        if !s.enabled {
            return;
        }
        let Some(mut p) = probe(r) else { return };
        let source = r.client_endpoint().0;
        for generation in &mut self.pending {
            if !generation.is_empty()
                && let Some(waiting) = generation.get_mut(&source)
                && waiting.remove(&(p.dst, p.key))
            {
                p.refused = true;
            }
        }
        let flow = FlowRef { a: r.client_endpoint(), b: r.server_endpoint(), proto: r.key.proto };
        if let Some(acc) = self.acc(source, s) {
            acc.attempt(p.dst, p.key, p.failed, p.refused, flow);
        }
    }

    /// Accounts a TCP packet from `src` to `dst` with flags no stack sends
    /// (`what`: one of [`ODD_FLAGS`]).
    pub fn odd_probe(&mut self, src: IpAddr, dst: IpAddr, what: &str, s: &Settings) {
        if !s.enabled {
            return;
        }
        let Some(bit) = ODD_FLAGS.iter().position(|f| *f == what) else { return };
        if let Some(acc) = self.acc(src, s)
            && (acc.odd.contains_key(&dst) || acc.odd.len() < MAX_KEYS)
        {
            let e = acc.odd.entry(dst).or_default();
            e.0 += 1;
            e.1 |= 1 << bit;
        }
    }

    /// Accounts an ICMP unreachable sent to `prober` about its probe of
    /// (`dst`, `key`).
    pub fn refused(&mut self, prober: IpAddr, dst: IpAddr, key: Target, s: &Settings) {
        if !s.enabled {
            return;
        }
        let cap = Settings::cap(s.max_sources);
        let current = &mut self.pending[0];
        if !current.contains_key(&prober) && current.len() >= cap {
            self.counters.sources_dropped += 1;
            return;
        }
        let waiting = current.entry(prober).or_default();
        if waiting.len() < MAX_PENDING {
            waiting.insert((dst, key));
        }
    }

    /// Accounts an ICMP echo request (`reply` false: `src` pinged `dst`) or
    /// reply (`src` answered `dst`).
    pub fn echo(&mut self, src: IpAddr, dst: IpAddr, reply: bool, ts_ns: u64, s: &Settings) {
        if !s.enabled {
            return;
        }
        let (pinger, target) = if reply { (dst, src) } else { (src, dst) };
        self.sweeps.note(sweep::Kind::IcmpEcho, pinger, target, reply, ts_ns, s);
    }

    /// Accounts a broadcast ARP request: `sender` asked who has `target`.
    pub fn arp(&mut self, sender: IpAddr, target: IpAddr, ts_ns: u64, s: &Settings) {
        if s.enabled {
            self.sweeps.note(sweep::Kind::Arp, sender, target, false, ts_ns, s);
        }
    }

    fn acc(&mut self, source: IpAddr, s: &Settings) -> Option<&mut ScanAcc> {
        let full = self.bucket.len() >= Settings::cap(s.max_sources);
        if full && !self.bucket.contains_key(&source) {
            self.counters.sources_dropped += 1;
            return None;
        }
        Some(self.bucket.entry(source).or_default())
    }

    /// The counters, the sweeps' and slow rules' included.
    #[must_use]
    pub fn counters(&self) -> ScanCounters {
        let mut c = self.counters;
        c.sweep_sources_dropped = self.sweeps.dropped;
        c.slow_sources_dropped = self.slow.dropped;
        c.slow_sources_evicted = self.slow.evicted;
        c
    }

    /// Closes the bucket: judges every source (sorted by address, so the
    /// order is the same on every run) and clears the bucket's attempts.
    pub fn close(
        &mut self,
        ctx: &BucketCtx<'_>,
        state_of: &dyn Fn(IpAddr) -> LearningState,
    ) -> Vec<Candidate> {
        let s = &ctx.settings.scan;
        let mut found = Vec::new();
        if !s.enabled {
            self.bucket.clear();
            return found;
        }
        let mut sources: Vec<IpAddr> = self.bucket.keys().copied().collect();
        sources.extend(self.sweeps.sources());
        sources.sort_unstable();
        sources.dedup();
        for src in sources {
            let mut c = *ctx;
            c.host = src;
            c.state = state_of(src);
            let fast = self.bucket.get(&src).and_then(|acc| evaluate(src, acc, &c));
            found.extend(self.sweeps.evaluate(src, &c));
            if let Some(acc) = self.bucket.get(&src) {
                self.slow.merge(src, acc, ctx.end_ns, s);
            }
            if fast.is_some() {
                self.slow.mark_alerted(src);
            } else if let Some(cand) = self.slow.evaluate(src, &c) {
                found.push(cand);
            }
            found.extend(fast);
        }
        self.bucket.clear();
        self.pending[1] = std::mem::take(&mut self.pending[0]);
        self.sweeps.roll(ctx.end_ns, s);
        self.slow.prune(ctx.end_ns, s);
        found
    }
}

/// The name of a target for messages and evidence: `tcp/22`, `icmp/8`, `ip/47`.
#[must_use]
pub fn target_name(t: Target) -> String {
    match transport_name(t.0) {
        Some(name) => format!("{name}/{}", t.1),
        None => format!("ip/{}", t.0),
    }
}

/// The fast rules' finding of `source`'s bucket, if any: the stronger of the
/// horizontal and the vertical spreads, naming every target that passed.
pub fn evaluate(source: IpAddr, acc: &ScanAcc, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.scan;
    let mut vertical: Vec<(&IpAddr, &Spread<Target>)> =
        acc.by_host.iter().filter(|(_, sp)| sp.hit(s.min_ports, s.min_failed_ratio)).collect();
    vertical.sort_by(|a, b| b.1.targets.len().cmp(&a.1.targets.len()).then_with(|| a.0.cmp(b.0)));
    let mut horizontal: Vec<(&Target, &Spread<IpAddr>)> =
        acc.by_port.iter().filter(|(_, sp)| sp.hit(s.min_hosts, s.min_failed_ratio)).collect();
    horizontal.sort_by(|a, b| b.1.targets.len().cmp(&a.1.targets.len()).then_with(|| a.0.cmp(b.0)));
    let v_score = vertical.first().map(|(_, sp)| sp.score(s.min_ports));
    let h_score = horizontal.first().map(|(_, sp)| sp.score(s.min_hosts));
    let use_h = match (h_score, v_score) {
        (Some(h), Some(v)) => h >= v,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => return fingerprint_finding(source, acc, ctx),
    };
    let mut cand = if use_h {
        horizontal_finding(source, &horizontal, ctx)
    } else {
        vertical_finding(source, &vertical, ctx)
    };
    cand.confidence = 0.8;
    Some(cand)
}

/// The fingerprint rule: the host that got the most odd-flag probes, if it got enough.
fn fingerprint_finding(source: IpAddr, acc: &ScanAcc, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.scan;
    let (&target, &(probes, combos)) = acc
        .odd
        .iter()
        .filter(|(_, (n, _))| *n >= s.fingerprint_min_probes)
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| b.0.cmp(a.0)))?;
    let mut cand = Candidate::new(
        Detector::Scan,
        DESCRIPTION,
        ctx,
        "odd_flag_probes",
        probes as f64,
        s.fingerprint_min_probes as f64,
    );
    cand.strength = strength(probes as f64, s.fingerprint_min_probes as f64);
    // No stack sends these: a tool crafted them.
    cand.confidence = 0.8;
    cand.peer = Some(target);
    cand.transport = Some("tcp");
    let names: Vec<&str> =
        ODD_FLAGS.iter().enumerate().filter(|(i, _)| combos & (1 << i) != 0).map(|(_, n)| *n).collect();
    let ports = acc.by_host.get(&target).map_or(0, |sp| sp.targets.len());
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("fingerprint"));
    d.insert("probes".into(), json!(probes));
    d.insert("combinations".into(), json!(names));
    d.insert("ports".into(), json!(ports));
    cand.message = format!(
        "{source} sent {target} {probes} TCP probes with flags no stack sends ({}) in {} s (OS fingerprinting)",
        names.join(", "),
        ctx.bucket_s()
    );
    Some(cand)
}

fn horizontal_finding(source: IpAddr, hits: &[(&Target, &Spread<IpAddr>)], ctx: &BucketCtx<'_>) -> Candidate {
    let s = &ctx.settings.scan;
    let (&key, sp) = hits[0];
    let n = sp.targets.len();
    let mut cand =
        Candidate::new(Detector::Scan, DESCRIPTION, ctx, "distinct_hosts", n as f64, s.min_hosts as f64);
    cand.strength = sp.score(s.min_hosts);
    cand.transport = transport_name(key.0);
    if matches!(key.0, 6 | 17 | 132) {
        cand.port = Some(key.1);
    }
    let mut hosts: Vec<IpAddr> = sp.targets.keys().copied().collect();
    hosts.sort_unstable();
    let ports: Vec<serde_json::Value> = hits
        .iter()
        .take(MAX_LISTED)
        .map(|(k, sp)| {
            json!({"target": target_name(**k), "hosts": sp.targets.len(), "attempts": sp.attempts,
                   "failed": sp.failed, "refused": sp.refused})
        })
        .collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("horizontal"));
    d.insert("attempts".into(), json!(sp.attempts));
    d.insert("failed".into(), json!(sp.failed));
    d.insert("refused".into(), json!(sp.refused));
    d.insert("failed_ratio".into(), json!(round3(sp.ratio())));
    d.insert(
        "targets".into(),
        json!(hosts.iter().take(2 * MAX_LISTED).map(ToString::to_string).collect::<Vec<_>>()),
    );
    d.insert("ports".into(), json!(ports));
    d.insert("ports_total".into(), json!(hits.len()));
    if let Some(f) = sp.example {
        cand.evidence.community_ids.push(f.community_id());
    }
    let more = if hits.len() > 1 { format!(" (and {} more ports)", hits.len() - 1) } else { String::new() };
    cand.message = format!(
        "{source} probed {n} hosts on {}{more} in {} s, {:.0} % failed (horizontal scan)",
        target_name(key),
        ctx.bucket_s(),
        sp.ratio() * 100.0
    );
    cand
}

fn vertical_finding(source: IpAddr, hits: &[(&IpAddr, &Spread<Target>)], ctx: &BucketCtx<'_>) -> Candidate {
    let s = &ctx.settings.scan;
    let (&target, sp) = hits[0];
    let n = sp.targets.len();
    let mut protocols: Vec<u8> = sp.targets.keys().map(|t| t.0).collect();
    protocols.sort_unstable();
    protocols.dedup();
    let ip_protocol = protocols.len() as u64 >= s.min_ports;
    let metric = if ip_protocol { "distinct_protocols" } else { "distinct_ports" };
    let observed = if ip_protocol { protocols.len() } else { n };
    let mut cand =
        Candidate::new(Detector::Scan, DESCRIPTION, ctx, metric, observed as f64, s.min_ports as f64);
    cand.strength = sp.score(s.min_ports);
    cand.peer = Some(target);
    let mut sample: Vec<Target> = sp.targets.keys().copied().collect();
    sample.sort_unstable();
    let targets: Vec<serde_json::Value> = hits
        .iter()
        .take(MAX_LISTED)
        .map(|(h, sp)| {
            json!({"host": h.to_string(), "ports": sp.targets.len(), "attempts": sp.attempts,
                   "failed": sp.failed, "refused": sp.refused})
        })
        .collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(if ip_protocol { "ip_protocol" } else { "vertical" }));
    d.insert("attempts".into(), json!(sp.attempts));
    d.insert("failed".into(), json!(sp.failed));
    d.insert("refused".into(), json!(sp.refused));
    d.insert("failed_ratio".into(), json!(round3(sp.ratio())));
    d.insert("targets".into(), json!(targets));
    d.insert("targets_total".into(), json!(hits.len()));
    d.insert(
        "ports_sample".into(),
        json!(sample.iter().take(20).map(|t| target_name(*t)).collect::<Vec<_>>()),
    );
    if ip_protocol {
        d.insert("protocols".into(), json!(protocols.len()));
    }
    if let Some(f) = sp.example {
        cand.evidence.community_ids.push(f.community_id());
    }
    let what = if ip_protocol { format!("{} IP protocols", protocols.len()) } else { format!("{n} ports") };
    let others: Vec<String> = hits.iter().skip(1).take(MAX_LISTED - 1).map(|(h, _)| h.to_string()).collect();
    let more = match hits.len() {
        1 => String::new(),
        k if k <= MAX_LISTED => format!(" and {} more hosts ({})", k - 1, others.join(", ")),
        k => format!(" and {} more hosts ({}, ...)", k - 1, others.join(", ")),
    };
    cand.message = format!(
        "{source} probed {what} on {target}{more} in {} s, {:.0} % failed ({} scan)",
        ctx.bucket_s(),
        sp.ratio() * 100.0,
        if ip_protocol { "IP protocol" } else { "vertical" }
    );
    cand
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
