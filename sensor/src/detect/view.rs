//! What the engine shows of a host to an analyst (the console's host page): its learning
//! state, each metric's typical value and band beside the bucket in progress, the hourly
//! outbound history, the services it serves, the outside peers of the bucket in progress and
//! its outbound bytes by transport.
//!
//! Plain data, built on request between two messages of the analysis stage (see
//! [`crate::control`]); bounded: at most [`MAX_PEERS_SHOWN`] peers and [`MAX_HOSTS_LISTED`]
//! hosts.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Engine;
use super::baseline::Metric;
use super::volume::HOUR_NS;
use crate::alert::{HostRole, LearningState};

/// Peers of the bucket in progress shown, most bytes first.
pub const MAX_PEERS_SHOWN: usize = 25;
/// Hosts listed, most recently learned first.
pub const MAX_HOSTS_LISTED: usize = 500;
/// The band's width in standard deviations, as `baseline show` gives it.
const BAND_SD: f64 = 4.0;

/// One baseline metric of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricView {
    /// Its name ([`Metric::name`]).
    pub name: String,
    /// The typical value per bucket.
    pub typical: f64,
    /// The normal band, ±4 standard deviations.
    pub band: [f64; 2],
    /// Buckets it was learned from.
    pub buckets: u32,
    /// The bucket in progress so far.
    pub current: f64,
}

/// One outside peer of the bucket in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// The peer.
    pub peer: IpAddr,
    /// Bytes the host sent it.
    pub bytes_out: u64,
    /// Bytes it sent the host.
    pub bytes_in: u64,
    /// Its main port and transport, e.g. `443/tcp`.
    pub service: Option<String>,
    /// Community IDs of some of the flows.
    pub community_ids: Vec<String>,
    /// New to the host in this bucket.
    pub new: bool,
}

/// A host as the console's host page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    /// The host.
    pub host: IpAddr,
    /// The engine's clock, ns.
    pub now_ns: u64,
    /// Learning, active or stale.
    pub learning_state: LearningState,
    /// First and last bucket learned, ns.
    pub learned_ns: [u64; 2],
    /// Buckets learned.
    pub buckets: u32,
    /// Buckets still to relearn after it went stale.
    pub relearn: u32,
    /// Each metric.
    pub metrics: Vec<MetricView>,
    /// Outbound bytes per hour, oldest first: (hour start ns, bytes, a volume rule's candidate).
    pub hourly_out: Vec<(u64, u64, bool)>,
    /// What it serves and whether it opens connections.
    pub role: HostRole,
    /// Outside peers of the bucket in progress.
    pub peers: Vec<PeerView>,
    /// Outbound bytes by transport, typical per bucket: tcp, udp, other.
    pub transports: Vec<(String, f64)>,
    /// Held buckets waiting for a verdict, and buckets settled by verdicts (learned, excluded).
    pub held: (usize, u32, u32),
}

/// A line of the host list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    /// The host.
    pub host: IpAddr,
    /// Learning, active or stale.
    pub learning_state: LearningState,
    /// Buckets learned.
    pub buckets: u32,
    /// Its last learned bucket, ns.
    pub last_ns: u64,
}

impl Engine {
    /// What the console shows of `host`, if the engine tracks it.
    #[must_use]
    pub fn host_view(&self, host: IpAddr) -> Option<HostView> {
        let h = self.hosts.get(&host)?;
        let b = &h.baseline;
        let current = h.bucket.values(h.hour_out());
        let metrics = Metric::ALL
            .iter()
            .map(|m| {
                let e = b.metric(*m);
                MetricView {
                    name: m.name().to_owned(),
                    typical: e.typical(),
                    band: e.band(BAND_SD),
                    buckets: e.n,
                    current: current[*m as usize],
                }
            })
            .collect();
        let mut peers: Vec<PeerView> = h
            .bucket
            .peers
            .iter()
            .map(|(ip, p)| PeerView {
                peer: *ip,
                bytes_out: p.bytes_out,
                bytes_in: p.bytes_in,
                service: p
                    .port
                    .map(|port| format!("{port}/{}", super::transport_name(p.proto).unwrap_or("other"))),
                community_ids: p.flows.iter().map(super::host::FlowRef::community_id).collect(),
                new: p.new_addr,
            })
            .collect();
        peers.sort_by(|a, b| (b.bytes_out + b.bytes_in, a.peer).cmp(&(a.bytes_out + a.bytes_in, b.peer)));
        peers.truncate(MAX_PEERS_SHOWN);
        let transports =
            [("tcp", Metric::BytesOutTcp), ("udp", Metric::BytesOutUdp), ("other", Metric::BytesOutOther)]
                .into_iter()
                .map(|(name, m)| (name.to_owned(), b.metric(m).typical()))
                .collect();
        Some(HostView {
            host,
            now_ns: self.now_ns,
            learning_state: b.state(self.now_ns.max(b.last_ns), &self.life),
            learned_ns: [b.first_ns, b.last_ns],
            buckets: b.buckets,
            relearn: b.relearn,
            metrics,
            hourly_out: b.volume.hours().map(|(hour, t)| (hour * HOUR_NS, t.bytes, t.suspect)).collect(),
            role: self.role_of(host).unwrap_or_else(|| b.role.describe(None)),
            peers,
            transports,
            held: (b.held.len(), b.verdict_learned, b.verdict_excluded),
        })
    }

    /// The hosts the engine tracks, most recently learned first, at most [`MAX_HOSTS_LISTED`].
    #[must_use]
    pub fn host_list(&self) -> Vec<HostSummary> {
        let mut v: Vec<HostSummary> = self
            .hosts
            .iter()
            .map(|(ip, h)| HostSummary {
                host: *ip,
                learning_state: h.baseline.state(self.now_ns.max(h.baseline.last_ns), &self.life),
                buckets: h.baseline.buckets,
                last_ns: h.baseline.last_ns,
            })
            .collect();
        v.sort_by(|a, b| (b.last_ns, a.host).cmp(&(a.last_ns, b.host)));
        v.truncate(MAX_HOSTS_LISTED);
        v
    }
}
