//! The sinks. Every sink has the same shape: built from its [`SinkSettings`] (nothing is
//! connected yet, so an unreachable receiver never stops the sensor from starting), then
//! `send(batch)` encodes the batch in the sink's format and sends it, returning a
//! [`SendResult`] that tells acknowledged, retriable and permanent outcomes apart. Batching,
//! retries, the cursor and the dead letters are the delivery loop's (`runner.rs`), the same for
//! every sink.
//!
//! What counts as an acknowledgement: `file` a completed write and flush; `http` any 2xx;
//! `splunk_hec` HEC code 0; `elasticsearch` per item 200/201, or 409 (already there); `redis`
//! the entry id XADD returns; `nats` the JetStream publish ack; `kafka` the produce response
//! (`acks = -1`). `syslog` over `tcp`/`udp` has
//! no acknowledgement (a completed write is taken as one: best effort); over `tls` likewise,
//! but a dead connection is detected before each batch.

pub(crate) mod elastic;
pub(crate) mod file;
pub(crate) mod http;
pub(crate) mod kafka;
pub(crate) mod nats;
pub(crate) mod redis;
pub(crate) mod splunk;
pub(crate) mod syslog;
pub(crate) mod tls;

use super::config::{SinkKind, SinkSettings};
use super::retry::SendResult;
use crate::alert::Alert;

/// A sink could not be built from its settings (a CA file that does not parse, ...).
#[derive(Debug, thiserror::Error)]
#[error("alert sink {name}: {reason}")]
pub struct BuildError {
    /// The sink's name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

/// One configured sink.
#[derive(Debug)]
pub(crate) enum Sink {
    File(file::FileSink),
    Http(http::HttpSink),
    Splunk(splunk::SplunkSink),
    Elastic(elastic::ElasticSink),
    Syslog(syslog::SyslogSink),
    Redis(redis::RedisSink),
    Nats(nats::NatsSink),
    Kafka(kafka::KafkaSink),
}

impl Sink {
    /// Builds the sink; connects nothing.
    pub(crate) fn build(s: &SinkSettings, sensor_id: &str) -> Result<Self, BuildError> {
        let fail = |reason: String| BuildError { name: s.name.clone(), reason };
        Ok(match &s.kind {
            SinkKind::File { .. } => Self::File(file::FileSink::new(s)),
            SinkKind::Http { .. } => Self::Http(http::HttpSink::new(s).map_err(fail)?),
            SinkKind::SplunkHec { .. } => Self::Splunk(splunk::SplunkSink::new(s, sensor_id).map_err(fail)?),
            SinkKind::Elasticsearch { .. } => Self::Elastic(elastic::ElasticSink::new(s).map_err(fail)?),
            SinkKind::Syslog { .. } => Self::Syslog(syslog::SyslogSink::new(s).map_err(fail)?),
            SinkKind::Redis { .. } => Self::Redis(redis::RedisSink::new(s).map_err(fail)?),
            SinkKind::Nats { .. } => Self::Nats(nats::NatsSink::new(s)),
            SinkKind::Kafka { .. } => Self::Kafka(kafka::KafkaSink::new(s, sensor_id).map_err(fail)?),
        })
    }

    /// Encodes and sends one batch.
    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        match self {
            Self::File(s) => s.send(batch),
            Self::Http(s) => s.send(batch).await,
            Self::Splunk(s) => s.send(batch).await,
            Self::Elastic(s) => s.send(batch).await,
            Self::Syslog(s) => s.send(batch).await,
            Self::Redis(s) => s.send(batch).await,
            Self::Nats(s) => s.send(batch).await,
            Self::Kafka(s) => s.send(batch).await,
        }
    }
}
