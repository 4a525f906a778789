//! Flow records to a Kafka topic (`[output.kafka]`): the exporter thread `nbad-kafka-flows`,
//! in the sink shape: settings → batch (`batch_max_records`, or what came within `linger_ms`)
//! → encode (one ECS JSON document per message, the same document as the JSON lines output,
//! keyed by `network.community_id` so both directions and every interim record of a flow land
//! on one partition, in order) → produce (`acks = -1`, compression as configured).
//!
//! Retriable failures (a broker down, a leader moving, a timeout) are retried with jittered
//! backoff while the bounded queue in front absorbs and then drops, counted; permanent ones (a
//! record the broker refuses for good) drop that record, counted. The client is shared with
//! the alert sink: see [`crate::kafka`] for why rskafka.
//!
//! Not here yet: spooling flow records to disk when the brokers are away (the alert spool
//! could hold them, at the cost of a disk write per record); records are dropped past the
//! queue instead, and the counters say how many.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::config::KafkaOutputSettings;
use super::export::{Backoff, Drain, ExporterStats, FailureLog, QueueRx, Recv};
use super::flow_json::ecs_document;
use crate::kafka::{KafkaError, Producer};

/// One message: key, value, timestamp in ms.
type Msg = (Vec<u8>, Vec<u8>, i64);

struct Exporter<'a> {
    k: &'a KafkaOutputSettings,
    client_id: String,
    stats: &'a ExporterStats,
    drain: &'a Drain,
    runtime: tokio::runtime::Runtime,
    producer: Option<Producer>,
    backoff: Backoff,
    log: FailureLog,
}

/// Runs until the feed is closed and everything queued is produced (or the drain time ends).
pub(crate) fn run(
    k: &KafkaOutputSettings,
    sensor_id: &str,
    rx: &QueueRx,
    stats: &ExporterStats,
    drain: &Drain,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let reason = format!("cannot start the Kafka flow output's runtime: {e}");
            FailureLog::default().failure(stats, &reason);
            loop {
                match rx.recv(Duration::from_secs(1)) {
                    Recv::Records(c) => {
                        stats.dropped_send_error.fetch_add(c.len() as u64, Relaxed);
                    }
                    Recv::Idle => {}
                    Recv::Closed => return,
                }
            }
        }
    };
    let mut e = Exporter {
        k,
        client_id: format!("nbad-sensor-{sensor_id}"),
        stats,
        drain,
        runtime,
        producer: None,
        backoff: Backoff::new(k.retry_initial, k.retry_max),
        log: FailureLog::default(),
    };
    let mut batch: Vec<Msg> = Vec::with_capacity(k.batch_max_records);
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(Duration::from_secs(1), |t| k.linger.saturating_sub(t.elapsed()));
        let closed = match rx.recv(wait) {
            Recv::Records(chunk) => {
                for r in &chunk {
                    match ecs_document(r, sensor_id) {
                        Ok((value, community_id)) => {
                            let ts = i64::try_from(r.end_ns / 1_000_000).unwrap_or(i64::MAX);
                            batch.push((community_id.into_bytes(), value, ts));
                        }
                        Err(_) => {
                            stats.dropped_send_error.fetch_add(1, Relaxed);
                        }
                    }
                }
                oldest.get_or_insert_with(Instant::now);
                false
            }
            Recv::Idle => false,
            Recv::Closed => true,
        };
        while batch.len() >= k.batch_max_records {
            let rest = batch.split_off(k.batch_max_records);
            e.deliver(std::mem::replace(&mut batch, rest));
        }
        if !batch.is_empty() && (closed || oldest.is_some_and(|t| t.elapsed() >= k.linger)) {
            e.deliver(std::mem::take(&mut batch));
        }
        if batch.is_empty() {
            oldest = None;
        }
        if closed {
            break;
        }
    }
}

impl Exporter<'_> {
    /// Produces `batch` until every record is stored, refused for good, or the drain ends.
    fn deliver(&mut self, mut batch: Vec<Msg>) {
        while !batch.is_empty() {
            if self.drain.expired() {
                self.stats.dropped_shutdown.fetch_add(batch.len() as u64, Relaxed);
                return;
            }
            let reason = match self.attempt(&mut batch) {
                Ok(()) => {
                    self.backoff.reset();
                    self.log.success(self.stats);
                    return;
                }
                Err(reason) => reason,
            };
            self.stats.send_errors.fetch_add(1, Relaxed);
            self.log.failure(self.stats, &reason);
            self.drain.sleep(self.backoff.next());
        }
    }

    /// One produce of `batch`; keeps in it only the records to try again.
    fn attempt(&mut self, batch: &mut Vec<Msg>) -> Result<(), String> {
        if self.producer.is_none() {
            match self.runtime.block_on(Producer::connect(&self.k.client, &self.client_id)) {
                Ok(p) => {
                    self.stats.connects.fetch_add(1, Relaxed);
                    self.producer = Some(p);
                }
                Err(KafkaError::Permanent(reason)) => {
                    // Credentials or a topic the cluster refuses: nothing in this batch can go.
                    self.stats.dropped_send_error.fetch_add(batch.len() as u64, Relaxed);
                    batch.clear();
                    return Err(reason);
                }
                Err(KafkaError::Retriable(reason)) => return Err(reason),
            }
        }
        let Some(producer) = self.producer.as_ref() else { return Err("not connected".to_owned()) };
        let bytes: usize = batch.iter().map(|(k, v, _)| k.len() + v.len()).sum();
        let results = self.runtime.block_on(producer.produce(batch.clone()));
        let mut keep = Vec::new();
        let mut last = None;
        let mut sent = 0u64;
        for (m, r) in batch.drain(..).zip(results) {
            match r {
                None => sent += 1,
                Some(KafkaError::Permanent(reason)) => {
                    self.stats.dropped_send_error.fetch_add(1, Relaxed);
                    last = Some(reason);
                }
                Some(KafkaError::Retriable(reason)) => {
                    keep.push(m);
                    last = Some(reason);
                }
            }
        }
        self.stats.sent.fetch_add(sent, Relaxed);
        self.stats.data_records.fetch_add(sent, Relaxed);
        if sent > 0 {
            self.stats.messages.fetch_add(1, Relaxed);
            self.stats.bytes.fetch_add(bytes as u64, Relaxed);
        }
        *batch = keep;
        match last {
            None => Ok(()),
            Some(reason) if batch.is_empty() => {
                // Only permanent refusals: counted, nothing to retry.
                self.log.failure(self.stats, &reason);
                Ok(())
            }
            Some(reason) => {
                // Metadata may be stale (a leader moved, the broker restarted): reconnect.
                self.producer = None;
                Err(reason)
            }
        }
    }
}
