//! `lateral_movement`: an inside host starts using administrative protocols with inside hosts it
//! never used them with — SMB (445, 139), RDP (3389), WinRM (5985, 5986), SSH (22), DCE-RPC
//! (135), VNC (5900); the list is `ports`.
//!
//! From flow records: every answered connection an inside host opens to an inside host on one of
//! those ports (a probe nobody answered is reconnaissance, left to `scan`) is checked against the pairs (peer, port) the host has used before ([`AdminPairs`],
//! saved with its baseline: at most [`MAX_PAIRS`], the oldest forgotten first). A pair it never
//! used is *new*; new pairs stay in a per-host window of `window_s` (15 min). At each bucket that
//! brought a new pair, with `N` distinct peers newly reached in the window:
//!
//! - the *expected* number of such peers in the window is `λ = buckets × rate`, the rate being
//!   the larger of the host's own and its peer group's mean of new administrative peers per
//!   bucket (`host_outlier`'s distributions, [`super::outlier`]), and at least one a day;
//! - **`fan_out`**: `N ≥ min_new_peers` and the Poisson probability of `N` or more at `λ` is at
//!   most `max_probability`: spreading to several hosts at once (worms, PsExec sweeps);
//! - **`unusual_target`**: a new peer is no established server of that service (it answered
//!   fewer than `server_min_clients` distinct clients, as learned by [`super::role`]), and the
//!   host and its group start using administrative services with new hosts at most `quiet_rate`
//!   times per bucket: one workstation reaching into another, not a client finding a file server.
//!
//! The host's baseline must be active: until it has learned what it usually reaches, every pair
//! is new. An IT workstation that administers many hosts learns a high rate and is judged by it.
//!
//! Not visible: *what* an SMB session does. The sensor identifies a flow by its first payload
//! only (an SMB NEGOTIATE), so remote service creation (SVCCTL over `\PIPE\svcctl`), scheduled
//! tasks and WMI calls inside a session cannot be seen; a DCE-RPC connection to 135 counts as
//! administrative use on its own, and the call that follows it within a minute on a dynamic port
//! (1024 and up) of the same host counts as the same use ([`RpcFollow`]).

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::fanout::AdminUse;
use super::outlier::features::Feature;
use super::outlier::groups::Group;
use super::outlier::{HostModel, Settings as OutlierSettings};
use super::{BucketCtx, Candidate, strength};
use crate::alert::{Detector, LearningState};

const DESCRIPTION: &str =
    "The host started using administrative protocols with inside hosts it never used them with.";
/// Administrative pairs (peer, port) remembered per host.
pub const MAX_PAIRS: usize = 512;
/// New pairs kept in a host's window.
pub const MAX_RECENT: usize = 256;
/// The smallest rate assumed: one new administrative peer a day of one-minute buckets.
const FLOOR_RATE: f64 = 1.0 / 1_440.0;

/// `[detection.lateral_movement]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// The administrative services' TCP ports.
    pub ports: Vec<i64>,
    /// How long a new pair counts toward fan-out, seconds.
    pub window_s: i64,
    /// Distinct inside hosts newly reached within the window for `fan_out`.
    pub min_new_peers: u64,
    /// `fan_out` fires when N or more new peers are at most this likely.
    pub max_probability: f64,
    /// `unusual_target` needs the host's and its group's new-peer rate (per bucket) at most this.
    pub quiet_rate: f64,
    /// A target that answered this many distinct clients on the port is an established server.
    pub server_min_clients: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            ports: vec![22, 135, 139, 445, 3389, 5900, 5985, 5986],
            window_s: 900,
            min_new_peers: 3,
            max_probability: 0.001,
            quiet_rate: 0.01,
            server_min_clients: 3,
        }
    }
}

impl Settings {
    /// Range checks, naming the key.
    pub(crate) fn validate(&self, c: &super::config::Check<'_>) -> Result<(), crate::config::ConfigError> {
        for (n, port) in self.ports.iter().enumerate() {
            c.int(&format!("lateral_movement.ports[{n}]"), *port, 1, 65_535, "")?;
        }
        c.int("lateral_movement.window_s", self.window_s, 60, 86_400, "seconds")?;
        c.positive("lateral_movement.min_new_peers", self.min_new_peers)?;
        c.float("lateral_movement.max_probability", self.max_probability, 0.0, 1.0)?;
        c.float("lateral_movement.quiet_rate", self.quiet_rate, 0.0, 100.0)?;
        c.positive("lateral_movement.server_min_clients", self.server_min_clients)?;
        Ok(())
    }

    /// Whether TCP `port` is an administrative service's.
    #[must_use]
    pub fn is_admin(&self, port: u16) -> bool {
        self.ports.contains(&i64::from(port))
    }
}

/// DCE-RPC's endpoint mapper: it hands the client the dynamic port of the interface it asked for
/// (49152–65535 on current Windows), and the call itself goes there.
pub const EPMAP: u16 = 135;
/// How soon after an endpoint-mapper connection a connection to a dynamic port of the same host
/// counts as the call that followed.
pub const RPC_FOLLOW_NS: u64 = 60_000_000_000;
/// Endpoint-mapper contacts remembered per host.
const MAX_RPC: usize = 16;

/// A host's endpoint-mapper contacts of the last minute (not saved), so that the DCE-RPC call on
/// the dynamic port that follows counts as the same administrative use (the pair stays
/// (peer, 135)). A call whose record the sensor gets before the endpoint mapper's is not matched.
#[derive(Debug, Clone, Default)]
pub struct RpcFollow {
    contacts: VecDeque<(IpAddr, u64)>,
}

impl RpcFollow {
    /// The host reached `peer`'s endpoint mapper at `ts_ns`.
    pub fn contacted(&mut self, peer: IpAddr, ts_ns: u64) {
        while self.contacts.front().is_some_and(|c| ts_ns.saturating_sub(c.1) > RPC_FOLLOW_NS) {
            self.contacts.pop_front();
        }
        if self.contacts.len() >= MAX_RPC {
            self.contacts.pop_front();
        }
        self.contacts.push_back((peer, ts_ns));
    }

    /// Whether a connection to `peer` starting at `ts_ns` follows an endpoint-mapper contact.
    #[must_use]
    pub fn follows(&self, peer: IpAddr, ts_ns: u64) -> bool {
        self.contacts.iter().any(|&(p, at)| p == peer && ts_ns >= at && ts_ns - at <= RPC_FOLLOW_NS)
    }
}

/// The name of an administrative service, by port.
#[must_use]
pub fn admin_service(port: u16, proto: u8) -> Option<&'static str> {
    if proto != 6 {
        return None;
    }
    Some(match port {
        445 | 139 => "smb",
        3389 => "rdp",
        5985 | 5986 => "winrm",
        22 => "ssh",
        135 => "dcerpc",
        5900 => "vnc",
        _ => return None,
    })
}

fn service(port: u16) -> String {
    admin_service(port, 6).map_or_else(|| format!("tcp/{port}"), str::to_owned)
}

/// The administrative pairs a host has used (saved with its baseline).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPairs {
    keys: VecDeque<u64>,
}

fn pair_key(peer: IpAddr, port: u16) -> u64 {
    super::seen::addr_key(peer) ^ u64::from(port).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl AdminPairs {
    /// Remembers (peer, port); returns whether it is new.
    pub fn note(&mut self, peer: IpAddr, port: u16) -> bool {
        let key = pair_key(peer, port);
        if self.keys.contains(&key) {
            return false;
        }
        if self.keys.len() >= MAX_PAIRS {
            self.keys.pop_front();
        }
        self.keys.push_back(key);
        true
    }

    /// Pairs remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A host's new pairs of the last `window_s` (not saved: a restart starts an empty window).
#[derive(Debug, Clone, Default)]
pub struct Recent {
    uses: VecDeque<AdminUse>,
}

impl Recent {
    /// Adds the bucket's new pairs and forgets those older than `window_ns` before `now_ns`.
    /// Returns whether the bucket brought one.
    pub fn update(&mut self, bucket: &[AdminUse], now_ns: u64, window_ns: u64) -> bool {
        let mut fresh = false;
        for u in bucket.iter().filter(|u| u.new_pair) {
            fresh = true;
            if self.uses.len() >= MAX_RECENT {
                self.uses.pop_front();
            }
            self.uses.push_back(*u);
        }
        while self.uses.front().is_some_and(|u| now_ns.saturating_sub(u.ts_ns) > window_ns) {
            self.uses.pop_front();
        }
        fresh
    }

    /// Whether the window is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.uses.is_empty()
    }
}

/// `P(X ≥ n)` for `X` Poisson with mean `lambda`.
#[must_use]
pub fn poisson_tail(n: u64, lambda: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let lambda = lambda.max(1e-12);
    let mut term = (-lambda).exp();
    let mut below = term;
    for k in 1..n {
        term *= lambda / k as f64;
        below += term;
    }
    (1.0 - below).max(0.0)
}

/// The rates the host is judged by: its own and its group's mean new administrative peers per
/// bucket (`None` where not learned).
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// The host's own.
    pub own: Option<f64>,
    /// Its peer group's.
    pub group: Option<f64>,
}

impl Rates {
    /// The rates of new administrative peers per bucket in the host's own distribution (once it
    /// holds `min_buckets`) and in its usable peer group's.
    #[must_use]
    pub fn of(model: &HostModel, group: Option<&Group>, s: &OutlierSettings) -> Self {
        let admin = Feature::NewAdminPeers as usize;
        Self {
            own: model.dist.ready(s.min_buckets()).then(|| model.dist.rate(admin)),
            group: group.map(|g| g.dist.rate(admin)),
        }
    }
}

/// The host's finding, if the window's new pairs are lateral movement.
#[must_use]
pub fn evaluate(recent: &Recent, fresh: bool, rates: Rates, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.lateral_movement;
    if !s.enabled || !fresh || ctx.state != LearningState::Active || recent.is_empty() {
        return None;
    }
    let mut peers: Vec<IpAddr> = Vec::new();
    for u in &recent.uses {
        if !peers.contains(&u.peer) {
            peers.push(u.peer);
        }
    }
    let n = peers.len() as u64;
    let bucket_s = ctx.bucket_s().max(1) as f64;
    let buckets = (s.window_s as f64 / bucket_s).max(1.0);
    let rate = rates.own.unwrap_or(0.0).max(rates.group.unwrap_or(0.0)).max(FLOOR_RATE);
    let lambda = rate * buckets;
    let p = poisson_tail(n, lambda);
    let min_clients = usize::try_from(s.server_min_clients).unwrap_or(usize::MAX);
    let unusual: Vec<&AdminUse> = recent.uses.iter().filter(|u| u.peer_clients < min_clients).collect();
    let quiet = rates.own.unwrap_or(0.0) <= s.quiet_rate && rates.group.unwrap_or(0.0) <= s.quiet_rate;
    let rule = if n >= s.min_new_peers && p <= s.max_probability {
        "fan_out"
    } else if !unusual.is_empty() && quiet {
        "unusual_target"
    } else {
        return None;
    };
    // The alert's peer: the first unusual target, else the first new one.
    let first = unusual.first().copied().or(recent.uses.front())?;
    let threshold = if rule == "fan_out" { s.min_new_peers as f64 } else { 1.0 };
    let mut cand =
        Candidate::new(Detector::LateralMovement, DESCRIPTION, ctx, "new_admin_peers", n as f64, threshold);
    cand.peer = Some(first.peer);
    cand.port = Some(first.port);
    cand.transport = Some("tcp");
    cand.flow = Some(first.flow);
    if rule == "fan_out" {
        cand.strength = strength(n as f64, s.min_new_peers as f64 * 0.5).max(0.4);
        cand.confidence = 0.75;
    } else {
        cand.strength = (0.3 + 0.1 * (n as f64 - 1.0)).min(0.9);
        cand.confidence = 0.65;
    }
    cand.evidence.baseline_mean = Some(lambda);
    cand.evidence.community_ids = recent.uses.iter().take(16).map(|u| u.flow.community_id()).collect();
    let targets: Vec<serde_json::Value> = recent
        .uses
        .iter()
        .take(16)
        .map(|u| {
            json!({
                "peer": u.peer,
                "port": u.port,
                "service": service(u.port),
                "peer_clients_before": u.peer_clients,
                "at": crate::alert::rfc3339(u.ts_ns),
            })
        })
        .collect();
    let round = |v: f64| (v * 10_000.0).round() / 10_000.0;
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(rule));
    d.insert("new_peers".into(), json!(n));
    d.insert("window_s".into(), json!(s.window_s));
    d.insert("expected_new_peers".into(), json!(round(lambda)));
    d.insert("probability".into(), json!(p));
    d.insert("own_rate".into(), json!(rates.own.map(round)));
    d.insert("group_rate".into(), json!(rates.group.map(round)));
    d.insert("targets".into(), json!(targets));
    let mut services: Vec<String> = recent.uses.iter().map(|u| service(u.port)).collect();
    services.sort();
    services.dedup();
    cand.message = if rule == "fan_out" {
        format!(
            "{} used {} with {n} inside hosts it never used them with in {} min (expected {:.2}), e.g. {}:{}",
            ctx.host,
            services.join("/"),
            s.window_s / 60,
            lambda,
            first.peer,
            first.port
        )
    } else {
        format!(
            "{} used {} with {}, which it never used it with and which had answered {} clients on that \
             port before; neither the host nor its peer group usually does this",
            ctx.host,
            service(first.port),
            first.peer,
            first.peer_clients
        )
    };
    Some(cand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_is_a_probability_that_falls_with_n() {
        assert!((poisson_tail(0, 0.5) - 1.0).abs() < 1e-12);
        assert!((poisson_tail(1, 0.5) - (1.0 - (-0.5f64).exp())).abs() < 1e-12);
        assert!(poisson_tail(3, 0.01) < 1e-6);
        assert!(poisson_tail(3, 5.0) > 0.5);
    }

    #[test]
    fn pairs_are_new_once_and_stay_bounded() {
        let mut p = AdminPairs::default();
        let a = IpAddr::from([10, 0, 0, 9]);
        assert!(p.note(a, 445));
        assert!(!p.note(a, 445));
        assert!(p.note(a, 3389), "another service is another pair");
        for i in 0..2_000u32 {
            p.note(IpAddr::from(i.to_be_bytes()), 22);
        }
        assert_eq!(p.len(), MAX_PAIRS);
    }
}

#[cfg(test)]
pub(crate) mod engine_tests;
