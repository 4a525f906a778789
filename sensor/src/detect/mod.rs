//! Detection: per-host baselines, the detectors, and the alert stage.
//!
//! The [`Engine`] takes flow records and [`Observation`]s in one deterministic
//! order (the pipeline merges its inputs by their clocks) and keeps, per
//! inside host (an address in `sensor.home_networks`), a [`HostState`]: the
//! learned baseline and the accumulators of the bucket in progress. Time is
//! the packets' time: a bucket closes when the clock passes its end, never by
//! the wall clock, so a replay of the same capture from the same saved state
//! raises the same alerts.
//!
//! | detector | evaluated | from |
//! |---|---|---|
//! | [`exfiltration`] | bucket close | records: bytes to outside peers |
//! | [`dns_tunnel`] | bucket close | DNS observations, per bucket and over a 10-minute window ([`dns_track`]) |
//! | [`dga`] | bucket close | NXDOMAIN answers over a 10-minute window ([`dns_track`]) |
//! | [`icmp_tunnel`] | bucket close | ICMP echo observations |
//! | [`malformed`] (`malformed_traffic`) | bucket close | malformed/evasive observations |
//! | [`scan`] | bucket close | records: connection attempts per source; echo, unreachable and ARP observations |
//! | [`flood`] | bucket close | records: unsolicited flows per victim and second |
//! | [`beaconing`] | bucket close | records: connection starts per channel |
//! | [`long_connection`] | each record | interim records |
//! | [`protocol_mismatch`] | each identification | first-payload observations |
//! | [`outlier`] (`host_outlier`) | bucket close | every feature of the bucket, against the host's own and its peer group's distribution |
//! | [`lateral`] (`lateral_movement`) | bucket close | records: administrative connections between inside hosts |
//!
//! Findings ([`Candidate`]s) go through the [`alerting`] stage (allow-list,
//! score, suppression) and come out as [`Alert`]s, each with its host's learned
//! [`role`] and its place in a staged [`incident`]; incident records follow the
//! alerts that opened or escalated them.

pub mod alerting;
pub mod app;
pub mod baseline;
pub mod beaconing;
pub mod clock;
pub mod config;
pub mod dga;
pub mod dns_track;
pub mod dns_tunnel;
pub mod exfiltration;
pub mod fanout;
pub mod flood;
pub mod host;
pub mod icmp_tunnel;
pub mod incident;
pub mod ja4_census;
pub mod lateral;
pub mod long_connection;
pub mod malformed;
pub mod name_score;
pub mod names;
pub mod outlier;
pub mod protocol_mismatch;
pub mod retention;
pub mod role;
pub mod scan;
pub mod seen;
pub mod state;
pub mod suspicious_http;
pub mod suspicious_tls;
pub mod verdict;
pub mod view;
pub mod volume;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::alert::{Alert, Detector, Evidence, HostRole, LearningState};
use crate::config::Config;
use crate::flow::FlowRecord;
use crate::observe::{ObsKind, Observation};
use alerting::{AlertCounters, AlertStage};
use baseline::{HostBaseline, Lifecycle};
use config::DetectionSettings;
use host::{FlowRef, HostState, Map, PeerAcc};

/// A detector's finding, before scoring and suppression.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Which detector.
    pub detector: Detector,
    /// What the detector looks for.
    pub description: &'static str,
    /// When (packet time).
    pub ts_ns: u64,
    /// The host at fault.
    pub host: IpAddr,
    /// The peer, where one applies.
    pub peer: Option<IpAddr>,
    /// The port, where one applies.
    pub port: Option<u16>,
    /// The transport, where one applies.
    pub transport: Option<&'static str>,
    /// The one flow, where one applies.
    pub flow: Option<FlowRef>,
    /// How far past the threshold, 0–1.
    pub strength: f64,
    /// How sure the rule is, 0–1.
    pub confidence: f64,
    /// One sentence.
    pub message: String,
    /// The evidence.
    pub evidence: Evidence,
}

impl Candidate {
    /// A finding of a bucket detector.
    #[must_use]
    pub fn new(
        detector: Detector,
        description: &'static str,
        ctx: &BucketCtx<'_>,
        metric: &str,
        observed: f64,
        threshold: f64,
    ) -> Self {
        Self {
            detector,
            description,
            ts_ns: ctx.end_ns,
            host: ctx.host,
            peer: None,
            port: None,
            transport: None,
            flow: None,
            strength: 0.5,
            confidence: 0.5,
            message: String::new(),
            evidence: Evidence {
                metric: metric.to_owned(),
                observed,
                baseline_mean: None,
                baseline_band: None,
                threshold,
                learning_state: ctx.state,
                window_start_ns: ctx.start_ns,
                window_end_ns: ctx.end_ns,
                community_ids: Vec::new(),
                details: serde_json::Map::new(),
            },
        }
    }

    /// A finding of a detector that fires on one record or observation.
    #[must_use]
    pub fn point(
        detector: Detector,
        description: &'static str,
        ctx: &PointCtx<'_>,
        host: IpAddr,
        metric: &str,
        observed: f64,
        threshold: f64,
    ) -> Self {
        let bucket = BucketCtx {
            settings: ctx.settings,
            host,
            start_ns: ctx.ts_ns,
            end_ns: ctx.ts_ns,
            state: LearningState::NotApplicable,
        };
        Self::new(detector, description, &bucket, metric, observed, threshold)
    }
}

/// What a bucket detector knows about the bucket it judges.
#[derive(Debug, Clone, Copy)]
pub struct BucketCtx<'a> {
    /// The settings.
    pub settings: &'a DetectionSettings,
    /// The host judged.
    pub host: IpAddr,
    /// Bucket start, ns.
    pub start_ns: u64,
    /// Bucket end, ns.
    pub end_ns: u64,
    /// The host's baseline state.
    pub state: LearningState,
}

impl BucketCtx<'_> {
    /// The bucket's length in seconds.
    #[must_use]
    pub fn bucket_s(&self) -> u64 {
        (self.end_ns - self.start_ns) / 1_000_000_000
    }
}

/// What a point detector knows.
#[derive(Debug, Clone, Copy)]
pub struct PointCtx<'a> {
    /// The settings.
    pub settings: &'a DetectionSettings,
    /// The inside endpoint, if any.
    pub host: Option<IpAddr>,
    /// When, ns.
    pub ts_ns: u64,
}

/// How far `observed` went past `threshold`, 0 (at it) to 1 (far beyond).
#[must_use]
pub fn strength(observed: f64, threshold: f64) -> f64 {
    if threshold <= 0.0 {
        return 1.0;
    }
    let r = (observed / threshold).max(1.0);
    (1.0 - 1.0 / r).clamp(0.0, 1.0)
}

/// ECS `network.transport` of an IANA protocol number.
#[must_use]
pub fn transport_name(proto: u8) -> Option<&'static str> {
    match proto {
        6 => Some("tcp"),
        17 => Some("udp"),
        1 => Some("icmp"),
        58 => Some("ipv6-icmp"),
        132 => Some("sctp"),
        _ => None,
    }
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineCounters {
    /// Flow records analysed.
    pub records: u64,
    /// Observations analysed.
    pub observations: u64,
    /// Buckets closed.
    pub buckets: u64,
    /// Inside hosts tracked now.
    pub hosts: u64,
    /// Hosts not tracked because `max_hosts` was reached.
    pub hosts_dropped: u64,
    /// Long flows not followed because the table was full.
    pub long_flows_dropped: u64,
    /// State snapshots written.
    pub snapshots: u64,
    /// State snapshots that failed.
    pub snapshot_errors: u64,
    /// The scan detector's caps.
    pub scan: scan::ScanCounters,
    /// The flood detector's caps.
    pub flood: flood::FloodCounters,
    /// Every other table the detectors keep: what each refused or forgot for room.
    pub capped: CapCounters,
}

/// Entries the detectors' bounded tables refused, or forgot to make room, because they were
/// full. The caps themselves are listed in docs/RELIABILITY.md ("Hostile traffic aimed at the
/// detectors"); scan and flood count theirs in [`scan::ScanCounters`] and
/// [`flood::FloodCounters`], the host table in `hosts_dropped`, long connections in
/// `long_flows_dropped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CapCounters {
    /// A host's outside peers in one bucket past `host::MAX_PEERS` (their bytes still count in
    /// the host's totals); added when the bucket closes.
    pub host_peers: u64,
    /// A host's destination ports in one bucket past `host::MAX_PORTS`.
    pub host_ports: u64,
    /// DNS names in one bucket past `host::MAX_NAMES` (per host, and per host and domain).
    pub host_dns_names: u64,
    /// Registered domains in one bucket past `host::MAX_DOMAINS` per host.
    pub host_dns_domains: u64,
    /// DNS tunnel and DGA windows: hosts and domains forgotten (`dns_track` caps).
    pub dns_windows: u64,
    /// TLS ClientHellos, HTTP requests and flow names waiting for their flow, forgotten.
    pub app_pending: u64,
    /// `suspicious_http` C2 series destinations forgotten.
    pub http_series: u64,
    /// Times the JA4 census forgot its less used half (`ja4_census::MAX_FINGERPRINTS`).
    pub ja4_census: u64,
    /// Times the DNS answer cache forgot its older half (`names::MAX_ADDRS`).
    pub name_cache: u64,
}

/// The detection engine.
#[derive(Debug)]
pub struct Engine {
    settings: DetectionSettings,
    sensor_id: String,
    home: Vec<IpNet>,
    life: Lifecycle,
    bucket_ns: u64,
    /// Start of the bucket in progress (0 before the first item).
    start_ns: u64,
    now_ns: u64,
    hosts: Map<IpAddr, HostState>,
    scans: scan::Scans,
    floods: flood::Floods,
    beacons: Map<IpAddr, beaconing::HostChannels>,
    long: long_connection::LongFlows,
    inventory: protocol_mismatch::Inventory,
    encrypted_peers: protocol_mismatch::EncryptedPeers,
    names: names::NameCache,
    apps: app::AppState,
    dns_tracks: dns_track::DnsTracks,
    groups: outlier::groups::Groups,
    stage: AlertStage,
    book: verdict::Book,
    /// The verdicts' figures, recomputed when a verdict is given.
    figures: verdict::Figures,
    /// The packet time of the saved state it started from (0: none).
    saved_ns: u64,
    /// When the flow table last evicted a flow for room (emergency mode), ns (0: never).
    evicted_ns: u64,
    /// Flows evicted for room since the engine started.
    evicted: u64,
    alerts: Vec<Alert>,
    last_snapshot_ns: u64,
    /// The first packet time the engine saw (how long it has been learning).
    first_ns: u64,
    /// `privacy.state_retention_s`: what the saved state keeps ([`retention`]).
    retention: Option<std::time::Duration>,
    counters: EngineCounters,
}

impl Engine {
    /// An engine for `config`, starting from `saved` state if any.
    #[must_use]
    pub fn new(config: &Config, saved: Option<state::State>) -> Self {
        let s = config.detection.clone();
        let life = Lifecycle {
            learning_ns: nanos(s.learning_period),
            min_buckets: s.min_learning_buckets,
            stale_ns: nanos(s.stale_after),
        };
        let mut engine = Self {
            bucket_ns: nanos(s.bucket).max(1),
            settings: s,
            sensor_id: config.sensor.id.clone(),
            home: config.sensor.home_networks.clone(),
            life,
            start_ns: 0,
            now_ns: 0,
            hosts: Map::default(),
            scans: scan::Scans::default(),
            floods: flood::Floods::default(),
            beacons: Map::default(),
            long: long_connection::LongFlows::default(),
            inventory: protocol_mismatch::Inventory::default(),
            encrypted_peers: protocol_mismatch::EncryptedPeers::default(),
            names: names::NameCache::default(),
            apps: app::AppState::default(),
            dns_tracks: dns_track::DnsTracks::default(),
            groups: outlier::groups::Groups::default(),
            stage: AlertStage::default(),
            book: verdict::Book::default(),
            figures: verdict::Figures::default(),
            saved_ns: 0,
            evicted_ns: 0,
            evicted: 0,
            alerts: Vec::new(),
            last_snapshot_ns: 0,
            first_ns: 0,
            retention: config.privacy.state_retention,
            counters: EngineCounters::default(),
        };
        if let Some(mut saved) = saved {
            if let Some(keep) = engine.retention {
                let saved_at = saved.saved_at_ns;
                retention::prune(&mut saved, saved_at, keep);
            }
            for (ip, b) in saved.hosts {
                if engine.hosts.len() < engine.settings.max_hosts {
                    engine.hosts.insert(ip, HostState::new(b));
                }
            }
            for svc in saved.services {
                engine.inventory.insert(
                    (svc.server, svc.port, svc.transport),
                    protocol_mismatch::Service { protocol: svc.protocol, first_ns: svc.first_ns },
                );
            }
            engine.groups = saved.peer_groups;
            engine.book = saved.verdicts;
            engine.figures = engine.book.figures();
            engine.saved_ns = saved.saved_at_ns;
        }
        engine
    }

    /// The settings in use.
    #[must_use]
    pub fn settings(&self) -> &DetectionSettings {
        &self.settings
    }

    /// Swaps in new detection settings (a reload); state is kept.
    pub fn reconfigure(&mut self, settings: DetectionSettings) {
        self.settings = settings;
    }

    fn is_home(&self, ip: IpAddr) -> bool {
        self.home.iter().any(|n| n.contains(&ip))
    }

    fn host_mut(&mut self, ip: IpAddr) -> Option<&mut HostState> {
        let full = self.hosts.len() >= self.settings.max_hosts;
        let h = match self.hosts.entry(ip) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => {
                self.counters.hosts_dropped += 1;
                return None;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(HostState::new(HostBaseline::new(self.start_ns)))
            }
        };
        h.bucket.active = true;
        Some(h)
    }

    /// Moves the clock to `now_ns`, closing every bucket that ended.
    pub fn advance(&mut self, now_ns: u64) {
        if now_ns <= self.now_ns {
            return;
        }
        self.now_ns = now_ns;
        if self.start_ns == 0 {
            self.start_ns = now_ns - now_ns % self.bucket_ns;
            self.last_snapshot_ns = now_ns;
            self.first_ns = now_ns;
            return;
        }
        if now_ns >= self.start_ns + self.bucket_ns {
            let end = self.start_ns + self.bucket_ns;
            self.close_bucket(end);
            // After a gap (a quiet link, a capture glued from two days) the
            // next bucket is the one holding `now`; empty buckets are skipped.
            self.start_ns = now_ns - now_ns % self.bucket_ns;
        }
        if let Some(path) = self.settings.state_file.clone()
            && now_ns.saturating_sub(self.last_snapshot_ns) >= nanos(self.settings.snapshot_interval)
        {
            self.last_snapshot_ns = now_ns;
            self.snapshot_to(&path);
        }
    }

    /// Writes the state to `path` (atomically), counting the outcome.
    pub fn snapshot_to(&mut self, path: &std::path::Path) {
        match state::save(path, &self.state()) {
            Ok(()) => self.counters.snapshots += 1,
            Err(e) => {
                self.counters.snapshot_errors += 1;
                eprintln!("nbad-sensor: warning: {e:#}");
            }
        }
    }

    /// Closes the bucket in progress (end of input); saves the state if a
    /// state file is configured.
    pub fn finish(&mut self) {
        if self.start_ns != 0 {
            let end = self.start_ns + self.bucket_ns;
            self.close_bucket(end);
            self.start_ns = end;
        }
        if let Some(path) = self.settings.state_file.clone() {
            self.snapshot_to(&path);
        }
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// The engine's counters.
    #[must_use]
    pub fn counters(&self) -> EngineCounters {
        let mut c = self.counters;
        c.hosts = self.hosts.len() as u64;
        c.long_flows_dropped = self.long.dropped;
        c.scan = self.scans.counters();
        c.flood = self.floods.counters();
        c.capped.dns_windows = self.dns_tracks.dropped;
        c.capped.app_pending = self.apps.evicted;
        c.capped.http_series = self.apps.series.dropped;
        c.capped.ja4_census = self.apps.ja4.evictions;
        c.capped.name_cache = self.names.evictions;
        c
    }

    /// The alert stage's counters, and raised alerts per detector.
    #[must_use]
    pub fn alert_counters(&self) -> (AlertCounters, [u64; Detector::ALL.len()]) {
        (self.stage.counters, self.stage.per_detector)
    }

    /// The state to persist: baselines and the service inventory.
    #[must_use]
    pub fn state(&self) -> state::State {
        let hosts = self.hosts.iter().map(|(ip, h)| (*ip, h.baseline.clone())).collect();
        let mut services: Vec<state::ServiceEntry> = self
            .inventory
            .iter()
            .map(|(k, s)| state::ServiceEntry {
                server: k.0,
                port: k.1,
                transport: k.2,
                protocol: s.protocol.clone(),
                first_ns: s.first_ns,
            })
            .collect();
        services.sort_by_key(|a| (a.server, a.port, a.transport));
        // Before any packet (a verdict given to a sensor that has only its saved state), the saved
        // state's time: the snapshot must not go back to 0.
        let mut st = state::State::new(self.now_ns.max(self.saved_ns), hosts, services);
        st.peer_groups = self.groups.clone();
        st.verdicts = self.book.clone();
        if let Some(keep) = self.retention {
            retention::prune(&mut st, self.now_ns, keep);
        }
        st
    }

    fn raise(&mut self, c: Candidate) {
        let group = self.hosts.get(&c.host).and_then(|h| h.baseline.outlier.group);
        if let Some(mut alert) = self.stage.raise(c, &self.settings, &self.sensor_id, &mut self.book, group) {
            alert.host_role = self.role_of(alert.host);
            if let Some(h) = self.hosts.get(&alert.host) {
                verdict::note_baseline(&mut alert.evidence, &h.baseline);
            }
            // Raised while the flow table was full and evicting: its counts may be short.
            if self.evicted_ns > 0 && alert.timestamp_ns.saturating_sub(self.evicted_ns) <= DEGRADED_NS {
                alert.evidence.details.insert(
                    "capture_degraded".into(),
                    serde_json::json!({
                        "reason": "the flow table was full and evicting flows (emergency mode) within the last minute: counts may be incomplete",
                        "flows_evicted": self.evicted,
                    }),
                );
            }
            self.stage.correlate(&mut alert, &self.settings);
            self.book.remember(verdict::Entry::of(&alert, group), &self.settings.verdicts);
            self.alerts.push(alert);
            self.alerts.extend(self.stage.take_records());
        }
    }

    /// Applies an analyst's verdict (the live sensor's control socket): suppressions, threshold
    /// raises, and the held baseline buckets of the alerts it judges.
    ///
    /// # Errors
    /// Why the verdict was refused; nothing changes then.
    pub fn give_verdict(
        &mut self,
        req: &verdict::Request,
    ) -> Result<verdict::Outcome, verdict::VerdictError> {
        // The packet clock; before the first packet, the saved state's; a live sensor that has
        // neither yet takes the wall clock (which its packet clock will follow).
        let now = match self.now_ns.max(self.saved_ns) {
            0 => crate::clock::wall_ns(),
            t => t,
        };
        let mut out = self.book.give(req, now, &self.settings.verdicts)?;
        let alpha = self.settings.baseline_alpha;
        for entry in self.book.verdicts.iter().rev().take(out.alerts.len()) {
            if let Some(h) = self.hosts.get_mut(&entry.alert.host)
                && verdict::settle(&mut h.baseline, entry, alpha)
            {
                out.buckets_settled += 1;
            }
        }
        self.figures = self.book.figures();
        Ok(out)
    }

    /// The learning state of `ip`'s baseline now (`Learning` for a host it does not track).
    #[must_use]
    pub fn host_state(&self, ip: IpAddr) -> LearningState {
        self.hosts.get(&ip).map_or(LearningState::Learning, |h| h.baseline.state(self.now_ns, &self.life))
    }

    /// What the statistics show of the verdicts.
    #[must_use]
    pub fn verdict_figures(&self) -> verdict::VerdictStats {
        verdict::VerdictStats {
            figures: self.figures.clone(),
            suppressions_active: self.book.suppressions.len() as u64,
            counters: self.book.counters,
        }
    }

    /// The verdicts, suppressions and alert ledger.
    #[must_use]
    pub fn verdicts(&self) -> &verdict::Book {
        &self.book
    }

    /// What the engine learned `ip` does (role and peer group), if it tracks the host.
    #[must_use]
    pub fn role_of(&self, ip: IpAddr) -> Option<HostRole> {
        let h = self.hosts.get(&ip)?;
        let group =
            h.baseline.outlier.group.and_then(|g| self.groups.get(g)).map(outlier::groups::Group::describe);
        Some(h.baseline.role.describe(group))
    }

    /// Accounts one flow record.
    pub fn record(&mut self, r: &FlowRecord) {
        self.counters.records += 1;
        if r.reason == crate::flow::record::EndReason::Evicted {
            self.evicted_ns = self.evicted_ns.max(r.end_ns);
            self.evicted += 1;
        }
        let client = r.client_endpoint();
        let server = r.server_endpoint();
        let flow = FlowRef { a: client, b: server, proto: r.key.proto };
        let client_home = self.is_home(client.0);
        let server_home = self.is_home(server.0);
        let failed = !r.continued && scan::attempt_failed(r);
        let attempt = scan::is_attempt(r);
        let (tcp_ratio, udp_ratio) =
            (self.settings.exfiltration.tcp_upload_ratio, self.settings.exfiltration.upload_ratio);
        // An administrative connection between inside hosts, answered (an unanswered probe of an
        // administrative port is the scan detector's): the service's port (135 for the DCE-RPC
        // call on a dynamic port after the endpoint mapper), and what the target served before.
        let lm = &self.settings.lateral_movement;
        let admin_port = if lm.is_admin(server.1) {
            Some(server.1)
        } else if server.1 >= 1024
            && lm.is_admin(lateral::EPMAP)
            && self.hosts.get(&client.0).is_some_and(|h| h.rpc.follows(server.0, r.start_ns))
        {
            Some(lateral::EPMAP)
        } else {
            None
        };
        let admin_target = admin_port
            .filter(|_| attempt && !failed && client_home && server_home && r.key.proto == 6)
            .map(|port| (port, self.hosts.get(&server.0).map_or(0, |t| t.baseline.role.clients_of(port, 6))));
        for (host, peer, sent, recv, is_client) in
            [(client.0, server.0, r.client, r.server, true), (server.0, client.0, r.server, r.client, false)]
        {
            let (home, peer_home) =
                if is_client { (client_home, server_home) } else { (server_home, client_home) };
            if !home {
                continue;
            }
            let Some(h) = self.host_mut(host) else { continue };
            let b = &mut h.bucket;
            if !peer_home {
                b.bytes_out += sent.bytes;
                b.bytes_in += recv.bytes;
                let transport = match r.key.proto {
                    6 => 0,
                    17 => 1,
                    _ => 2,
                };
                b.out_by_transport[transport] += sent.bytes;
                if transport < 2 {
                    let class = match server.1 {
                        0..1024 => 0,
                        1024..49152 => 1,
                        _ => 2,
                    };
                    b.out_by_port_class[class] += sent.bytes;
                }
                b.packets_out += sent.packets;
                b.packets_in += recv.packets;
                let new_entry = !b.peers.contains_key(&peer);
                if new_entry && b.peers.len() >= host::MAX_PEERS {
                    // Over the cap the bytes still count in the totals.
                    b.capped.peers += 1;
                } else {
                    let acc: &mut PeerAcc = b.peers.entry(peer).or_default();
                    if sent.bytes > 0 && (acc.port.is_none() || sent.bytes * 2 > acc.bytes_out) {
                        acc.port = Some(server.1);
                        acc.proto = r.key.proto;
                    }
                    acc.bytes_out += sent.bytes;
                    acc.bytes_in += recv.bytes;
                    // What this flow (this record's share of it) moved looks like an upload:
                    // exfiltration's per-peer windows count only these bytes.
                    let ratio = if r.key.proto == 6 { tcp_ratio } else { udp_ratio };
                    if sent.bytes as f64 >= ratio * recv.bytes as f64 {
                        acc.upload_out += sent.bytes;
                    }
                    if acc.flows.len() < host::MAX_FLOW_REFS && !acc.flows.contains(&flow) {
                        acc.flows.push(flow);
                    }
                    if new_entry && !h.baseline.note_peer(peer) {
                        h.bucket.new_peers += 1;
                        if let Some(acc) = h.bucket.peers.get_mut(&peer) {
                            acc.new_addr = true;
                        }
                    }
                }
            }
            if peer_home {
                if is_client && attempt {
                    h.bucket.inside.opened(peer, sent.bytes);
                } else {
                    h.bucket.inside.bytes_out += sent.bytes;
                }
                if is_client && let Some((port, peer_clients)) = admin_target {
                    if server.1 == lateral::EPMAP {
                        h.rpc.contacted(peer, r.start_ns);
                    }
                    let new_pair = h.baseline.admin_pairs.note(peer, port);
                    h.bucket.inside.admin(fanout::AdminUse {
                        peer,
                        port,
                        proto: r.key.proto,
                        new_pair,
                        peer_clients,
                        flow,
                        ts_ns: r.start_ns,
                    });
                }
            }
            if matches!(r.key.proto, 6 | 17 | 132) && attempt {
                if is_client {
                    h.baseline.role.opened_one();
                } else if !failed {
                    h.baseline.role.answered(server.1, r.key.proto, peer, r.start_ns);
                    h.bucket.inside.answered(peer);
                }
            }
            if is_client && attempt {
                let b = &mut h.bucket;
                b.connections += 1;
                b.failed += u64::from(failed);
                if b.dst_ports.len() < host::MAX_PORTS {
                    b.dst_ports.insert(server.1);
                } else if !b.dst_ports.contains(&server.1) {
                    b.capped.ports += 1;
                }
                if self.settings.beaconing.enabled {
                    let name = self.apps.take_name(&flow);
                    let s = &self.settings.beaconing;
                    let ignored = s.ignore_ports.contains(&i64::from(server.1))
                        || name.as_deref().is_some_and(|n| beaconing::ignored_name(n, &s.ignore_names));
                    if !ignored {
                        let ch = self.beacons.entry(host).or_default();
                        ch.add(beaconing::ChannelKey::Addr(server.0), flow, r.start_ns, sent.bytes, s);
                        if let Some(n) = name {
                            ch.add(beaconing::ChannelKey::Name(n), flow, r.start_ns, sent.bytes, s);
                        }
                    }
                }
            }
        }
        // Scans: every source, inside or outside, that opened connections.
        self.scans.record(r, &self.settings.scan);
        // Floods: unsolicited flows, per victim.
        let home = &self.home;
        self.floods.record(r, &self.settings.flood, &|ip| home.iter().any(|n| n.contains(&ip)));
        let inside = if client_home {
            Some(client.0)
        } else if server_home {
            Some(server.0)
        } else {
            None
        };
        let ctx = PointCtx { settings: &self.settings, host: inside, ts_ns: r.end_ns };
        if let Some(c) = self.long.record(r, &ctx) {
            self.raise(c);
        }
    }

    /// Accounts one observation.
    pub fn observation(&mut self, o: &Observation) {
        self.counters.observations += 1;
        self.advance(o.ts_ns);
        match &o.kind {
            ObsKind::App { protocol, body_entropy, executable, body_follows } => {
                self.app(o, protocol, *body_entropy, *executable, *body_follows);
            }
            ObsKind::Encrypted { len } => self.encrypted(o, *len),
            ObsKind::HttpBody { entropy } => self.http_body(o, *entropy),
            ObsKind::TlsServer(flight) => self.server_flight(o, flight),
            ObsKind::Burst { bytes } => self.burst(o, *bytes),
            ObsKind::Dns(d) => {
                if !d.query && !d.addrs.is_empty() {
                    self.note_answers(d, o.ts_ns);
                }
                if d.query && self.is_home(o.src) {
                    let (s, sport, dst, dport, proto) = (o.src, o.sport, o.dst, o.dport, o.proto);
                    let resolver_inside = self.is_home(dst);
                    let (long_label, min_entropy) =
                        (self.settings.dns_tunnel.long_label, self.settings.dns_tunnel.min_entropy);
                    let Some(h) = self.host_mut(s) else { return };
                    let b = &mut h.bucket;
                    b.dns_queries += 1;
                    b.dns_tcp_messages += u64::from(d.tcp);
                    let Some(name) = &d.qname else { return };
                    if resolver_inside {
                        // The flow to an outside resolver counts already; through one inside,
                        // the name is what leaves.
                        let n = name.len() as u64;
                        b.dns_name_bytes += n;
                        b.bytes_out += n;
                    }
                    let nh = host::name_hash(name);
                    if b.dns_names.len() < host::MAX_NAMES {
                        b.dns_names.insert(nh);
                    } else if !b.dns_names.contains(&nh) {
                        b.capped.dns_names += 1;
                    }
                    b.dns_len_sum += name.len() as u64;
                    b.dns_entropy_sum += host::entropy(name.split('.').next().unwrap_or(""));
                    let (domain, sub) = dns_tunnel::split_name(name);
                    let flow = FlowRef { a: (s, sport), b: (dst, dport), proto };
                    if !dns_tunnel::ignored(&domain, &self.settings.dns_tunnel.ignore_domains) {
                        let window = secs_ns(self.settings.dns_tunnel.window_s);
                        self.dns_tracks.query(s, name, &domain, &sub, d.qtype, flow, o.ts_ns, window);
                    }
                    let Some(h) = self.hosts.get_mut(&s) else { return };
                    let b = &mut h.bucket;
                    if !b.domains.contains_key(&domain) && b.domains.len() >= host::MAX_DOMAINS {
                        b.capped.dns_domains += 1;
                        return;
                    }
                    let acc = b.domains.entry(domain).or_default();
                    acc.queries += 1;
                    if acc.names.len() < host::MAX_NAMES {
                        acc.names.insert(nh);
                    } else if !acc.names.contains(&nh) {
                        b.capped.dns_names += 1;
                    }
                    acc.sub_len_sum += sub.len() as u64;
                    if dns_tunnel::long_high_entropy(&sub, long_label, min_entropy) {
                        acc.long_queries += 1;
                    }
                    // The longest label carries the data in a tunnel; DNSBL and
                    // reverse-style lookups have only short labels.
                    let longest = sub.split('.').max_by_key(|l| l.len()).unwrap_or("");
                    acc.sub_entropy_sum += host::entropy(longest);
                    if let Some(t) = d.qtype {
                        *acc.qtypes.entry(t).or_default() += 1;
                        acc.unusual_qtypes += u64::from(dns_tunnel::unusual_qtype(t));
                        acc.null_queries += u64::from(t == 10 || t >= 65_280);
                    }
                    if acc.examples.len() < host::MAX_EXAMPLES && !acc.examples.contains(name) {
                        acc.examples.push(name.clone());
                    }
                    acc.flow = Some(flow);
                } else if !d.query && self.is_home(o.dst) {
                    if d.rcode == 3
                        && let Some(name) = &d.qname
                    {
                        let (domain, _) = dns_tunnel::split_name(name);
                        if domain != dns_tunnel::NO_SUFFIX
                            && !dns_tunnel::ignored(&domain, &self.settings.dns_tunnel.ignore_domains)
                        {
                            let window = secs_ns(self.settings.dga.window_s);
                            self.dns_tracks.nxdomain(o.dst, &domain, o.ts_ns, window);
                        }
                    }
                    let large = matches!(d.qtype, Some(10 | 16))
                        && u64::from(d.size) >= self.settings.dns_tunnel.large_answer_bytes;
                    let Some(h) = self.host_mut(o.dst) else { return };
                    h.bucket.dns_tcp_messages += u64::from(d.tcp);
                    if large && let Some(name) = &d.qname {
                        let (domain, _) = dns_tunnel::split_name(name);
                        if h.bucket.domains.contains_key(&domain)
                            || h.bucket.domains.len() < host::MAX_DOMAINS
                        {
                            let acc = h.bucket.domains.entry(domain).or_default();
                            acc.large_answers += 1;
                            acc.flow.get_or_insert(FlowRef {
                                a: (o.dst, o.dport),
                                b: (o.src, o.sport),
                                proto: o.proto,
                            });
                        } else {
                            h.bucket.capped.dns_domains += 1;
                        }
                    }
                }
            }
            ObsKind::IcmpEcho { reply, payload_len } => {
                self.scans.echo(o.src, o.dst, *reply, o.ts_ns, &self.settings.scan);
                let (initiator, responder) = if *reply { (o.dst, o.src) } else { (o.src, o.dst) };
                let (host, peer) = if self.is_home(initiator) {
                    (initiator, responder)
                } else if self.is_home(responder) {
                    (responder, initiator)
                } else {
                    return;
                };
                let flow = if *reply {
                    FlowRef { a: (o.dst, o.dport), b: (o.src, o.sport), proto: o.proto }
                } else {
                    FlowRef { a: (o.src, o.sport), b: (o.dst, o.dport), proto: o.proto }
                };
                let Some(h) = self.host_mut(host) else { return };
                let len = *payload_len;
                h.bucket.icmp_bytes += u64::from(len);
                let acc = h.bucket.icmp.entry(peer).or_default();
                acc.packets += 1;
                acc.bytes += u64::from(len);
                if acc.sizes.len() < 256 {
                    acc.sizes.insert(len);
                }
                acc.max = acc.max.max(len);
                acc.flow.get_or_insert(flow);
            }
            ObsKind::Malformed(reason) => {
                if self.is_home(o.src)
                    && let Some(h) = self.host_mut(o.src)
                {
                    *h.bucket.malformed.entry(reason.name()).or_default() += 1;
                }
            }
            ObsKind::Evasive(what) => {
                self.scans.odd_probe(o.src, o.dst, what, &self.settings.scan);
                if self.is_home(o.src)
                    && let Some(h) = self.host_mut(o.src)
                {
                    *h.bucket.malformed.entry(what).or_default() += 1;
                }
            }
            ObsKind::Unreachable { orig_proto, orig_dst, orig_dport } => {
                let key = match orig_proto {
                    6 | 17 | 132 | 1 | 58 => (*orig_proto, *orig_dport),
                    p => (*p, 0),
                };
                self.scans.refused(o.dst, *orig_dst, key, &self.settings.scan);
            }
            ObsKind::ArpRequest => self.scans.arp(o.src, o.dst, o.ts_ns, &self.settings.scan),
            ObsKind::DhcpRequest(m) => self.floods.dhcp(o.src, m, o.ts_ns, &self.settings.flood),
        }
    }

    /// A burst inside a flow: a beat of a heartbeat, when an inside host sends it to an outside
    /// server (not on a port whose keep-alives are periodic by design).
    fn burst(&mut self, o: &Observation, bytes: u32) {
        let s = &self.settings.beaconing;
        if !s.enabled || !s.inflow || !self.is_home(o.src) || self.is_home(o.dst) || local_scope(o.dst) {
            return;
        }
        let ignored =
            |p: u16| s.inflow_ignore_ports.contains(&i64::from(p)) || s.ignore_ports.contains(&i64::from(p));
        if ignored(o.dport) || ignored(o.sport) {
            return;
        }
        let flow = FlowRef { a: (o.src, o.sport), b: (o.dst, o.dport), proto: o.proto };
        if self.apps.is_quiet(&flow) {
            return;
        }
        let s = self.settings.beaconing.clone();
        self.beacons.entry(o.src).or_default().add(
            beaconing::ChannelKey::Flow(flow),
            flow,
            o.ts_ns,
            u64::from(bytes),
            &s,
        );
    }

    /// Remembers the names DNS gave addresses (A and AAAA answers).
    fn note_answers(&mut self, d: &crate::observe::DnsObs, ts_ns: u64) {
        let Some(name) = &d.qname else { return };
        let (domain, _) = dns_tunnel::split_name(name);
        let name: std::sync::Arc<str> = name.as_str().into();
        let domain: std::sync::Arc<str> = domain.into();
        for addr in &d.addrs {
            self.names.answer(*addr, &name, &domain, ts_ns);
        }
    }

    fn close_bucket(&mut self, end_ns: u64) {
        self.counters.buckets += 1;
        let start_ns = end_ns - self.bucket_ns;
        let hour_buckets = usize::try_from(3_600_000_000_000 / self.bucket_ns).unwrap_or(60).max(1);
        let mut found = Vec::new();
        let mut ips: Vec<IpAddr> =
            self.hosts.iter().filter(|(_, h)| h.bucket.active).map(|(ip, _)| *ip).collect();
        ips.sort_unstable();
        let dns_fresh = self.dns_tracks.take_fresh();
        let hold_ns = secs_ns(self.settings.verdicts.hold_s);
        self.book.expire(end_ns);
        for ip in ips {
            let Some(h) = self.hosts.get_mut(&ip) else { continue };
            let state = h.baseline.state(end_ns, &self.life);
            let ctx = BucketCtx { settings: &self.settings, host: ip, start_ns, end_ns, state };
            let before = found.len();
            let env = exfiltration::Env { clock: &self.settings.clock, names: &self.names };
            let verdict = exfiltration::evaluate(h, &ctx, env);
            let exfil_hit = verdict.finding.is_some();
            found.extend(verdict.finding);
            let track = dns_fresh.binary_search(&ip).is_ok().then(|| self.dns_tracks.get(&ip)).flatten();
            found.extend(dns_tunnel::evaluate(h, track, &ctx));
            if let Some(t) = track {
                found.extend(dga::evaluate(t, &ctx));
            }
            found.extend(icmp_tunnel::evaluate(h, &ctx));
            found.extend(malformed::evaluate(h, &ctx));
            if let Some(ch) = self.beacons.get_mut(&ip) {
                found.extend(ch.evaluate(&ctx));
            }
            let x = outlier::features::raw(&h.bucket);
            let so = &self.settings.host_outlier;
            let group = outlier::usable_group(&h.baseline.outlier, &self.groups, so);
            let window_ns = secs_ns(self.settings.lateral_movement.window_s);
            let fresh = h.admin_recent.update(&h.bucket.inside.admin, end_ns, window_ns);
            let rates = lateral::Rates::of(&h.baseline.outlier, group, so);
            found.extend(lateral::evaluate(&h.admin_recent, fresh, rates, &ctx));
            found.extend(outlier::evaluate(&x, &h.baseline.outlier, group, &ctx));
            // A bucket that raised anything, or that a volume rule suspects, is learned at the
            // guard weight: an episode cannot teach the baseline its own traffic.
            // A bucket with a volume finding (exfiltration) waits `verdicts.hold_s` for an
            // analyst's verdict first; one with other findings is learned at the guard weight at
            // once, as the rules that judge the next buckets expect.
            let guarded = found.len() > before || verdict.suspect;
            let weight = if guarded { self.settings.alert_weight } else { 1.0 };
            let values = h.bucket.values(h.hour_out());
            let guard = (self.settings.baseline_alpha, self.settings.alert_weight);
            h.baseline.release_held(end_ns, hold_ns, guard);
            if exfil_hit && hold_ns > 0 {
                h.baseline.hold(&values, end_ns, &self.life, guard);
            } else {
                h.baseline.learn(&values, end_ns, self.settings.baseline_alpha, weight, &self.life);
            }
            outlier::learn(&x, &mut h.baseline.outlier, &mut self.groups, so, weight);
            exfiltration::learn(h, &ctx, env, verdict.suspect || exfil_hit);
            let (c, b) = (&mut self.counters.capped, h.bucket.capped);
            c.host_peers += b.peers;
            c.host_ports += b.ports;
            c.host_dns_names += b.dns_names;
            c.host_dns_domains += b.dns_domains;
            h.roll(hour_buckets);
        }
        {
            let (hosts, life) = (&self.hosts, &self.life);
            let state_of = |ip: IpAddr| {
                hosts.get(&ip).map_or(LearningState::NotApplicable, |h| h.baseline.state(end_ns, life))
            };
            let ctx = BucketCtx {
                settings: &self.settings,
                host: IpAddr::from([0, 0, 0, 0]),
                start_ns,
                end_ns,
                state: LearningState::NotApplicable,
            };
            found.extend(self.scans.close(&ctx, &state_of));
            found.extend(self.floods.close(&ctx, &state_of));
        }
        outlier::regroup_if_due(
            &mut self.groups,
            &mut self.hosts,
            &self.settings.host_outlier,
            self.bucket_ns,
            end_ns,
        );
        found.sort_by_key(|a| (a.host, a.detector, a.peer, a.port));
        for c in found {
            self.raise(c);
        }
        self.stage.expire(end_ns, &self.settings);
        let (tunnel_window, dga_window) =
            (secs_ns(self.settings.dns_tunnel.window_s), secs_ns(self.settings.dga.window_s));
        self.dns_tracks.expire(end_ns, tunnel_window, dga_window);
    }
}

/// A settings value in seconds as nanoseconds (negative as 0).
fn secs_ns(s: i64) -> u64 {
    u64::try_from(s).unwrap_or(0).saturating_mul(1_000_000_000)
}

/// Whether `ip` is the local segment's own: multicast, broadcast, link-local or unspecified.
/// Such traffic is never an outside peer, a service or a beacon's destination.
#[must_use]
pub fn local_scope(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast() || a.is_link_local() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unicast_link_local() || a.is_unspecified(),
    }
}

/// How long after an emergency eviction alerts are marked `capture_degraded`.
const DEGRADED_NS: u64 = 60_000_000_000;

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
