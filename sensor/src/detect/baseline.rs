//! Per-host baselines: robust running statistics of log-scaled bucket values.
//!
//! Each metric keeps an exponentially weighted mean and variance of
//! `ln(1 + x)` over the buckets where it was not zero, so a host that sends 1 kB and one that sends 1 GB per bucket
//! are judged on the same scale and one huge bucket cannot blow the variance
//! up for weeks. The first buckets use a cumulative mean (weight `1/n`) until
//! `1/n` falls to `alpha`, so a short learning period still gives a sensible
//! mean. A bucket that raised an alert is learned with a reduced weight
//! (`alert_weight`), so an attacker cannot teach the baseline his traffic
//! quickly (poisoning guard). A floor on the standard deviation
//! ([`MIN_SD`]) keeps a perfectly regular host from alerting on noise.
//!
//! Lifecycle: *learning* until the host has been observed for the learning
//! period and for enough buckets; then *active*; *stale* when its last learned
//! bucket is older than `stale_after` (it then re-learns for half the
//! buckets before it is trusted again). Only active baselines are used for
//! deviation rules; learning and stale hosts get the absolute floors alone.

use serde::{Deserialize, Serialize};

use super::seen::{Seen, addr_key};
use super::volume::VolumeHistory;
use crate::alert::LearningState;

/// Smallest standard deviation assumed, in natural-log units (a factor of
/// about 1.65 either side).
pub const MIN_SD: f64 = 0.5;

/// The metrics a host's baseline tracks, one value per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Metric {
    /// IP bytes sent to outside peers.
    BytesOut,
    /// IP bytes received from outside peers.
    BytesIn,
    /// Packets sent to outside peers.
    PacketsOut,
    /// Packets received from outside peers.
    PacketsIn,
    /// Distinct outside peers.
    Peers,
    /// Distinct destination ports the host connected to.
    DstPorts,
    /// Outside peers never seen before.
    NewPeers,
    /// DNS queries sent.
    DnsQueries,
    /// Distinct names queried.
    DnsUniqueNames,
    /// Mean query name length.
    DnsNameLength,
    /// Mean Shannon entropy of the names' leftmost labels (bits per character).
    DnsEntropy,
    /// ICMP echo payload bytes.
    IcmpBytes,
    /// Connections the host opened.
    Connections,
    /// Connections the host opened that failed.
    FailedConnections,
    /// Malformed or evasive packets sent.
    Malformed,
    /// IP bytes sent to outside peers over the last hour (sliding).
    BytesOutHour,
    /// Bytes sent to outside peers over TCP.
    BytesOutTcp,
    /// Bytes sent to outside peers over UDP.
    BytesOutUdp,
    /// Bytes sent to outside peers over any other transport (ICMP, GRE, ESP...).
    BytesOutOther,
    /// Bytes sent to outside services on well-known ports (below 1024).
    BytesOutWellKnown,
    /// Bytes sent to outside services on registered ports (1024–49151).
    BytesOutRegistered,
    /// Bytes sent to outside services on dynamic ports (49152 and above).
    BytesOutDynamic,
}

impl Metric {
    /// Number of metrics.
    pub const COUNT: usize = 22;

    /// Every metric, in storage order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::BytesOut,
        Self::BytesIn,
        Self::PacketsOut,
        Self::PacketsIn,
        Self::Peers,
        Self::DstPorts,
        Self::NewPeers,
        Self::DnsQueries,
        Self::DnsUniqueNames,
        Self::DnsNameLength,
        Self::DnsEntropy,
        Self::IcmpBytes,
        Self::Connections,
        Self::FailedConnections,
        Self::Malformed,
        Self::BytesOutHour,
        Self::BytesOutTcp,
        Self::BytesOutUdp,
        Self::BytesOutOther,
        Self::BytesOutWellKnown,
        Self::BytesOutRegistered,
        Self::BytesOutDynamic,
    ];

    /// The metric's name in evidence and in `baseline show`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::BytesOut => "bytes_out",
            Self::BytesIn => "bytes_in",
            Self::PacketsOut => "packets_out",
            Self::PacketsIn => "packets_in",
            Self::Peers => "peers",
            Self::DstPorts => "dst_ports",
            Self::NewPeers => "new_peers",
            Self::DnsQueries => "dns_queries",
            Self::DnsUniqueNames => "dns_unique_names",
            Self::DnsNameLength => "dns_name_length",
            Self::DnsEntropy => "dns_entropy",
            Self::IcmpBytes => "icmp_bytes",
            Self::Connections => "connections",
            Self::FailedConnections => "failed_connections",
            Self::Malformed => "malformed_packets",
            Self::BytesOutHour => "bytes_out_hour",
            Self::BytesOutTcp => "bytes_out_tcp",
            Self::BytesOutUdp => "bytes_out_udp",
            Self::BytesOutOther => "bytes_out_other_transport",
            Self::BytesOutWellKnown => "bytes_out_well_known_ports",
            Self::BytesOutRegistered => "bytes_out_registered_ports",
            Self::BytesOutDynamic => "bytes_out_dynamic_ports",
        }
    }
}

/// The weight of the `n`th value learned into an exponentially weighted mean: the plain mean's
/// (`1 / n`) while that is larger than the base weight `alpha`, then `alpha`, scaled by
/// `weight` (1 for a normal bucket, less for one that alerted). Every learned baseline of the
/// detectors (host metrics, outlier distributions, flood and DHCP peaks) steps with it.
#[must_use]
pub fn learn_weight(n: u32, alpha: f64, weight: f64) -> f64 {
    (1.0 / f64::from(n.max(1))).max(alpha) * weight
}

/// Exponentially weighted mean and variance of `ln(1 + x)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// Updates so far.
    pub n: u32,
    /// Mean of `ln(1 + x)`.
    pub mean: f64,
    /// Variance of `ln(1 + x)`.
    pub var: f64,
}

impl Ewma {
    /// Learns `x` with the given base weight `alpha`, scaled by `weight` (1 for
    /// a normal bucket, less for one that alerted).
    pub fn update(&mut self, x: f64, alpha: f64, weight: f64) {
        let y = x.max(0.0).ln_1p();
        self.n = self.n.saturating_add(1);
        let a = learn_weight(self.n, alpha, weight);
        if self.n == 1 && weight >= 1.0 {
            self.mean = y;
            self.var = 0.0;
            return;
        }
        let d = y - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
    }

    /// The standard deviation, never below [`MIN_SD`].
    #[must_use]
    pub fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt().max(MIN_SD)
    }

    /// How many standard deviations `x` lies above the mean (log scale).
    #[must_use]
    pub fn z(&self, x: f64) -> f64 {
        (x.max(0.0).ln_1p() - self.mean) / self.sd()
    }

    /// The mean, back on the linear scale (a geometric mean of sorts).
    #[must_use]
    pub fn typical(&self) -> f64 {
        self.mean.exp_m1()
    }

    /// The normal band `[low, high]` on the linear scale, `sigma` wide.
    #[must_use]
    pub fn band(&self, sigma: f64) -> [f64; 2] {
        let sd = self.sd();
        [(self.mean - sigma * sd).exp_m1().max(0.0), (self.mean + sigma * sd).exp_m1()]
    }
}

/// One host's baseline and lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostBaseline {
    /// First bucket learned, ns since the epoch.
    pub first_ns: u64,
    /// Last bucket learned, ns since the epoch.
    pub last_ns: u64,
    /// Buckets learned.
    pub buckets: u32,
    /// Buckets still to learn after the host went stale.
    pub relearn: u32,
    /// One EWMA per [`Metric`], in [`Metric::ALL`] order.
    pub metrics: Vec<Ewma>,
    /// Outside peers the host talked to (see [`super::seen`]: bounded, forgets after a while).
    #[serde(default)]
    pub peers_seen: Seen,
    /// Registered domains of the peers it sent anything to (names from DNS answers).
    #[serde(default)]
    pub domains_seen: Seen,
    /// Outbound volume by the hour over two weeks, and the highs (see [`super::volume`]).
    #[serde(default)]
    pub volume: VolumeHistory,
    /// Its own feature distribution and peer group (`host_outlier`, [`super::outlier`]).
    #[serde(default)]
    pub outlier: super::outlier::HostModel,
    /// The administrative pairs it has used (`lateral_movement`, [`super::lateral`]).
    #[serde(default)]
    pub admin_pairs: super::lateral::AdminPairs,
    /// The services it serves and whether it opens connections ([`super::role`]).
    #[serde(default)]
    pub role: super::role::Role,
    /// Buckets that raised an alert, waiting for a verdict before they are learned (see
    /// [`super::verdict`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldBucket>,
    /// Held buckets learned at full weight after a benign verdict.
    #[serde(default)]
    pub verdict_learned: u32,
    /// Held buckets kept out of the baseline after a true-positive verdict.
    #[serde(default)]
    pub verdict_excluded: u32,
}

/// A bucket held for a verdict: its end and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldBucket {
    /// End of the bucket, ns (an alert's evidence window ends here).
    pub end_ns: u64,
    /// Its values, in [`Metric::ALL`] order.
    pub values: Vec<f64>,
}

/// Buckets a host holds at most; beyond it the oldest is learned at the guard weight at once.
pub const MAX_HELD: usize = 64;

/// What the lifecycle needs from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// Observed data needed, ns.
    pub learning_ns: u64,
    /// Buckets needed.
    pub min_buckets: u32,
    /// A baseline older than this is stale, ns.
    pub stale_ns: u64,
}

impl HostBaseline {
    /// An empty baseline.
    #[must_use]
    pub fn new(now_ns: u64) -> Self {
        Self {
            first_ns: now_ns,
            last_ns: now_ns,
            buckets: 0,
            relearn: 0,
            metrics: vec![Ewma::default(); Metric::COUNT],
            peers_seen: Seen::default(),
            domains_seen: Seen::default(),
            volume: VolumeHistory::default(),
            outlier: super::outlier::HostModel::default(),
            admin_pairs: super::lateral::AdminPairs::default(),
            role: super::role::Role::default(),
            held: Vec::new(),
            verdict_learned: 0,
            verdict_excluded: 0,
        }
    }

    /// The baseline's state for a bucket ending at `now_ns`.
    #[must_use]
    pub fn state(&self, now_ns: u64, life: &Lifecycle) -> LearningState {
        if self.buckets > 0 && now_ns.saturating_sub(self.last_ns) > life.stale_ns {
            LearningState::Stale
        } else if self.buckets < life.min_buckets
            || self.last_ns.saturating_sub(self.first_ns) < life.learning_ns
            || self.relearn > 0
        {
            LearningState::Learning
        } else {
            LearningState::Active
        }
    }

    /// The EWMA of `m`.
    #[must_use]
    pub fn metric(&self, m: Metric) -> Ewma {
        self.metrics.get(m as usize).copied().unwrap_or_default()
    }

    /// Learns one bucket's values (in [`Metric::ALL`] order), with `weight`.
    pub fn learn(
        &mut self,
        values: &[f64; Metric::COUNT],
        now_ns: u64,
        alpha: f64,
        weight: f64,
        life: &Lifecycle,
    ) {
        self.note_bucket(now_ns, life);
        self.learn_values(values, alpha, weight);
    }

    /// Counts one bucket ending at `now_ns` towards the lifecycle, without learning its values.
    fn note_bucket(&mut self, now_ns: u64, life: &Lifecycle) {
        if self.state(now_ns, life) == LearningState::Stale {
            self.relearn = life.min_buckets.div_ceil(2);
        } else {
            self.relearn = self.relearn.saturating_sub(1);
        }
        self.buckets = self.buckets.saturating_add(1);
        self.last_ns = now_ns;
    }

    fn learn_values(&mut self, values: &[f64], alpha: f64, weight: f64) {
        if self.metrics.len() != Metric::COUNT {
            self.metrics.resize(Metric::COUNT, Ewma::default());
        }
        for (ewma, &x) in self.metrics.iter_mut().zip(values) {
            // Zero buckets are not learned: the question a detector asks is
            // "when this host does it, how much", and mixing idle buckets in
            // would widen the band of any host that is idle half the time
            // until nothing could leave it.
            if x > 0.0 {
                ewma.update(x, alpha, weight);
            }
        }
    }

    /// Counts a bucket that raised an alert and holds its values for a verdict; over
    /// [`MAX_HELD`] the oldest held bucket is learned at `guard_weight` at once.
    pub fn hold(&mut self, values: &[f64; Metric::COUNT], now_ns: u64, life: &Lifecycle, guard: (f64, f64)) {
        self.note_bucket(now_ns, life);
        if self.held.len() >= MAX_HELD {
            let oldest = self.held.remove(0);
            self.learn_values(&oldest.values, guard.0, guard.1);
        }
        self.held.push(HeldBucket { end_ns: now_ns, values: values.to_vec() });
    }

    /// Learns, at the guard weight (`guard`: alpha and weight), the held buckets that ended
    /// `hold_ns` or more before `now_ns` without a verdict.
    pub fn release_held(&mut self, now_ns: u64, hold_ns: u64, guard: (f64, f64)) {
        while let Some(first) = self.held.first()
            && now_ns.saturating_sub(first.end_ns) >= hold_ns
        {
            let b = self.held.remove(0);
            self.learn_values(&b.values, guard.0, guard.1);
        }
    }

    /// Settles the held bucket that ended at `end_ns` after a verdict: learned at full weight
    /// (`benign`) or kept out for good. Returns its values when one was held.
    pub fn settle(&mut self, end_ns: u64, benign: bool, alpha: f64) -> Option<Vec<f64>> {
        let i = self.held.iter().position(|b| b.end_ns == end_ns)?;
        let b = self.held.remove(i);
        if benign {
            self.learn_values(&b.values, alpha, 1.0);
            self.verdict_learned = self.verdict_learned.saturating_add(1);
        } else {
            self.verdict_excluded = self.verdict_excluded.saturating_add(1);
        }
        Some(b.values)
    }

    /// Whether `peer` was seen before; remembers it.
    pub fn note_peer(&mut self, peer: std::net::IpAddr) -> bool {
        self.peers_seen.insert(addr_key(peer))
    }
}

/// A host's baseline as `baseline show` prints it.
#[must_use]
pub fn describe(host: std::net::IpAddr, b: &HostBaseline, saved_at_ns: u64) -> serde_json::Value {
    let metrics: serde_json::Map<String, serde_json::Value> = Metric::ALL
        .iter()
        .map(|m| {
            let e = b.metric(*m);
            let band = e.band(4.0);
            (
                m.name().to_owned(),
                serde_json::json!({
                    "typical": round(e.typical()),
                    "band_4sd": [round(band[0]), round(band[1])],
                    "log_mean": round(e.mean),
                    "log_sd": round(e.sd()),
                    "buckets": e.n,
                }),
            )
        })
        .collect();
    serde_json::json!({
        "host": host,
        "first_learned": crate::alert::rfc3339(b.first_ns),
        "last_learned": crate::alert::rfc3339(b.last_ns),
        "snapshot_at": crate::alert::rfc3339(saved_at_ns),
        "buckets_learned": b.buckets,
        "relearn_buckets_left": b.relearn,
        "remembers_outside_peers": !b.peers_seen.is_empty(),
        "hourly_history_hours": b.volume.hours.len(),
        "daily_totals_bytes": b.volume.daily_totals(),
        "metrics": metrics,
    })
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFE: Lifecycle =
        Lifecycle { learning_ns: 600_000_000_000, min_buckets: 10, stale_ns: 86_400_000_000_000 };

    #[test]
    fn a_steady_host_has_a_tight_band_and_a_burst_stands_out() {
        let mut e = Ewma::default();
        for i in 0..200 {
            e.update(1_000.0 + f64::from(i % 7) * 50.0, 0.01, 1.0);
        }
        assert!((e.typical() - 1_150.0).abs() < 150.0, "typical {}", e.typical());
        assert!(e.z(5_000.0) < 4.0, "a 5x bucket is within 4 sd given the sd floor");
        assert!(e.z(1_000_000.0) > 8.0);
        let [lo, hi] = e.band(4.0);
        assert!(lo < 1_000.0 && hi > 5_000.0 && hi < 10_000.0, "band {lo}..{hi}");
    }

    #[test]
    fn alerting_buckets_barely_move_the_mean() {
        let mut normal = Ewma::default();
        for _ in 0..100 {
            normal.update(1_000.0, 0.01, 1.0);
        }
        let mut poisoned = normal;
        poisoned.update(1e9, 0.01, 0.1);
        normal.update(1e9, 0.01, 1.0);
        assert!(poisoned.mean < normal.mean);
        assert!(poisoned.typical() < 1_300.0);
    }

    #[test]
    fn lifecycle_goes_learning_active_stale() {
        let mut b = HostBaseline::new(0);
        let values = [1.0; Metric::COUNT];
        let minute = 60_000_000_000;
        for i in 1..=9 {
            b.learn(&values, i * minute, 0.01, 1.0, &LIFE);
        }
        assert_eq!(b.state(10 * minute, &LIFE), LearningState::Learning);
        b.learn(&values, 10 * minute, 0.01, 1.0, &LIFE);
        assert_eq!(b.state(11 * minute, &LIFE), LearningState::Active);
        assert_eq!(b.state(10 * minute + 2 * LIFE.stale_ns, &LIFE), LearningState::Stale);
        b.learn(&values, 10 * minute + 2 * LIFE.stale_ns, 0.01, 1.0, &LIFE);
        assert_eq!(b.state(10 * minute + 2 * LIFE.stale_ns + minute, &LIFE), LearningState::Learning);
    }

    #[test]
    fn known_peers_are_remembered() {
        let mut b = HostBaseline::new(0);
        let (a, c) = (std::net::IpAddr::from([192, 0, 2, 7]), std::net::IpAddr::from([192, 0, 2, 3]));
        assert!(!b.note_peer(a));
        assert!(b.note_peer(a));
        assert!(!b.note_peer(c));
    }
}
