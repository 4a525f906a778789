//! `beaconing`: a host calls one destination home at regular intervals, as implants do.
//!
//! A *channel* is what the host calls, three ways:
//!
//! - **address**: every connection the host opens to one outside or inside address (any port:
//!   the ports seen are listed in the evidence);
//! - **name**: every connection whose TLS SNI or HTTP Host is one name, whatever address it
//!   reached (fast-flux and CDN-fronted C2 spread over many addresses);
//! - **flow**: the bursts inside one long flow to an outside server (a payload after a second of
//!   silence, see [`crate::observe::bursts`]): an HTTP keep-alive or a QUIC connection that an
//!   implant keeps open and calls home in.
//!
//! Each event adds its time and the bytes the host sent. When a bucket closes, every channel
//! with new events and at least `min_connections` of them is scored (0–1), in the manner of
//! RITA:
//!
//! - **timing**: the dispersion of the intervals — 1 while their median absolute deviation is
//!   at most 15 % of their median (uniform jitter of ±30 % gives 15 %), falling to 0 at 65 % —
//!   times `0.5 + 0.5 × regular`, where *regular* is the time-weighted share of intervals within
//!   ±40 % of the median or about two or three times it (a missed beat): bursts of quick
//!   connections separated by long pauses (an application's keep-alives during a call) do not
//!   pass for a beacon however regular each burst is. The count of events scales it from 0.8
//!   (at `min_connections`) to 1 (at twice that). (RITA's interval skewness is left out: over
//!   the few intervals a sparse beacon gives it is mostly noise);
//! - **size**: `1 − |Bowley skewness|`, `1 − MAD/median` of the bytes sent, and smallness
//!   (`1 − mode/65535`);
//! - the score is `0.65 × timing + 0.35 × size`. Beacons with fewer than 12 events must score
//!   0.9, the others `min_score` (0.8): over hours of ordinary traffic, a handful of visits to
//!   one site falls into a jittered-looking series by chance far more often than a dozen do.
//!
//! Not scored: median intervals under `min_interval_s` (a page loading its resources is
//! regular too), ports in `ignore_ports` (DNS, NTP, mDNS: periodic by design), names matching
//! `ignore_names` (operating-system and browser reachability probes and DNS-over-HTTPS
//! resolvers, which poll by design), and flow bursts on `inflow_ignore_ports` (SMB and NetBIOS
//! keep-alives, Modbus and S7 polling, RDP, SIP registrations, VPN and IKE keep-alives).
//!
//! Bounded: each host keeps at most `max_channels_per_host` channels (when full, the least
//! recently used half of those with the fewest events goes) and each channel its last
//! `history` events. Sparse beacons (a few an hour) keep their channel as long as the host
//! does not open that many other channels in between.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::{FlowRef, Map};
use super::{BucketCtx, Candidate, transport_name};
use crate::alert::Detector;

/// Channels with fewer events than this must score at least 0.9.
pub const FEW_EVENTS: u64 = 12;

const DESCRIPTION: &str = "A host calls one destination at regular intervals with regular sizes (beaconing).";

/// `[detection.beaconing]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// Events on a channel needed before scoring.
    pub min_connections: u64,
    /// Score (0–1) at or above which a channel with at least 12 events beacons (fewer need 0.9).
    pub min_score: f64,
    /// Events remembered per channel (the most recent).
    pub history: i64,
    /// Channels remembered per host at most.
    pub max_channels_per_host: i64,
    /// Shortest median interval scored, seconds.
    pub min_interval_s: f64,
    /// Shortest median interval of bursts inside one flow scored, seconds (an interactive
    /// session or a page's polling pauses for a second or two).
    pub inflow_min_interval_s: f64,
    /// Destination ports never scored (resolvers and time servers are periodic by design).
    pub ignore_ports: Vec<i64>,
    /// Names (SNI or Host) never scored: a pattern `x.` matches names whose first label is `x`,
    /// `.y` names ending in `.y` (or equal to `y`); anything else the name itself.
    pub ignore_names: Vec<String>,
    /// Score bursts inside long flows to outside servers.
    pub inflow: bool,
    /// Server ports whose in-flow bursts are keep-alives or polling by design.
    pub inflow_ignore_ports: Vec<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_connections: 6,
            min_score: 0.8,
            history: 64,
            max_channels_per_host: 512,
            min_interval_s: 1.0,
            inflow_min_interval_s: 4.0,
            ignore_ports: vec![53, 123, 5353],
            ignore_names: [
                "connectivity.",
                "connectivitycheck.",
                "connectivity-check.",
                "captive.",
                "captiveportal.",
                "nmcheck.",
                "detectportal.",
                "networkcheck.",
                ".msftconnecttest.com",
                ".msftncsi.com",
                ".dns.google",
                ".cloudflare-dns.com",
                ".quad9.net",
                ".nextdns.io",
                ".adguard-dns.com",
            ]
            .map(String::from)
            .to_vec(),
            inflow: true,
            inflow_ignore_ports: vec![
                102, 139, 194, 445, 500, 502, 1194, 1883, 3389, 4500, 5060, 5061, 5222, 5223, 6667, 6697,
                8883,
            ],
        }
    }
}

/// Whether `name` matches one of `patterns` (see [`Settings::ignore_names`]).
#[must_use]
pub fn ignored_name(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        if let Some(first) = p.strip_suffix('.') {
            name.split('.').next() == Some(first)
        } else if let Some(suffix) = p.strip_prefix('.') {
            name == suffix || name.strip_suffix(suffix).is_some_and(|rest| rest.ends_with('.'))
        } else {
            name == p
        }
    })
}

/// What a host calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKey {
    /// One address, any port.
    Addr(IpAddr),
    /// One name (SNI or Host), any address.
    Name(Arc<str>),
    /// Bursts inside one flow.
    Flow(FlowRef),
}

impl ChannelKey {
    fn kind(&self) -> &'static str {
        match self {
            Self::Addr(_) => "address",
            Self::Name(_) => "name",
            Self::Flow(_) => "flow",
        }
    }
}

/// One channel's recent events.
#[derive(Debug, Clone, Default)]
pub struct Channel {
    events: VecDeque<(u64, u64)>,
    fresh: bool,
    last_ns: u64,
    flow: Option<FlowRef>,
    ports: Vec<u16>,
    addrs: Vec<IpAddr>,
}

/// Every channel of one host. A channel seen once waits in `once` (no allocation of its own).
#[derive(Debug, Clone, Default)]
pub struct HostChannels {
    once: Map<ChannelKey, (u64, u64, FlowRef)>,
    channels: Map<ChannelKey, Channel>,
}

/// Forgets half of `map`: the least recently used among those with the fewest events.
fn forget_half<V>(map: &mut Map<ChannelKey, V>, rank: impl Fn(&V) -> (usize, u64)) {
    let mut by_rank: Vec<((usize, u64), ChannelKey)> =
        map.iter().map(|(k, v)| (rank(v), k.clone())).collect();
    by_rank.sort_unstable();
    for (_, k) in by_rank.iter().take(by_rank.len().div_ceil(2)) {
        map.remove(k);
    }
}

impl HostChannels {
    /// Adds an event (a connection, or a burst) at `ts_ns` that sent `bytes`, on `key`.
    pub fn add(&mut self, key: ChannelKey, flow: FlowRef, ts_ns: u64, bytes: u64, s: &Settings) {
        let cap = usize::try_from(s.max_channels_per_host).unwrap_or(usize::MAX);
        let first = if self.channels.contains_key(&key) {
            None
        } else {
            match self.once.remove(&key) {
                Some(first) => Some(first),
                None => {
                    if self.once.len() >= cap {
                        forget_half(&mut self.once, |v| (1, v.0));
                    }
                    self.once.insert(key, (ts_ns, bytes, flow));
                    return;
                }
            }
        };
        if first.is_some() && self.channels.len() >= cap {
            forget_half(&mut self.channels, |c| (c.events.len(), c.last_ns));
        }
        let ch = self.channels.entry(key).or_default();
        if let Some((t, b, f)) = first {
            ch.events.push_back((t, b));
            ch.last_ns = t;
            note(ch, f);
        }
        ch.events.push_back((ts_ns, bytes));
        while ch.events.len() > usize::try_from(s.history).unwrap_or(64) {
            ch.events.pop_front();
        }
        ch.fresh = true;
        ch.last_ns = ch.last_ns.max(ts_ns);
        note(ch, flow);
    }

    /// Scores the channels that got new events; returns the findings.
    pub fn evaluate(&mut self, ctx: &BucketCtx<'_>) -> Vec<Candidate> {
        let s = &ctx.settings.beaconing;
        let mut out = Vec::new();
        let mut keys: Vec<ChannelKey> =
            self.channels.iter().filter(|(_, c)| c.fresh).map(|(k, _)| k.clone()).collect();
        keys.sort();
        for key in keys {
            let Some(ch) = self.channels.get_mut(&key) else { continue };
            ch.fresh = false;
            let n = ch.events.len() as u64;
            if n < s.min_connections {
                continue;
            }
            let min_interval =
                if matches!(key, ChannelKey::Flow(_)) { s.inflow_min_interval_s } else { s.min_interval_s };
            let Some(score) = score(&ch.events, s.min_connections, min_interval) else { continue };
            let needed = if n < FEW_EVENTS { s.min_score.max(0.9) } else { s.min_score };
            if score.total < needed {
                continue;
            }
            out.push(finding(ctx, &key, ch, &score, needed));
        }
        out
    }
}

fn note(ch: &mut Channel, flow: FlowRef) {
    ch.flow = Some(flow);
    if ch.ports.len() < 8 && !ch.ports.contains(&flow.b.1) {
        ch.ports.push(flow.b.1);
    }
    if ch.addrs.len() < 8 && !ch.addrs.contains(&flow.b.0) {
        ch.addrs.push(flow.b.0);
    }
}

fn finding(ctx: &BucketCtx<'_>, key: &ChannelKey, ch: &Channel, score: &Score, needed: f64) -> Candidate {
    let mut cand = Candidate::new(Detector::Beaconing, DESCRIPTION, ctx, "beacon_score", score.total, needed);
    let flow = ch.flow;
    cand.peer = match key {
        ChannelKey::Addr(ip) => Some(*ip),
        _ => flow.map(|f| f.b.0),
    };
    cand.port = flow.map(|f| f.b.1);
    cand.transport = flow.and_then(|f| transport_name(f.proto));
    cand.strength = ((score.total - needed) / (1.0 - needed).max(0.01)).clamp(0.1, 1.0);
    cand.confidence = if matches!(key, ChannelKey::Flow(_)) { 0.7 } else { 0.75 };
    if let Some(f) = flow {
        cand.evidence.community_ids.push(f.community_id());
    }
    if let Some(&(first, _)) = ch.events.front() {
        cand.evidence.window_start_ns = first;
    }
    let what = match key {
        ChannelKey::Addr(ip) => ip.to_string(),
        ChannelKey::Name(n) => n.to_string(),
        ChannelKey::Flow(f) => {
            format!("{}:{} inside one {} flow", f.b.0, f.b.1, transport_name(f.proto).unwrap_or("ip"))
        }
    };
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(key.kind()));
    d.insert("channel".into(), json!(what));
    d.insert("events".into(), json!(ch.events.len()));
    d.insert("ports".into(), json!(ch.ports));
    d.insert("addresses".into(), json!(ch.addrs));
    d.insert("interval_median_s".into(), json!(round3(score.interval_median_ns / 1e9)));
    d.insert("interval_mad_s".into(), json!(round3(score.interval_mad_ns / 1e9)));
    d.insert("regular_share".into(), json!(round3(score.regular)));
    d.insert("bytes_median".into(), json!(score.bytes_median));
    d.insert("timing_score".into(), json!(round3(score.timing)));
    d.insert("size_score".into(), json!(round3(score.size)));
    let events = if matches!(key, ChannelKey::Flow(_)) { "bursts" } else { "connections" };
    cand.message = format!(
        "{} called {what} {} times ({events}) every {:.1} s (MAD {:.1} s, {:.0} % regular), {} B each: beacon score {:.2}",
        ctx.host,
        ch.events.len(),
        score.interval_median_ns / 1e9,
        score.interval_mad_ns / 1e9,
        score.regular * 100.0,
        score.bytes_median,
        score.total
    );
    cand
}

/// A channel's score and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// `0.65 × timing + 0.35 × size` (0–1).
    pub total: f64,
    /// Timing part.
    pub timing: f64,
    /// Size part.
    pub size: f64,
    /// Time-weighted share of regular intervals.
    pub regular: f64,
    /// Median interval, ns.
    pub interval_median_ns: f64,
    /// Median absolute deviation of the intervals, ns.
    pub interval_mad_ns: f64,
    /// Median bytes sent per event.
    pub bytes_median: f64,
}

/// Scores events `(time_ns, bytes)`; `None` when the median interval is under
/// `min_interval_s` or there are fewer than three events.
#[must_use]
pub fn score(events: &VecDeque<(u64, u64)>, min_connections: u64, min_interval_s: f64) -> Option<Score> {
    let mut times: Vec<u64> = events.iter().map(|e| e.0).collect();
    times.sort_unstable();
    let intervals: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    let sizes: Vec<f64> = events.iter().map(|e| e.1 as f64).collect();
    if intervals.len() < 2 {
        return None;
    }
    let (i_med, i_mad, _) = stats(&intervals);
    if i_med < min_interval_s * 1e9 || i_med <= 0.0 {
        return None;
    }
    let total_time: f64 = intervals.iter().sum();
    let regular_time: f64 = intervals
        .iter()
        .filter(|&&i| {
            let k = (i / i_med).round();
            (1.0..=3.0).contains(&k) && (i - k * i_med).abs() <= 0.4 * i_med
        })
        .sum();
    let regular = if total_time > 0.0 { regular_time / total_time } else { 0.0 };
    let count = (events.len() as f64 / (2.0 * min_connections as f64)).min(1.0);
    // Up to 15 % of the median (±30 % uniform jitter) costs nothing; from there the score
    // falls to 0 at 65 %. Skewness is left out of timing: over the few intervals a sparse
    // beacon gives, it is mostly noise.
    let dispersion = (1.0 - 2.0 * (i_mad / i_med - 0.15).max(0.0)).clamp(0.0, 1.0);
    let timing = dispersion * (0.5 + 0.5 * regular) * (0.8 + 0.2 * count);
    let (s_med, s_mad, s_skew) = stats(&sizes);
    let small = 1.0 - (mode(&sizes) / 65_535.0).min(1.0);
    let size_mad = if s_med > 0.0 { (s_mad / s_med).min(1.0) } else { 0.0 };
    let size = ((1.0 - s_skew.abs()) + (1.0 - size_mad) + small) / 3.0;
    Some(Score {
        total: 0.65 * timing + 0.35 * size,
        timing,
        size,
        regular,
        interval_median_ns: i_med,
        interval_mad_ns: i_mad,
        bytes_median: s_med,
    })
}

/// Median, median absolute deviation and Bowley skewness of `v` (non-empty).
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| quantile(&s, p);
    let (q1, q2, q3) = (q(0.25), q(0.5), q(0.75));
    // As RITA does: no skew when the median sits on a quartile (most values
    // equal), which a handful of distinct sizes easily gives.
    let flat = (q2 - q1).abs() <= f64::EPSILON || (q3 - q2).abs() <= f64::EPSILON;
    let skew = if q3 - q1 > f64::EPSILON && !flat { (q1 + q3 - 2.0 * q2) / (q3 - q1) } else { 0.0 };
    let mut dev: Vec<f64> = s.iter().map(|x| (x - q2).abs()).collect();
    dev.sort_by(f64::total_cmp);
    (q2, quantile(&dev, 0.5), skew)
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = p * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi.min(sorted.len() - 1)] - sorted[lo]) * frac
}

fn mode(v: &[f64]) -> f64 {
    let mut counts: Vec<(u64, usize)> = Vec::new();
    for &x in v {
        let k = x as u64;
        match counts.iter_mut().find(|c| c.0 == k) {
            Some(c) => c.1 += 1,
            None => counts.push((k, 1)),
        }
    }
    counts.iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0))).map_or(0.0, |c| c.0 as f64)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(intervals_s: &[f64], bytes: &[u64]) -> VecDeque<(u64, u64)> {
        let mut t = 1_000_000_000_000u64;
        let mut out = VecDeque::new();
        for (i, b) in bytes.iter().enumerate() {
            out.push_back((t, *b));
            t += (intervals_s[i % intervals_s.len()] * 1e9) as u64;
        }
        out
    }

    fn jittered(period_s: f64, jitter: f64, n: usize, seed: u64) -> VecDeque<(u64, u64)> {
        let mut x = seed | 1;
        let mut t = 1_000_000_000_000u64;
        let mut out = VecDeque::new();
        for _ in 0..n {
            out.push_back((t, 1_500));
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 10_000) as f64 / 10_000.0;
            t += (period_s * (1.0 + jitter * (2.0 * u - 1.0)) * 1e9) as u64;
        }
        out
    }

    #[test]
    fn a_clock_like_beacon_scores_high() {
        let s = series(&[60.0], &[320; 20]);
        assert!(score(&s, 6, 1.0).expect("scored").total > 0.95);
    }

    #[test]
    fn a_beacon_with_thirty_percent_jitter_still_beacons() {
        for seed in 1..20 {
            let s = jittered(60.0, 0.3, 24, seed);
            let sc = score(&s, 6, 1.0).expect("scored");
            assert!(sc.total >= 0.8, "seed {seed}: {sc:?}");
        }
    }

    #[test]
    fn a_sparse_beacon_a_few_times_an_hour_beacons() {
        let s = jittered(1_200.0, 0.2, 10, 5);
        let sc = score(&s, 6, 1.0).expect("scored");
        assert!(sc.total >= 0.8, "{sc:?}");
    }

    #[test]
    fn irregular_browsing_scores_low() {
        let s = series(
            &[1.5, 40.0, 3.0, 300.0, 2.0, 1200.0, 7.0, 90.0, 1.2],
            &[500, 90_000, 1_200, 30_000, 800, 250_000, 4_000, 12_000, 600, 70_000],
        );
        assert!(score(&s, 6, 1.0).expect("scored").total < 0.6);
    }

    /// Bursts of quick regular connections (an application's keep-alives during a call),
    /// separated by long irregular pauses: regular within each burst, not a beacon.
    #[test]
    fn regular_bursts_separated_by_long_pauses_are_not_a_beacon() {
        let mut intervals = Vec::new();
        for pause in [300.0, 520.0, 410.0, 700.0, 350.0] {
            intervals.extend([6.1; 7]);
            intervals.push(pause);
        }
        let s = series(&intervals, &[2_000; 40]);
        let sc = score(&s, 6, 1.0).expect("scored");
        assert!(sc.total < 0.8, "{sc:?}");
        assert!(sc.regular < 0.3, "{sc:?}");
    }

    #[test]
    fn sub_second_bursts_are_not_scored() {
        assert!(score(&series(&[0.1], &[500; 20]), 6, 1.0).is_none());
    }

    #[test]
    fn ignore_patterns_match_first_labels_suffixes_and_names() {
        let p: Vec<String> = ["connectivity.", ".dns.google", "exact.example"].map(String::from).to_vec();
        assert!(ignored_name("connectivity.zorin-os.com", &p));
        assert!(ignored_name("dns.google", &p));
        assert!(ignored_name("8888.dns.google", &p));
        assert!(ignored_name("exact.example", &p));
        assert!(!ignored_name("notdns.google", &p));
        assert!(!ignored_name("c2.example", &p));
    }
}
