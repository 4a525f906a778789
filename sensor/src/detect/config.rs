//! `[detection]`: baselines, every detector's thresholds, scoring, suppression,
//! allow-list and asset criticality. Raw serde structs (strict, with the
//! defaults) and their validation into [`DetectionSettings`].
//!
//! Every key, its unit and its default are documented in
//! `configs/sensor.example.toml`; the ranges checked here are the ones written
//! there.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use super::beaconing::Settings as Beaconing;
use super::clock::SiteClock;
pub use super::dga::Settings as Dga;
pub use super::exfiltration::Settings as Exfiltration;
pub use super::flood::Settings as Flood;
pub use super::lateral::Settings as LateralMovement;
pub use super::outlier::Settings as HostOutlier;
pub use super::scan::Settings as Scan;
pub use super::suspicious_http::Settings as SuspiciousHttp;
pub use super::suspicious_tls::Settings as SuspiciousTls;
pub use super::verdict::Settings as Verdicts;
use crate::alert::Detector;
use crate::config::ConfigError;

/// The whole `[detection]` table as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawDetection {
    pub enabled: bool,
    pub bucket_s: i64,
    pub learning_period_s: i64,
    pub min_learning_buckets: i64,
    pub stale_after_s: i64,
    pub baseline_alpha: f64,
    pub sigma: f64,
    pub alert_weight: f64,
    pub max_hosts: i64,
    pub state_file: String,
    pub snapshot_interval_s: i64,
    pub suppress_window_s: i64,
    pub incident_window_s: i64,
    pub min_score: i64,
    pub timezone: String,
    pub exfiltration: Exfiltration,
    pub dns_tunnel: DnsTunnel,
    pub dga: Dga,
    pub icmp_tunnel: IcmpTunnel,
    pub protocol_mismatch: ProtocolMismatch,
    pub suspicious_tls: SuspiciousTls,
    pub suspicious_http: SuspiciousHttp,
    pub scan: Scan,
    pub flood: Flood,
    pub beaconing: Beaconing,
    pub long_connection: LongConnection,
    pub malformed_traffic: MalformedTraffic,
    pub host_outlier: HostOutlier,
    pub lateral_movement: LateralMovement,
    pub verdicts: Verdicts,
    pub allow: Vec<RawAllow>,
    pub assets: Vec<RawAsset>,
}

impl Default for RawDetection {
    fn default() -> Self {
        Self {
            enabled: true,
            bucket_s: 60,
            learning_period_s: 86_400,
            min_learning_buckets: 30,
            stale_after_s: 7 * 86_400,
            baseline_alpha: 0.01,
            sigma: 4.0,
            alert_weight: 0.1,
            max_hosts: 100_000,
            state_file: String::new(),
            snapshot_interval_s: 300,
            suppress_window_s: 3_600,
            incident_window_s: 3_600,
            min_score: 0,
            timezone: "UTC".to_owned(),
            exfiltration: Exfiltration::default(),
            dns_tunnel: DnsTunnel::default(),
            dga: Dga::default(),
            icmp_tunnel: IcmpTunnel::default(),
            protocol_mismatch: ProtocolMismatch::default(),
            suspicious_tls: SuspiciousTls::default(),
            suspicious_http: SuspiciousHttp::default(),
            scan: Scan::default(),
            flood: Flood::default(),
            beaconing: Beaconing::default(),
            long_connection: LongConnection::default(),
            malformed_traffic: MalformedTraffic::default(),
            host_outlier: HostOutlier::default(),
            lateral_movement: LateralMovement::default(),
            verdicts: Verdicts::default(),
            allow: Vec::new(),
            assets: Vec::new(),
        }
    }
}

/// `[detection.dns_tunnel]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsTunnel {
    /// Detector on.
    pub enabled: bool,
    /// Unique names under one registered domain in a bucket.
    pub min_unique_subdomains: u64,
    /// Mean length of the part left of the registered domain, for the rule above.
    pub min_mean_subdomain_len: f64,
    /// A label at least this long is "long".
    pub long_label: u64,
    /// Shannon entropy (bits per character) of a long label, at least.
    pub min_entropy: f64,
    /// Queries with a long, high-entropy label under one domain in a bucket.
    pub min_long_queries: u64,
    /// TXT, NULL, CNAME, ANY or private-type queries under one domain in a bucket.
    pub min_unusual_qtypes: u64,
    /// TXT or NULL answers of at least `large_answer_bytes` under one domain in a bucket.
    pub min_large_answers: u64,
    /// Size from which a TXT or NULL answer is large, in bytes of DNS message.
    pub large_answer_bytes: u64,
    /// NULL or private-type queries under one domain in a bucket: almost
    /// nothing but tunnels (iodine) asks for these.
    pub min_null_queries: u64,
    /// DNS messages over TCP from one host in a bucket (bulk DNS over TCP).
    pub min_tcp_messages: u64,
    /// Query volume floor for the baseline rule (queries per bucket).
    pub min_queries: u64,
    /// Registered domains never reported (e.g. DNSBL and antivirus lookups).
    pub ignore_domains: Vec<String>,
    /// How long names count toward `encoded_subdomains`, seconds.
    pub window_s: i64,
    /// Distinct encoded-looking names under one registered domain within the window.
    pub min_encoded_names: u64,
    /// Share of the domain's distinct names that must look encoded.
    pub min_encoded_share: f64,
}

impl Default for DnsTunnel {
    fn default() -> Self {
        Self {
            enabled: true,
            min_unique_subdomains: 40,
            min_mean_subdomain_len: 16.0,
            long_label: 40,
            min_entropy: 3.5,
            min_long_queries: 5,
            min_unusual_qtypes: 20,
            min_null_queries: 3,
            min_large_answers: 10,
            large_answer_bytes: 200,
            min_tcp_messages: 50,
            min_queries: 500,
            ignore_domains: Vec::new(),
            window_s: 600,
            min_encoded_names: 10,
            min_encoded_share: 0.5,
        }
    }
}

/// `[detection.icmp_tunnel]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IcmpTunnel {
    /// Detector on.
    pub enabled: bool,
    /// Echo packets between one pair in a bucket, at least.
    pub min_packets: u64,
    /// Distinct payload sizes in a bucket, at least (ping keeps one size).
    pub min_distinct_sizes: u64,
    /// Mean payload size above which echo traffic is unusual, in bytes.
    pub max_normal_payload: u64,
    /// Echo payload bytes between one pair in a bucket that alert on their own.
    pub max_bytes: u64,
}

impl Default for IcmpTunnel {
    fn default() -> Self {
        Self {
            enabled: true,
            min_packets: 8,
            min_distinct_sizes: 4,
            max_normal_payload: 128,
            max_bytes: 65_536,
        }
    }
}

/// `[detection.protocol_mismatch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolMismatch {
    /// Detector on.
    pub enabled: bool,
    /// Also report a known protocol on a port no protocol claims (SSH on 2222,
    /// HTTP on 1234): lower confidence.
    pub report_nonstandard: bool,
    /// A service (server, port, protocol) first seen this long ago is the
    /// organisation's own and stops alerting.
    pub inventory_learn_s: i64,
    /// Services remembered at most.
    pub max_services: i64,
}

impl Default for ProtocolMismatch {
    fn default() -> Self {
        Self { enabled: true, report_nonstandard: true, inventory_learn_s: 86_400, max_services: 100_000 }
    }
}

/// `[detection.long_connection]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LongConnection {
    /// Detector on.
    pub enabled: bool,
    /// A session at least this long alerts.
    pub min_duration_s: i64,
    /// At this length the score is at its highest.
    pub high_duration_s: i64,
    /// Long flows tracked at most.
    pub max_tracked: i64,
}

impl Default for LongConnection {
    fn default() -> Self {
        Self { enabled: true, min_duration_s: 7_200, high_duration_s: 86_400, max_tracked: 100_000 }
    }
}

/// `[detection.malformed_traffic]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MalformedTraffic {
    /// Detector on.
    pub enabled: bool,
    /// Malformed or evasive packets from one host in a bucket: floor.
    pub min_packets: u64,
    /// While the host is learning (no baseline), this many alert.
    pub learning_min_packets: u64,
}

impl Default for MalformedTraffic {
    fn default() -> Self {
        Self { enabled: true, min_packets: 20, learning_min_packets: 100 }
    }
}

/// One `[[detection.allow]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAllow {
    pub host: String,
    pub detector: String,
    pub peer: String,
    pub port: Option<i64>,
    pub reason: String,
    pub expires: String,
}

/// One `[[detection.assets]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAsset {
    pub cidr: String,
    pub criticality: i64,
    pub owner: String,
}

/// An allow-list entry: alerts it matches are not raised (and are counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// The inside host or network.
    pub host: IpNet,
    /// One detector, or every detector.
    pub detector: Option<Detector>,
    /// The peer, when the entry is for one peer (or network).
    pub peer: Option<IpNet>,
    /// The port, when the entry is for one port.
    pub port: Option<u16>,
    /// Why (required: an allow-list without reasons rots).
    pub reason: String,
    /// After this time (ns since the epoch, packet time) the entry is ignored.
    pub expires_ns: Option<u64>,
}

/// Criticality and owner of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// The network.
    pub cidr: IpNet,
    /// 1 (lab box) to 5 (crown jewels).
    pub criticality: u8,
    /// Who to call.
    pub owner: Option<String>,
}

/// Validated `[detection]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionSettings {
    /// Detection on at all.
    pub enabled: bool,
    /// Baseline bucket.
    pub bucket: Duration,
    /// Observed data needed before a baseline is trusted.
    pub learning_period: Duration,
    /// Buckets needed before a baseline is trusted.
    pub min_learning_buckets: u32,
    /// A host not seen this long is stale.
    pub stale_after: Duration,
    /// EWMA weight of a new bucket.
    pub baseline_alpha: f64,
    /// Width of the normal band, in standard deviations of log-scaled values.
    pub sigma: f64,
    /// Weight of a bucket that raised an alert, relative to a normal one.
    pub alert_weight: f64,
    /// Inside hosts with a baseline, at most.
    pub max_hosts: usize,
    /// Where the baseline state is saved (`None`: not saved).
    pub state_file: Option<PathBuf>,
    /// How often the state is saved while running.
    pub snapshot_interval: Duration,
    /// Repeats of an alert (host, detector, peer) within this are suppressed.
    pub suppress_window: Duration,
    /// Alerts of one host within this of each other form one incident.
    pub incident_window: Duration,
    /// Alerts scoring below this are not raised.
    pub min_score: u8,
    /// The site's time zone, for hour-of-day baselines.
    pub clock: SiteClock,
    /// `[detection.exfiltration]`.
    pub exfiltration: Exfiltration,
    /// `[detection.dns_tunnel]`.
    pub dns_tunnel: DnsTunnel,
    /// `[detection.dga]`.
    pub dga: Dga,
    /// `[detection.icmp_tunnel]`.
    pub icmp_tunnel: IcmpTunnel,
    /// `[detection.protocol_mismatch]`.
    pub protocol_mismatch: ProtocolMismatch,
    /// `[detection.suspicious_tls]`.
    pub suspicious_tls: SuspiciousTls,
    /// `[detection.suspicious_http]`.
    pub suspicious_http: SuspiciousHttp,
    /// `[detection.scan]`.
    pub scan: Scan,
    /// `[detection.flood]`.
    pub flood: Flood,
    /// `[detection.beaconing]`.
    pub beaconing: Beaconing,
    /// `[detection.long_connection]`.
    pub long_connection: LongConnection,
    /// `[detection.malformed_traffic]`.
    pub malformed_traffic: MalformedTraffic,
    /// `[detection.host_outlier]`.
    pub host_outlier: HostOutlier,
    /// `[detection.lateral_movement]`.
    pub lateral_movement: LateralMovement,
    /// `[detection.verdicts]`.
    pub verdicts: Verdicts,
    /// `[[detection.allow]]`.
    pub allow: Vec<AllowEntry>,
    /// `[[detection.assets]]`, most specific first.
    pub assets: Vec<Asset>,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        validate(RawDetection::default(), Path::new(crate::config::BUILT_IN_ORIGIN))
            .expect("the built-in detection defaults are valid")
    }
}

/// Range checks that name the key, the value and what would be valid; each
/// detector's settings validate themselves with it.
pub(crate) struct Check<'a> {
    origin: &'a Path,
}

impl Check<'_> {
    pub(crate) fn invalid(&self, key: &str, value: String, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.to_path_buf(),
            key: format!("detection.{key}"),
            value,
            expected: expected.to_owned(),
        }
    }

    pub(crate) fn int(&self, key: &str, v: i64, lo: i64, hi: i64, unit: &str) -> Result<u64, ConfigError> {
        if (lo..=hi).contains(&v) {
            return u64::try_from(v).map_err(|_| self.invalid(key, v.to_string(), "a positive integer"));
        }
        Err(self.invalid(key, v.to_string(), format!("an integer from {lo} to {hi} {unit}").trim_end()))
    }

    pub(crate) fn float(&self, key: &str, v: f64, lo: f64, hi: f64) -> Result<f64, ConfigError> {
        if v.is_finite() && (lo..=hi).contains(&v) {
            return Ok(v);
        }
        Err(self.invalid(key, v.to_string(), &format!("a number from {lo} to {hi}")))
    }

    pub(crate) fn positive(&self, key: &str, v: u64) -> Result<(), ConfigError> {
        if v == 0 {
            return Err(self.invalid(key, "0".into(), "an integer of at least 1"));
        }
        Ok(())
    }

    fn net(&self, key: &str, text: &str) -> Result<IpNet, ConfigError> {
        text.parse::<IpNet>().or_else(|_| text.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
            self.invalid(key, toml_str(text), "an IP address or a CIDR network such as \"10.1.0.0/16\"")
        })
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

/// Validates the raw table.
pub(crate) fn validate(raw: RawDetection, origin: &Path) -> Result<DetectionSettings, ConfigError> {
    let c = Check { origin };
    let bucket = c.int("bucket_s", raw.bucket_s, 1, 3_600, "seconds")?;
    let learning = c.int("learning_period_s", raw.learning_period_s, 0, 90 * 86_400, "seconds")?;
    let min_buckets = c.int("min_learning_buckets", raw.min_learning_buckets, 1, 100_000, "")?;
    let stale = c.int("stale_after_s", raw.stale_after_s, 60, 365 * 86_400, "seconds")?;
    let alpha = c.float("baseline_alpha", raw.baseline_alpha, 0.0001, 0.5)?;
    let sigma = c.float("sigma", raw.sigma, 1.0, 20.0)?;
    let alert_weight = c.float("alert_weight", raw.alert_weight, 0.0, 1.0)?;
    let max_hosts = c.int("max_hosts", raw.max_hosts, 1, 10_000_000, "")?;
    let snapshot = c.int("snapshot_interval_s", raw.snapshot_interval_s, 10, 86_400, "seconds")?;
    let suppress = c.int("suppress_window_s", raw.suppress_window_s, 0, 30 * 86_400, "seconds")?;
    let incident = c.int("incident_window_s", raw.incident_window_s, 1, 30 * 86_400, "seconds")?;
    let min_score = c.int("min_score", raw.min_score, 0, 100, "")?;

    let clock = SiteClock::named(&raw.timezone).ok_or_else(|| {
        c.invalid(
            "timezone",
            toml_str(&raw.timezone),
            "\"UTC\" or an IANA time zone name the system knows, such as \"Europe/Berlin\" (package tzdata)",
        )
    })?;
    let e = &raw.exfiltration;
    c.positive("exfiltration.min_bytes", e.min_bytes)?;
    c.positive("exfiltration.hour_min_bytes", e.hour_min_bytes)?;
    c.positive("exfiltration.learning_min_bytes", e.learning_min_bytes)?;
    c.float("exfiltration.band_cap", e.band_cap, 1.0, 1e6)?;
    c.float("exfiltration.hour_factor", e.hour_factor, 1.0, 1e3)?;
    c.float("exfiltration.peer_factor", e.peer_factor, 1.0, 1e3)?;
    c.float("exfiltration.upload_ratio", e.upload_ratio, 0.0, 1e6)?;
    c.float("exfiltration.tcp_upload_ratio", e.tcp_upload_ratio, 0.0, 1e6)?;
    for (n, (lo, hi)) in e.new_peer_min_bytes.iter().zip(e.new_peer_max_bytes).enumerate() {
        c.positive(&format!("exfiltration.new_peer_min_bytes[{n}]"), *lo)?;
        if hi < *lo {
            return Err(c.invalid(
                &format!("exfiltration.new_peer_max_bytes[{n}]"),
                hi.to_string(),
                &format!("at least exfiltration.new_peer_min_bytes[{n}] ({lo})"),
            ));
        }
    }
    for (n, v) in e.known_peer_min_bytes.iter().enumerate() {
        c.positive(&format!("exfiltration.known_peer_min_bytes[{n}]"), *v)?;
    }
    for (n, v) in e.slow_min_bytes.iter().enumerate() {
        c.positive(&format!("exfiltration.slow_min_bytes[{n}]"), *v)?;
    }
    for (n, v) in e.slow_daily_factor.iter().enumerate() {
        c.float(&format!("exfiltration.slow_daily_factor[{n}]"), *v, 1.0, 1e3)?;
    }
    let d = &raw.dns_tunnel;
    for (k, v) in [
        ("dns_tunnel.min_unique_subdomains", d.min_unique_subdomains),
        ("dns_tunnel.long_label", d.long_label),
        ("dns_tunnel.min_long_queries", d.min_long_queries),
        ("dns_tunnel.min_unusual_qtypes", d.min_unusual_qtypes),
        ("dns_tunnel.min_null_queries", d.min_null_queries),
        ("dns_tunnel.min_large_answers", d.min_large_answers),
        ("dns_tunnel.large_answer_bytes", d.large_answer_bytes),
        ("dns_tunnel.min_tcp_messages", d.min_tcp_messages),
        ("dns_tunnel.min_queries", d.min_queries),
        ("dns_tunnel.min_encoded_names", d.min_encoded_names),
        ("dga.min_domains", raw.dga.min_domains),
    ] {
        c.positive(k, v)?;
    }
    c.int("dns_tunnel.window_s", d.window_s, 1, 86_400, "seconds")?;
    c.float("dns_tunnel.min_encoded_share", d.min_encoded_share, 0.0, 1.0)?;
    c.int("dga.window_s", raw.dga.window_s, 1, 86_400, "seconds")?;
    let v = &raw.verdicts;
    c.positive("verdicts.max_alerts", v.max_alerts)?;
    c.positive("verdicts.max_suppressions", v.max_suppressions)?;
    c.int("verdicts.max_expiry_s", v.max_expiry_s, 60, 10 * 365 * 86_400, "seconds")?;
    c.int("verdicts.default_expiry_s", v.default_expiry_s, 60, v.max_expiry_s.max(60), "seconds")?;
    c.float("verdicts.value_margin", v.value_margin, 1.0, 100.0)?;
    c.int("verdicts.hold_s", v.hold_s, 0, 7 * 86_400, "seconds")?;
    c.positive("verdicts.raise_after", v.raise_after)?;
    c.float("verdicts.raise_step", v.raise_step, 0.0, 10.0)?;
    c.float("verdicts.max_raise", v.max_raise, 1.0, 100.0)?;
    if d.long_label > 63 {
        return Err(c.invalid("dns_tunnel.long_label", d.long_label.to_string(), "an integer from 1 to 63"));
    }
    c.float("dns_tunnel.min_mean_subdomain_len", d.min_mean_subdomain_len, 1.0, 253.0)?;
    c.float("dns_tunnel.min_entropy", d.min_entropy, 0.0, 8.0)?;
    let i = &raw.icmp_tunnel;
    for (k, v) in [
        ("icmp_tunnel.min_packets", i.min_packets),
        ("icmp_tunnel.min_distinct_sizes", i.min_distinct_sizes),
        ("icmp_tunnel.max_normal_payload", i.max_normal_payload),
        ("icmp_tunnel.max_bytes", i.max_bytes),
    ] {
        c.positive(k, v)?;
    }
    let p = &raw.protocol_mismatch;
    c.int("protocol_mismatch.inventory_learn_s", p.inventory_learn_s, 0, 365 * 86_400, "seconds")?;
    c.int("protocol_mismatch.max_services", p.max_services, 1, 10_000_000, "")?;
    c.float("suspicious_tls.min_score", raw.suspicious_tls.min_score, 0.0, 100.0)?;
    let h = &raw.suspicious_http;
    c.float("suspicious_http.min_score", h.min_score, 0.0, 100.0)?;
    c.float("suspicious_http.min_body_entropy", h.min_body_entropy, 0.0, 8.0)?;
    c.positive("suspicious_http.series_min_posts", h.series_min_posts)?;
    c.int("suspicious_http.series_window_s", h.series_window_s, 1, 86_400, "seconds")?;
    raw.scan.validate(&c)?;
    raw.flood.validate(&c)?;
    let b = &raw.beaconing;
    c.int("beaconing.min_connections", i64::try_from(b.min_connections).unwrap_or(i64::MAX), 4, 10_000, "")?;
    c.float("beaconing.min_score", b.min_score, 0.0, 1.0)?;
    let history = c.int("beaconing.history", b.history, 8, 4_096, "")?;
    if history < b.min_connections {
        return Err(c.invalid(
            "beaconing.history",
            history.to_string(),
            "an integer of at least beaconing.min_connections",
        ));
    }
    c.int("beaconing.max_channels_per_host", b.max_channels_per_host, 1, 1_000_000, "")?;
    c.float("beaconing.min_interval_s", b.min_interval_s, 0.0, 86_400.0)?;
    c.float("beaconing.inflow_min_interval_s", b.inflow_min_interval_s, 0.0, 86_400.0)?;
    for (n, port) in b.ignore_ports.iter().enumerate() {
        c.int(&format!("beaconing.ignore_ports[{n}]"), *port, 0, 65_535, "")?;
    }
    for (n, port) in b.inflow_ignore_ports.iter().enumerate() {
        c.int(&format!("beaconing.inflow_ignore_ports[{n}]"), *port, 0, 65_535, "")?;
    }
    for (n, name) in b.ignore_names.iter().enumerate() {
        if name.trim_matches('.').is_empty() || name.contains(char::is_whitespace) {
            return Err(c.invalid(
                &format!("beaconing.ignore_names[{n}]"),
                toml_str(name),
                "a name, \"label.\" (first label) or \".suffix\" without spaces",
            ));
        }
    }
    let l = &raw.long_connection;
    let min_d = c.int("long_connection.min_duration_s", l.min_duration_s, 60, 365 * 86_400, "seconds")?;
    let high_d = c.int("long_connection.high_duration_s", l.high_duration_s, 60, 365 * 86_400, "seconds")?;
    if high_d < min_d {
        return Err(c.invalid(
            "long_connection.high_duration_s",
            high_d.to_string(),
            "a duration of at least long_connection.min_duration_s",
        ));
    }
    c.int("long_connection.max_tracked", l.max_tracked, 1, 10_000_000, "")?;
    let m = &raw.malformed_traffic;
    c.positive("malformed_traffic.min_packets", m.min_packets)?;
    c.positive("malformed_traffic.learning_min_packets", m.learning_min_packets)?;
    raw.host_outlier.validate(&c)?;
    raw.lateral_movement.validate(&c)?;

    let mut allow = Vec::with_capacity(raw.allow.len());
    for (n, a) in raw.allow.iter().enumerate() {
        let key = |k: &str| format!("allow[{n}].{k}");
        let host = c.net(&key("host"), &a.host)?;
        let detector = match a.detector.as_str() {
            "" | "*" => None,
            name => Some(Detector::from_name(name).ok_or_else(|| {
                let names: Vec<_> = Detector::ALL.iter().map(|d| format!("\"{}\"", d.name())).collect();
                c.invalid(&key("detector"), toml_str(name), &format!("\"*\" or one of {}", names.join(", ")))
            })?),
        };
        let peer = if a.peer.is_empty() { None } else { Some(c.net(&key("peer"), &a.peer)?) };
        let port = match a.port {
            None => None,
            Some(p) => Some(u16::try_from(c.int(&key("port"), p, 0, 65_535, "")?).unwrap_or(0)),
        };
        if a.reason.trim().is_empty() {
            return Err(c.invalid(&key("reason"), "\"\"".into(), "a non-empty reason (why this is allowed)"));
        }
        let expires_ns = if a.expires.is_empty() {
            None
        } else {
            let t = humantime::parse_rfc3339_weak(&a.expires).map_err(|_| {
                c.invalid(
                    &key("expires"),
                    toml_str(&a.expires),
                    "an RFC 3339 time such as \"2027-01-31T00:00:00Z\"",
                )
            })?;
            let ns = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            Some(u64::try_from(ns).unwrap_or(u64::MAX))
        };
        allow.push(AllowEntry { host, detector, peer, port, reason: a.reason.clone(), expires_ns });
    }
    let mut assets = Vec::with_capacity(raw.assets.len());
    for (n, a) in raw.assets.iter().enumerate() {
        let cidr = c.net(&format!("assets[{n}].cidr"), &a.cidr)?;
        let criticality = c.int(&format!("assets[{n}].criticality"), a.criticality, 1, 5, "")?;
        let owner = (!a.owner.is_empty()).then(|| a.owner.clone());
        assets.push(Asset { cidr, criticality: u8::try_from(criticality).unwrap_or(3), owner });
    }
    // Most specific network first, so the first match is the best one.
    assets.sort_by_key(|a| std::cmp::Reverse(a.cidr.prefix_len()));

    Ok(DetectionSettings {
        enabled: raw.enabled,
        bucket: secs(bucket),
        learning_period: secs(learning),
        min_learning_buckets: u32::try_from(min_buckets).unwrap_or(u32::MAX),
        stale_after: secs(stale),
        baseline_alpha: alpha,
        sigma,
        alert_weight,
        max_hosts: usize::try_from(max_hosts).unwrap_or(usize::MAX),
        state_file: (!raw.state_file.is_empty()).then(|| PathBuf::from(&raw.state_file)),
        snapshot_interval: secs(snapshot),
        suppress_window: secs(suppress),
        incident_window: secs(incident),
        min_score: u8::try_from(min_score).unwrap_or(100),
        clock,
        exfiltration: raw.exfiltration,
        dns_tunnel: raw.dns_tunnel,
        dga: raw.dga,
        icmp_tunnel: raw.icmp_tunnel,
        protocol_mismatch: raw.protocol_mismatch,
        suspicious_tls: raw.suspicious_tls,
        suspicious_http: raw.suspicious_http,
        scan: raw.scan,
        flood: raw.flood,
        beaconing: raw.beaconing,
        long_connection: raw.long_connection,
        malformed_traffic: raw.malformed_traffic,
        host_outlier: raw.host_outlier,
        lateral_movement: raw.lateral_movement,
        verdicts: raw.verdicts,
        allow,
        assets,
    })
}

impl DetectionSettings {
    /// The settings written back as TOML (`check-config` prints them).
    #[must_use]
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let secs = |d: Duration| d.as_secs();
        let _ = writeln!(out, "[detection]");
        let _ = writeln!(out, "enabled = {}", self.enabled);
        let _ = writeln!(out, "bucket_s = {}", secs(self.bucket));
        let _ = writeln!(out, "learning_period_s = {}", secs(self.learning_period));
        let _ = writeln!(out, "min_learning_buckets = {}", self.min_learning_buckets);
        let _ = writeln!(out, "stale_after_s = {}", secs(self.stale_after));
        let _ = writeln!(out, "baseline_alpha = {:?}", self.baseline_alpha);
        let _ = writeln!(out, "sigma = {:?}", self.sigma);
        let _ = writeln!(out, "alert_weight = {:?}", self.alert_weight);
        let _ = writeln!(out, "max_hosts = {}", self.max_hosts);
        let state = self.state_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let _ = writeln!(out, "state_file = {}", toml_str(&state));
        let _ = writeln!(out, "snapshot_interval_s = {}", secs(self.snapshot_interval));
        let _ = writeln!(out, "suppress_window_s = {}", secs(self.suppress_window));
        let _ = writeln!(out, "incident_window_s = {}", secs(self.incident_window));
        let _ = writeln!(out, "min_score = {}", self.min_score);
        let _ = writeln!(out, "timezone = {}", toml_str(self.clock.name()));
        let tables: [(&str, Result<String, toml::ser::Error>); 15] = [
            ("exfiltration", toml::to_string(&self.exfiltration)),
            ("dns_tunnel", toml::to_string(&self.dns_tunnel)),
            ("dga", toml::to_string(&self.dga)),
            ("icmp_tunnel", toml::to_string(&self.icmp_tunnel)),
            ("protocol_mismatch", toml::to_string(&self.protocol_mismatch)),
            ("suspicious_tls", toml::to_string(&self.suspicious_tls)),
            ("suspicious_http", toml::to_string(&self.suspicious_http)),
            ("scan", toml::to_string(&self.scan)),
            ("flood", toml::to_string(&self.flood)),
            ("beaconing", toml::to_string(&self.beaconing)),
            ("long_connection", toml::to_string(&self.long_connection)),
            ("malformed_traffic", toml::to_string(&self.malformed_traffic)),
            ("host_outlier", toml::to_string(&self.host_outlier)),
            ("lateral_movement", toml::to_string(&self.lateral_movement)),
            ("verdicts", toml::to_string(&self.verdicts)),
        ];
        for (name, body) in tables {
            let _ = writeln!(out, "\n[detection.{name}]\n{}", body.unwrap_or_default().trim_end());
        }
        let _ =
            writeln!(out, "# {} allow-list entries, {} asset entries", self.allow.len(), self.assets.len());
        out
    }
}
