//! Peer groups: clusters of inside hosts with similar long-term behaviour, learned without
//! labels, so that a workstation is compared with workstations and a file server with servers.
//!
//! A host's *profile* is the mean of its own distribution (the `ln(1 + x)` means of every
//! feature, see [`super::dist`]), once it has learned `min_buckets`. Every `regroup_interval_s`
//! of packet time the profiles are clustered by a small streaming k-means that finds its own k:
//!
//! 1. each profile, in address order, goes to the nearest centroid (root-mean-square distance
//!    over the features); one farther than `group_radius` from every centroid founds a new group
//!    while there are fewer than `max_groups`;
//! 2. each centroid moves halfway to the mean of its members (a damped Lloyd step: groups
//!    follow a network whose hosts change roles, and do not jump on one pass);
//! 3. groups left without members are dropped, and two centroids closer than half the radius
//!    merge (the larger keeps its id).
//!
//! Each group also learns the distribution of its members' bucket vectors (a [`Dist`]), which
//! is what a host's bucket is compared with. Ids are stable across passes (a host keeps its
//! group unless it moved), and everything runs in address order, so a replay gives the same
//! groups. Memory: at most `max_groups` groups of four vectors of [`F`] numbers; saved with the
//! baselines.
//!
//! Why not a crate: linfa-clustering's incremental k-means (`fit_with`) is the candidate that
//! fits streaming, but its per-cluster counts grow without bound (centroids freeze: no
//! forgetting), k is fixed in advance, and it brings ndarray with rayon's thread pool into a
//! sensor whose threads are fixed; isolation-forest crates train in batch on a stored sample.
//! What is needed here is about a hundred lines of arithmetic over a few thousand profiles an
//! hour.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::dist::Dist;
use super::features::{F, Feature};

/// How far a centroid moves toward its members' mean on one pass.
const STEP: f64 = 0.5;

/// One peer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Stable id.
    pub id: u16,
    /// The centroid of its members' profiles.
    pub centroid: Vec<f64>,
    /// Members at the last pass.
    pub members: u32,
    /// The distribution of its members' bucket vectors.
    pub dist: Dist,
}

impl Group {
    /// A name for what its members look like: `servers` (they answer several clients),
    /// `workstations` (they talk to the outside and resolve names), or `quiet devices`
    /// (little of either: printers, sensors, appliances). A label for people, from the
    /// centroid; nothing decides on it.
    #[must_use]
    pub fn label(&self) -> &'static str {
        let typical = |f: Feature| self.centroid.get(f as usize).copied().unwrap_or(0.0).exp_m1();
        if typical(Feature::ServedClients) >= 1.5 {
            "servers"
        } else if typical(Feature::OutsidePeers) >= 1.0 || typical(Feature::DnsQueries) >= 1.0 {
            "workstations"
        } else {
            "quiet devices"
        }
    }

    /// `id (label, N hosts)`, as alerts show it.
    #[must_use]
    pub fn describe(&self) -> String {
        format!("{} ({}, {} hosts)", self.id, self.label(), self.members)
    }
}

/// The peer groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Groups {
    /// The groups, in id order.
    pub groups: Vec<Group>,
    /// The next id to give.
    pub next_id: u16,
    /// Packet time of the last pass, ns.
    pub last_pass_ns: u64,
}

/// What a pass needs from the settings.
#[derive(Debug, Clone, Copy)]
pub struct PassSettings {
    /// Most groups.
    pub max_groups: usize,
    /// RMS distance beyond which a profile founds a group.
    pub radius: f64,
}

/// Root-mean-square distance of two vectors.
#[must_use]
pub fn rms(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()).max(1);
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / n as f64).sqrt()
}

impl Groups {
    /// The group with `id`.
    #[must_use]
    pub fn get(&self, id: u16) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The group with `id`, to learn into.
    pub fn get_mut(&mut self, id: u16) -> Option<&mut Group> {
        self.groups.iter_mut().find(|g| g.id == id)
    }

    fn nearest(&self, p: &[f64]) -> Option<(usize, f64)> {
        self.groups
            .iter()
            .enumerate()
            .map(|(i, g)| (i, rms(p, &g.centroid)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
    }

    /// One clustering pass over `profiles` (address order, each with its own distribution);
    /// returns each profile's group id, in the same order.
    pub fn pass(&mut self, profiles: &[(IpAddr, &Dist)], s: PassSettings) -> Vec<u16> {
        let mut member_of: Vec<usize> = Vec::with_capacity(profiles.len());
        for (_, d) in profiles {
            let p = &d.mean;
            let i = match self.nearest(p) {
                Some((i, dist)) if dist <= s.radius || self.groups.len() >= s.max_groups => i,
                _ => {
                    let id = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1);
                    self.groups.push(Group { id, centroid: p.clone(), members: 0, dist: (*d).clone() });
                    self.groups.len() - 1
                }
            };
            member_of.push(i);
        }
        // Damped Lloyd step.
        let mut sums = vec![(vec![0.0; F], 0u32); self.groups.len()];
        for ((_, d), &i) in profiles.iter().zip(&member_of) {
            let (sum, n) = &mut sums[i];
            for (acc, v) in sum.iter_mut().zip(&d.mean) {
                *acc += v;
            }
            *n += 1;
        }
        for (g, (sum, n)) in self.groups.iter_mut().zip(&sums) {
            g.members = *n;
            if *n > 0 {
                g.centroid.resize(F, 0.0);
                for (c, total) in g.centroid.iter_mut().zip(sum) {
                    *c += STEP * (total / f64::from(*n) - *c);
                }
            }
        }
        let mut ids: Vec<u16> = member_of.iter().map(|&i| self.groups[i].id).collect();
        // Merge close centroids into the larger group, then drop the empty ones.
        for i in 0..self.groups.len() {
            for j in (i + 1)..self.groups.len() {
                let (gi, gj) = (&self.groups[i], &self.groups[j]);
                if gi.members == 0 || gj.members == 0 || rms(&gi.centroid, &gj.centroid) >= s.radius / 2.0 {
                    continue;
                }
                let (keep, gone) = if gi.members >= gj.members { (i, j) } else { (j, i) };
                let (wk, wg) = (f64::from(self.groups[keep].members), f64::from(self.groups[gone].members));
                let gone_centroid = self.groups[gone].centroid.clone();
                let gone_id = self.groups[gone].id;
                let gone_members = std::mem::take(&mut self.groups[gone].members);
                let k = &mut self.groups[keep];
                let keep_id = k.id;
                for (c, o) in k.centroid.iter_mut().zip(&gone_centroid) {
                    *c = (*c * wk + o * wg) / (wk + wg);
                }
                k.members += gone_members;
                ids.iter_mut().filter(|id| **id == gone_id).for_each(|id| *id = keep_id);
            }
        }
        self.groups.retain(|g| g.members > 0);
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile at `level` in every feature; a server (`served` > 0) answers clients and
    /// browses little (few outside peers, few DNS queries).
    fn profile(level: f64, served: f64) -> Dist {
        let mut mean = vec![level; F];
        mean[Feature::ServedClients as usize] = served;
        if served > 0.0 {
            mean[Feature::OutsidePeers as usize] = level - 2.0;
            mean[Feature::DnsQueries as usize] = level - 2.0;
        }
        Dist { n: 100, mean, var: vec![0.1; F], raw: vec![0.0; F] }
    }

    #[test]
    fn workstations_and_servers_fall_into_two_groups_with_stable_ids() {
        let s = PassSettings { max_groups: 16, radius: 1.0 };
        let ws: Vec<Dist> = (0..5).map(|i| profile(3.0 + 0.1 * f64::from(i), 0.0)).collect();
        let srv: Vec<Dist> = (0..3).map(|i| profile(3.0 + 0.1 * f64::from(i), 4.0)).collect();
        let mut rest = profile(3.0, 0.0);
        rest.mean.iter_mut().for_each(|v| *v = 0.2);
        let all: Vec<(IpAddr, &Dist)> = ws
            .iter()
            .chain(&srv)
            .chain(std::iter::once(&rest))
            .enumerate()
            .map(|(i, d)| (IpAddr::from([10, 0, 0, i as u8]), d))
            .collect();
        let mut g = Groups::default();
        let first = g.pass(&all, s);
        assert_eq!(g.groups.len(), 3, "{:?}", g.groups.iter().map(Group::describe).collect::<Vec<_>>());
        assert!(first[..5].iter().all(|id| *id == first[0]));
        assert!(first[5..8].iter().all(|id| *id == first[5]));
        assert_ne!(first[0], first[5]);
        assert_eq!(g.get(first[5]).map(Group::label), Some("servers"));
        assert_eq!(g.get(first[0]).map(Group::label), Some("workstations"));
        assert_eq!(g.get(first[8]).map(Group::label), Some("quiet devices"));
        let second = g.pass(&all, s);
        assert_eq!(first, second, "ids are stable");
    }

    #[test]
    fn groups_stay_bounded() {
        let s = PassSettings { max_groups: 4, radius: 0.1 };
        let ds: Vec<Dist> = (0..50).map(|i| profile(f64::from(i), 0.0)).collect();
        let all: Vec<(IpAddr, &Dist)> =
            ds.iter().enumerate().map(|(i, d)| (IpAddr::from([10, 0, 1, i as u8]), d)).collect();
        let mut g = Groups::default();
        g.pass(&all, s);
        assert!(g.groups.len() <= 4);
    }
}
