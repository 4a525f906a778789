//! `[alerts]` and `[[alerts.sinks]]`: the file as written (`Raw*`), the validated settings, and
//! the check between them.
//!
//! The raw tables follow the configuration layer's rules (`deny_unknown_fields`, numbers as
//! `i64` so a bad value reaches validation and gets a message with its range, every key with a
//! default). A sink entry is one flat table whose `type` decides which keys apply; a key that
//! does not apply to the type is an error naming both, so a `stream` under an HTTP sink is not
//! silently ignored. Every key, unit and default is documented in `configs/sensor.example.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub(crate) use super::validate::validate;

/// `[alerts]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAlerts {
    pub spool_dir: String,
    pub spool_max_bytes: i64,
    pub segment_bytes: i64,
    pub fsync: String,
    pub fsync_interval_ms: i64,
    pub full_wait_ms: i64,
    pub drain_timeout_ms: i64,
    pub dead_letter: String,
    pub sinks: Vec<RawSink>,
}

impl Default for RawAlerts {
    fn default() -> Self {
        Self {
            spool_dir: "/var/lib/nbad-sensor/spool".to_owned(),
            spool_max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            fsync: "interval".to_owned(),
            fsync_interval_ms: 1000,
            full_wait_ms: 1000,
            drain_timeout_ms: 5000,
            dead_letter: String::new(),
            sinks: Vec::new(),
        }
    }
}

/// One `[[alerts.sinks]]` entry as written. Per-type keys are `Option`s: `None` = not written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSink {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub min_score: i64,
    pub format: Option<String>,
    pub batch_max_events: i64,
    pub timeout_ms: i64,
    pub retry_initial_ms: i64,
    pub retry_max_ms: i64,
    // file
    pub path: Option<String>,
    pub rotate_bytes: Option<i64>,
    pub rotate_keep: Option<i64>,
    // http family and redis/nats
    pub url: Option<String>,
    pub token: Option<String>,
    pub gzip: Option<bool>,
    pub index: Option<String>,
    pub sourcetype: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    // syslog
    pub protocol: Option<String>,
    pub address: Option<String>,
    pub server_name: Option<String>,
    pub facility: Option<i64>,
    pub app_name: Option<String>,
    // redis and nats
    pub stream: Option<String>,
    pub maxlen: Option<i64>,
    pub subject: Option<String>,
    // kafka
    pub brokers: Option<Vec<String>>,
    pub topic: Option<String>,
    pub create_partitions: Option<i64>,
    pub compression: Option<String>,
    pub tls: Option<bool>,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
}

/// When the spool calls `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record: nothing acknowledged to the producer is lost on power failure; slow.
    Always,
    /// At most this long after a record (checked on append and at rotation and shutdown).
    Interval(Duration),
    /// Left to the kernel: survives a process crash (SIGKILL), not a power failure.
    Never,
}

/// Body encoding of a sink (`format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The alert's ECS document (`Alert::to_ecs`).
    Ecs,
    /// OCSF Detection Finding, class_uid 2004.
    Ocsf,
    /// ArcSight Common Event Format (syslog only).
    Cef,
    /// IBM QRadar LEEF 2.0 (syslog only).
    Leef,
}

impl Format {
    /// The name in the configuration file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ecs => "ecs",
            Self::Ocsf => "ocsf",
            Self::Cef => "cef",
            Self::Leef => "leef",
        }
    }
}

/// TLS client material; `None` = the built-in web PKI roots, no client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the CA certificates that are trusted instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key presented to the server.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogProtocol {
    /// One message per datagram; no acknowledgement, best effort.
    Udp,
    /// Octet counting (RFC 6587); no acknowledgement beyond TCP's, best effort.
    Tcp,
    /// RFC 5425: octet counting over TLS.
    Tls,
}

/// What a sink sends to, with its per-type settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// JSON lines in a local file, rotated by size.
    File {
        /// The file; rotated copies are `path.1` … `path.N`.
        path: PathBuf,
        /// Rotate when the file would pass this size.
        rotate_bytes: u64,
        /// Rotated files kept.
        rotate_keep: u32,
    },
    /// A generic NDJSON POST.
    Http {
        /// Endpoint.
        url: String,
        /// `Authorization: Bearer <token>` when not empty.
        token: String,
        /// Compress bodies (`Content-Encoding: gzip`).
        gzip: bool,
        /// TLS client material.
        tls: TlsSettings,
    },
    /// Splunk HTTP Event Collector.
    SplunkHec {
        /// Base URL; `/services/collector/event` is appended.
        url: String,
        /// HEC token (`Authorization: Splunk <token>`).
        token: String,
        /// Index, or "" for the token's default.
        index: String,
        /// Sourcetype of the events.
        sourcetype: String,
        /// Compress bodies.
        gzip: bool,
        /// TLS client material.
        tls: TlsSettings,
    },
    /// Elasticsearch / OpenSearch `_bulk` with `create`.
    Elasticsearch {
        /// Base URL; `/_bulk` is appended.
        url: String,
        /// Index the documents go to.
        index: String,
        /// `Authorization: ApiKey <token>` when not empty.
        token: String,
        /// Compress bodies.
        gzip: bool,
        /// TLS client material.
        tls: TlsSettings,
    },
    /// RFC 5424 syslog.
    Syslog {
        /// Transport.
        protocol: SyslogProtocol,
        /// `host:port`.
        address: String,
        /// TLS server name to verify (default: the host of `address`).
        server_name: String,
        /// Facility 0–23.
        facility: u8,
        /// APP-NAME.
        app_name: String,
        /// TLS client material (protocol `tls`).
        tls: TlsSettings,
    },
    /// Redis Streams XADD.
    Redis {
        /// `redis://host:port[/db]`.
        url: String,
        /// Stream key.
        stream: String,
        /// Approximate MAXLEN trim; 0 = no trim.
        maxlen: u64,
    },
    /// NATS JetStream publish with acknowledgement.
    Nats {
        /// `nats://host:port`.
        url: String,
        /// Subject published to.
        subject: String,
        /// Stream created over `subject` when missing; "" = the stream must exist.
        stream: String,
    },
    /// Kafka produce with `acks = -1`, key = `event.id`.
    Kafka {
        /// Brokers, topic, compression, TLS, SASL.
        client: crate::kafka::KafkaClientSettings,
    },
}

impl SinkKind {
    /// The receiver's `host:port` endpoints as configured (none for a file): what automated
    /// response must never cut off.
    #[must_use]
    pub fn endpoints(&self) -> Vec<String> {
        let of_url = |url: &str| {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let default_port = if url.starts_with("https") { 443 } else { 80 };
            let has_port = host_port.rsplit_once(':').is_some_and(|(h, p)| {
                p.chars().all(|c| c.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']'))
            });
            if has_port { host_port.to_owned() } else { format!("{host_port}:{default_port}") }
        };
        match self {
            Self::File { .. } => Vec::new(),
            Self::Http { url, .. }
            | Self::SplunkHec { url, .. }
            | Self::Elasticsearch { url, .. }
            | Self::Redis { url, .. }
            | Self::Nats { url, .. } => vec![of_url(url)],
            Self::Syslog { address, .. } => vec![address.clone()],
            Self::Kafka { client } => client.brokers.clone(),
        }
    }

    /// The `type` name in the configuration file.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Http { .. } => "http",
            Self::SplunkHec { .. } => "splunk_hec",
            Self::Elasticsearch { .. } => "elasticsearch",
            Self::Syslog { .. } => "syslog",
            Self::Redis { .. } => "redis",
            Self::Nats { .. } => "nats",
            Self::Kafka { .. } => "kafka",
        }
    }
}

/// One validated sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSettings {
    /// Unique name: metrics label, cursor file, dead-letter reason.
    pub name: String,
    /// Alerts scoring below this are not sent to this sink (0–100).
    pub min_score: u8,
    /// Body encoding.
    pub format: Format,
    /// Alerts per request at most.
    pub batch_max_events: usize,
    /// One request's (or connection's) time limit.
    pub timeout: Duration,
    /// First retry delay (before jitter).
    pub retry_initial: Duration,
    /// Cap of the exponential backoff.
    pub retry_max: Duration,
    /// Destination and per-type settings.
    pub kind: SinkKind,
}

/// `[alerts]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Spool directory (created at start).
    pub spool_dir: PathBuf,
    /// Bytes of segment files at most.
    pub spool_max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// When the spool syncs to disk.
    pub fsync: FsyncPolicy,
    /// How long `submit` waits for room when the spool is full before refusing.
    pub full_wait: Duration,
    /// How long a stopping `run` or a finished `replay` keeps delivering what the spool holds.
    pub drain_timeout: Duration,
    /// Dead-letter file (JSON lines).
    pub dead_letter: PathBuf,
    /// The sinks, in file order.
    pub sinks: Vec<SinkSettings>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        validate(RawAlerts::default(), Path::new("<built-in defaults>"))
            .expect("the built-in [alerts] defaults are valid")
    }
}

impl Default for RawSink {
    fn default() -> Self {
        Self {
            kind: String::new(),
            name: String::new(),
            min_score: 0,
            batch_max_events: 500,
            timeout_ms: 10_000,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            format: None,
            path: None,
            rotate_bytes: None,
            rotate_keep: None,
            url: None,
            token: None,
            gzip: None,
            index: None,
            sourcetype: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            protocol: None,
            address: None,
            server_name: None,
            facility: None,
            app_name: None,
            stream: None,
            maxlen: None,
            subject: None,
            brokers: None,
            topic: None,
            create_partitions: None,
            compression: None,
            tls: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
        }
    }
}
