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
//! With `spool_dir` set, every record goes through an on-disk spool first (the alert spool,
//! in a directory of its own, with one reader: cursor `kafka-flows.cursor`): the producer reads
//! batches from its cursor and moves it when the broker acknowledged them, so an outage costs
//! disk space instead of records, and what is left at a stop is sent at the next start. When
//! the spool holds `spool_max_bytes` the newest records are dropped (counted in
//! `dropped_queue_full`). It is never fsync'ed: a crash of the sensor loses nothing it had
//! appended, a crash of the machine may lose the last seconds. Without a spool, records are
//! dropped past the in-memory queue, and the counters say how many.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::config::KafkaOutputSettings;
use super::export::{Backoff, Drain, ExporterStats, FailureLog, QueueRx, Recv};
use super::flow_json::FlowEncoder;
use crate::deliver::spool::Spool;
use crate::deliver::spool::reader::{Reader, Spooled};
use crate::deliver::{DeliverySettings, FsyncPolicy};
use crate::flow::FlowRecord;
use crate::kafka::{KafkaError, Producer};

/// The spool reader's name (its cursor file is `kafka-flows.cursor`).
const SPOOL_READER: &str = "kafka-flows";

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
    if let Some(dir) = &k.spool_dir {
        match open_spool(dir, k.spool_max_bytes) {
            Ok(spool) => return run_spooled(&mut e, &mut FlowEncoder::new(sensor_id), rx, &spool),
            Err(err) => eprintln!(
                "nbad-sensor: error: flow export kafka: cannot open the flow spool {}: {err}; records go through \
                 the in-memory queue only",
                dir.display()
            ),
        }
    }
    let mut enc = FlowEncoder::new(sensor_id);
    let mut batch: Vec<Msg> = Vec::with_capacity(k.batch_max_records);
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(Duration::from_secs(1), |t| k.linger.saturating_sub(t.elapsed()));
        let closed = match rx.recv(wait) {
            Recv::Records(chunk) => {
                for r in &chunk {
                    match message(&mut enc, r) {
                        Some(msg) => batch.push(msg),
                        None => {
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

/// The flow spool in `dir`: never fsync'ed, never waiting for room (a full spool refuses).
fn open_spool(dir: &std::path::Path, max_bytes: u64) -> Result<Arc<Spool>, crate::deliver::SpoolError> {
    let settings = DeliverySettings {
        spool_dir: dir.to_path_buf(),
        spool_max_bytes: max_bytes,
        segment_bytes: (max_bytes / 2).min(16 << 20),
        fsync: FsyncPolicy::Never,
        full_wait: Duration::ZERO,
        drain_timeout: Duration::ZERO,
        dead_letter: dir.join("unused-dead-letter.jsonl"),
        sinks: Vec::new(),
    };
    Spool::open(&settings).map(Arc::new)
}

/// A spooled message: key length (2 octets), timestamp (8), key, value.
fn encode_spooled(key: &[u8], value: &[u8], ts: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + key.len() + value.len());
    out.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

fn decode_spooled(p: &[u8]) -> Option<Msg> {
    let klen = usize::from(u16::from_be_bytes([*p.first()?, *p.get(1)?]));
    let ts = i64::from_be_bytes(p.get(2..10)?.try_into().ok()?);
    let key = p.get(10..10 + klen)?.to_vec();
    let value = p.get(10 + klen..)?.to_vec();
    Some((key, value, ts))
}

/// One record as a message: key = Community ID, value = the ECS document.
fn message(enc: &mut FlowEncoder, r: &FlowRecord) -> Option<Msg> {
    let (value, community_id) = enc.document(r).ok()?;
    let ts = i64::try_from(r.end_ns / 1_000_000).unwrap_or(i64::MAX);
    Some((community_id.into_bytes(), value, ts))
}

/// The loop with a spool: records are appended as they come; batches are read from the
/// cursor, produced, and the cursor moved once the broker took them. At the end, what the
/// drain time did not send stays in the spool for the next start.
fn run_spooled(e: &mut Exporter<'_>, enc: &mut FlowEncoder, rx: &QueueRx, spool: &Arc<Spool>) {
    let mut reader = Reader::open(spool, SPOOL_READER);
    let k = e.k;
    let mut held: Vec<Spooled> = Vec::new();
    loop {
        let wait = if held.is_empty() {
            Duration::from_millis(200)
        } else {
            k.linger.min(Duration::from_millis(200))
        };
        let closed = match rx.recv(wait) {
            Recv::Records(chunk) => {
                for r in &chunk {
                    let appended = message(enc, r)
                        .map(|(key, value, ts)| spool.append(&encode_spooled(&key, &value, ts)));
                    if !matches!(appended, Some(Ok(_))) {
                        e.stats.dropped_queue_full.fetch_add(1, Relaxed);
                    }
                }
                false
            }
            Recv::Idle => false,
            Recv::Closed => true,
        };
        loop {
            if held.len() < k.batch_max_records {
                match reader.next_batch(k.batch_max_records - held.len()) {
                    Ok(more) => held.extend(more),
                    Err(err) => e.log.failure(e.stats, &format!("reading the flow spool: {err}")),
                }
            }
            e.stats.spooled.store(spool.next_seq().saturating_sub(reader.cursor().max(1)), Relaxed);
            let Some(first) = held.first() else { break };
            let lingered = crate::deliver::spool::now_ms().saturating_sub(first.appended_ms)
                >= u64::try_from(k.linger.as_millis()).unwrap_or(u64::MAX);
            if held.len() < k.batch_max_records && !closed && !lingered {
                break;
            }
            let last = held.last().map_or(0, |s| s.seq);
            let batch: Vec<Msg> = held.iter().filter_map(|s| decode_spooled(&s.payload)).collect();
            e.stats.dropped_send_error.fetch_add((held.len() - batch.len()) as u64, Relaxed);
            if !e.deliver_or_keep(batch) {
                // The drain time is over: the rest stays spooled for the next start.
                return;
            }
            held.clear();
            if let Err(err) = reader.commit(last + 1) {
                e.log.failure(e.stats, &format!("saving the flow spool cursor: {err}"));
            }
        }
        if closed {
            e.stats.spooled.store(spool.next_seq().saturating_sub(reader.cursor().max(1)), Relaxed);
            return;
        }
    }
}

impl Exporter<'_> {
    /// Produces `batch` until every record is stored, refused for good, or the drain ends
    /// (the rest counted in `dropped_shutdown`).
    fn deliver(&mut self, batch: Vec<Msg>) {
        let n = batch.len() as u64;
        let before = self.stats.sent.load(Relaxed) + self.stats.dropped_send_error.load(Relaxed);
        if !self.deliver_or_keep(batch) {
            let done = self.stats.sent.load(Relaxed) + self.stats.dropped_send_error.load(Relaxed) - before;
            self.stats.dropped_shutdown.fetch_add(n.saturating_sub(done), Relaxed);
        }
    }

    /// Produces `batch` until every record is stored or refused for good (true), or the drain
    /// time ends first (false: the rest is not sent).
    fn deliver_or_keep(&mut self, mut batch: Vec<Msg>) -> bool {
        while !batch.is_empty() {
            if self.drain.expired() {
                return false;
            }
            let reason = match self.attempt(&mut batch) {
                Ok(()) => {
                    self.backoff.reset();
                    self.log.success(self.stats);
                    return true;
                }
                Err(reason) => reason,
            };
            self.stats.send_errors.fetch_add(1, Relaxed);
            self.log.failure(self.stats, &reason);
            self.drain.sleep(self.backoff.next());
        }
        true
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
