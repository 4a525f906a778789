//! Validated settings: the types the rest of the sensor reads.
//!
//! A `Config` that came from `config::load`, `config::from_str` or `Config::default()` has
//! passed every check in `validate.rs`: durations are `Duration`s, networks are `IpNet`s, the
//! worker count is resolved to a number of threads (at least 1), and every number is inside the
//! range documented in `configs/sensor.example.toml`. Fields are public so tests and callers can
//! adjust a default config; code that does so takes over the job of keeping the values sane.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::error::ConfigError;
use crate::capture::xdp::{XdpMode, XdpSettings};

/// Where a configuration that was not read from a file says it came from.
pub(crate) const BUILT_IN_ORIGIN: &str = "<built-in defaults>";

/// The complete, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[sensor]`
    pub sensor: SensorSettings,
    /// `[capture]`
    pub capture: CaptureSettings,
    /// `[decode]`
    pub decode: DecodeSettings,
    /// `[flows]`
    pub flows: FlowSettings,
    /// `[output]`
    pub output: OutputSettings,
    /// `[metrics]`
    pub metrics: MetricsSettings,
    /// `[control]`: the local control socket; `None` (the default) opens none.
    pub control_socket: Option<PathBuf>,
    /// `[console]`: the local web console; `None` (the default) serves none.
    pub console: Option<crate::console::ConsoleSettings>,
    /// `[detection]`
    pub detection: crate::detect::config::DetectionSettings,
    /// `[alerts]`: the spool and the sinks alerts are delivered to.
    pub alerts: crate::deliver::DeliverySettings,
    /// `[response]`: conservative automated response (off by default).
    pub response: crate::respond::Settings,
    /// `[privacy]`: pseudonymised inside addresses, payload fields dropped, state retention.
    pub privacy: PrivacySettings,
    /// The file (or pseudo-origin) this came from, for error messages raised later.
    pub(crate) origin: PathBuf,
}

impl Config {
    /// The file this configuration was loaded from, or `<built-in defaults>`.
    #[must_use]
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The capture interface, or an error naming `capture.interface` when it is not set.
    ///
    /// Replay and `check-config` work without an interface, so validation leaves it optional;
    /// live capture calls this before opening anything.
    pub fn require_interface(&self) -> Result<&str, ConfigError> {
        self.capture.interface.as_deref().ok_or_else(|| ConfigError::Missing {
            path: self.origin.clone(),
            key: "capture.interface".to_owned(),
            expected: "the name of the interface to capture on, e.g. \
                           `interface = \"eth0\"` under [capture] (live capture needs it)"
                .to_owned(),
        })
    }
}

/// `[sensor]`: identity and the address space the sensor protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorSettings {
    /// 1..=64 characters of `[A-Za-z0-9._-]`; defaults to the hostname.
    pub id: String,
    /// Never empty. Addresses inside these are "home"; used for direction and role.
    pub home_networks: Vec<IpNet>,
}

/// How packets are captured in live mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureMode {
    /// libpcap live capture.
    Pcap,
    /// XDP only: the kernel program counts flows and samples packets; when it cannot be
    /// attached, live capture fails with the reason.
    Xdp,
    /// XDP when it can be attached, else libpcap on the same interface, logging why XDP could
    /// not be used.
    Auto,
}

impl CaptureMode {
    /// Every mode, in the order error messages list them.
    pub const ALL: [Self; 3] = [Self::Pcap, Self::Xdp, Self::Auto];

    /// The name used in the configuration file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pcap => "pcap",
            Self::Xdp => "xdp",
            Self::Auto => "auto",
        }
    }
}

/// `[capture]`: live capture parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSettings {
    /// Capture backend.
    pub mode: CaptureMode,
    /// Interface to capture on; `None` until set. See [`Config::require_interface`].
    pub interface: Option<String>,
    /// Put the interface in promiscuous mode.
    pub promiscuous: bool,
    /// Bytes captured per packet, 64..=262144 (fits libpcap's `int`).
    pub snaplen: u32,
    /// BPF filter expression; empty = capture everything. Compiled (and so checked) by libpcap
    /// when the capture opens.
    pub filter: String,
    /// Kernel capture buffer in bytes, 1 MiB..=`i32::MAX` (libpcap takes an `int`).
    pub buffer_bytes: u32,
    /// How long a read waits for packets before returning a partial batch, 1 ms..=1 s.
    pub read_timeout: Duration,
    /// libpcap handles, each read by a capture thread of its own, sharing the interface's
    /// traffic by flow through one `PACKET_FANOUT` group, 1..=64 (libpcap mode only).
    pub threads: usize,
    /// `[capture.xdp]`: used when `mode` is [`CaptureMode::Xdp`] or [`CaptureMode::Auto`];
    /// validated whatever the mode, so switching modes cannot expose a bad value later.
    pub xdp: XdpCaptureSettings,
}

/// `[capture.xdp]`: XDP attach mode, the program's map sizes and sampling, and the poll period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpCaptureSettings {
    /// How the program is attached (`attach`): native, generic (skb), or native falling back
    /// to generic.
    pub attach: XdpMode,
    /// Map sizes and sampling; passes [`XdpSettings::validate`].
    pub settings: XdpSettings,
    /// How often userspace reads the kernel flow map, 100 ms..=10 s.
    pub poll_interval: Duration,
}

impl XdpCaptureSettings {
    /// Every attach mode, in the order error messages list them.
    pub const ATTACH_MODES: [XdpMode; 3] = [XdpMode::Native, XdpMode::Skb, XdpMode::Auto];

    /// The name of `mode` in the configuration file (`capture.xdp.attach`).
    #[must_use]
    pub fn attach_name(mode: XdpMode) -> &'static str {
        match mode {
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
            XdpMode::Auto => "auto",
        }
    }
}

/// `[decode]`: tunnel decapsulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeSettings {
    /// Decapsulate GRE and account the inner packet.
    pub gre: bool,
    /// Decapsulate VXLAN and account the inner packet.
    pub vxlan: bool,
    /// UDP destination ports treated as VXLAN; non-empty when `vxlan` is true, no zeros.
    pub vxlan_ports: Vec<u16>,
}

/// `[flows]`: flow table timeouts, capacity and worker layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSettings {
    /// A TCP flow with no packets for this long is expired.
    pub tcp_idle_timeout: Duration,
    /// A UDP flow with no packets for this long is expired.
    pub udp_idle_timeout: Duration,
    /// An ICMP/ICMPv6 flow with no packets for this long is expired.
    pub icmp_idle_timeout: Duration,
    /// Any other protocol's flow with no packets for this long is expired.
    pub other_idle_timeout: Duration,
    /// How long a TCP flow is kept after FIN/RST to absorb stragglers; may be zero.
    pub tcp_close_linger: Duration,
    /// A flow still active after this long emits an interim record, and again every
    /// `active_timeout` after that, so long flows are reported while they last.
    pub active_timeout: Duration,
    /// The idle timeout for every protocol while the table is in emergency mode (near
    /// `max_flows`). Never greater than the smallest of the four idle timeouts.
    pub emergency_idle_timeout: Duration,
    /// Flow table capacity across all workers, 1..=100_000_000.
    pub max_flows: usize,
    /// Number of flow worker threads, resolved: always at least 1.
    pub workers: usize,
    /// True when the file asked for `workers = 0` (auto) and `workers` was computed.
    pub workers_auto: bool,
    /// Packets per batch sent from capture to a worker, 1..=65536.
    pub batch_size: usize,
    /// Batches queued per worker before capture has to wait or drop, 1..=4096.
    pub channel_depth: usize,
}

/// Where a stream of output goes: `"-"`, `""` or a path in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// `""`: do not write it.
    None,
    /// `"-"`: standard output.
    Stdout,
    /// Any other string: this file.
    File(PathBuf),
}

impl OutputTarget {
    /// The string that selects this target in the configuration file.
    #[must_use]
    pub fn as_config_str(&self) -> String {
        match self {
            Self::None => String::new(),
            Self::Stdout => "-".to_owned(),
            Self::File(path) => path.display().to_string(),
        }
    }
}

/// `[output]`: destinations for records and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSettings {
    /// Flow records.
    pub flows: OutputTarget,
    /// Statistics JSON (written at the end of a replay, and every `stats_interval` live).
    pub stats: OutputTarget,
    /// How often live mode prints statistics, 1 s..=1 h.
    pub stats_interval: Duration,
    /// Flow export: `[[output.ipfix]]` collectors and `[output.kafka]`.
    pub export: crate::output::config::ExportSettings,
}

/// `[metrics]`: the Prometheus metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `GET /metrics` is served; `None` (the default) serves nothing.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[privacy]`: what outputs say about the inside, and how long saved state is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivacySettings {
    /// The Crypto-PAn key read from `key_file` when `pseudonymize_inside = true`; `None`
    /// (pseudonymisation off) otherwise.
    pub pseudonymize_inside: Option<super::key_file::PrivacyKey>,
    /// The key file as configured (`None`: `""`).
    pub key_file: Option<PathBuf>,
    /// Drop payload-derived strings (SNI, HTTP Host, URI, User-Agent, DNS names, certificate
    /// names, banners) from flow records and alerts.
    pub drop_payload_fields: bool,
    /// Hosts and services not seen for longer are left out of the saved state (and out of a
    /// loaded one); `None`: kept however old. At least one day.
    pub state_retention: Option<Duration>,
}
