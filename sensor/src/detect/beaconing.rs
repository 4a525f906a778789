//! `beaconing`: a host connects to one destination at regular intervals with
//! regular sizes, as implants call home.
//!
//! A *channel* is (host, destination address, destination port, transport);
//! each new connection the host opens on it (the first record of a flow) adds
//! its start time and the bytes the host sent. When a bucket closes, every
//! channel that got new connections and holds at least `min_connections` is
//! scored in the manner of RITA:
//!
//! - timing: `1 − |Bowley skewness|` of the intervals, `1 − 2·MAD/median` of
//!   the intervals (stricter than RITA's `1 − MAD/median`: dispersion is what
//!   tells a timer from a person), and the connection count
//!   (`n / 2·min_connections`, at most 1);
//! - size: `1 − |Bowley skewness|` and `1 − MAD/median` of the bytes sent, and
//!   smallness (`1 − mode/65535`);
//! - the score is the mean of the timing and the size scores (0–1).
//!
//! A channel at or above `min_score` alerts. Intervals under one second are
//! not beacons (a page loading its resources is regular too), so a channel
//! whose median interval is below that is not scored. Ports in `ignore_ports`
//! (DNS, NTP) are periodic by design and never scored. Each host keeps at most
//! `max_channels_per_host` channels (when full, the least recently used half
//! is forgotten) and
//! each channel its last `history` connections.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde_json::json;

use super::host::{FlowRef, Map};
use super::{BucketCtx, Candidate, transport_name};
use crate::alert::Detector;
use crate::detect::config::Beaconing;

const DESCRIPTION: &str =
    "A host connects to one destination at regular intervals with regular sizes (beaconing).";

/// The shortest median interval scored.
const MIN_INTERVAL_NS: u64 = 1_000_000_000;

/// One channel's recent connections.
#[derive(Debug, Clone, Default)]
pub struct Channel {
    starts: VecDeque<(u64, u64)>,
    fresh: bool,
    last_ns: u64,
    flow: Option<FlowRef>,
}

/// Channel key: destination, port, transport.
pub type ChannelKey = (IpAddr, u16, u8);

/// Every channel of one host. A channel seen once waits in `once` (no
/// allocation of its own); its second connection makes it a [`Channel`].
#[derive(Debug, Clone, Default)]
pub struct HostChannels {
    once: Map<ChannelKey, (u64, u64)>,
    channels: Map<ChannelKey, Channel>,
}

/// Forgets the least recently used half of `map` (ties: the smaller key).
fn forget_older_half<V>(map: &mut Map<ChannelKey, V>, last: impl Fn(&V) -> u64) {
    let mut by_age: Vec<(u64, ChannelKey)> = map.iter().map(|(k, v)| (last(v), *k)).collect();
    by_age.sort_unstable();
    for (_, k) in by_age.iter().take(by_age.len().div_ceil(2)) {
        map.remove(k);
    }
}

impl HostChannels {
    /// Adds a connection opened at `start_ns` that sent `bytes`.
    pub fn connect(&mut self, flow: FlowRef, start_ns: u64, bytes: u64, s: &Beaconing) {
        let key = (flow.b.0, flow.b.1, flow.proto);
        let cap = usize::try_from(s.max_channels_per_host).unwrap_or(usize::MAX);
        // Full tables forget their older half at once, so a host with
        // endless new destinations costs O(1) per connection on average.
        let first = if self.channels.contains_key(&key) {
            None
        } else {
            match self.once.remove(&key) {
                Some(first) => Some(first),
                None => {
                    if self.once.len() >= cap {
                        forget_older_half(&mut self.once, |v| v.0);
                    }
                    self.once.insert(key, (start_ns, bytes));
                    return;
                }
            }
        };
        if first.is_some() && self.channels.len() >= cap {
            forget_older_half(&mut self.channels, |c| c.last_ns);
        }
        let ch = self.channels.entry(key).or_default();
        if let Some(first) = first {
            ch.starts.push_back(first);
            ch.last_ns = first.0;
        }
        ch.starts.push_back((start_ns, bytes));
        while ch.starts.len() > usize::try_from(s.history).unwrap_or(64) {
            ch.starts.pop_front();
        }
        ch.fresh = true;
        ch.last_ns = ch.last_ns.max(start_ns);
        ch.flow = Some(flow);
    }

    /// Scores the channels that got new connections; returns the findings.
    pub fn evaluate(&mut self, ctx: &BucketCtx<'_>) -> Vec<Candidate> {
        let s = &ctx.settings.beaconing;
        let mut out = Vec::new();
        let mut keys: Vec<ChannelKey> =
            self.channels.iter().filter(|(_, c)| c.fresh).map(|(k, _)| *k).collect();
        keys.sort();
        for key in keys {
            let Some(ch) = self.channels.get_mut(&key) else { continue };
            ch.fresh = false;
            if (ch.starts.len() as u64) < s.min_connections || s.ignore_ports.contains(&i64::from(key.1)) {
                continue;
            }
            let Some(score) = score(&ch.starts, s.min_connections) else { continue };
            if score.total < s.min_score {
                continue;
            }
            let mut cand = Candidate::new(
                Detector::Beaconing,
                DESCRIPTION,
                ctx,
                "beacon_score",
                score.total,
                s.min_score,
            );
            cand.peer = Some(key.0);
            cand.port = Some(key.1);
            cand.transport = transport_name(key.2);
            cand.strength = ((score.total - s.min_score) / (1.0 - s.min_score).max(0.01)).clamp(0.0, 1.0);
            cand.confidence = 0.75;
            if let Some(f) = ch.flow {
                cand.evidence.community_ids.push(f.community_id());
            }
            if let Some(&(first, _)) = ch.starts.front() {
                cand.evidence.window_start_ns = first;
            }
            let d = &mut cand.evidence.details;
            d.insert("connections".into(), json!(ch.starts.len()));
            d.insert("interval_median_s".into(), json!(round3(score.interval_median_ns / 1e9)));
            d.insert("interval_mad_s".into(), json!(round3(score.interval_mad_ns / 1e9)));
            d.insert("bytes_median".into(), json!(score.bytes_median));
            d.insert("timing_score".into(), json!(round3(score.timing)));
            d.insert("size_score".into(), json!(round3(score.size)));
            cand.message = format!(
                "{} connected to {}:{} {} times every {:.1} s (MAD {:.1} s), {} B each: beacon score {:.2}",
                ctx.host,
                key.0,
                key.1,
                ch.starts.len(),
                score.interval_median_ns / 1e9,
                score.interval_mad_ns / 1e9,
                score.bytes_median,
                score.total
            );
            out.push(cand);
        }
        out
    }
}

/// A channel's score and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Mean of timing and size (0–1).
    pub total: f64,
    /// Timing part.
    pub timing: f64,
    /// Size part.
    pub size: f64,
    /// Median interval, ns.
    pub interval_median_ns: f64,
    /// Median absolute deviation of the intervals, ns.
    pub interval_mad_ns: f64,
    /// Median bytes sent per connection.
    pub bytes_median: f64,
}

/// Scores connections `(start_ns, bytes)`; `None` when the median interval is
/// under a second.
#[must_use]
pub fn score(starts: &VecDeque<(u64, u64)>, min_connections: u64) -> Option<Score> {
    let mut times: Vec<u64> = starts.iter().map(|s| s.0).collect();
    times.sort_unstable();
    let intervals: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    let sizes: Vec<f64> = starts.iter().map(|s| s.1 as f64).collect();
    if intervals.len() < 2 {
        return None;
    }
    let (i_med, i_mad, i_skew) = stats(&intervals);
    if i_med < MIN_INTERVAL_NS as f64 {
        return None;
    }
    let (s_med, s_mad, s_skew) = stats(&sizes);
    let count = (starts.len() as f64 / (2.0 * min_connections as f64)).min(1.0);
    // Dispersion counts double against timing: a beacon's jitter is a small
    // share of its period (sleep 2–3.6 s is ±15 %), a person's is not.
    let timing = ((1.0 - i_skew.abs()) + (1.0 - (2.0 * i_mad / i_med).min(1.0)) + count) / 3.0;
    let mode = mode(&sizes);
    let small = 1.0 - (mode / 65_535.0).min(1.0);
    let size_mad = if s_med > 0.0 { (s_mad / s_med).min(1.0) } else { 0.0 };
    let size = ((1.0 - s_skew.abs()) + (1.0 - size_mad) + small) / 3.0;
    Some(Score {
        total: (timing + size) / 2.0,
        timing,
        size,
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

    #[test]
    fn a_clock_like_beacon_scores_high() {
        let s = series(&[60.0], &[320; 20]);
        let score = score(&s, 8).expect("scored");
        assert!(score.total > 0.95, "{score:?}");
    }

    #[test]
    fn a_jittered_beacon_still_scores_above_the_default() {
        let s = series(
            &[2.1, 3.4, 2.8, 2.3, 3.5, 2.9, 2.2, 3.1, 2.6, 3.3],
            &[1500, 1510, 1498, 1502, 1500, 1505, 1500, 1499, 1501, 1500, 1500, 1503],
        );
        assert!(score(&s, 8).expect("scored").total >= 0.8);
    }

    #[test]
    fn irregular_browsing_scores_low() {
        let s = series(
            &[1.5, 40.0, 3.0, 300.0, 2.0, 1200.0, 7.0, 90.0, 1.2],
            &[500, 90_000, 1_200, 30_000, 800, 250_000, 4_000, 12_000, 600, 70_000],
        );
        assert!(score(&s, 8).expect("scored").total < 0.6);
    }

    #[test]
    fn sub_second_bursts_are_not_scored() {
        let s = series(&[0.1], &[500; 20]);
        assert!(score(&s, 8).is_none());
    }
}
