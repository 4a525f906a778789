//! The Kafka client both Kafka outputs share: the `kafka` alert sink
//! (`deliver/sink/kafka.rs`) and flow records (`output/kafka.rs`). It owns the client keys
//! (brokers, topic, compression, TLS, SASL), their validation, the connection, the choice of a
//! partition by key, and the sorting of Kafka errors into retriable and permanent ones.
//!
//! # The client: rskafka
//!
//! Three ways were weighed for a sensor that builds on two cores and is tested against a real
//! Kafka-protocol broker on loopback (tansu, the only one that runs here; Apache Kafka is not in
//! Debian):
//!
//! - **rdkafka** (librdkafka): the reference client, with the idempotent producer
//!   (`enable.idempotence`), every SASL mechanism and transactions. But it is C: the crate
//!   builds librdkafka with cmake (a few minutes of C on two cores, and cmake, OpenSSL and SASL
//!   headers in the build), or links Debian's librdkafka 2.0.2, which could not talk to tansu
//!   0.6.0 here (kcat, built on it, failed against the same broker). A C library in the
//!   sensor's address space also parses every broker response.
//! - **rskafka** (InfluxData, pure Rust, used in production by InfluxDB 3): produce with
//!   `acks = -1` (all in-sync replicas), fetch, topic creation, gzip/LZ4/Snappy/zstd, TLS
//!   through rustls (already in the sensor for the HTTP and syslog sinks) and SASL PLAIN and
//!   SCRAM-SHA-256/512. It builds in well under a minute on top of the sensor's dependencies
//!   and works with tansu (the integration tests in `tests/tests/export_kafka.rs` show it).
//!   What it lacks is the idempotent producer (it never calls InitProducerId; batches carry
//!   producer id -1) and a partitioner.
//! - **samsa** and clients on the `kafka-protocol` codec crate: pure Rust too, but younger,
//!   with fewer users; none offered more than rskafka for this job.
//!
//! rskafka was chosen. What the missing idempotent producer costs: a produce request whose
//! acknowledgement is lost (a broker failover between write and reply) is sent again and may
//! be stored twice. The alert sink is at-least-once anyway (from the spool, like every sink),
//! and every alert is keyed by its `event.id`, so a consumer drops repeats by key, and a
//! compacted topic keeps one. The partitioner is ours: Kafka's default (murmur2 of the key,
//! positive, modulo the partition count), so a key lands where a Java or librdkafka producer
//! with the default partitioner would put it.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{Compression as RsCompression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};

use crate::config::ConfigError;
use crate::config::check::{Check, q};

/// Record batch compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    const NAMES: [&'static str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

    /// The name in the configuration file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    fn rskafka(self) -> RsCompression {
        match self {
            Self::None => RsCompression::NoCompression,
            Self::Gzip => RsCompression::Gzip,
            Self::Snappy => RsCompression::Snappy,
            Self::Lz4 => RsCompression::Lz4,
            Self::Zstd => RsCompression::Zstd,
        }
    }
}

/// SASL authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Password (never printed).
    pub password: String,
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sasl").field("mechanism", &self.mechanism).field("username", &self.username).finish()
    }
}

/// TLS to the brokers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaTls {
    /// PEM CA bundle trusted instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The client keys, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaClientSettings {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic written to.
    pub topic: String,
    /// Create the topic with this many partitions when it is missing (0: never create).
    pub create_partitions: u32,
    /// Record batch compression.
    pub compression: Compression,
    /// Connect and request time limit.
    pub timeout: Duration,
    /// TLS (`tls = true`).
    pub tls: Option<KafkaTls>,
    /// SASL (`sasl_mechanism` not empty).
    pub sasl: Option<Sasl>,
}

/// The client keys as written (shared by `[output.kafka]` and `type = "kafka"` sinks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawKafkaClient {
    pub brokers: Vec<String>,
    pub topic: String,
    pub create_partitions: i64,
    pub compression: String,
    pub timeout_ms: i64,
    pub tls: bool,
    pub ca_file: String,
    pub client_cert_file: String,
    pub client_key_file: String,
    pub sasl_mechanism: String,
    pub sasl_username: String,
    pub sasl_password: String,
}

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Validates the client keys under the dotted prefix `p`.
pub(crate) fn validate_client(
    c: &Check<'_>,
    p: &str,
    raw: RawKafkaClient,
) -> Result<KafkaClientSettings, ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    if raw.brokers.is_empty() {
        return Err(c.invalid(
            &key("brokers"),
            "[]".to_owned(),
            "at least one \"host:port\", e.g. [\"kafka1:9092\"]",
        ));
    }
    for (i, b) in raw.brokers.iter().enumerate() {
        let ok = b
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(c.invalid(
                &format!("{p}.brokers[{i}]"),
                q(b),
                "host:port, e.g. \"kafka1.example.org:9092\"",
            ));
        }
    }
    let topic_ok = (1..=249).contains(&raw.topic.len())
        && raw.topic != "."
        && raw.topic != ".."
        && raw.topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !topic_ok {
        return Err(c.invalid(
            &key("topic"),
            q(&raw.topic),
            "1 to 249 letters, digits, '.', '_' or '-' (a Kafka topic name)",
        ));
    }
    let compression = match c.one_of(&key("compression"), &raw.compression, &Compression::NAMES)? {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "zstd" => Compression::Zstd,
        _ => Compression::Lz4,
    };
    let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
    let tls = if raw.tls {
        let client_cert = match (path(&raw.client_cert_file), path(&raw.client_key_file)) {
            (Some(cert), Some(k)) => Some((cert, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(c.invalid(&key("client_key_file"), q(""), "the PEM key of client_cert_file"));
            }
            (None, Some(_)) => {
                return Err(c.invalid(
                    &key("client_cert_file"),
                    q(""),
                    "the PEM certificate of client_key_file",
                ));
            }
        };
        Some(KafkaTls { ca_file: path(&raw.ca_file), client_cert })
    } else {
        for (k, v) in [
            ("ca_file", &raw.ca_file),
            ("client_cert_file", &raw.client_cert_file),
            ("client_key_file", &raw.client_key_file),
        ] {
            if !v.is_empty() {
                return Err(c.invalid(&key(k), q(v), format!("\"\" unless {p}.tls = true")));
            }
        }
        None
    };
    let sasl = if raw.sasl_mechanism.is_empty() {
        None
    } else {
        let mechanism = c.one_of(&key("sasl_mechanism"), &raw.sasl_mechanism, &MECHANISMS)?;
        if raw.sasl_username.is_empty() {
            return Err(c.invalid(&key("sasl_username"), q(""), "the SASL user name"));
        }
        Some(Sasl {
            mechanism: mechanism.to_owned(),
            username: raw.sasl_username,
            password: raw.sasl_password,
        })
    };
    Ok(KafkaClientSettings {
        brokers: raw.brokers,
        topic: raw.topic,
        create_partitions: c.int(
            &key("create_partitions"),
            raw.create_partitions,
            0,
            10_000,
            "partitions (0 = never create the topic)",
        )?,
        compression,
        timeout: c.ms(&key("timeout_ms"), raw.timeout_ms, 100, 600_000)?,
        tls,
        sasl,
    })
}

impl KafkaClientSettings {
    /// The defaults of a table whose `brokers` is empty (printed by `check-config`).
    pub(crate) fn disabled(topic: &str) -> Self {
        Self {
            brokers: Vec::new(),
            topic: topic.to_owned(),
            create_partitions: 0,
            compression: Compression::Lz4,
            timeout: Duration::from_secs(10),
            tls: None,
            sasl: None,
        }
    }

    /// Every client key but `brokers`, as TOML lines.
    pub(crate) fn write_effective(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let path = |p: Option<&PathBuf>| q(&p.map(|p| p.display().to_string()).unwrap_or_default());
        writeln!(f, "topic = {}\ncreate_partitions = {}", q(&self.topic), self.create_partitions)?;
        writeln!(
            f,
            "compression = {}\ntimeout_ms = {}",
            q(self.compression.name()),
            self.timeout.as_millis()
        )?;
        let tls = self.tls.clone().unwrap_or_default();
        writeln!(f, "tls = {}\nca_file = {}", self.tls.is_some(), path(tls.ca_file.as_ref()))?;
        writeln!(f, "client_cert_file = {}", path(tls.client_cert.as_ref().map(|c| &c.0)))?;
        writeln!(f, "client_key_file = {}", path(tls.client_cert.as_ref().map(|c| &c.1)))?;
        let (m, u, p) = self
            .sasl
            .as_ref()
            .map_or(("", "", ""), |s| (s.mechanism.as_str(), s.username.as_str(), s.password.as_str()));
        writeln!(f, "sasl_mechanism = {}\nsasl_username = {}\nsasl_password = {}", q(m), q(u), q(p))
    }
}

impl KafkaClientSettings {
    /// The client keys of a `type = "kafka"` sink (whose `timeout_ms` is a common sink key,
    /// printed with the others), as TOML lines after `brokers`.
    pub(crate) fn write_sink_effective(&self, f: &mut impl fmt::Write) -> fmt::Result {
        writeln!(f, "topic = {}\ncreate_partitions = {}", q(&self.topic), self.create_partitions)?;
        writeln!(f, "compression = {}\ntls = {}", q(self.compression.name()), self.tls.is_some())?;
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca_file {
                writeln!(f, "ca_file = {}", q(&ca.display().to_string()))?;
            }
            if let Some((cert, key)) = &tls.client_cert {
                writeln!(f, "client_cert_file = {}", q(&cert.display().to_string()))?;
                writeln!(f, "client_key_file = {}", q(&key.display().to_string()))?;
            }
        }
        if let Some(s) = &self.sasl {
            writeln!(f, "sasl_mechanism = {}\nsasl_username = {}", q(&s.mechanism), q(&s.username))?;
            writeln!(f, "sasl_password = {}", q(&s.password))?;
        }
        Ok(())
    }
}

/// A Kafka failure, sorted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    /// May succeed later: a broker down, a leader election, a timeout.
    #[error("{0}")]
    Retriable(String),
    /// Will not succeed as it is: the record is too large, the topic name is invalid, the
    /// credentials are refused.
    #[error("{0}")]
    Permanent(String),
}

fn classify(what: &str, e: &rskafka::client::error::Error) -> KafkaError {
    use rskafka::client::error::{Error, ProtocolError as P};
    let text = format!("kafka {what}: {e}");
    match e {
        Error::ServerError {
            protocol_error:
                P::MessageTooLarge
                | P::RecordListTooLarge
                | P::InvalidRecord
                | P::InvalidTopicException
                | P::TopicAuthorizationFailed
                | P::ClusterAuthorizationFailed
                | P::SaslAuthenticationFailed
                | P::UnsupportedCompressionType,
            ..
        } => KafkaError::Permanent(text),
        _ => KafkaError::Retriable(text),
    }
}

/// A connected producer for one topic: the client and a partition client per partition.
pub struct Producer {
    settings: KafkaClientSettings,
    client: Client,
    partitions: Vec<Arc<PartitionClient>>,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("brokers", &self.settings.brokers)
            .field("topic", &self.settings.topic)
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

/// The client library's own retries stop after this long, so that a failure reaches the
/// caller's retry policy (backoff with jitter, counted) instead of looping inside rskafka.
fn backoff(timeout: Duration) -> rskafka::BackoffConfig {
    rskafka::BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        base: 2.0,
        deadline: Some(timeout),
    }
}

/// Connects to the brokers (TLS and SASL as configured): a [`Client`] whose retries stop
/// after `settings.timeout`.
pub async fn client(settings: &KafkaClientSettings, client_id: &str) -> Result<Client, KafkaError> {
    let mut b = ClientBuilder::new(settings.brokers.clone())
        .client_id(client_id.to_owned())
        .backoff_config(backoff(settings.timeout));
    if let Some(tls) = &settings.tls {
        let cert = tls.client_cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        let config =
            crate::tls::client_config(tls.ca_file.as_deref(), cert).map_err(KafkaError::Permanent)?;
        b = b.tls_config(config);
    }
    if let Some(s) = &settings.sasl {
        let creds = Credentials::new(s.username.clone(), s.password.clone());
        b = b.sasl_config(match s.mechanism.as_str() {
            "SCRAM-SHA-256" => SaslConfig::ScramSha256(creds),
            "SCRAM-SHA-512" => SaslConfig::ScramSha512(creds),
            _ => SaslConfig::Plain(creds),
        });
    }
    tokio::time::timeout(settings.timeout, b.build())
        .await
        .map_err(|_| KafkaError::Retriable(format!("kafka connect to {:?}: timed out", settings.brokers)))?
        .map_err(|e| classify("connect", &e))
}

impl Producer {
    /// Connects, creates the topic when it is missing and `create_partitions` allows, and
    /// opens a client per partition.
    pub async fn connect(settings: &KafkaClientSettings, client_id: &str) -> Result<Self, KafkaError> {
        let client = client(settings, client_id).await?;
        let topic = &settings.topic;
        let mut count = partition_count(&client, topic).await?;
        if count == 0 && settings.create_partitions > 0 {
            let controller = client.controller_client().map_err(|e| classify("controller", &e))?;
            let n = i32::try_from(settings.create_partitions).unwrap_or(i32::MAX);
            let ms = i32::try_from(settings.timeout.as_millis()).unwrap_or(i32::MAX);
            if let Err(e) = controller.create_topic(topic.as_str(), n, 1, ms).await {
                // Another sensor may have created it in between: look again before failing.
                if partition_count(&client, topic).await? == 0 {
                    return Err(classify(&format!("create topic {topic}"), &e));
                }
            }
            count = partition_count(&client, topic).await?;
        }
        if count == 0 {
            return Err(KafkaError::Retriable(format!(
                "kafka topic {topic} does not exist (create it, or set create_partitions)"
            )));
        }
        let mut partitions = Vec::with_capacity(count);
        for p in 0..count {
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            let pc = client
                .partition_client(topic.as_str(), p, UnknownTopicHandling::Retry)
                .await
                .map_err(|e| classify(&format!("partition {topic}/{p}"), &e))?;
            partitions.push(Arc::new(pc));
        }
        Ok(Self { settings: settings.clone(), client, partitions })
    }

    /// The partitions of the topic.
    #[must_use]
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// The client (for consumers in tests and tools).
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Produces `records` (key, value, timestamp ms), each to the partition its key maps to,
    /// one request per partition, all acknowledged by every in-sync replica (`acks = -1`).
    /// Returns, per record, `None` when stored or the error of its partition's request.
    pub async fn produce(&self, records: Vec<(Vec<u8>, Vec<u8>, i64)>) -> Vec<Option<KafkaError>> {
        let n = records.len();
        let mut by_partition: HashMap<usize, (Vec<usize>, Vec<rskafka::record::Record>)> = HashMap::new();
        for (i, (key, value, ts_ms)) in records.into_iter().enumerate() {
            let p = partition_for(&key, self.partitions.len());
            let entry = by_partition.entry(p).or_default();
            entry.0.push(i);
            entry.1.push(rskafka::record::Record {
                key: Some(key),
                value: Some(value),
                headers: std::collections::BTreeMap::new(),
                timestamp: rskafka::chrono::DateTime::from_timestamp_millis(ts_ms).unwrap_or_default(),
            });
        }
        let compression = self.settings.compression.rskafka();
        let timeout = self.settings.timeout;
        let sends = by_partition.into_iter().map(|(p, (idx, recs))| {
            let pc = Arc::clone(&self.partitions[p]);
            async move {
                let r = match tokio::time::timeout(timeout, pc.produce(recs, compression)).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(classify(&format!("produce to {}/{p}", pc.topic()), &e)),
                    Err(_) => {
                        Some(KafkaError::Retriable(format!("kafka produce to {}/{p}: timed out", pc.topic())))
                    }
                };
                (idx, r)
            }
        });
        let mut out = vec![None; n];
        for (idx, r) in futures::future::join_all(sends).await {
            for i in idx {
                out[i].clone_from(&r);
            }
        }
        out
    }
}

async fn partition_count(client: &Client, topic: &str) -> Result<usize, KafkaError> {
    let topics = client.list_topics().await.map_err(|e| classify("metadata", &e))?;
    Ok(topics.into_iter().find(|t| t.name == topic).map_or(0, |t| t.partitions.len()))
}

/// Kafka's default partitioner: murmur2 of the key (seed 0x9747b28c), made positive, modulo
/// the partition count; so the sensor puts a key where a Java or librdkafka producer would.
#[must_use]
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    if partitions <= 1 {
        return 0;
    }
    let h = murmur2(key) & 0x7fff_ffff;
    (h as usize) % partitions
}

/// The murmur2 variant of Kafka's `Utils.murmur2`.
#[must_use]
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_on_the_partitions_kafkas_default_partitioner_picks() {
        // Values of Kafka's own Utils.murmur2 (clients/src/test/.../UtilsTest.java).
        assert_eq!(murmur2(b"21") as i32, -973_932_308);
        assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1_486_304_829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32, -58_897_971);
        assert_eq!(murmur2(b"abc") as i32, 479_470_107);
        assert_eq!(partition_for(b"anything", 1), 0);
        assert!(partition_for(b"foobar", 6) < 6);
    }
}
