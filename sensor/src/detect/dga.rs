//! `dga`: a host looks up many random-looking domains that do not exist, as malware with a
//! domain generation algorithm does while it searches for the one its operator registered.
//!
//! Counted by [`super::dns_track`]: distinct registered domains whose own label looks random
//! ([`super::name_score::looks_random`], 7 characters or more) answered NXDOMAIN to the host
//! within `window_s` (10 min). From `min_domains` (8) on, one alert names the count and a few of
//! the domains. A typo, a dead link or a browser's random probe (Chrome asks for three random
//! single labels at start, with no public suffix and so no registered domain) stays below.
//! This is not a tunnel: a tunnel uses one domain with many encoded names ([`super::dns_tunnel`]).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::dns_track::HostDns;
use super::{BucketCtx, Candidate, strength};
use crate::alert::{Detector, LearningState};

const DESCRIPTION: &str =
    "The host looked up many random-looking domains that do not exist (a domain generation algorithm).";

/// `[detection.dga]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// Distinct random-looking domains answered NXDOMAIN within the window.
    pub min_domains: u64,
    /// The window, seconds.
    pub window_s: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { enabled: true, min_domains: 8, window_s: 600 }
    }
}

/// The host's finding, if its NXDOMAIN domains within the window reach the floor.
#[must_use]
pub fn evaluate(track: &HostDns, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.dga;
    if !s.enabled {
        return None;
    }
    let (n, examples) = track.nx_domains();
    if n < s.min_domains {
        return None;
    }
    let t = s.min_domains as f64;
    let mut cand = Candidate::new(Detector::Dga, DESCRIPTION, ctx, "random_nxdomain_domains", n as f64, t);
    cand.strength = strength(n as f64, t).max(0.4);
    cand.confidence = 0.75;
    cand.transport = Some("udp");
    cand.evidence.learning_state = LearningState::NotApplicable;
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("nxdomain_random_domains"));
    d.insert("domains".into(), json!(n));
    d.insert("window_s".into(), json!(s.window_s));
    d.insert("examples".into(), json!(examples));
    cand.message = format!(
        "{} looked up {n} random-looking domains that do not exist within {} s (e.g. {})",
        ctx.host,
        s.window_s,
        examples.join(", ")
    );
    Some(cand)
}
