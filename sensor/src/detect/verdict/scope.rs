//! Scoped suppressions: what a benign verdict silences, and how a finding is
//! matched against it.
//!
//! A suppression always names the host (or a network holding it), the detector
//! and the rule; the peer by its domain where the evidence names one (a CDN
//! peer's addresses change, its domain does not), else by its address; the
//! port; and a bound on the value. A finding matches when every named part
//! matches; it is silenced only while its value stays within the bound. One
//! past the bound is raised, and its evidence names the suppression.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Entry, Kind, Request};
use crate::alert::{Detector, Evidence};

/// Evidence keys that name the peer's domain, most specific to the scope first.
const DOMAIN_KEYS: [&str; 4] = ["registered_domain", "peer_domain", "sni", "http_host"];

/// The rule of an alert: `details.rule`, else the evidence's metric.
#[must_use]
pub fn rule_of(e: &Evidence) -> String {
    e.details.get("rule").and_then(serde_json::Value::as_str).map_or_else(|| e.metric.clone(), str::to_owned)
}

/// The peer's domain, where the evidence names one.
#[must_use]
pub fn peer_domain_of(e: &Evidence) -> Option<String> {
    DOMAIN_KEYS
        .iter()
        .find_map(|k| e.details.get(*k).and_then(serde_json::Value::as_str))
        .filter(|d| !d.is_empty())
        .map(str::to_ascii_lowercase)
}

/// A finding as suppressions see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The detector.
    pub detector: Detector,
    /// The rule.
    pub rule: String,
    /// The host.
    pub host: IpAddr,
    /// The peer.
    pub peer: Option<IpAddr>,
    /// The peer's domain.
    pub peer_domain: Option<String>,
    /// The port.
    pub port: Option<u16>,
    /// The value.
    pub observed: f64,
}

impl Finding {
    /// The finding of `detector` with `evidence` about `host`.
    #[must_use]
    pub fn of(
        detector: Detector,
        host: IpAddr,
        peer: Option<IpAddr>,
        port: Option<u16>,
        e: &Evidence,
    ) -> Self {
        Self {
            detector,
            rule: rule_of(e),
            host,
            peer,
            peer_domain: peer_domain_of(e),
            port,
            observed: e.observed,
        }
    }
}

/// One suppression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// The alert whose verdict created it.
    pub alert_id: String,
    /// That verdict.
    pub verdict: Kind,
    /// The host's network (a single address unless the analyst widened it).
    pub host: IpNet,
    /// The detector.
    pub detector: Detector,
    /// The rule.
    pub rule: String,
    /// The peer's address, when no domain names it.
    pub peer: Option<IpAddr>,
    /// The peer's domain.
    pub peer_domain: Option<String>,
    /// The port.
    pub port: Option<u16>,
    /// The bound on the value: at most this (`upward`), or at least it.
    pub bound: f64,
    /// Whether the rule fires on values above its threshold (most do).
    pub upward: bool,
    /// When it ends, ns.
    pub expires_ns: u64,
    /// The verdict's reason.
    pub reason: String,
    /// The verdict's author.
    pub author: String,
    /// Findings it silenced.
    #[serde(default)]
    pub hits: u64,
}

/// How a finding stands against a suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Outside its scope.
    Outside,
    /// In scope and within the bound: silenced.
    Within,
    /// In scope, past the bound: raised, and the evidence says so.
    Beyond,
}

impl Suppression {
    /// The suppression a benign verdict on `e` creates.
    #[must_use]
    pub fn of(
        e: &Entry,
        verdict: Kind,
        req: &Request,
        cidr: Option<IpNet>,
        expires_ns: u64,
        margin: f64,
    ) -> Self {
        let upward = e.observed >= e.threshold;
        let margin = margin.max(1.0);
        let bound = if upward { e.observed * margin } else { e.observed / margin };
        Self {
            alert_id: e.id.clone(),
            verdict,
            host: cidr.unwrap_or_else(|| IpNet::from(e.host)),
            detector: e.detector,
            rule: e.rule.clone(),
            peer: if e.peer_domain.is_some() { None } else { e.peer },
            peer_domain: e.peer_domain.clone(),
            port: e.port,
            bound,
            upward,
            expires_ns,
            reason: req.reason.clone(),
            author: req.author.clone(),
            hits: 0,
        }
    }

    /// How `f` stands against this suppression at `now_ns`.
    #[must_use]
    pub fn check(&self, f: &Finding, now_ns: u64) -> Match {
        let in_scope = now_ns < self.expires_ns
            && self.detector == f.detector
            && self.rule == f.rule
            && self.host.contains(&f.host)
            && self.port == f.port
            && match (&self.peer_domain, self.peer) {
                (Some(d), _) => f.peer_domain.as_ref() == Some(d),
                (None, Some(p)) => f.peer == Some(p),
                (None, None) => f.peer.is_none() && f.peer_domain.is_none(),
            };
        if !in_scope {
            return Match::Outside;
        }
        let within = if self.upward { f.observed <= self.bound } else { f.observed >= self.bound };
        if within { Match::Within } else { Match::Beyond }
    }

    /// One line for evidence and listings.
    #[must_use]
    pub fn describe(&self) -> String {
        let peer = self
            .peer_domain
            .clone()
            .or_else(|| self.peer.map(|p| p.to_string()))
            .unwrap_or_else(|| "no peer".to_owned());
        let port = self.port.map_or_else(|| "any port".to_owned(), |p| format!("port {p}"));
        let side = if self.upward { "up to" } else { "down to" };
        format!(
            "{} verdict on {} by {} ({}): {} {} for {}, {peer}, {port}, values {side} {}",
            self.verdict.name(),
            self.alert_id,
            self.author,
            self.reason,
            self.detector.name(),
            self.rule,
            self.host,
            trim_float(self.bound),
        )
    }
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:.3}") }
}
