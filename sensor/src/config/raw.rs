//! The configuration file exactly as written: serde structs, one per TOML table.
//!
//! Invariants: every table is `deny_unknown_fields`, so a misspelt key is an error rather than
//! a silently ignored setting; every key has a default here (the `Default` impls are the single
//! place defaults live), except `sensor.id`, whose default (the hostname) is resolved during
//! validation, and `capture.interface`, which has none. The `[capture.xdp]` sampling and map
//! sizes are taken from `XdpSettings::default()`, so the file and the XDP loader cannot disagree
//! about a default. Numbers are kept as TOML's own `i64` so
//! that a negative or oversized value reaches validation and gets a message naming its valid
//! range, instead of a bare serde type error. Nothing here is checked; see `validate.rs`.

use serde::Deserialize;

use crate::capture::xdp::XdpSettings;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub sensor: RawSensor,
    pub capture: RawCapture,
    pub decode: RawDecode,
    pub flows: RawFlows,
    pub output: RawOutput,
    pub metrics: RawMetrics,
    pub control: RawControl,
    pub console: crate::console::config::RawConsole,
    pub detection: crate::detect::config::RawDetection,
    pub alerts: crate::deliver::config::RawAlerts,
    pub response: crate::respond::config::RawResponse,
    pub privacy: RawPrivacy,
}

/// `[sensor]`: who this sensor is and which addresses are "ours".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSensor {
    /// `None` means "use the hostname".
    pub id: Option<String>,
    pub home_networks: Vec<String>,
}

impl Default for RawSensor {
    fn default() -> Self {
        Self {
            id: None,
            // RFC 1918 private IPv4 ranges and RFC 4193 unique-local IPv6.
            home_networks: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// `[capture]`: where packets come from in live mode.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCapture {
    pub mode: String,
    /// No default: only live capture needs it.
    pub interface: Option<String>,
    pub promiscuous: bool,
    pub snaplen: i64,
    pub filter: String,
    pub buffer_bytes: i64,
    pub read_timeout_ms: i64,
    pub threads: i64,
    pub xdp: RawXdp,
}

impl Default for RawCapture {
    fn default() -> Self {
        Self {
            mode: "pcap".to_owned(),
            interface: None,
            promiscuous: true,
            snaplen: 65_535,
            filter: String::new(),
            buffer_bytes: 64 * 1024 * 1024,
            read_timeout_ms: 20,
            threads: 1,
            xdp: RawXdp::default(),
        }
    }
}

/// `[capture.xdp]`: how the XDP program is attached, its map sizes and sampling, and how often
/// userspace polls it. Read when `capture.mode` is `"xdp"` or `"auto"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawXdp {
    /// `"native"`, `"skb"` or `"auto"`.
    pub attach: String,
    pub samples_per_direction: i64,
    pub sample_len: i64,
    pub flow_map_entries: i64,
    pub sample_ring_bytes: i64,
    pub sample_rate_per_sec: i64,
    pub sample_burst: i64,
    pub poll_interval_ms: i64,
}

impl Default for RawXdp {
    fn default() -> Self {
        let d = XdpSettings::default();
        Self {
            attach: "auto".to_owned(),
            samples_per_direction: d.samples_per_direction.into(),
            sample_len: d.sample_len.into(),
            flow_map_entries: d.flow_map_entries.into(),
            sample_ring_bytes: d.sample_ring_bytes.into(),
            sample_rate_per_sec: d.sample_rate_per_sec.into(),
            sample_burst: d.sample_burst.into(),
            poll_interval_ms: 1000,
        }
    }
}

/// `[decode]`: which tunnels are unwrapped to reach the inner packet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawDecode {
    pub gre: bool,
    pub vxlan: bool,
    pub vxlan_ports: Vec<i64>,
}

impl Default for RawDecode {
    fn default() -> Self {
        Self {
            gre: true,
            vxlan: true,
            // IANA-assigned VXLAN port.
            vxlan_ports: vec![4789],
        }
    }
}

/// `[flows]`: the flow table's timeouts, size and worker layout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawFlows {
    pub tcp_idle_timeout_s: i64,
    pub udp_idle_timeout_s: i64,
    pub icmp_idle_timeout_s: i64,
    pub other_idle_timeout_s: i64,
    pub tcp_close_linger_s: i64,
    pub active_timeout_s: i64,
    pub emergency_idle_timeout_s: i64,
    pub max_flows: i64,
    /// 0 = auto.
    pub workers: i64,
    pub batch_size: i64,
    pub channel_depth: i64,
}

impl Default for RawFlows {
    fn default() -> Self {
        Self {
            tcp_idle_timeout_s: 300,
            udp_idle_timeout_s: 60,
            icmp_idle_timeout_s: 60,
            other_idle_timeout_s: 60,
            tcp_close_linger_s: 5,
            active_timeout_s: 60,
            emergency_idle_timeout_s: 10,
            max_flows: 1_000_000,
            workers: 0,
            batch_size: 256,
            channel_depth: 16,
        }
    }
}

/// `[output]`: where flow records and statistics go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawOutput {
    /// `"-"` = stdout, `""` = none, anything else = a file path.
    pub flows: String,
    /// Same convention as `flows`.
    pub stats: String,
    pub stats_interval_s: i64,
    /// `[[output.ipfix]]`: IPFIX / NetFlow v9 collectors.
    pub ipfix: Vec<crate::output::config::RawIpfix>,
    /// `[output.kafka]`: flow records to Kafka (off while `brokers` is empty).
    pub kafka: crate::output::config::RawKafkaOutput,
}

impl Default for RawOutput {
    fn default() -> Self {
        Self {
            flows: "-".to_owned(),
            stats: String::new(),
            stats_interval_s: 10,
            ipfix: Vec::new(),
            kafka: crate::output::config::RawKafkaOutput::default(),
        }
    }
}

/// `[control]`: the local control socket (verdicts, reports).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawControl {
    /// `""` = off (the default); else the Unix socket's path.
    pub socket: String,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawMetrics {
    /// `""` = off (the default); else `ADDRESS:PORT`.
    pub listen: String,
}

/// `[privacy]`: what the outputs may say about the inside, and how long state is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPrivacy {
    pub pseudonymize_inside: bool,
    /// `""` = none (required while `pseudonymize_inside` is on).
    pub key_file: String,
    pub drop_payload_fields: bool,
    /// 0 = keep saved state however old.
    pub state_retention_s: i64,
}
