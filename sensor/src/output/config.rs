//! `[[output.ipfix]]` and `[output.kafka]`: flow export as written (`Raw*`), validated, and
//! printed back for `check-config`.
//!
//! Same rules as the rest of the configuration: `deny_unknown_fields`, numbers as `i64` so a
//! bad value reaches validation and gets a message with its range, every key with a default
//! (documented with unit and range in `configs/sensor.example.toml`), and every error names the
//! dotted key (`output.ipfix[1].transport`), the value as written and what would be valid.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ipfix::encode::MIN_MESSAGE_BYTES;
use super::ipfix::ie::{Protocol, RecordMode};
use super::ipfix::transport::TransportKind;
use crate::config::ConfigError;
use crate::config::check::{Check, q};
use crate::kafka::{self, KafkaClientSettings, RawKafkaClient};

/// One `[[output.ipfix]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawIpfix {
    pub name: String,
    pub collector: String,
    pub protocol: String,
    pub transport: String,
    pub record_mode: String,
    pub observation_domain_id: i64,
    pub template_refresh_s: i64,
    pub max_message_bytes: i64,
    pub flush_interval_ms: i64,
    pub queue_records: i64,
    pub timeout_ms: i64,
    pub retry_initial_ms: i64,
    pub retry_max_ms: i64,
}

impl Default for RawIpfix {
    fn default() -> Self {
        Self {
            name: String::new(),
            collector: String::new(),
            protocol: "ipfix".to_owned(),
            transport: "udp".to_owned(),
            record_mode: "biflow".to_owned(),
            observation_domain_id: 0,
            template_refresh_s: 60,
            max_message_bytes: 1400,
            flush_interval_ms: 1000,
            queue_records: 65_536,
            timeout_ms: 5000,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
        }
    }
}

/// `[output.kafka]` as written: flow records to a Kafka topic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawKafkaOutput {
    pub brokers: Vec<String>,
    pub topic: String,
    pub create_partitions: i64,
    pub compression: String,
    pub batch_max_records: i64,
    pub linger_ms: i64,
    pub queue_records: i64,
    pub timeout_ms: i64,
    pub retry_initial_ms: i64,
    pub retry_max_ms: i64,
    pub spool_dir: String,
    pub spool_max_bytes: i64,
    pub tls: bool,
    pub ca_file: String,
    pub client_cert_file: String,
    pub client_key_file: String,
    pub sasl_mechanism: String,
    pub sasl_username: String,
    pub sasl_password: String,
}

impl Default for RawKafkaOutput {
    fn default() -> Self {
        Self {
            brokers: Vec::new(),
            topic: "nbad-flows".to_owned(),
            create_partitions: 0,
            compression: "lz4".to_owned(),
            batch_max_records: 1000,
            linger_ms: 100,
            queue_records: 65_536,
            timeout_ms: 10_000,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            spool_dir: String::new(),
            spool_max_bytes: 1 << 30,
            tls: false,
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password: String::new(),
        }
    }
}

/// One IPFIX / NetFlow v9 collector, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpfixSettings {
    /// Unique name: the label of its counters.
    pub name: String,
    /// `host:port` as written.
    pub collector: String,
    /// The collector's address (resolved once, at load).
    pub address: SocketAddr,
    /// IPFIX or NetFlow v9.
    pub protocol: Protocol,
    /// UDP, or TCP (IPFIX only).
    pub transport: TransportKind,
    /// Biflow (IPFIX only) or two unidirectional records.
    pub record_mode: RecordMode,
    /// IPFIX observation domain id / v9 source id.
    pub observation_domain_id: u32,
    /// UDP: templates are sent again this often.
    pub template_refresh: Duration,
    /// A message (a datagram over UDP) is at most this long.
    pub max_message_bytes: usize,
    /// Records wait at most this long in a partly filled message.
    pub flush_interval: Duration,
    /// Records queued between the analysis stage and the exporter at most.
    pub queue_records: usize,
    /// TCP connect and write time limit.
    pub timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Backoff cap.
    pub retry_max: Duration,
}

/// `[output.kafka]`, validated (present only when `brokers` is not empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOutputSettings {
    /// Brokers, topic, compression, TLS, SASL.
    pub client: KafkaClientSettings,
    /// Records per produce request at most.
    pub batch_max_records: usize,
    /// How long a partly filled batch waits for more records.
    pub linger: Duration,
    /// Records queued between the analysis stage and the producer at most.
    pub queue_records: usize,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Backoff cap.
    pub retry_max: Duration,
    /// Flow records go through an on-disk spool here first (`None`: the in-memory queue only).
    pub spool_dir: Option<std::path::PathBuf>,
    /// The spool's size limit in bytes; past it, records are dropped and counted.
    pub spool_max_bytes: u64,
}

/// Flow export settings: every collector and the Kafka output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSettings {
    /// `[[output.ipfix]]`, in file order.
    pub ipfix: Vec<IpfixSettings>,
    /// `[output.kafka]`; `None` when `brokers` is empty.
    pub kafka: Option<KafkaOutputSettings>,
}

impl ExportSettings {
    /// Whether anything is exported.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ipfix.is_empty() && self.kafka.is_none()
    }
}

/// Validates the export tables of `[output]`.
pub(crate) fn validate(
    ipfix: Vec<RawIpfix>,
    kafka: RawKafkaOutput,
    origin: &Path,
) -> Result<ExportSettings, ConfigError> {
    let c = Check { origin };
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(ipfix.len());
    for (i, raw) in ipfix.into_iter().enumerate() {
        let s = collector(&c, &format!("output.ipfix[{i}]"), raw)?;
        if !names.insert(s.name.clone()) {
            return Err(c.invalid(
                &format!("output.ipfix[{i}].name"),
                q(&s.name),
                "a name no other collector has",
            ));
        }
        out.push(s);
    }
    let kafka = if kafka.brokers.is_empty() { None } else { Some(kafka_output(&c, kafka)?) };
    Ok(ExportSettings { ipfix: out, kafka })
}

fn collector(c: &Check<'_>, p: &str, raw: RawIpfix) -> Result<IpfixSettings, ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let address = raw
        .collector
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .filter(|a| a.port() != 0)
        .ok_or_else(|| {
        c.invalid(
            &key("collector"),
            q(&raw.collector),
            "host:port of the collector, e.g. \"192.0.2.10:4739\" or \"[2001:db8::10]:2055\"",
        )
    })?;
    let name = if raw.name.is_empty() { raw.collector.clone() } else { raw.name.clone() };
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'[' | b']'));
    if !name_ok {
        return Err(c.invalid(&key("name"), q(&raw.name), "1 to 64 letters, digits, '_', '-', '.' or ':'"));
    }
    let protocol = match c.one_of(&key("protocol"), &raw.protocol, &["ipfix", "netflow9"])? {
        "netflow9" => Protocol::NetflowV9,
        _ => Protocol::Ipfix,
    };
    let transport = match c.one_of(&key("transport"), &raw.transport, &["udp", "tcp"])? {
        "tcp" if protocol == Protocol::NetflowV9 => {
            return Err(c.invalid(
                &key("transport"),
                q("tcp"),
                "\"udp\": NetFlow v9 is exported over UDP only",
            ));
        }
        "tcp" => TransportKind::Tcp,
        _ => TransportKind::Udp,
    };
    let record_mode = match c.one_of(&key("record_mode"), &raw.record_mode, &["biflow", "unidirectional"])? {
        "biflow" if protocol == Protocol::NetflowV9 => {
            return Err(c.invalid(
                &key("record_mode"),
                q("biflow"),
                "\"unidirectional\": NetFlow v9 has no reverse (RFC 5103) elements",
            ));
        }
        "biflow" => RecordMode::Biflow,
        _ => RecordMode::Unidirectional,
    };
    let max_hi = if transport == TransportKind::Udp { 65_507 } else { 65_535 };
    let retry_initial = c.ms(&key("retry_initial_ms"), raw.retry_initial_ms, 1, 600_000)?;
    Ok(IpfixSettings {
        name,
        collector: raw.collector,
        address,
        protocol,
        transport,
        record_mode,
        observation_domain_id: c.int(
            &key("observation_domain_id"),
            raw.observation_domain_id,
            0,
            i64::from(u32::MAX),
            "(IPFIX observation domain / v9 source id)",
        )?,
        template_refresh: Duration::from_secs(c.int(
            &key("template_refresh_s"),
            raw.template_refresh_s,
            1,
            86_400,
            "seconds",
        )?),
        max_message_bytes: c.int(
            &key("max_message_bytes"),
            raw.max_message_bytes,
            MIN_MESSAGE_BYTES as i64,
            max_hi,
            "bytes",
        )?,
        flush_interval: c.ms(&key("flush_interval_ms"), raw.flush_interval_ms, 1, 60_000)?,
        queue_records: c.int(&key("queue_records"), raw.queue_records, 1, 16_777_216, "records")?,
        timeout: c.ms(&key("timeout_ms"), raw.timeout_ms, 10, 600_000)?,
        retry_initial,
        retry_max: c.ms(&key("retry_max_ms"), raw.retry_max_ms, raw.retry_initial_ms.max(1), 3_600_000)?,
    })
}

fn kafka_output(c: &Check<'_>, raw: RawKafkaOutput) -> Result<KafkaOutputSettings, ConfigError> {
    let p = "output.kafka";
    let key = |k: &str| format!("{p}.{k}");
    let client = kafka::validate_client(
        c,
        p,
        RawKafkaClient {
            brokers: raw.brokers,
            topic: raw.topic,
            create_partitions: raw.create_partitions,
            compression: raw.compression,
            timeout_ms: raw.timeout_ms,
            tls: raw.tls,
            ca_file: raw.ca_file,
            client_cert_file: raw.client_cert_file,
            client_key_file: raw.client_key_file,
            sasl_mechanism: raw.sasl_mechanism,
            sasl_username: raw.sasl_username,
            sasl_password: raw.sasl_password,
        },
    )?;
    Ok(KafkaOutputSettings {
        client,
        batch_max_records: c.int(&key("batch_max_records"), raw.batch_max_records, 1, 100_000, "records")?,
        linger: c.ms(&key("linger_ms"), raw.linger_ms, 0, 60_000)?,
        queue_records: c.int(&key("queue_records"), raw.queue_records, 1, 16_777_216, "records")?,
        retry_initial: c.ms(&key("retry_initial_ms"), raw.retry_initial_ms, 1, 600_000)?,
        retry_max: c.ms(&key("retry_max_ms"), raw.retry_max_ms, raw.retry_initial_ms.max(1), 3_600_000)?,
        spool_max_bytes: c.int(
            &key("spool_max_bytes"),
            raw.spool_max_bytes,
            1 << 20,
            1 << 40,
            "bytes (1 MiB to 1 TiB)",
        )?,
        spool_dir: match raw.spool_dir.as_str() {
            "" => None,
            d if d.contains('\0') => {
                return Err(c.invalid(&key("spool_dir"), q(d), "a directory path, or \"\" for no spool"));
            }
            d => Some(std::path::PathBuf::from(d)),
        },
    })
}

impl ExportSettings {
    /// `[output.kafka]` and every `[[output.ipfix]]`, defaults included, as TOML (after the
    /// `[output]` keys).
    pub(crate) fn write_effective(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let ms = |d: Duration| d.as_millis();
        let d = RawKafkaOutput::default();
        writeln!(f, "\n[output.kafka]")?;
        match &self.kafka {
            None => {
                writeln!(f, "brokers = []")?;
                let kc = KafkaClientSettings::disabled(&d.topic);
                kc.write_effective(f)?;
                writeln!(f, "batch_max_records = {}\nlinger_ms = {}", d.batch_max_records, d.linger_ms)?;
                writeln!(f, "queue_records = {}", d.queue_records)?;
                writeln!(f, "retry_initial_ms = {}\nretry_max_ms = {}", d.retry_initial_ms, d.retry_max_ms)?;
                writeln!(f, "spool_dir = {}\nspool_max_bytes = {}", q(&d.spool_dir), d.spool_max_bytes)?;
            }
            Some(k) => {
                let brokers: Vec<String> = k.client.brokers.iter().map(|b| q(b)).collect();
                writeln!(f, "brokers = [{}]", brokers.join(", "))?;
                k.client.write_effective(f)?;
                writeln!(f, "batch_max_records = {}\nlinger_ms = {}", k.batch_max_records, ms(k.linger))?;
                writeln!(f, "queue_records = {}", k.queue_records)?;
                writeln!(
                    f,
                    "retry_initial_ms = {}\nretry_max_ms = {}",
                    ms(k.retry_initial),
                    ms(k.retry_max)
                )?;
                let dir = k.spool_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
                writeln!(f, "spool_dir = {}\nspool_max_bytes = {}", q(&dir), k.spool_max_bytes)?;
            }
        }
        for s in &self.ipfix {
            let mut t = String::new();
            writeln!(t, "\n[[output.ipfix]]\nname = {}\ncollector = {}", q(&s.name), q(&s.collector))?;
            writeln!(t, "protocol = {}\ntransport = {}", q(s.protocol.name()), q(s.transport.name()))?;
            writeln!(t, "record_mode = {}", q(s.record_mode.name()))?;
            writeln!(t, "observation_domain_id = {}", s.observation_domain_id)?;
            writeln!(t, "template_refresh_s = {}", s.template_refresh.as_secs())?;
            writeln!(t, "max_message_bytes = {}", s.max_message_bytes)?;
            writeln!(t, "flush_interval_ms = {}", ms(s.flush_interval))?;
            writeln!(t, "queue_records = {}\ntimeout_ms = {}", s.queue_records, ms(s.timeout))?;
            writeln!(t, "retry_initial_ms = {}\nretry_max_ms = {}", ms(s.retry_initial), ms(s.retry_max))?;
            f.write_str(&t)?;
        }
        Ok(())
    }
}
