//! `[response]`, `[response.nftables]` and `[response.webhook]`: the file as written and the
//! validated settings. Every key, unit and default is documented in
//! `configs/sensor.example.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::alert::Detector;
use crate::config::ConfigError;
use crate::deliver::DeliverySettings;
use crate::deliver::config::{RawAlerts, RawSink};

/// `[response]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawResponse {
    pub enabled: bool,
    pub dry_run: bool,
    pub min_score: i64,
    pub detectors: Vec<String>,
    pub ttl_s: i64,
    pub max_actions_per_hour: i64,
    pub never_act: Vec<String>,
    pub never_act_min_criticality: i64,
    pub audit_log: String,
    pub nftables: RawNftables,
    pub webhook: RawWebhook,
}

impl Default for RawResponse {
    fn default() -> Self {
        Self {
            enabled: false,
            dry_run: true,
            min_score: 80,
            detectors: Vec::new(),
            ttl_s: 3_600,
            max_actions_per_hour: 6,
            never_act: Vec::new(),
            never_act_min_criticality: 4,
            audit_log: "/var/log/nbad-sensor/response-audit.jsonl".to_owned(),
            nftables: RawNftables::default(),
            webhook: RawWebhook::default(),
        }
    }
}

/// `[response.nftables]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawNftables {
    pub enabled: bool,
    pub action: String,
    pub command: Vec<String>,
    pub table: String,
    pub setup: bool,
}

impl Default for RawNftables {
    fn default() -> Self {
        Self {
            enabled: false,
            action: "quarantine_host".to_owned(),
            command: vec!["nft".to_owned()],
            table: "nbad_response".to_owned(),
            setup: true,
        }
    }
}

/// `[response.webhook]` as written: the keys of an `http` alert sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    pub timeout_ms: Option<i64>,
}

/// What the nftables action does to the alert's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftAction {
    /// Cuts the inside host at fault off from everything forwarded (both directions).
    QuarantineHost,
    /// Blocks the outside peer of the alert, both directions.
    BlockPeer,
}

impl NftAction {
    /// The name in the configuration file and the audit events.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::QuarantineHost => "quarantine_host",
            Self::BlockPeer => "block_peer",
        }
    }
}

/// `[response.nftables]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSettings {
    /// The action on at all.
    pub enabled: bool,
    /// What it does.
    pub action: NftAction,
    /// The argv prefix that runs `nft` (on this machine, over SSH, in a namespace).
    pub command: Vec<String>,
    /// The `inet` table that holds the sets and the chain.
    pub table: String,
    /// Create the table, its sets and its forward chain at start.
    pub setup: bool,
}

/// `[response]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSettings {
    /// Response on at all.
    pub enabled: bool,
    /// Log what would be done; do nothing.
    pub dry_run: bool,
    /// Alerts and incident records from this score on are acted on.
    pub min_score: u8,
    /// Only these detectors' alerts (empty: all but `capture_loss`).
    pub detectors: Vec<Detector>,
    /// How long an action lasts before it is undone.
    pub ttl: Duration,
    /// Actions per rolling hour at most.
    pub max_actions_per_hour: u32,
    /// Never acted on: gateways, DNS servers, the collector.
    pub never_act: Vec<IpNet>,
    /// Hosts of `[[detection.assets]]` with this criticality or more are never acted on.
    pub never_act_min_criticality: u8,
    /// Where the audit events go (ECS JSON lines).
    pub audit_log: PathBuf,
    /// The nftables action (see its `enabled`; [`Self::nft`] gives it when on).
    pub nftables: NftSettings,
    /// The webhook's delivery (its own spool under `alerts.spool_dir`), when on.
    pub webhook: Option<DeliverySettings>,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        validate(RawResponse::default(), &RawAlerts::default(), Path::new(crate::config::BUILT_IN_ORIGIN))
            .expect("the built-in defaults of [response] pass validation")
    }
}

impl ResponseSettings {
    /// The nftables action, when on.
    #[must_use]
    pub fn nft(&self) -> Option<&NftSettings> {
        Some(&self.nftables).filter(|n| n.enabled)
    }
}

impl ResponseSettings {
    /// Writes `[response]` back as TOML (`check-config`). The webhook's secrets are not shown.
    ///
    /// # Errors
    /// The formatter's.
    pub fn write_effective(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = crate::config::toml_string;
        let list = |v: Vec<String>| format!("[{}]", v.iter().map(|x| q(x)).collect::<Vec<_>>().join(", "));
        writeln!(f, "\n[response]")?;
        writeln!(f, "enabled = {}", self.enabled)?;
        writeln!(f, "dry_run = {}", self.dry_run)?;
        writeln!(f, "min_score = {}", self.min_score)?;
        writeln!(f, "detectors = {}", list(self.detectors.iter().map(|d| d.name().to_owned()).collect()))?;
        writeln!(f, "ttl_s = {}", self.ttl.as_secs())?;
        writeln!(f, "max_actions_per_hour = {}", self.max_actions_per_hour)?;
        writeln!(f, "never_act = {}", list(self.never_act.iter().map(ToString::to_string).collect()))?;
        writeln!(f, "never_act_min_criticality = {}", self.never_act_min_criticality)?;
        writeln!(f, "audit_log = {}", q(&self.audit_log.display().to_string()))?;
        writeln!(f, "\n[response.nftables]")?;
        let n = &self.nftables;
        writeln!(f, "enabled = {}", n.enabled)?;
        writeln!(f, "action = {}", q(n.action.name()))?;
        writeln!(f, "command = {}", list(n.command.clone()))?;
        writeln!(f, "table = {}", q(&n.table))?;
        writeln!(f, "setup = {}", n.setup)?;
        writeln!(f, "\n[response.webhook]")?;
        let url = match self.webhook.as_ref().and_then(|d| d.sinks.first()).map(|s| &s.kind) {
            Some(crate::deliver::SinkKind::Http { url, .. }) => url.clone(),
            _ => String::new(),
        };
        writeln!(f, "url = {}", q(&url))
    }
}

fn invalid(origin: &Path, key: &str, value: String, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        path: origin.to_path_buf(),
        key: format!("response.{key}"),
        value,
        expected: expected.to_owned(),
    }
}

fn int(origin: &Path, key: &str, v: i64, lo: i64, hi: i64) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&v) {
        return u64::try_from(v).map_err(|_| invalid(origin, key, v.to_string(), "a positive integer"));
    }
    Err(invalid(origin, key, v.to_string(), &format!("an integer from {lo} to {hi}")))
}

/// A nftables table name: letters, digits and `_`, at most 64 bytes (it goes on `nft`'s command
/// line).
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Validates `[response]`; `alerts` gives the spool directory the webhook's spool lives under.
pub(crate) fn validate(
    raw: RawResponse,
    alerts: &RawAlerts,
    origin: &Path,
) -> Result<ResponseSettings, ConfigError> {
    let min_score = int(origin, "min_score", raw.min_score, 1, 100)?;
    let mut detectors = Vec::with_capacity(raw.detectors.len());
    for (n, d) in raw.detectors.iter().enumerate() {
        let det = Detector::from_name(d).ok_or_else(|| {
            let names: Vec<&str> = Detector::ALL.iter().map(|d| d.name()).collect();
            invalid(
                origin,
                &format!("detectors[{n}]"),
                format!("{d:?}"),
                &format!("one of {}", names.join(", ")),
            )
        })?;
        detectors.push(det);
    }
    let ttl = int(origin, "ttl_s", raw.ttl_s, 1, 7 * 86_400)?;
    let max_actions = int(origin, "max_actions_per_hour", raw.max_actions_per_hour, 1, 10_000)?;
    let mut never_act = Vec::with_capacity(raw.never_act.len());
    for (n, text) in raw.never_act.iter().enumerate() {
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                invalid(
                    origin,
                    &format!("never_act[{n}]"),
                    format!("{text:?}"),
                    "an address or a network in CIDR form",
                )
            })?;
        never_act.push(net.trunc());
    }
    let crit = int(origin, "never_act_min_criticality", raw.never_act_min_criticality, 1, 6)?;
    if raw.audit_log.is_empty() || raw.audit_log.contains('\0') {
        return Err(invalid(origin, "audit_log", format!("{:?}", raw.audit_log), "a file path"));
    }
    let n = &raw.nftables;
    let nftables = {
        let action = match n.action.as_str() {
            "quarantine_host" => NftAction::QuarantineHost,
            "block_peer" => NftAction::BlockPeer,
            other => {
                return Err(invalid(
                    origin,
                    "nftables.action",
                    format!("{other:?}"),
                    "\"quarantine_host\" or \"block_peer\"",
                ));
            }
        };
        if n.command.is_empty() || n.command.iter().any(|a| a.is_empty() || a.contains('\0')) {
            return Err(invalid(
                origin,
                "nftables.command",
                format!("{:?}", n.command),
                "a non-empty argv list, e.g. [\"nft\"] or [\"ssh\", \"-o\", \"BatchMode=yes\", \"nbad@gw\", \"sudo\", \"nft\"]",
            ));
        }
        if !is_name(&n.table) {
            return Err(invalid(
                origin,
                "nftables.table",
                format!("{:?}", n.table),
                "1 to 64 letters, digits or '_'",
            ));
        }
        NftSettings {
            enabled: n.enabled,
            action,
            command: n.command.clone(),
            table: n.table.clone(),
            setup: n.setup,
        }
    };
    let webhook =
        if raw.webhook.url.is_empty() { None } else { Some(webhook_delivery(&raw.webhook, alerts, origin)?) };
    Ok(ResponseSettings {
        enabled: raw.enabled,
        dry_run: raw.dry_run,
        min_score: u8::try_from(min_score).unwrap_or(100),
        detectors,
        ttl: Duration::from_secs(ttl),
        max_actions_per_hour: u32::try_from(max_actions).unwrap_or(u32::MAX),
        never_act,
        never_act_min_criticality: u8::try_from(crit).unwrap_or(6),
        audit_log: PathBuf::from(&raw.audit_log),
        nftables,
        webhook,
    })
}

/// The webhook as a delivery of its own: one `http` sink, its spool in `<spool_dir>/response`
/// (at-least-once, with the alert sinks' retries), its keys checked as an http sink's are.
fn webhook_delivery(
    w: &RawWebhook,
    alerts: &RawAlerts,
    origin: &Path,
) -> Result<DeliverySettings, ConfigError> {
    let sink = RawSink {
        kind: "http".to_owned(),
        name: "response-webhook".to_owned(),
        url: Some(w.url.clone()),
        token: w.token.clone(),
        ca_file: w.ca_file.clone(),
        client_cert_file: w.client_cert_file.clone(),
        client_key_file: w.client_key_file.clone(),
        timeout_ms: w.timeout_ms.unwrap_or(10_000),
        ..RawSink::default()
    };
    let raw = RawAlerts {
        spool_dir: Path::new(&alerts.spool_dir).join("response").display().to_string(),
        spool_max_bytes: 64 << 20,
        segment_bytes: 4 << 20,
        dead_letter: String::new(),
        sinks: vec![sink],
        ..alerts.clone()
    };
    crate::deliver::config::validate(raw, origin).map_err(|e| match e {
        ConfigError::Invalid { path, key, value, expected } => ConfigError::Invalid {
            path,
            key: key.replace("alerts.sinks[0]", "response.webhook"),
            value,
            expected,
        },
        other => other,
    })
}
