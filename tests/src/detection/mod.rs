//! Detection on real captures: the table of expected alerts ([`table`]), a
//! replay that returns the alerts ([`replay`]), long inputs with a learned
//! baseline ([`long_input`]), and the figures both `detection_corpus.rs` and
//! `cargo xtask detect-report` compute from them.
//!
//! Every replay uses [`TEST_DETECTION`]: the shipped detector settings with a
//! short learning period (30 min and 20 buckets of 60 s instead of 24 h), so
//! that the long inputs stay small. Only `home_networks` changes per capture.

pub mod composite;
pub mod exfil_table;
pub mod long_input;
pub mod staged;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::sensor::{self, Run};

pub use table::{CASES, Case, Expect};

/// The detector names `rule.name` takes.
pub const DETECTORS: [&str; 14] = [
    "exfiltration",
    "dns_tunnel",
    "icmp_tunnel",
    "protocol_mismatch",
    "scan",
    "beaconing",
    "long_connection",
    "malformed_traffic",
    "flood",
    "suspicious_tls",
    "suspicious_http",
    "dga",
    "host_outlier",
    "lateral_movement",
];

/// The `[detection]` section of every test replay.
pub const TEST_DETECTION: &str = "\
[detection]
bucket_s = 60
learning_period_s = 1800
min_learning_buckets = 20
";

/// Per-replay time limit: a hang is a failure.
pub const REPLAY_LIMIT: Duration = Duration::from_secs(120);

/// A config file's text: `home_networks` (none = the default) and
/// [`TEST_DETECTION`] followed by `extra` (more `[detection.*]` keys).
#[must_use]
pub fn config_text(home_networks: &[&str], extra: &str) -> String {
    let mut text = String::new();
    if !home_networks.is_empty() {
        let quoted: Vec<String> = home_networks.iter().map(|n| format!("{n:?}")).collect();
        let _ = writeln!(text, "[sensor]\nhome_networks = [{}]\n", quoted.join(", "));
    }
    text.push_str(TEST_DETECTION);
    text.push_str(extra);
    text
}

/// One alert, the fields the table speaks of.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `event.id`.
    pub id: String,
    /// `rule.name`.
    pub detector: String,
    /// `source.ip`: the host at fault.
    pub host: String,
    /// `destination.ip`, where one applies.
    pub peer: Option<String>,
    /// `nbad.evidence.details.rule`, where the detector has several rules.
    pub rule: Option<String>,
    /// `message`.
    pub message: String,
    /// `@timestamp`, ns since the epoch (0 when absent or unreadable).
    pub ts_ns: u64,
    /// `nbad.evidence.details.window`, where the detector names one.
    pub window: Option<String>,
}

impl Alert {
    /// Reads the table's fields of an ECS alert.
    pub fn from_ecs(v: &Value) -> Result<Self> {
        let text = |path: &str| sensor::lookup(v, path).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            id: text("event.id").unwrap_or_default(),
            detector: text("rule.name").with_context(|| format!("alert without rule.name: {v}"))?,
            host: text("source.ip").with_context(|| format!("alert without source.ip: {v}"))?,
            peer: text("destination.ip"),
            rule: text("nbad.evidence.details.rule"),
            message: text("message").unwrap_or_default(),
            ts_ns: text("@timestamp")
                .and_then(|t| humantime::parse_rfc3339(&t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            window: text("nbad.evidence.details.window"),
        })
    }

    /// `detector host → peer (rule): message`, for failure messages.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} {} → {} ({}): {}",
            self.detector,
            self.host,
            self.peer.as_deref().unwrap_or("-"),
            self.rule.as_deref().unwrap_or("-"),
            self.message
        )
    }
}

/// What one replay produced.
#[derive(Debug)]
pub struct Outcome {
    /// The run itself.
    pub run: Run,
    /// The `--alerts` file.
    pub alerts_path: PathBuf,
    /// Its alerts, in file order (incident records apart).
    pub alerts: Vec<Alert>,
    /// Its incident records (`event.dataset = "nbad.incident"`), in file order.
    pub incidents: Vec<Alert>,
    /// The `--flows` file, when asked for.
    pub flows_path: Option<PathBuf>,
}

/// Replays `captures` (in order) with `config` written to `scratch`, alerts
/// to `<scratch>/alerts.json`, state loaded from and saved to `state` when
/// given, flows to `<scratch>/flows.json` when `flows` is set. A run that does
/// not exit 0 is an error carrying its stderr.
pub fn replay(
    captures: &[&Path],
    config: &str,
    state: Option<&Path>,
    flows: bool,
    scratch: &Path,
) -> Result<Outcome> {
    let run = replay_run(captures, config, state, flows, scratch)?;
    if !run.succeeded() {
        bail!("{}", run.describe());
    }
    let alerts_path = scratch.join("alerts.json");
    let docs = if alerts_path.is_file() { sensor::read_json_lines(&alerts_path)? } else { Vec::new() };
    let (mut alerts, mut incidents) = (Vec::new(), Vec::new());
    for doc in &docs {
        let is_record = sensor::lookup(doc, "event.dataset").and_then(Value::as_str) == Some("nbad.incident");
        if is_record { &mut incidents } else { &mut alerts }.push(Alert::from_ecs(doc)?);
    }
    let flows_path = flows.then(|| scratch.join("flows.json"));
    Ok(Outcome { run, alerts_path, alerts, incidents, flows_path })
}

/// [`replay`] without the exit-status check: the run, whatever it did.
pub fn replay_run(
    captures: &[&Path],
    config: &str,
    state: Option<&Path>,
    flows: bool,
    scratch: &Path,
) -> Result<Run> {
    let config_path = scratch.join("sensor.toml");
    fs::write(&config_path, config).with_context(|| format!("writing {}", config_path.display()))?;
    let alerts_path = scratch.join("alerts.json");
    let flows_path = if flows { scratch.join("flows.json") } else { PathBuf::new() };
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("replay"),
        OsStr::new("-c"),
        config_path.as_os_str(),
        OsStr::new("--flows"),
        flows_path.as_os_str(),
        OsStr::new("--alerts"),
        alerts_path.as_os_str(),
    ];
    if let Some(state) = state {
        args.extend([OsStr::new("--state"), state.as_os_str()]);
    }
    args.extend(captures.iter().map(|c| c.as_os_str()));
    sensor::run(&args, scratch, REPLAY_LIMIT)
}

/// Replays one table row's capture with its config.
pub fn replay_case(corpus_root: &Path, case: &Case, flows: bool, scratch: &Path) -> Result<Outcome> {
    let capture = corpus_root.join(case.capture);
    replay(&[&capture], &config_text(case.home_networks, ""), None, flows, scratch)
}

/// Whether `alerts` hold one of `detector` with `host` at fault.
#[must_use]
pub fn has_alert(alerts: &[Alert], detector: &str, host: &str) -> bool {
    alerts.iter().any(|a| a.detector == detector && a.host == host)
}

/// An address block (`10.0.0.0/8`, `fc00::/7`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address.
    pub fn parse(text: &str) -> Result<Self> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = addr.parse().with_context(|| format!("{text:?}: not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.parse().with_context(|| format!("{text:?}: bad prefix length"))?
        };
        if prefix > max {
            bail!("{text:?}: prefix longer than {max}");
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in the block.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| match a {
            IpAddr::V4(v4) => (u128::from(v4.to_bits()) << 96, 32u32),
            IpAddr::V6(v6) => (v6.to_bits(), 128u32),
        };
        let ((net, family), (host, other)) = (bits(self.addr), bits(ip));
        if family != other {
            return false;
        }
        // Both families sit in the top bits, so the prefix counts from the top.
        let len = u32::from(self.prefix);
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
        net & mask == host & mask
    }
}

/// The sensor's default home networks.
pub const DEFAULT_HOME: [&str; 4] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

/// Host-hours of observed activity in a flow-record file: for every inside
/// host (in `home_networks`, else [`DEFAULT_HOME`]), the distinct minutes in
/// which one of its flows was open, summed and divided by 60. When no
/// endpoint is inside, every flow's initiator counts as a host. This is the
/// denominator of "false alerts per host-hour": captures glued from pieces
/// months apart count only the minutes with traffic.
pub fn host_hours(flows_path: &Path, home_networks: &[&str]) -> Result<f64> {
    let nets: Vec<Cidr> = if home_networks.is_empty() { DEFAULT_HOME.as_slice() } else { home_networks }
        .iter()
        .map(|n| Cidr::parse(n))
        .collect::<Result<_>>()?;
    let inside = |ip: IpAddr| nets.iter().any(|n| n.contains(ip));
    let mut minutes: BTreeMap<IpAddr, BTreeSet<i64>> = BTreeMap::new();
    let mut initiators: BTreeMap<IpAddr, BTreeSet<i64>> = BTreeMap::new();
    for flow in sensor::read_json_lines(flows_path)? {
        let ip =
            |path: &str| sensor::lookup(&flow, path).and_then(Value::as_str).and_then(|s| s.parse().ok());
        let time = |path: &str| sensor::lookup(&flow, path).and_then(Value::as_str).and_then(epoch_seconds);
        let (Some(src), Some(start), Some(end)) = (ip("source.ip"), time("event.start"), time("event.end"))
        else {
            continue;
        };
        let span = (start.div_euclid(60))..=(end.div_euclid(60));
        initiators.entry(src).or_default().extend(span.clone());
        for host in [Some(src), ip("destination.ip")].into_iter().flatten().filter(|h| inside(*h)) {
            minutes.entry(host).or_default().extend(span.clone());
        }
    }
    let chosen = if minutes.is_empty() { &initiators } else { &minutes };
    let total: usize = chosen.values().map(BTreeSet::len).sum();
    Ok(total as f64 / 60.0)
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2020-02-07T21:04:48.041083Z`),
/// fractions dropped.
#[must_use]
pub fn epoch_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.trim_end_matches('Z').split(':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matches_its_own_family_and_prefix_only() -> Result<()> {
        let net = Cidr::parse("192.168.0.0/16")?;
        assert!(net.contains("192.168.7.1".parse()?));
        assert!(!net.contains("192.169.0.1".parse()?));
        assert!(!net.contains("::ffff:192.168.7.1".parse()?));
        assert!(Cidr::parse("fc00::/7")?.contains("fd12::1".parse()?));
        assert!(Cidr::parse("147.32.80.37")?.contains("147.32.80.37".parse()?));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        Ok(())
    }

    #[test]
    fn reads_rfc3339_utc_times() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_seconds("2020-02-07T21:04:48.041083Z"), Some(1_581_109_488));
    }

    #[test]
    fn writes_home_networks_only_when_given() {
        assert!(!config_text(&[], "").contains("home_networks"));
        assert!(config_text(&["10.1.2.3/32"], "").contains("home_networks = [\"10.1.2.3/32\"]"));
    }
}
