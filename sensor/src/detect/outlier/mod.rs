//! `host_outlier`: a host whose bucket lies far from both its own learned behaviour and its
//! peer group's, learned without labels. No rule names what it does; it is simply unlike itself
//! and unlike the hosts it resembles.
//!
//! Each bucket, every active inside host gets a vector of [`features::F`] features
//! ([`features::Feature`]: bytes in and out, outside peers and new ones, destination ports,
//! connections and failures, DNS queries and names, the protocol and port mix, ICMP, inside
//! fan-out, administrative connections, clients served). Its bucket is scored against two
//! [`dist::Dist`]ributions of `ln(1 + x)`: the host's own (every active bucket it had) and its
//! peer group's (every active bucket its group's members had; groups in [`groups`]). Per
//! feature, the deviation that counts is the smaller of the two z-scores, above the mean only:
//! what is ordinary for the host *or* for hosts like it is not an outlier, and a host that goes
//! quiet is not one either. The alert fires when one feature is at least `sigma` standard
//! deviations out on both counts and the root of the summed squares of every feature two or
//! more out reaches `min_score`. It names the features that contributed most, each with its
//! value and the ranges its own history and its group expect (`sigma` wide).
//!
//! Preconditions, so that a young or lone host is never an outlier of noise: the host's
//! baseline is active (the learning period is over), its own distribution holds `min_buckets`
//! buckets, and its group has `min_group_hosts` members and `min_buckets` buckets learned. A
//! network of one or two inside hosts has no peer groups, and the detector stays silent there.
//!
//! A bucket that raised any alert is learned at `alert_weight` (like the baselines), so an
//! episode does not teach either distribution its own traffic. Memory: a distribution per host
//! (four vectors of [`features::F`] numbers, about 600 bytes) and at most `max_groups` groups;
//! both are saved with the baselines (`HostBaseline::outlier`, `State::peer_groups`).

pub mod dist;
pub mod features;
pub mod groups;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::{HostState, Map};
use super::{BucketCtx, Candidate};
use crate::alert::{Detector, LearningState};
use dist::Dist;
use features::{F, Feature};
use groups::Group;

const DESCRIPTION: &str =
    "The host behaved unlike its own history and unlike its peer group (unsupervised outlier).";
/// Features named in an alert, at most.
const MAX_REPORTED: usize = 3;
/// Features at least this many standard deviations out count toward the score.
const COUNTED: f64 = 2.0;

/// `[detection.host_outlier]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// Standard deviations (log scale) one feature must lie above both the host's and its
    /// group's mean.
    pub sigma: f64,
    /// Root of the summed squares of every feature two or more deviations out, at least.
    pub min_score: f64,
    /// Smallest standard deviation assumed, in `ln` units.
    pub sd_floor: f64,
    /// EWMA weight of a new bucket in the host's and the groups' distributions.
    pub alpha: f64,
    /// Buckets a host's (and a group's) distribution needs before it is used.
    pub min_buckets: i64,
    /// Peer groups at most.
    pub max_groups: i64,
    /// RMS distance (`ln` units) from every group beyond which a host founds a new one.
    pub group_radius: f64,
    /// Members a group needs before it is compared with.
    pub min_group_hosts: i64,
    /// How often the groups are recomputed, seconds.
    pub regroup_interval_s: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            sigma: 4.0,
            min_score: 6.0,
            sd_floor: 0.75,
            alpha: 0.01,
            min_buckets: 60,
            max_groups: 16,
            group_radius: 1.0,
            min_group_hosts: 3,
            regroup_interval_s: 3_600,
        }
    }
}

impl Settings {
    /// Range checks, naming the key.
    pub(crate) fn validate(&self, c: &super::config::Check<'_>) -> Result<(), crate::config::ConfigError> {
        c.float("host_outlier.sigma", self.sigma, 1.0, 50.0)?;
        c.float("host_outlier.min_score", self.min_score, 1.0, 100.0)?;
        c.float("host_outlier.sd_floor", self.sd_floor, 0.05, 5.0)?;
        c.float("host_outlier.alpha", self.alpha, 0.0001, 0.5)?;
        c.int("host_outlier.min_buckets", self.min_buckets, 1, 1_000_000, "")?;
        c.int("host_outlier.max_groups", self.max_groups, 1, 256, "")?;
        c.float("host_outlier.group_radius", self.group_radius, 0.05, 20.0)?;
        c.int("host_outlier.min_group_hosts", self.min_group_hosts, 2, 1_000_000, "")?;
        c.int("host_outlier.regroup_interval_s", self.regroup_interval_s, 60, 30 * 86_400, "seconds")?;
        Ok(())
    }

    /// `min_buckets` as a count.
    #[must_use]
    pub fn min_buckets(&self) -> u32 {
        u32::try_from(self.min_buckets).unwrap_or(u32::MAX)
    }
}

/// A host's part: its own distribution and its group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostModel {
    /// Its own distribution.
    pub dist: Dist,
    /// Its peer group, once grouped.
    pub group: Option<u16>,
}

/// One feature's standing in a bucket.
#[derive(Debug, Clone, Copy)]
struct Standing {
    feature: Feature,
    value: f64,
    own_z: f64,
    group_z: f64,
    /// The deviation that counts: the smaller z, not below 0.
    counts: f64,
}

/// The group a host can be compared with, if it is ready.
#[must_use]
pub fn usable_group<'a>(model: &HostModel, groups: &'a groups::Groups, s: &Settings) -> Option<&'a Group> {
    let g = groups.get(model.group?)?;
    let enough = i64::from(g.members) >= s.min_group_hosts && g.dist.ready(s.min_buckets());
    enough.then_some(g)
}

/// Learns the bucket whose raw features are `x` into the host's distribution and its group's,
/// at `weight` (the guard weight for a bucket that raised an alert).
pub fn learn(x: &[f64; F], model: &mut HostModel, groups: &mut groups::Groups, s: &Settings, weight: f64) {
    let y = features::logs(x);
    model.dist.learn(x, &y, s.alpha, weight);
    if let Some(g) = model.group.and_then(|id| groups.get_mut(id)) {
        // Every member feeds its group each bucket: the group's memory is as long as a host's
        // when its weight is shared among its members.
        g.dist.learn(x, &y, s.alpha / f64::from(g.members.max(1)), weight);
    }
}

/// Recomputes the peer groups every `regroup_interval_s` of packet time (every ten buckets of
/// `bucket_ns` while there are none yet), over the hosts whose own distribution is ready, in
/// address order; sets each host's group.
pub fn regroup_if_due(
    groups: &mut groups::Groups,
    hosts: &mut Map<IpAddr, HostState>,
    s: &Settings,
    bucket_ns: u64,
    now_ns: u64,
) {
    let every = if groups.groups.is_empty() {
        10 * bucket_ns
    } else {
        u64::try_from(s.regroup_interval_s).unwrap_or(0).saturating_mul(1_000_000_000)
    };
    if !s.enabled || now_ns.saturating_sub(groups.last_pass_ns) < every {
        return;
    }
    groups.last_pass_ns = now_ns;
    let min = s.min_buckets();
    let mut ips: Vec<IpAddr> =
        hosts.iter().filter(|(_, h)| h.baseline.outlier.dist.ready(min)).map(|(ip, _)| *ip).collect();
    if (ips.len() as u64) < u64::try_from(s.min_group_hosts).unwrap_or(u64::MAX) {
        return;
    }
    ips.sort_unstable();
    let pass = groups::PassSettings {
        max_groups: usize::try_from(s.max_groups).unwrap_or(1),
        radius: s.group_radius,
    };
    let profiles: Vec<(IpAddr, &Dist)> =
        ips.iter().filter_map(|ip| hosts.get(ip).map(|h| (*ip, &h.baseline.outlier.dist))).collect();
    let ids = groups.pass(&profiles, pass);
    for (ip, id) in ips.iter().zip(ids) {
        if let Some(h) = hosts.get_mut(ip) {
            h.baseline.outlier.group = Some(id);
        }
    }
}

/// The host's finding for the bucket whose raw features are `x`, if it is an outlier.
#[must_use]
pub fn evaluate(
    x: &[f64; F],
    model: &HostModel,
    group: Option<&Group>,
    ctx: &BucketCtx<'_>,
) -> Option<Candidate> {
    let s = &ctx.settings.host_outlier;
    if !s.enabled || ctx.state != LearningState::Active || !model.dist.ready(s.min_buckets()) {
        return None;
    }
    let group = group?;
    let y = features::logs(x);
    let mut standing: Vec<Standing> = Feature::ALL
        .iter()
        .map(|&f| {
            let i = f as usize;
            let own_z = model.dist.z(i, y[i], s.sd_floor);
            let group_z = group.dist.z(i, y[i], s.sd_floor);
            Standing { feature: f, value: x[i], own_z, group_z, counts: own_z.min(group_z).max(0.0) }
        })
        .collect();
    standing
        .sort_by(|a, b| b.counts.total_cmp(&a.counts).then((a.feature as usize).cmp(&(b.feature as usize))));
    let top = standing.first()?;
    let score =
        standing.iter().filter(|st| st.counts >= COUNTED).map(|st| st.counts * st.counts).sum::<f64>().sqrt();
    if top.counts < s.sigma || score < s.min_score {
        return None;
    }
    let reported: Vec<&Standing> =
        standing.iter().filter(|st| st.counts >= COUNTED).take(MAX_REPORTED).collect();
    let mut cand =
        Candidate::new(Detector::HostOutlier, DESCRIPTION, ctx, "outlier_score", score, s.min_score);
    cand.strength = super::strength(score, s.min_score).max(0.2);
    let beyond = standing.iter().filter(|st| st.counts >= s.sigma).count();
    cand.confidence = if beyond >= 2 { 0.65 } else { 0.55 };
    let ti = top.feature as usize;
    cand.evidence.baseline_mean = Some(model.dist.mean.get(ti).copied().unwrap_or(0.0).exp_m1());
    cand.evidence.baseline_band = Some(model.dist.range(ti, s.sigma, s.sd_floor));
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let detail: Vec<serde_json::Value> = reported
        .iter()
        .map(|st| {
            let i = st.feature as usize;
            let own = model.dist.range(i, s.sigma, s.sd_floor);
            let grp = group.dist.range(i, s.sigma, s.sd_floor);
            json!({
                "feature": st.feature.name(),
                "value": st.value,
                "expected_own": [round(own[0]), round(own[1])],
                "expected_group": [round(grp[0]), round(grp[1])],
                "own_z": round(st.own_z),
                "group_z": round(st.group_z),
            })
        })
        .collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("own_and_peer_group"));
    d.insert("top_feature".into(), json!(top.feature.name()));
    d.insert("features".into(), json!(detail));
    d.insert("peer_group".into(), json!(group.describe()));
    d.insert("own_buckets".into(), json!(model.dist.n));
    let parts: Vec<String> = reported
        .iter()
        .map(|st| {
            let i = st.feature as usize;
            let own = model.dist.range(i, s.sigma, s.sd_floor);
            let grp = group.dist.range(i, s.sigma, s.sd_floor);
            format!(
                "{} {} (expected up to {}, its group up to {})",
                st.feature.name(),
                features::show(st.feature, st.value),
                features::show(st.feature, own[1]),
                features::show(st.feature, grp[1])
            )
        })
        .collect();
    cand.message = format!(
        "{} behaved unlike its own history and its peer group {}: {}",
        ctx.host,
        group.describe(),
        parts.join("; ")
    );
    Some(cand)
}

#[cfg(test)]
mod tests;
