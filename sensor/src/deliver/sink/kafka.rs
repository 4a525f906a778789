//! Kafka: each alert is one record on `topic`, key = `event.id` (so every copy of an alert,
//! re-sent after a failure, lands on the same partition and a consumer or a compacted topic
//! keeps one), value = the alert's ECS (or OCSF) document, timestamp = the alert's time.
//! Records go with `acks = -1` (every in-sync replica) and the configured compression; the
//! client is [`crate::kafka`] (rskafka; why, and what its missing idempotent producer costs,
//! is written there). At-least-once comes from the spool like every sink: the cursor moves
//! when the broker acknowledged the record.
//!
//! Retriable: a broker down, a leader election, a timeout (the connection is rebuilt, with
//! fresh metadata, before the next try). Permanent, dead-lettered: the broker refuses the
//! record for good (too large, invalid, not authorised).

use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings};
use crate::deliver::format;
use crate::deliver::retry::{SendError, SendResult};
use crate::kafka::{KafkaClientSettings, KafkaError, Producer};

/// The Kafka sink.
pub(crate) struct KafkaSink {
    client: KafkaClientSettings,
    client_id: String,
    format: Format,
    producer: Option<Producer>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.client.brokers)
            .field("topic", &self.client.topic)
            .finish_non_exhaustive()
    }
}

fn send_error(e: KafkaError) -> SendError {
    match e {
        KafkaError::Retriable(reason) => SendError::retry(reason),
        KafkaError::Permanent(reason) => SendError::permanent(reason),
    }
}

impl KafkaSink {
    pub(crate) fn new(s: &SinkSettings, sensor_id: &str) -> Result<Self, String> {
        let SinkKind::Kafka { client } = &s.kind else { return Err("not a kafka sink".to_owned()) };
        Ok(Self {
            client: client.clone(),
            client_id: format!("nbad-sensor-{sensor_id}"),
            format: s.format,
            producer: None,
        })
    }

    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        if self.producer.is_none() {
            self.producer = Some(Producer::connect(&self.client, &self.client_id).await.map_err(send_error)?);
        }
        let Some(producer) = self.producer.as_ref() else {
            return Err(SendError::retry("kafka: not connected"));
        };
        let records = batch
            .iter()
            .map(|a| {
                let value = format::json(a, self.format).to_string().into_bytes();
                let ts = i64::try_from(a.timestamp_ns / 1_000_000).unwrap_or(i64::MAX);
                (a.id.clone().into_bytes(), value, ts)
            })
            .collect();
        let results = producer.produce(records).await;
        let rejected: Vec<(usize, SendError)> =
            results.into_iter().enumerate().filter_map(|(i, r)| r.map(|e| (i, send_error(e)))).collect();
        if rejected.iter().any(|(_, e)| matches!(e, SendError::Retriable { .. })) {
            // Stale metadata (a leader moved, the broker restarted): connect afresh next time.
            self.producer = None;
        }
        if !batch.is_empty()
            && rejected.len() == batch.len()
            && rejected.iter().all(|(_, e)| matches!(e, SendError::Retriable { .. }))
        {
            let reason = rejected.first().map(|(_, e)| e.reason().to_owned()).unwrap_or_default();
            return Err(SendError::retry(reason));
        }
        Ok(rejected)
    }
}
