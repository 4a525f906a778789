//! Sweeps: one source reaching many addresses within seconds, by ICMP echo or
//! by broadcast ARP who-has, judged by the fan-out *rate*: distinct targets
//! within a sliding window of `sweep_window_s` seconds.
//!
//! No failure ratio is asked for: a ping sweep of a live subnet is answered
//! by most hosts, and ARP requests are seen without their replies. What is
//! kept as evidence instead: the share of echo targets that never answered,
//! how many targets followed their predecessor's address (sequential
//! addresses: nmap and arp-scan walk a subnet in order), and how many
//! requests went to a broadcast address (one request that reaches every host;
//! the hosts that answer it are counted as targets).
//!
//! Each (kind, source) keeps the targets first seen within the window, in
//! order, at most [`MAX_RING`] (a saturated window still counts as
//! [`MAX_RING`], far above any floor); at most `max_sources` sources are
//! followed, the rest counted in `dropped`. A window whose targets all aged
//! out is dropped when its bucket closes.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde_json::json;

use super::{DESCRIPTION, Settings};
use crate::alert::Detector;
use crate::detect::host::Map;
use crate::detect::{BucketCtx, Candidate, strength};

/// Targets remembered per window.
pub const MAX_RING: usize = 1_024;
/// Targets named in the evidence.
const SAMPLE: usize = 32;

/// What a sweep is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// ICMP or ICMPv6 echo requests.
    IcmpEcho,
    /// Broadcast ARP who-has.
    Arp,
}

impl Kind {
    fn rule(self) -> &'static str {
        match self {
            Self::IcmpEcho => "icmp_sweep",
            Self::Arp => "arp_sweep",
        }
    }
}

/// One source's sliding window of one kind.
#[derive(Debug, Clone, Default)]
struct Window {
    /// Targets in the order first seen within the window, with that time.
    ring: VecDeque<(u64, IpAddr)>,
    /// The ring's targets, and whether each answered (echo replies).
    members: Map<IpAddr, bool>,
    /// The last new target, for the sequential test.
    last: Option<IpAddr>,
    /// This bucket: the most targets the window held, and when.
    peak: usize,
    peak_start_ns: u64,
    peak_end_ns: u64,
    /// The targets of the window as it grew to its peak (a sample, sorted later).
    peak_sample: Vec<IpAddr>,
    /// This bucket: new targets, new targets that answered (echo), those
    /// whose address followed the previous one, requests to a broadcast
    /// address, requests seen.
    new_targets: u64,
    answered: u64,
    sequential: u64,
    broadcast: u64,
    requests: u64,
}

impl Window {
    fn note(&mut self, target: IpAddr, reply: bool, ts_ns: u64, window_ns: u64) {
        while let Some(&(t, old)) = self.ring.front() {
            if ts_ns.saturating_sub(t) <= window_ns {
                break;
            }
            self.ring.pop_front();
            self.members.remove(&old);
        }
        if !reply {
            self.requests += 1;
            if is_broadcast(target) {
                self.broadcast += 1;
                return;
            }
        }
        if let Some(answered) = self.members.get_mut(&target) {
            self.answered += u64::from(reply && !*answered);
            *answered |= reply;
            return;
        }
        if self.ring.len() >= MAX_RING {
            return;
        }
        self.ring.push_back((ts_ns, target));
        self.members.insert(target, reply);
        self.new_targets += 1;
        self.answered += u64::from(reply);
        if self.last.is_some_and(|prev| follows(prev, target)) {
            self.sequential += 1;
        }
        self.last = Some(target);
        if self.ring.len() > self.peak {
            self.peak = self.ring.len();
            self.peak_start_ns = self.ring.front().map_or(ts_ns, |f| f.0);
            self.peak_end_ns = ts_ns;
            if self.peak_sample.len() < SAMPLE {
                self.peak_sample.push(target);
            }
        }
    }
}

/// Whether `b` is the address right after `a`.
fn follows(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a).checked_add(1) == Some(u32::from(b)),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a).checked_add(1) == Some(u128::from(b)),
        _ => false,
    }
}

/// A broadcast or all-nodes address: the limited broadcast, an IPv4 address
/// ending in .255 (the broadcast of every /24 and wider), IPv6 multicast.
fn is_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.octets()[3] == 255,
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// Every source's sweep windows.
#[derive(Debug, Default)]
pub struct Sweeps {
    windows: Map<(IpAddr, Kind), Window>,
    /// Observations of sources not followed (table full).
    pub dropped: u64,
}

impl Sweeps {
    /// Accounts one echo request or reply, or one ARP request.
    pub fn note(
        &mut self,
        kind: Kind,
        source: IpAddr,
        target: IpAddr,
        reply: bool,
        ts_ns: u64,
        s: &Settings,
    ) {
        if source == target || source.is_unspecified() {
            return;
        }
        let key = (source, kind);
        if !self.windows.contains_key(&key) {
            // A reply to nobody followed is not a sweep's start.
            if reply || self.windows.len() >= Settings::cap(s.max_sources) {
                self.dropped += u64::from(!reply);
                return;
            }
        }
        let window_ns = Settings::window_ns(s.sweep_window_s);
        self.windows.entry(key).or_default().note(target, reply, ts_ns, window_ns);
    }

    /// Sources with a window.
    pub fn sources(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.windows.keys().map(|k| k.0)
    }

    /// The sweep findings of `source` in the bucket (one per kind at most).
    pub fn evaluate(&self, source: IpAddr, ctx: &BucketCtx<'_>) -> Vec<Candidate> {
        let s = &ctx.settings.scan;
        let mut found = Vec::new();
        for kind in [Kind::IcmpEcho, Kind::Arp] {
            let Some(w) = self.windows.get(&(source, kind)) else { continue };
            if (w.peak as u64) < s.sweep_min_targets {
                continue;
            }
            found.push(finding(source, kind, w, ctx));
        }
        found
    }

    /// Starts the next bucket: peaks reset, windows whose targets all aged out dropped.
    pub fn roll(&mut self, now_ns: u64, s: &Settings) {
        let window_ns = Settings::window_ns(s.sweep_window_s);
        self.windows.retain(|_, w| {
            w.peak = 0;
            w.peak_sample.clear();
            w.new_targets = 0;
            w.answered = 0;
            w.sequential = 0;
            w.broadcast = 0;
            w.requests = 0;
            w.ring.back().is_some_and(|(t, _)| now_ns.saturating_sub(*t) <= window_ns)
        });
    }
}

fn finding(source: IpAddr, kind: Kind, w: &Window, ctx: &BucketCtx<'_>) -> Candidate {
    let s = &ctx.settings.scan;
    let mut cand = Candidate::new(
        Detector::Scan,
        DESCRIPTION,
        ctx,
        "distinct_targets_in_window",
        w.peak as f64,
        s.sweep_min_targets as f64,
    );
    let sequential = w.sequential as f64 / w.new_targets.saturating_sub(1).max(1) as f64;
    cand.strength = strength(w.peak as f64, s.sweep_min_targets as f64);
    // Sequential addresses and broadcast requests are what tools do, not what
    // an application that happens to reach many hosts does.
    cand.confidence =
        0.7 + if sequential >= 0.5 { 0.1 } else { 0.0 } + if w.broadcast > 0 { 0.1 } else { 0.0 };
    cand.transport = match kind {
        Kind::IcmpEcho => Some(if source.is_ipv4() { "icmp" } else { "ipv6-icmp" }),
        Kind::Arp => None,
    };
    let mut sample = w.peak_sample.clone();
    sample.sort_unstable();
    let span_s = (w.peak_end_ns.saturating_sub(w.peak_start_ns)) as f64 / 1e9;
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(kind.rule()));
    d.insert("window_s".into(), json!(s.sweep_window_s));
    d.insert("peak_span_s".into(), json!((span_s * 1000.0).round() / 1000.0));
    d.insert("targets".into(), json!(sample.iter().map(ToString::to_string).collect::<Vec<_>>()));
    d.insert("new_targets".into(), json!(w.new_targets));
    d.insert("sequential_ratio".into(), json!((sequential * 1000.0).round() / 1000.0));
    d.insert("broadcast_requests".into(), json!(w.broadcast));
    d.insert("requests".into(), json!(w.requests));
    let what = match kind {
        Kind::IcmpEcho => {
            let unanswered = 1.0 - w.answered.min(w.new_targets) as f64 / w.new_targets.max(1) as f64;
            d.insert("unanswered_ratio".into(), json!((unanswered * 1000.0).round() / 1000.0));
            format!("pinged {} hosts", w.peak)
        }
        Kind::Arp => format!("asked ARP for {} addresses", w.peak),
    };
    cand.message = format!(
        "{source} {what} within {span_s:.1} s ({} sweep{})",
        if kind == Kind::Arp { "ARP" } else { "ICMP" },
        if sequential >= 0.5 { ", sequential addresses" } else { "" }
    );
    cand
}
