//! The alert model: what a detector raises and what every sink delivers.
//!
//! An [`Alert`] is plain data: the detector that fired ([`Detector`]), the host
//! at fault, the peer and port where one applies, a risk score 0–100 and its
//! [`Severity`], the incident it belongs to, and its [`Evidence`]. [`Alert::to_ecs`]
//! renders it as an ECS document (`event.kind = "alert"`); sinks that speak
//! another schema (CEF, LEEF, OCSF) map the same fields.
//!
//! Invariants: `id` is derived from the alert's content alone ([`alert_id`]),
//! so replaying the same capture from the same saved state gives the same ids,
//! and a sink that delivers an alert twice (at-least-once) delivers it with the
//! same `event.id`. Alerts are immutable once built.

pub mod attack;
mod ecs;
pub mod incident;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use ecs::{ECS_VERSION, rfc3339};

/// The detectors, by the names the documentation and `rule.name` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Outbound volume far above the host's baseline.
    Exfiltration,
    /// Data carried in DNS queries and answers.
    DnsTunnel,
    /// Data carried in ICMP echo payloads.
    IcmpTunnel,
    /// A protocol on a port that is not its own, or a port carrying something else.
    ProtocolMismatch,
    /// Horizontal or vertical scanning.
    Scan,
    /// Periodic connections to one destination.
    Beaconing,
    /// Sessions longer than the thresholds.
    LongConnection,
    /// Malformed or evasive packets above the host's baseline.
    MalformedTraffic,
    /// A flood, a reflection or its backscatter at a host (or from one).
    Flood,
    /// The sensor's own health: it is losing packets.
    CaptureLoss,
    /// TLS whose context (port, peer, SNI, fingerprint, certificate) is unlike ordinary traffic.
    SuspiciousTls,
    /// HTTP whose context (port, peer, Host, User-Agent, body) looks like command and control.
    SuspiciousHttp,
    /// Lookups of many random-looking domains that do not exist (domain generation algorithm).
    Dga,
    /// A host's bucket far from its own learned behaviour and from its peer group's.
    HostOutlier,
    /// An inside host starting to use administrative protocols with inside hosts it never used them with.
    LateralMovement,
}

impl Detector {
    /// Every detector, in the order documentation and statistics list them.
    pub const ALL: [Self; 15] = [
        Self::Exfiltration,
        Self::DnsTunnel,
        Self::IcmpTunnel,
        Self::ProtocolMismatch,
        Self::Scan,
        Self::Beaconing,
        Self::LongConnection,
        Self::MalformedTraffic,
        Self::Flood,
        Self::CaptureLoss,
        Self::SuspiciousTls,
        Self::SuspiciousHttp,
        Self::Dga,
        Self::HostOutlier,
        Self::LateralMovement,
    ];

    /// The name in `rule.name`, in configuration tables and in statistics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Exfiltration => "exfiltration",
            Self::DnsTunnel => "dns_tunnel",
            Self::IcmpTunnel => "icmp_tunnel",
            Self::ProtocolMismatch => "protocol_mismatch",
            Self::Scan => "scan",
            Self::Beaconing => "beaconing",
            Self::LongConnection => "long_connection",
            Self::MalformedTraffic => "malformed_traffic",
            Self::Flood => "flood",
            Self::CaptureLoss => "capture_loss",
            Self::SuspiciousTls => "suspicious_tls",
            Self::SuspiciousHttp => "suspicious_http",
            Self::Dga => "dga",
            Self::HostOutlier => "host_outlier",
            Self::LateralMovement => "lateral_movement",
        }
    }

    /// The detector named `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// ECS `event.category` values for this detector's alerts.
    #[must_use]
    pub fn categories(self) -> &'static [&'static str] {
        match self {
            Self::CaptureLoss => &["host"],
            Self::Scan => &["network", "intrusion_detection"],
            _ => &["network", "threat"],
        }
    }
}

/// Severity bands of the risk score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Score below 40.
    Low,
    /// 40–69.
    Medium,
    /// 70–89.
    High,
    /// 90 and above.
    Critical,
}

impl Severity {
    /// The band a risk score falls in.
    #[must_use]
    pub fn from_score(score: u8) -> Self {
        match score {
            0..40 => Self::Low,
            40..70 => Self::Medium,
            70..90 => Self::High,
            _ => Self::Critical,
        }
    }

    /// The name (`low`, `medium`, `high`, `critical`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// ECS `event.severity`: a number, higher is worse (here 1–4).
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
            Self::Critical => 4,
        }
    }

    /// Syslog severity (RFC 5424): 2 critical, 3 error, 4 warning, 5 notice.
    #[must_use]
    pub fn syslog(self) -> u8 {
        match self {
            Self::Low => 5,
            Self::Medium => 4,
            Self::High => 3,
            Self::Critical => 2,
        }
    }
}

/// Where a host's baseline stood when the alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearningState {
    /// Still learning: only absolute thresholds applied.
    Learning,
    /// Trusted baseline.
    Active,
    /// Not seen for long; the baseline is old.
    Stale,
    /// The detector uses no baseline (a fixed rule).
    NotApplicable,
}

impl LearningState {
    /// The name written into `nbad.evidence.learning_state`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Learning => "learning",
            Self::Active => "active",
            Self::Stale => "stale",
            Self::NotApplicable => "not_applicable",
        }
    }
}

/// What made an alert fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The measured quantity, e.g. `bytes_out_bucket`, `unique_subdomains`.
    pub metric: String,
    /// The value observed in the window.
    pub observed: f64,
    /// The baseline's mean of the same quantity, where a baseline applies.
    pub baseline_mean: Option<f64>,
    /// The baseline's normal band `[low, high]`, where a baseline applies.
    pub baseline_band: Option<[f64; 2]>,
    /// The threshold the observed value crossed.
    pub threshold: f64,
    /// The host's learning state at the time.
    pub learning_state: LearningState,
    /// Start of the window observed, ns since the epoch.
    pub window_start_ns: u64,
    /// End of the window observed, ns since the epoch.
    pub window_end_ns: u64,
    /// Community IDs of the flows that contributed (at most a few dozen).
    pub community_ids: Vec<String>,
    /// Detector-specific facts (e.g. the registered domain, the ports scanned).
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// The incident an alert was correlated into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRef {
    /// Stable id of the incident (the host, and the time it opened).
    pub id: String,
    /// The host's accumulated risk in the incident, including this alert.
    pub host_risk: u32,
    /// How many alerts the incident holds, including this one.
    pub alert_count: u32,
    /// `event.id`s of the incident's earlier alerts (at most the last 32).
    pub related: Vec<String>,
}

/// What the sensor learned a host does, from its behaviour (asset context beside the
/// configured criticality and owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRole {
    /// `server`, `client`, `server_and_client` or `quiet` (neither yet).
    pub kind: String,
    /// The services it serves, as `name/port (N clients)`, most clients first.
    pub services: Vec<String>,
    /// The peer group `host_outlier` put it in, as `id (label, N hosts)`.
    pub peer_group: Option<String>,
}

/// One scored alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `event.id`: stable, from the content ([`alert_id`]).
    pub id: String,
    /// When it was raised: the end of the evidence window, ns since the epoch
    /// (packet time, so a replay reproduces it).
    pub timestamp_ns: u64,
    /// `observer.name`: the sensor.
    pub sensor_id: String,
    /// `rule.name`.
    pub detector: Detector,
    /// `rule.description`: what the detector looks for.
    pub description: String,
    /// `message`: what happened here, in one sentence.
    pub message: String,
    /// `event.risk_score`, 0–100.
    pub risk_score: u8,
    /// The severity band of `risk_score`.
    pub severity: Severity,
    /// `source.ip`: the inside host at fault.
    pub host: IpAddr,
    /// `destination.ip`, where one peer applies.
    pub peer: Option<IpAddr>,
    /// `destination.port`, where one port applies.
    pub port: Option<u16>,
    /// `network.transport` (`tcp`, `udp`, `icmp`, ...), where one applies.
    pub transport: Option<String>,
    /// `network.community_id`, where one flow applies.
    pub community_id: Option<String>,
    /// The host's criticality from the config (1 = low ... 5 = crown jewels).
    pub host_criticality: u8,
    /// The host's owner from the config, if any.
    pub host_owner: Option<String>,
    /// What made it fire.
    pub evidence: Evidence,
    /// The incident it belongs to.
    pub incident: Option<IncidentRef>,
    /// The host's learned role, where the engine knows the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_role: Option<HostRole>,
    /// Set when this is not an alert but an incident record ([`incident`]): rendered as an
    /// `nbad.incident` document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<incident::IncidentRecord>>,
}

/// The stable id of an alert: the first 128 bits of SHA-256 over the sensor,
/// detector, host, peer, port and window, in hex. Two alerts with the same id
/// describe the same finding.
#[must_use]
pub fn alert_id(
    sensor_id: &str,
    detector: Detector,
    host: IpAddr,
    peer: Option<IpAddr>,
    port: Option<u16>,
    window_end_ns: u64,
) -> String {
    let mut h = Sha256::new();
    h.update(sensor_id.as_bytes());
    h.update([0]);
    h.update(detector.name().as_bytes());
    h.update([0]);
    h.update(host.to_string().as_bytes());
    h.update([0]);
    if let Some(p) = peer {
        h.update(p.to_string().as_bytes());
    }
    h.update([0]);
    if let Some(p) = port {
        h.update(p.to_be_bytes());
    }
    h.update(window_end_ns.to_be_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Alert {
    /// `rule.name`: the detector's name, or `staged_incident` for an incident record.
    #[must_use]
    pub fn rule_name(&self) -> &'static str {
        if self.record.is_some() { "staged_incident" } else { self.detector.name() }
    }

    /// The alert as an ECS document.
    #[must_use]
    pub fn to_ecs(&self) -> serde_json::Value {
        ecs::to_ecs(self)
    }

    /// The alert as one ECS JSON line, without the newline.
    #[must_use]
    pub fn to_ecs_line(&self) -> String {
        self.to_ecs().to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests;
