//! Raw → validated: every range, format and cross-key rule lives here.
//!
//! Checks run in file order (table by table, key by key) and stop at the first problem, which
//! is reported as `ConfigError::Invalid` naming the file, the dotted key, the value as written
//! and the valid range or values. The ranges below are the ones documented in
//! `configs/sensor.example.toml`; change both together.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::error::ConfigError;
use super::raw::{
    RawCapture, RawConfig, RawControl, RawDecode, RawFlows, RawMetrics, RawOutput, RawPrivacy, RawSensor,
    RawXdp,
};
use super::settings::{
    CaptureMode, CaptureSettings, Config, DecodeSettings, FlowSettings, MetricsSettings, OutputSettings,
    OutputTarget, PrivacySettings, SensorSettings, XdpCaptureSettings,
};
use crate::capture::xdp::{XdpError, XdpSettings};

/// Used when `sensor.id` is not set and the hostname is unreadable or not a valid id.
pub(crate) const FALLBACK_SENSOR_ID: &str = "nbad-sensor";
const SENSOR_ID_MAX_LEN: usize = 64;
const SENSOR_ID_RULE: &str = "1 to 64 characters, each a letter, digit, '.', '_' or '-'";
/// Linux `IFNAMSIZ` is 16 including the terminating NUL.
const INTERFACE_MAX_LEN: usize = 15;
const IDLE_TIMEOUT_MAX_S: i64 = 86_400;
const MIB: i64 = 1024 * 1024;
/// `capture.threads` at most: one capture thread per core of a large appliance, far below the
/// kernel's 256 members of a `PACKET_FANOUT` group.
const MAX_CAPTURE_THREADS: i64 = 64;
/// `privacy.state_retention_s`: one day to ten years (0, off, is allowed besides).
const RETENTION_MIN_S: i64 = 86_400;
const RETENTION_MAX_S: i64 = 10 * 365 * 86_400;
/// Any `u32`: the XDP settings that `XdpSettings::validate` leaves unbounded.
const U32_MAX: i64 = u32::MAX as i64;

/// Validates `raw`, attributing every error to `origin`.
pub(crate) fn validate(raw: RawConfig, origin: &Path) -> Result<Config, ConfigError> {
    let check = Check { origin };
    Ok(Config {
        sensor: check.sensor(raw.sensor)?,
        capture: check.capture(raw.capture)?,
        decode: check.decode(raw.decode)?,
        flows: check.flows(&raw.flows)?,
        output: check.output(raw.output)?,
        metrics: check.metrics(&raw.metrics)?,
        control_socket: check.control(&raw.control)?,
        console: crate::console::config::validate(raw.console, origin)?,
        detection: crate::detect::config::validate(raw.detection, origin)?,
        response: crate::respond::config::validate(raw.response, &raw.alerts, origin)?,
        alerts: crate::deliver::config::validate(raw.alerts, origin)?,
        privacy: check.privacy(raw.privacy)?,
        origin: origin.to_path_buf(),
    })
}

/// The hostname if it is a valid sensor id, else [`FALLBACK_SENSOR_ID`].
pub(crate) fn default_sensor_id() -> String {
    let hostname = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok());
    sensor_id_from_hostname(hostname.as_deref())
}

pub(crate) fn sensor_id_from_hostname(hostname: Option<&str>) -> String {
    match hostname.map(str::trim) {
        Some(name) if is_valid_sensor_id(name) => name.to_owned(),
        _ => FALLBACK_SENSOR_ID.to_owned(),
    }
}

fn is_valid_sensor_id(id: &str) -> bool {
    (1..=SENSOR_ID_MAX_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `workers = 0` means one thread per core, leaving one core for capture, but never zero.
pub(crate) fn resolve_workers(requested: usize, available_cores: usize) -> usize {
    if requested == 0 { available_cores.saturating_sub(1).max(1) } else { requested }
}

/// `value` written as a TOML string literal, for messages and the effective config.
pub(crate) fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

struct Check<'a> {
    origin: &'a Path,
}

impl Check<'_> {
    fn invalid(&self, key: impl Into<String>, value: String, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.to_path_buf(),
            key: key.into(),
            value,
            expected: expected.into(),
        }
    }

    /// `value` if it lies in `lo..=hi`, converted to the settings type. `unit` follows the
    /// range in the message ("from 1 to 86400 seconds"); pass "" for a plain count.
    fn int<T: TryFrom<i64>>(
        &self,
        key: &str,
        value: i64,
        lo: i64,
        hi: i64,
        unit: &str,
    ) -> Result<T, ConfigError> {
        let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
        if (lo..=hi).contains(&value)
            && let Ok(converted) = T::try_from(value)
        {
            return Ok(converted);
        }
        Err(self.invalid(key, value.to_string(), format!("an integer from {lo} to {hi}{unit}")))
    }

    fn secs(&self, key: &str, value: i64, lo: i64, hi: i64) -> Result<Duration, ConfigError> {
        self.int(key, value, lo, hi, "seconds").map(Duration::from_secs)
    }

    fn sensor(&self, raw: RawSensor) -> Result<SensorSettings, ConfigError> {
        let id = match raw.id {
            None => default_sensor_id(),
            Some(id) if is_valid_sensor_id(&id) => id,
            Some(id) => return Err(self.invalid("sensor.id", toml_string(&id), SENSOR_ID_RULE)),
        };
        if raw.home_networks.is_empty() {
            return Err(self.invalid(
                "sensor.home_networks",
                "[]".to_owned(),
                "at least one CIDR, e.g. [\"10.0.0.0/8\"]",
            ));
        }
        let home_networks = raw
            .home_networks
            .iter()
            .enumerate()
            .map(|(i, text)| self.cidr(&format!("sensor.home_networks[{i}]"), text))
            .collect::<Result<_, _>>()?;
        Ok(SensorSettings { id, home_networks })
    }

    /// A network in CIDR notation with no host bits set. Near misses get a suggestion.
    fn cidr(&self, key: &str, text: &str) -> Result<IpNet, ConfigError> {
        let invalid = |expected: String| self.invalid(key, toml_string(text), expected);
        match text.trim().parse::<IpNet>() {
            Ok(net) if net == net.trunc() => Ok(net),
            Ok(net) => Err(invalid(format!(
                "a network address with no host bits set; did you mean \"{}\"?",
                net.trunc()
            ))),
            Err(_) => match text.trim().parse::<IpAddr>() {
                Ok(addr) => Err(invalid(format!(
                    "a CIDR with a prefix length; for this single address write \"{}\"",
                    IpNet::from(addr)
                ))),
                Err(_) => Err(invalid(
                    "a CIDR such as \"10.0.0.0/8\" or \"fc00::/7\" (prefix at most 32 for IPv4, 128 for IPv6)"
                        .to_owned(),
                )),
            },
        }
    }

    fn capture(&self, raw: RawCapture) -> Result<CaptureSettings, ConfigError> {
        let mode = CaptureMode::ALL.into_iter().find(|mode| mode.as_str() == raw.mode).ok_or_else(|| {
            let valid: Vec<String> = CaptureMode::ALL.iter().map(|m| toml_string(m.as_str())).collect();
            self.invalid("capture.mode", toml_string(&raw.mode), format!("one of {}", valid.join(", ")))
        })?;
        if let Some(name) = &raw.interface {
            let ok = (1..=INTERFACE_MAX_LEN).contains(&name.len())
                && !name.chars().any(|c| c.is_whitespace() || c == '/' || c.is_control());
            if !ok {
                return Err(self.invalid(
                    "capture.interface",
                    toml_string(name),
                    "an interface name of 1 to 15 characters without spaces or '/', e.g. \"eth0\" \
                     (leave the key out if no live capture is needed)",
                ));
            }
        }
        Ok(CaptureSettings {
            mode,
            interface: raw.interface,
            promiscuous: raw.promiscuous,
            snaplen: self.int("capture.snaplen", raw.snaplen, 64, 262_144, "bytes")?,
            filter: raw.filter,
            buffer_bytes: self.int(
                "capture.buffer_bytes",
                raw.buffer_bytes,
                MIB,
                i64::from(i32::MAX),
                "bytes (1 MiB to 2 GiB - 1, libpcap's limit)",
            )?,
            read_timeout: self
                .int("capture.read_timeout_ms", raw.read_timeout_ms, 1, 1000, "milliseconds")
                .map(Duration::from_millis)?,
            threads: self.capture_threads(raw.threads, mode)?,
            xdp: self.xdp(raw.xdp)?,
        })
    }

    /// `capture.threads`: 1..=64, and more than one only with libpcap. The XDP path is one
    /// program feeding one map that one poller reads: there is nothing to fan out, and `auto`
    /// would silently ignore the key whenever XDP attaches.
    fn capture_threads(&self, threads: i64, mode: CaptureMode) -> Result<usize, ConfigError> {
        let n: usize = self.int("capture.threads", threads, 1, MAX_CAPTURE_THREADS, "capture threads")?;
        if n > 1 && mode != CaptureMode::Pcap {
            return Err(self.invalid(
                "capture.threads",
                n.to_string(),
                format!(
                    "1 with capture.mode = {}: several capture threads (PACKET_FANOUT) need \
                     capture.mode = \"pcap\"; XDP capture is a single kernel map read by one poller",
                    toml_string(mode.as_str())
                ),
            ));
        }
        Ok(n)
    }

    /// `[capture.xdp]`. The ranges mirror `XdpSettings::validate` (a test checks every
    /// boundary against it), and the result is passed through it as well, so a range tightened
    /// there is still reported here, under the `capture.xdp.` key.
    fn xdp(&self, raw: RawXdp) -> Result<XdpCaptureSettings, ConfigError> {
        let attach = XdpCaptureSettings::ATTACH_MODES
            .into_iter()
            .find(|&mode| XdpCaptureSettings::attach_name(mode) == raw.attach)
            .ok_or_else(|| {
                let valid: Vec<String> = XdpCaptureSettings::ATTACH_MODES
                    .iter()
                    .map(|&mode| toml_string(XdpCaptureSettings::attach_name(mode)))
                    .collect();
                self.invalid(
                    "capture.xdp.attach",
                    toml_string(&raw.attach),
                    format!(
                        "one of {} (\"native\" = driver mode, \"skb\" = generic mode, \
                         \"auto\" = native, else skb)",
                        valid.join(", ")
                    ),
                )
            })?;
        let settings = XdpSettings {
            samples_per_direction: self.int(
                "capture.xdp.samples_per_direction",
                raw.samples_per_direction,
                0,
                U32_MAX,
                "packets per flow direction and CPU (0 = off)",
            )?,
            sample_len: self.int("capture.xdp.sample_len", raw.sample_len, 0, 256, "bytes")?,
            flow_map_entries: self.int(
                "capture.xdp.flow_map_entries",
                raw.flow_map_entries,
                1,
                XdpSettings::MAX_FLOW_MAP_ENTRIES.into(),
                "flows",
            )?,
            sample_ring_bytes: self.int(
                "capture.xdp.sample_ring_bytes",
                raw.sample_ring_bytes,
                4096,
                1 << 30,
                "bytes (4 KiB to 1 GiB)",
            )?,
            sample_rate_per_sec: self.int(
                "capture.xdp.sample_rate_per_sec",
                raw.sample_rate_per_sec,
                0,
                1_000_000,
                "samples per second and CPU",
            )?,
            sample_burst: self.int(
                "capture.xdp.sample_burst",
                raw.sample_burst,
                0,
                U32_MAX,
                "samples per CPU",
            )?,
        };
        settings.validate().map_err(|err| match err {
            XdpError::InvalidSetting { key, value, valid } => {
                self.invalid(format!("capture.xdp.{key}"), value, valid)
            }
            // `validate` only reports bad settings; anything else still names the table.
            other => self.invalid("capture.xdp", "{ ... }".to_owned(), other.to_string()),
        })?;
        let poll_interval = self
            .int("capture.xdp.poll_interval_ms", raw.poll_interval_ms, 100, 10_000, "milliseconds")
            .map(Duration::from_millis)?;
        Ok(XdpCaptureSettings { attach, settings, poll_interval })
    }

    fn decode(&self, raw: RawDecode) -> Result<DecodeSettings, ConfigError> {
        if raw.vxlan && raw.vxlan_ports.is_empty() {
            return Err(self.invalid(
                "decode.vxlan_ports",
                "[]".to_owned(),
                "at least one UDP port while decode.vxlan = true, e.g. [4789]",
            ));
        }
        let vxlan_ports = raw
            .vxlan_ports
            .iter()
            .enumerate()
            .map(|(i, &port)| self.int(&format!("decode.vxlan_ports[{i}]"), port, 1, 65_535, ""))
            .collect::<Result<_, _>>()?;
        Ok(DecodeSettings { gre: raw.gre, vxlan: raw.vxlan, vxlan_ports })
    }

    fn flows(&self, raw: &RawFlows) -> Result<FlowSettings, ConfigError> {
        let idle = |key: &str, value| self.secs(key, value, 1, IDLE_TIMEOUT_MAX_S);
        let tcp_idle_timeout = idle("flows.tcp_idle_timeout_s", raw.tcp_idle_timeout_s)?;
        let udp_idle_timeout = idle("flows.udp_idle_timeout_s", raw.udp_idle_timeout_s)?;
        let icmp_idle_timeout = idle("flows.icmp_idle_timeout_s", raw.icmp_idle_timeout_s)?;
        let other_idle_timeout = idle("flows.other_idle_timeout_s", raw.other_idle_timeout_s)?;
        let tcp_close_linger = self.secs("flows.tcp_close_linger_s", raw.tcp_close_linger_s, 0, 300)?;
        let active_timeout = self.secs("flows.active_timeout_s", raw.active_timeout_s, 1, 3600)?;
        let emergency_idle_timeout = idle("flows.emergency_idle_timeout_s", raw.emergency_idle_timeout_s)?;

        // Emergency mode exists to free slots faster; a longer timeout would defeat it.
        let (smallest_key, smallest) = [
            ("flows.tcp_idle_timeout_s", raw.tcp_idle_timeout_s),
            ("flows.udp_idle_timeout_s", raw.udp_idle_timeout_s),
            ("flows.icmp_idle_timeout_s", raw.icmp_idle_timeout_s),
            ("flows.other_idle_timeout_s", raw.other_idle_timeout_s),
        ]
        .into_iter()
        .min_by_key(|&(_, secs)| secs)
        .unwrap_or(("flows.tcp_idle_timeout_s", raw.tcp_idle_timeout_s));
        if raw.emergency_idle_timeout_s > smallest {
            return Err(self.invalid(
                "flows.emergency_idle_timeout_s",
                raw.emergency_idle_timeout_s.to_string(),
                format!(
                    "at most {smallest} seconds, the smallest idle timeout ({smallest_key}), \
                     since emergency mode must expire flows sooner, not later"
                ),
            ));
        }

        let max_flows = self.int("flows.max_flows", raw.max_flows, 1, 100_000_000, "")?;
        let requested: usize =
            self.int("flows.workers", raw.workers, 0, 256, "(0 = auto: available cores - 1, at least 1)")?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(FlowSettings {
            tcp_idle_timeout,
            udp_idle_timeout,
            icmp_idle_timeout,
            other_idle_timeout,
            tcp_close_linger,
            active_timeout,
            emergency_idle_timeout,
            max_flows,
            workers: resolve_workers(requested, cores),
            workers_auto: requested == 0,
            batch_size: self.int("flows.batch_size", raw.batch_size, 1, 65_536, "packets")?,
            channel_depth: self.int("flows.channel_depth", raw.channel_depth, 1, 4096, "batches")?,
        })
    }

    fn output(&self, mut raw: RawOutput) -> Result<OutputSettings, ConfigError> {
        let ipfix = std::mem::take(&mut raw.ipfix);
        let kafka = std::mem::take(&mut raw.kafka);
        let flows = self.target("output.flows", raw.flows)?;
        let stats = self.target("output.stats", raw.stats)?;
        if let (OutputTarget::File(f), OutputTarget::File(s)) = (&flows, &stats)
            && f == s
        {
            return Err(self.invalid(
                "output.stats",
                toml_string(&s.display().to_string()),
                "a different file from output.flows (or \"\" for no stats file)",
            ));
        }
        Ok(OutputSettings {
            flows,
            stats,
            stats_interval: self.secs("output.stats_interval_s", raw.stats_interval_s, 1, 3600)?,
            export: crate::output::config::validate(ipfix, kafka, self.origin)?,
        })
    }

    fn control(&self, raw: &RawControl) -> Result<Option<PathBuf>, ConfigError> {
        if raw.socket.is_empty() {
            return Ok(None);
        }
        if raw.socket.contains('\0') || !raw.socket.starts_with('/') || raw.socket.len() > 100 {
            return Err(self.invalid(
                "control.socket",
                toml_string(&raw.socket),
                "\"\" (off) or an absolute path of at most 100 bytes, e.g. \"/run/nbad-sensor/control.sock\"",
            ));
        }
        Ok(Some(PathBuf::from(&raw.socket)))
    }

    fn metrics(&self, raw: &RawMetrics) -> Result<MetricsSettings, ConfigError> {
        if raw.listen.is_empty() {
            return Ok(MetricsSettings { listen: None });
        }
        let listen = raw.listen.parse().map_err(|_| {
            self.invalid(
                "metrics.listen",
                toml_string(&raw.listen),
                "\"\" (off) or an IP address and port, e.g. \"127.0.0.1:9109\" or \"[::1]:9109\"",
            )
        })?;
        Ok(MetricsSettings { listen: Some(listen) })
    }

    /// `[privacy]`. The key file is read here, so `check-config` reports a missing,
    /// world-readable or malformed key before the sensor starts.
    fn privacy(&self, raw: RawPrivacy) -> Result<PrivacySettings, ConfigError> {
        let key_file = match raw.key_file.as_str() {
            "" => None,
            text if text.contains('\0') => {
                return Err(self.invalid(
                    "privacy.key_file",
                    toml_string(text),
                    "a file path without NUL characters, or \"\" for none",
                ));
            }
            text => Some(PathBuf::from(text)),
        };
        let pseudonymize_inside = match (raw.pseudonymize_inside, &key_file) {
            (false, _) => None,
            (true, None) => {
                return Err(self.invalid(
                    "privacy.key_file",
                    "\"\"".to_owned(),
                    "the path of a key file while privacy.pseudonymize_inside = true, e.g. \
                     \"/etc/nbad-sensor/cryptopan.key\" (made with `openssl rand -hex 32`)",
                ));
            }
            (true, Some(path)) => Some(super::key_file::read(path).map_err(|expected| {
                self.invalid("privacy.key_file", toml_string(&raw.key_file), expected)
            })?),
        };
        let state_retention = match raw.state_retention_s {
            0 => None,
            s => Some(Duration::from_secs(self.int(
                "privacy.state_retention_s",
                s,
                RETENTION_MIN_S,
                RETENTION_MAX_S,
                "seconds (1 day to 10 years), or 0 to keep saved state however old",
            )?)),
        };
        Ok(PrivacySettings {
            pseudonymize_inside,
            key_file,
            drop_payload_fields: raw.drop_payload_fields,
            state_retention,
        })
    }

    fn target(&self, key: &str, text: String) -> Result<OutputTarget, ConfigError> {
        match text.as_str() {
            "" => Ok(OutputTarget::None),
            "-" => Ok(OutputTarget::Stdout),
            _ if text.contains('\0') => Err(self.invalid(
                key,
                toml_string(&text),
                "a file path without NUL characters, \"-\" for stdout, or \"\" for none",
            )),
            _ => Ok(OutputTarget::File(PathBuf::from(text))),
        }
    }
}
