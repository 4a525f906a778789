//! `exfiltration`: a host sends the outside far more than it usually does, or a lot to a peer it
//! never talked to.
//!
//! Evaluated when a bucket closes, from the flow records accounted in it: interim records of
//! long flows are included (the flow table emits one every `flows.active_timeout`), so an upload
//! is judged while it runs. Rules, the strongest finding wins and names its rule, window and
//! thresholds in the evidence:
//!
//! | rule | window | fires when | floor |
//! |---|---|---|---|
//! | `new_peer_upload` | 10 min, 30 min, 6 h, 24 h | bytes to one peer new to the host ≥ `peer_factor` × the most the host sent before to a peer it had just met, in that window, clamped between `new_peer_min_bytes` and `new_peer_max_bytes` | 2, 5, 10, 20 MB |
//! | `peer_upload` | the same | bytes to one known peer ≥ `peer_factor` × that high, at least `known_peer_min_bytes`, and more than this hour of the day usually sees | 100, 200, 500, 1000 MB |
//! | `burst` | one bucket | bytes ≥ the host's band (capped, see below), at least `min_bytes`, and more than this hour of the day usually sees | 1 MB |
//! | `hour` | the sliding hour | bytes ≥ `hour_factor` × the second-highest earlier total of the same hour-of-day slot, at least `hour_min_bytes` | 20 MB |
//! | `slow` | 6 h, 24 h | bytes ≥ `slow_daily_factor` × the host's median daily total (24 h: its highest day), at least `slow_min_bytes` | 10, 25 MB |
//! | `learning_upload` | 30 min | a host still learning sent one peer ≥ `learning_min_bytes` | 50 MB |
//!
//! Per-peer windows count only the bytes of flows that looked like uploads, judged per flow
//! record: over UDP and other transports the bytes out at least `upload_ratio` times the bytes
//! in (a call's media is about even both ways), over TCP at least `tcp_upload_ratio` times (a
//! download sends back only acknowledgements, a few per cent, while a file share that reads and
//! writes, or an upload beside a download, still counts).
//!
//! **Why the floors are where they are.** One bucket of 1 MB: a host that usually sends 1 kB
//! must not alert at 10 kB. A new peer: 2 MB in 10 minutes is more than a web form, a mail
//! without attachment or any telemetry sends, and less than the smallest document upload worth
//! a look; 20 MB in 30 minutes to a new peer is always reported (`new_peer_max_bytes`), whatever
//! the host did before. A known peer needs 100 MB in 10 minutes: backups, syncs and uploads to a
//! host's usual services are daily business, and their novelty is what the rule above looks for.
//! The hour: 20 MB is more than an hour of busy browsing sends. Slow: 10 MB in 6 hours and 25 MB
//! in 24 hours keep hosts that send a few hundred kilobytes a day from alerting at a megabyte.
//!
//! **Bands that fit sparse hosts.** The bucket band is the baseline's (`sigma` standard
//! deviations of `ln(1 + bytes)` over the buckets where the host sent anything), but never above
//! `band_cap` times the host's typical active bucket unless the host really sent that much before
//! (its decayed bucket high, [`super::volume`]): a host idle most minutes cannot hide an upload
//! in a band 50 times above what it usually sends. The hour rule compares with the same clock
//! hour of earlier days of the same kind (weekday or weekend, in `detection.timezone`), idle
//! hours counting as zero, and takes the second-highest so a pattern must have happened twice
//! before it is normal: a nightly backup stops alerting after its second night, and the same
//! volume at 15:00 on a Sunday still alerts. `burst` and `peer_upload` defer to that hour-of-day
//! history, so what the hour rule has learned does not alert under them either.
//!
//! **No learning from a suspected episode.** A bucket is *suspect* when it is above its band,
//! or adds to a window already over its floor (any rule). The engine learns a suspect bucket at
//! `alert_weight`, and the highs here never take a suspect bucket's value: an upload in progress
//! cannot raise its own threshold.
//!
//! Data carried in DNS names counts as outbound bytes too (the names a host asks for, whatever
//! resolver it asks), and so does ICMP echo payload, as part of its flows.

pub mod peers;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::baseline::Metric;
use super::clock::SiteClock;
use super::host::HostState;
use super::names::NameCache;
use super::volume::{PEER_WINDOWS_S, VolumeHistory, median};
use super::{BucketCtx, Candidate, strength, transport_name};
use crate::alert::{Detector, LearningState};
use peers::{Novelty, Track};

const DESCRIPTION: &str =
    "A host sent the outside far more than it usually does, or a lot to a peer it never talked to.";

/// Names of the per-peer windows, in [`PEER_WINDOWS_S`] order.
pub const WINDOW_NAMES: [&str; 4] = ["10m", "30m", "6h", "24h"];

/// `[detection.exfiltration]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// `burst`: bytes out in one bucket below this never alert.
    pub min_bytes: u64,
    /// `burst`: the band never sits above this multiple of the host's typical active bucket,
    /// unless the host sent that much before.
    pub band_cap: f64,
    /// `hour`: floor of the sliding hour.
    pub hour_min_bytes: u64,
    /// `hour`: multiple of the slot's second-highest earlier hour.
    pub hour_factor: f64,
    /// `new_peer_upload`: floors for 10 min, 30 min, 6 h and 24 h.
    pub new_peer_min_bytes: [u64; 4],
    /// `new_peer_upload`: at or above these a new peer always alerts.
    pub new_peer_max_bytes: [u64; 4],
    /// `peer_upload`: floors for a known peer.
    pub known_peer_min_bytes: [u64; 4],
    /// Per-peer thresholds: multiple of the host's earlier single-peer high of the window.
    pub peer_factor: f64,
    /// Per-peer windows count a UDP (or other) flow's bytes when it sent at least this many
    /// times what it received (an upload, not a call: media flows are about even).
    pub upload_ratio: f64,
    /// The same for TCP flows (not a download, whose acknowledgements are a few per cent of
    /// what it receives).
    pub tcp_upload_ratio: f64,
    /// `slow`: floors for 6 h and 24 h.
    pub slow_min_bytes: [u64; 2],
    /// `slow`: multiples of the median daily total (6 h) and of the highest day (24 h).
    pub slow_daily_factor: [f64; 2],
    /// `learning_upload`: one peer in 30 minutes while the host learns.
    pub learning_min_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_bytes: 1_000_000,
            band_cap: 20.0,
            hour_min_bytes: 20_000_000,
            hour_factor: 2.0,
            new_peer_min_bytes: [2_000_000, 5_000_000, 10_000_000, 20_000_000],
            new_peer_max_bytes: [10_000_000, 20_000_000, 50_000_000, 100_000_000],
            known_peer_min_bytes: [100_000_000, 200_000_000, 500_000_000, 1_000_000_000],
            peer_factor: 3.0,
            upload_ratio: 4.0,
            tcp_upload_ratio: 0.25,
            slow_min_bytes: [10_000_000, 25_000_000],
            slow_daily_factor: [3.0, 2.0],
            learning_min_bytes: 50_000_000,
        }
    }
}

/// What the detector needs besides the host.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The site's clock (hour-of-day slots).
    pub clock: &'a SiteClock,
    /// Names DNS gave addresses.
    pub names: &'a NameCache,
}

/// The detector's verdict on one host's bucket.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The strongest finding, if any.
    pub finding: Option<Candidate>,
    /// The bucket is a candidate of some rule (learned at `alert_weight`).
    pub suspect: bool,
}

/// One rule's result.
#[derive(Debug, Clone)]
struct Hit {
    score: f64,
    rule: &'static str,
    window: &'static str,
    observed: f64,
    threshold: f64,
    floor: f64,
    peer: Option<IpAddr>,
}

/// Rules and their thresholds for one bucket.
struct Judge<'a> {
    s: &'a Settings,
    best: Option<Hit>,
    suspect: bool,
}

impl Judge<'_> {
    /// Takes `observed` against `threshold` (with `floor` below it): a hit at or above the
    /// threshold, and a suspect bucket from the floor on.
    fn check(
        &mut self,
        rule: &'static str,
        window: &'static str,
        observed: f64,
        threshold: f64,
        floor: f64,
        peer: Option<IpAddr>,
    ) {
        if observed >= floor {
            self.suspect = true;
        }
        if observed >= threshold && threshold > 0.0 {
            let score = strength(observed, threshold);
            if self.best.as_ref().is_none_or(|b| score > b.score) {
                self.best = Some(Hit { score, rule, window, observed, threshold, floor, peer });
            }
        }
    }
}

/// The second-highest of `v` (the highest when there is one value, 0 when none).
fn second_highest(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable_by(|a, b| b.cmp(a));
    s.get(1).or_else(|| s.first()).copied().unwrap_or(0)
}

/// Evaluates one host's bucket: finds the strongest rule, and says whether the bucket is
/// suspect. Updates the host's per-peer windows with the bucket (the caller learns afterwards).
pub fn evaluate(host: &mut HostState, ctx: &BucketCtx<'_>, env: Env<'_>) -> Verdict {
    let s = &ctx.settings.exfiltration;
    // Peers are followed whether or not the detector is on, so turning it on later finds windows.
    let now = ctx.end_ns;
    let baseline = &host.baseline;
    let touched = host.uploads.absorb(&host.bucket.peers, now, |ip, acc| {
        let named = env.names.get(ip);
        Novelty {
            new_addr: acc.new_addr,
            domain: named.map(|n| n.domain.clone()),
            domain_known: named
                .is_some_and(|n| baseline.domains_seen.contains(super::host::name_hash(&n.domain))),
            first_contact_ns: now,
        }
    });
    if !s.enabled {
        return Verdict::default();
    }
    let active = ctx.state == LearningState::Active;
    let b = &host.bucket;
    let hist = &host.baseline.volume;
    let mut j = Judge { s, best: None, suspect: false };

    // The hour of the day: what the same slot saw on earlier days.
    let slot = env.clock.slot(now);
    let earlier = hist.slot_totals(slot, |t| env.clock.slot(t));
    let slot_high = second_highest(&earlier) as f64;
    let hour_bytes = host.hour_out() as f64;
    // Within what this hour of the day has seen twice before: burst and known-peer volume defer.
    let hour_explained = earlier.len() >= 2 && hour_bytes <= j.s.hour_factor * slot_high;

    if active {
        // burst
        let base = host.baseline.metric(Metric::BytesOut);
        let band = base.band(ctx.settings.sigma);
        let high = hist.bucket_high.at(now);
        let cap = (s.band_cap * base.typical()).max(1.5 * high);
        let top = band[1].min(cap);
        let out = b.bytes_out as f64;
        if out > top {
            j.suspect = true;
        }
        if !hour_explained {
            j.check("burst", "bucket", out, top.max(s.min_bytes as f64), s.min_bytes as f64, None);
        }
        // hour
        let threshold = (s.hour_factor * slot_high).max(s.hour_min_bytes as f64);
        j.check("hour", "1h", hour_bytes, threshold, s.hour_min_bytes as f64, None);
        // slow: against the host's own days
        let days = hist.daily_totals();
        if !days.is_empty() {
            let med = median(&days) as f64;
            let top_day = days.iter().copied().max().unwrap_or(0) as f64;
            let w6 = hist.window(now, 6) as f64;
            let w24 = hist.window(now, 24) as f64;
            let [f6, f24] = s.slow_daily_factor;
            let [m6, m24] = s.slow_min_bytes.map(|v| v as f64);
            j.check("slow", "6h", w6, (f6 * med).max(m6), m6, None);
            j.check("slow", "24h", w24, (f24 * top_day).max(m24), m24, None);
        }
    }

    // Per-peer windows.
    for ip in &touched {
        let Some(t) = host.uploads.get(ip) else { continue };
        for (i, w) in PEER_WINDOWS_S.iter().enumerate() {
            let out_f = t.window(now, *w).upload as f64;
            if out_f <= 0.0 {
                continue;
            }
            if !active {
                if i == 1 && ctx.state == LearningState::Learning {
                    let floor = s.learning_min_bytes as f64;
                    j.check("learning_upload", WINDOW_NAMES[i], out_f, floor, floor, Some(*ip));
                }
                continue;
            }
            if t.novelty.is_new_for(now, *w) {
                let high = hist.new_peer_high[i].at(now);
                let floor = s.new_peer_min_bytes[i] as f64;
                let threshold = (s.peer_factor * high).clamp(floor, s.new_peer_max_bytes[i] as f64);
                j.check("new_peer_upload", WINDOW_NAMES[i], out_f, threshold, floor, Some(*ip));
            } else if !hour_explained {
                let high = hist.peer_high[i].at(now);
                let floor = s.known_peer_min_bytes[i] as f64;
                let threshold = (s.peer_factor * high).max(floor);
                j.check("peer_upload", WINDOW_NAMES[i], out_f, threshold, floor, Some(*ip));
            }
        }
    }

    let suspect = j.suspect;
    let finding = j.best.map(|hit| candidate(host, ctx, &hit, slot, slot_high, env));
    Verdict { finding, suspect }
}

/// After learning: the bucket high takes this bucket's value when it was not suspect; each
/// followed peer's window maxima grow with this bucket; a peer that has been quiet for
/// [`LEARN_AFTER_NS`] without ever being suspect hands its maxima to the host's per-peer highs
/// (so an upload never raises its own thresholds while it runs); and the domains of the bucket's
/// peers become known to the host.
pub fn learn(host: &mut HostState, ctx: &BucketCtx<'_>, env: Env<'_>, suspect: bool) {
    let now = ctx.end_ns;
    let s = &ctx.settings.exfiltration;
    let bytes_out = host.bucket.bytes_out;
    for ip in host.bucket.peers.keys() {
        let Some(t) = host.uploads.get_mut(ip) else { continue };
        for (i, w) in PEER_WINDOWS_S.iter().enumerate() {
            let up = t.window(now, *w).upload;
            t.max_windows[i] = t.max_windows[i].max(up);
            if t.novelty.is_new_for(now, *w) {
                t.max_new_windows[i] = t.max_new_windows[i].max(up);
            }
            let floor = if t.novelty.is_new_for(now, *w) {
                s.new_peer_min_bytes[i]
            } else {
                s.known_peer_min_bytes[i]
            };
            t.suspect |= up >= floor;
        }
    }
    let hist = &mut host.baseline.volume;
    for t in host.uploads.tracks_mut() {
        if t.learned || !t.quiet(now, LEARN_AFTER_NS) {
            continue;
        }
        t.learned = true;
        if t.suspect {
            continue;
        }
        for (high, v) in hist.peer_high.iter_mut().zip(t.max_windows) {
            high.offer(v as f64, now);
        }
        for (high, v) in hist.new_peer_high.iter_mut().zip(t.max_new_windows) {
            high.offer(v as f64, now);
        }
    }
    hist.add(now, bytes_out, suspect);
    if !suspect {
        hist.bucket_high.offer(bytes_out as f64, now);
    }
    for ip in host.bucket.peers.keys() {
        if let Some(named) = env.names.get(*ip) {
            host.baseline.domains_seen.insert(super::host::name_hash(&named.domain));
        }
    }
}

/// A benign or false-positive verdict on one of this detector's alerts: what it measured becomes
/// usual for the host. A per-peer rule offers the observed upload to the per-peer highs of its
/// window (the new-peer highs too for `new_peer_upload`); the bucket rules offer the bucket's
/// bytes (`bucket_bytes`, from the held bucket) to the bucket high. The hour-of-day slots keep the
/// hour marked as suspect: they learn from weeks of hours, and one hour's verdict does not move
/// them.
pub fn learn_benign(
    hist: &mut VolumeHistory,
    rule: &str,
    window: Option<&str>,
    observed: f64,
    bucket_bytes: Option<f64>,
    now_ns: u64,
) {
    let i = window.and_then(|w| WINDOW_NAMES.iter().position(|n| *n == w));
    match (rule, i) {
        ("peer_upload" | "learning_upload", Some(i)) => hist.peer_high[i].offer(observed, now_ns),
        ("new_peer_upload", Some(i)) => {
            hist.peer_high[i].offer(observed, now_ns);
            hist.new_peer_high[i].offer(observed, now_ns);
        }
        _ => {
            if let Some(b) = bucket_bytes {
                hist.bucket_high.offer(b, now_ns);
            }
        }
    }
}

/// How long a followed peer must be quiet before what the host sent it is learned as normal.
pub const LEARN_AFTER_NS: u64 = 1_800_000_000_000;

fn candidate(
    host: &HostState,
    ctx: &BucketCtx<'_>,
    hit: &Hit,
    slot: usize,
    slot_high: f64,
    env: Env<'_>,
) -> Candidate {
    let b = &host.bucket;
    let metric = match hit.rule {
        "new_peer_upload" | "peer_upload" | "learning_upload" => "bytes_out_peer",
        "hour" => "bytes_out_hour",
        "slow" => "bytes_out_window",
        _ => "bytes_out_bucket",
    };
    let mut cand =
        Candidate::new(Detector::Exfiltration, DESCRIPTION, ctx, metric, hit.observed, hit.threshold);
    cand.strength = hit.score;
    cand.confidence = match hit.rule {
        "new_peer_upload" => 0.85,
        "slow" | "learning_upload" => 0.7,
        _ => 0.75,
    };
    let window_s = match hit.window {
        "10m" => 600,
        "30m" => 1_800,
        "1h" => 3_600,
        "6h" => 21_600,
        "24h" => 86_400,
        _ => ctx.bucket_s(),
    };
    cand.evidence.window_start_ns = ctx.end_ns.saturating_sub(window_s * 1_000_000_000);
    let base = host.baseline.metric(Metric::BytesOut);
    if hit.rule == "burst" {
        cand.evidence.baseline_mean = Some(base.typical());
        cand.evidence.baseline_band = Some(base.band(ctx.settings.sigma));
    }
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(hit.rule));
    d.insert("window".into(), json!(hit.window));
    d.insert("floor".into(), json!(hit.floor));
    d.insert("bytes_out_bucket".into(), json!(b.bytes_out));
    d.insert("bytes_out_hour".into(), json!(host.hour_out()));
    d.insert("hour_of_day_slot".into(), json!(SiteClock::slot_name(slot)));
    d.insert("hour_of_day_usual".into(), json!(slot_high));
    d.insert("timezone".into(), json!(env.clock.name()));
    d.insert(
        "bytes_out_by_transport".into(),
        json!({ "tcp": b.out_by_transport[0], "udp": b.out_by_transport[1], "other": b.out_by_transport[2], "dns_names": b.dns_name_bytes }),
    );
    d.insert(
        "bytes_out_by_port_class".into(),
        json!({
            "well_known": b.out_by_port_class[0],
            "registered": b.out_by_port_class[1],
            "dynamic": b.out_by_port_class[2],
        }),
    );
    let peer_track = hit.peer.and_then(|ip| host.uploads.get(&ip).map(|t| (ip, t)));
    if let Some((ip, t)) = peer_track {
        peer_evidence(&mut cand, ip, t, ctx.end_ns);
    } else if let Some((ip, acc)) =
        b.peers.iter().max_by(|x, y| x.1.bytes_out.cmp(&y.1.bytes_out).then_with(|| y.0.cmp(x.0)))
    {
        // Host-level rules: name the bucket's largest peer.
        cand.peer = Some(*ip);
        cand.port = acc.port;
        cand.transport = transport_name(acc.proto);
        cand.evidence.community_ids = acc.flows.iter().map(|f| f.community_id()).collect();
        cand.evidence.details.insert("top_peer_bytes_out".into(), json!(acc.bytes_out));
    }
    let peer = cand.peer.map(|p| p.to_string()).unwrap_or_else(|| "-".to_owned());
    cand.message = format!(
        "{} sent {} to the outside within {} (threshold {}, rule {}){}",
        ctx.host,
        human_bytes(hit.observed as u64),
        hit.window,
        human_bytes(hit.threshold as u64),
        hit.rule,
        if hit.peer.is_some() { format!(", to {peer}") } else { format!("; largest peer {peer}") }
    );
    cand
}

fn peer_evidence(cand: &mut Candidate, ip: IpAddr, t: &Track, now: u64) {
    cand.peer = Some(ip);
    cand.port = t.port;
    cand.transport = transport_name(t.proto);
    cand.flow = (t.flows.len() == 1).then(|| t.flows[0]);
    cand.evidence.community_ids = t.flows.iter().map(|f| f.community_id()).collect();
    let windows: serde_json::Map<String, serde_json::Value> = PEER_WINDOWS_S
        .iter()
        .zip(WINDOW_NAMES)
        .map(|(w, name)| {
            let s = t.window(now, *w);
            (name.to_owned(), json!({ "bytes_uploaded": s.upload, "bytes_out": s.out, "bytes_in": s.inn }))
        })
        .collect();
    let d = &mut cand.evidence.details;
    d.insert("peer_windows".into(), serde_json::Value::Object(windows));
    d.insert(
        "peer_novelty".into(),
        json!({
            "new_address": t.novelty.new_addr,
            "domain": t.novelty.domain.as_deref(),
            "domain_known": t.novelty.domain_known,
            "new": t.novelty.is_new(),
            "first_contact": crate::alert::rfc3339(t.novelty.first_contact_ns),
            "followed_since": crate::alert::rfc3339(t.first_ns),
        }),
    );
}

/// `n` bytes as "1.5 MB".
#[must_use]
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}
