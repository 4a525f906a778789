//! Flow export: every flow record, interim ones included, handed from the analysis stage to
//! one exporter thread per destination (each `[[output.ipfix]]` collector, and
//! `[output.kafka]`), over a bounded queue each.
//!
//! ```text
//! analysis thread ──offer (never blocks)──▶ queue (≤ queue_records) ──▶ nbad-ipfix-N ──▶ collector
//!                                       └──▶ queue (≤ queue_records) ──▶ nbad-kafka-flows ──▶ brokers
//! ```
//!
//! Invariants:
//! - **The pipeline never waits for an exporter.** [`ExportFeed::offer`] puts a chunk of
//!   records on each queue or, when that queue already holds `queue_records` records, drops the
//!   chunk (the newest records) and counts them in `dropped_queue_full`. A slow or dead
//!   collector costs records, counted, never packets.
//! - **Every record is accounted for**: `offered = sent + dropped_queue_full +
//!   dropped_send_error + dropped_shutdown + queued (+ spooled)`, per exporter, in the stats
//!   JSON and the Prometheus metrics. With a spool (`[output.kafka] spool_dir`), records an
//!   earlier run left there are sent too, so `sent` can pass `offered`.
//! - **Retries**: a retriable send error (refused, reset, timeout, a broker down) is retried
//!   with capped exponential backoff and full jitter, forever while the sensor runs (the
//!   queue in front absorbs and then drops); a permanent one (EMSGSIZE, a record the broker
//!   refuses for good) drops that message's records, counted in `dropped_send_error`.
//! - **Shutdown**: when the pipeline ends, the feed is dropped; each exporter sends what is
//!   queued and stops. [`FlowExport::finish`] waits at most its drain time; records still
//!   unsent then are counted in `dropped_shutdown`.
//! - A failing exporter logs one line when it starts failing, at most one a minute while it
//!   keeps failing, and one when it recovers.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::config::ExportSettings;
use crate::flow::FlowRecord;
use crate::stats::ExporterJson;

/// How often a failing exporter logs again.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// One exporter's live counters (atomics bumped by the exporter thread and the feed).
#[derive(Debug)]
pub(crate) struct ExporterStats {
    pub name: String,
    pub kind: &'static str,
    pub destination: String,
    pub offered: AtomicU64,
    pub sent: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_send_error: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    pub data_records: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub template_sends: AtomicU64,
    pub send_errors: AtomicU64,
    pub connects: AtomicU64,
    pub queued: AtomicUsize,
    pub spooled: AtomicU64,
    pub queue_capacity: usize,
    pub healthy: AtomicBool,
    pub last_error: Mutex<Option<String>>,
}

impl ExporterStats {
    pub(crate) fn new(name: &str, kind: &'static str, destination: String, queue_capacity: usize) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            destination,
            offered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_send_error: AtomicU64::new(0),
            dropped_shutdown: AtomicU64::new(0),
            data_records: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            template_sends: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            spooled: AtomicU64::new(0),
            queue_capacity,
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn set_error(&self, reason: Option<&str>) {
        self.healthy.store(reason.is_none(), Relaxed);
        if let Some(reason) = reason {
            *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(reason.to_owned());
        }
    }

    pub(crate) fn snapshot(&self) -> ExporterJson {
        ExporterJson {
            name: self.name.clone(),
            kind: self.kind.to_owned(),
            destination: self.destination.clone(),
            offered: self.offered.load(Relaxed),
            sent: self.sent.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            dropped_send_error: self.dropped_send_error.load(Relaxed),
            dropped_shutdown: self.dropped_shutdown.load(Relaxed),
            data_records: self.data_records.load(Relaxed),
            messages: self.messages.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            template_sends: self.template_sends.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            connects: self.connects.load(Relaxed),
            queued: self.queued.load(Relaxed) as u64,
            spooled: self.spooled.load(Relaxed),
            queue_capacity: self.queue_capacity as u64,
            healthy: self.healthy.load(Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }
}

/// The sending end of one exporter's queue.
#[derive(Debug)]
struct QueueTx {
    tx: Sender<Vec<FlowRecord>>,
    stats: Arc<ExporterStats>,
}

/// The receiving end, as an exporter thread sees it.
#[derive(Debug)]
pub(crate) struct QueueRx {
    rx: Receiver<Vec<FlowRecord>>,
    stats: Arc<ExporterStats>,
}

/// What [`QueueRx::recv`] found.
#[derive(Debug)]
pub(crate) enum Recv {
    /// A chunk of records.
    Records(Vec<FlowRecord>),
    /// Nothing within the wait.
    Idle,
    /// The feed is gone and the queue empty: send what is pending and stop.
    Closed,
}

impl QueueRx {
    /// The next chunk, waiting at most `wait`.
    pub(crate) fn recv(&self, wait: Duration) -> Recv {
        match self.rx.recv_timeout(wait) {
            Ok(chunk) => {
                self.stats.queued.fetch_sub(chunk.len(), Relaxed);
                Recv::Records(chunk)
            }
            Err(RecvTimeoutError::Timeout) => Recv::Idle,
            Err(RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }
}

/// A bounded queue in records: a channel of chunks plus a count of the records in it.
fn queue(stats: &Arc<ExporterStats>) -> (QueueTx, QueueRx) {
    // A chunk holds at least one record, so the channel never binds before the record count.
    let (tx, rx) = crossbeam_channel::bounded(stats.queue_capacity.max(1));
    (QueueTx { tx, stats: Arc::clone(stats) }, QueueRx { rx, stats: Arc::clone(stats) })
}

/// The analysis stage's side: offers every record to every exporter, never blocking.
#[derive(Debug, Default)]
pub struct ExportFeed {
    queues: Vec<QueueTx>,
}

/// A feed with one queue of `capacity` records and that queue's receiving end, for tests
/// that look at what an exporter would be given.
#[cfg(test)]
pub(crate) fn test_feed(capacity: usize) -> (ExportFeed, QueueRx) {
    let stats = Arc::new(ExporterStats::new("test", "ipfix", "test".into(), capacity));
    let (tx, rx) = queue(&stats);
    (ExportFeed { queues: vec![tx] }, rx)
}

impl ExportFeed {
    /// Queues `records` for every exporter; an exporter whose queue is full loses them
    /// (counted in its `dropped_queue_full`).
    pub fn offer(&self, records: &[FlowRecord]) {
        if records.is_empty() {
            return;
        }
        let n = records.len();
        for q in &self.queues {
            let s = &q.stats;
            s.offered.fetch_add(n as u64, Relaxed);
            // One producer (the analysis thread): the check and the add cannot race each other.
            if s.queued.load(Relaxed) + n > s.queue_capacity {
                s.dropped_queue_full.fetch_add(n as u64, Relaxed);
                continue;
            }
            s.queued.fetch_add(n, Relaxed);
            match q.tx.try_send(records.to_vec()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    s.queued.fetch_sub(n, Relaxed);
                    s.dropped_queue_full.fetch_add(n as u64, Relaxed);
                }
            }
        }
    }
}

/// When the exporters must stop sending (set by [`FlowExport::finish`]).
#[derive(Debug, Default)]
pub(crate) struct Drain {
    deadline: Mutex<Option<Instant>>,
}

impl Drain {
    /// Whether the drain time has run out.
    pub(crate) fn expired(&self) -> bool {
        self.deadline.lock().map(|d| d.is_some_and(|at| Instant::now() >= at)).unwrap_or(true)
    }

    /// Sleeps for `d`, or less if the drain deadline comes first.
    pub(crate) fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.expired() {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
    }

    fn set(&self, at: Instant) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = Some(at);
        }
    }
}

/// Capped exponential backoff with full jitter: a uniform delay in `0..=min(max, initial ×
/// 2^attempt)` (the alert sinks' policy).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, attempt: 0 }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let ceiling = self.initial.saturating_mul(1 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(fastrand::u64(0..=u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX)))
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// One line when an exporter starts failing, then at most one per [`LOG_EVERY`], and one when
/// it recovers from a failure that was logged. The rate limit outlives a recovery: a UDP
/// collector that is down makes every other send fail (the ICMP error of one datagram
/// surfaces on the next send), which must not log two lines per message.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    logged: bool,
    failures: u64,
}

impl FailureLog {
    pub(crate) fn failure(&mut self, stats: &ExporterStats, reason: &str) {
        stats.set_error(Some(reason));
        self.failures += 1;
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        if self.last_logged.is_some_and(|t| now - t < LOG_EVERY) {
            return;
        }
        self.last_logged = Some(now);
        self.logged = true;
        eprintln!(
            "nbad-sensor: flow export {} ({} to {}) cannot send: {reason}; retrying with backoff, records queue up \
             to {} and are dropped (counted) past that",
            stats.name, stats.kind, stats.destination, stats.queue_capacity
        );
    }

    pub(crate) fn success(&mut self, stats: &ExporterStats) {
        stats.set_error(None);
        if let Some(since) = self.failing_since.take()
            && self.logged
        {
            eprintln!(
                "nbad-sensor: flow export {} sends again after {} failed attempts over {:.0?}",
                stats.name,
                self.failures,
                since.elapsed()
            );
        }
        self.failures = 0;
        self.logged = false;
    }
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A thread could not be started.
    #[error("cannot start the flow export thread {0}: {1}")]
    Thread(String, std::io::Error),
}

/// The running exporters.
#[derive(Debug)]
pub struct FlowExport {
    stats: Vec<Arc<ExporterStats>>,
    threads: Vec<JoinHandle<()>>,
    drain: Arc<Drain>,
}

/// A function that returns every exporter's counters (for the stats hub).
pub type MetricsFn = dyn Fn() -> Vec<ExporterJson> + Send + Sync;

impl FlowExport {
    /// Starts one thread per destination; connects nothing yet (an unreachable collector does
    /// not stop the start). Returns the exporters and the feed the analysis stage offers
    /// records to.
    pub fn start(settings: &ExportSettings, sensor_id: &str) -> Result<(Self, ExportFeed), ExportError> {
        let drain = Arc::new(Drain::default());
        let mut export = Self { stats: Vec::new(), threads: Vec::new(), drain: Arc::clone(&drain) };
        let mut feed = ExportFeed::default();
        for (i, s) in settings.ipfix.iter().enumerate() {
            let stats = Arc::new(ExporterStats::new(
                &s.name,
                s.protocol.name(),
                s.collector.clone(),
                s.queue_records,
            ));
            let (tx, rx) = queue(&stats);
            let name = format!("nbad-ipfix-{i}");
            let (s, st, d) = (s.clone(), Arc::clone(&stats), Arc::clone(&drain));
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || super::ipfix::run(&s, &rx, &st, &d))
                .map_err(|e| ExportError::Thread(name, e))?;
            export.threads.push(handle);
            export.stats.push(stats);
            feed.queues.push(tx);
        }
        if let Some(k) = &settings.kafka {
            let stats = Arc::new(ExporterStats::new(
                "kafka",
                "kafka",
                format!("{}/{}", k.client.brokers.join(","), k.client.topic),
                k.queue_records,
            ));
            let (tx, rx) = queue(&stats);
            let name = "nbad-kafka-flows".to_owned();
            let (k, st, d, id) = (k.clone(), Arc::clone(&stats), Arc::clone(&drain), sensor_id.to_owned());
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || super::kafka::run(&k, &id, &rx, &st, &d))
                .map_err(|e| ExportError::Thread(name, e))?;
            export.threads.push(handle);
            export.stats.push(stats);
            feed.queues.push(tx);
        }
        Ok((export, feed))
    }

    /// Every exporter's counters now.
    #[must_use]
    pub fn metrics(&self) -> Vec<ExporterJson> {
        self.stats.iter().map(|s| s.snapshot()).collect()
    }

    /// A function returning the counters, for [`crate::stats::StatsHub::attach_export`].
    #[must_use]
    pub fn metrics_fn(&self) -> Box<MetricsFn> {
        let stats = self.stats.clone();
        Box::new(move || stats.iter().map(|s| s.snapshot()).collect())
    }

    /// Waits (at most `drain`) for the exporters to send what is queued; the feed must be gone
    /// (the pipeline finished). Returns the final counters.
    pub fn finish(self, drain: Duration) -> Vec<ExporterJson> {
        self.drain.set(Instant::now() + drain);
        for t in self.threads {
            if t.join().is_err() {
                eprintln!("nbad-sensor: a flow export thread panicked");
            }
        }
        self.stats.iter().map(|s| s.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_newest_records_and_counts_them() {
        let stats = Arc::new(ExporterStats::new("t", "ipfix", "x".into(), 5));
        let (tx, rx) = queue(&stats);
        let feed = ExportFeed { queues: vec![tx] };
        let r = crate::output::test_record();
        feed.offer(&[r; 3]);
        feed.offer(&[r; 3]);
        feed.offer(&[r; 2]);
        let s = stats.snapshot();
        assert_eq!((s.offered, s.dropped_queue_full, s.queued), (8, 3, 5));
        assert!(matches!(rx.recv(Duration::ZERO), Recv::Records(c) if c.len() == 3));
        assert_eq!(stats.snapshot().queued, 2);
        drop(feed);
        assert!(matches!(rx.recv(Duration::ZERO), Recv::Records(c) if c.len() == 2));
        assert!(matches!(rx.recv(Duration::ZERO), Recv::Closed));
    }
    /// The real exporter thread over TCP against a collector of the test's that drops the first
    /// connection: the exporter reconnects, and the new session starts with the templates and
    /// sequence number 0 again (RFC 7011 §8.1, §10.4).
    #[test]
    fn an_ipfix_tcp_exporter_resends_templates_and_restarts_sequence_numbers_after_a_reconnect() {
        use std::io::Read as _;

        use crate::output::ipfix::ie::{Protocol, RecordMode};
        use crate::output::ipfix::transport::TransportKind;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let settings = crate::output::config::IpfixSettings {
            name: "t".into(),
            collector: address.to_string(),
            address,
            protocol: Protocol::Ipfix,
            transport: TransportKind::Tcp,
            record_mode: RecordMode::Unidirectional,
            observation_domain_id: 3,
            template_refresh: Duration::from_secs(60),
            max_message_bytes: 1400,
            flush_interval: Duration::from_millis(10),
            queue_records: 100,
            timeout: Duration::from_secs(1),
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(20),
        };
        let stats = Arc::new(ExporterStats::new("t", "ipfix", address.to_string(), 100));
        let (tx, rx) = queue(&stats);
        let feed = ExportFeed { queues: vec![tx] };
        let drain = Arc::new(Drain::default());
        let (st, d) = (Arc::clone(&stats), Arc::clone(&drain));
        let thread = std::thread::spawn(move || crate::output::ipfix::run(&settings, &rx, &st, &d));
        let r = crate::output::test_record();
        // (set id of the first set, sequence number) of each message on one connection.
        let messages = |c: &mut std::net::TcpStream, want: usize| {
            let mut out = Vec::new();
            while out.len() < want {
                let mut hdr = [0u8; 20];
                if c.read_exact(&mut hdr).is_err() {
                    break;
                }
                let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
                let mut rest = vec![0u8; len - 20];
                if c.read_exact(&mut rest).is_err() {
                    break;
                }
                out.push((
                    u16::from_be_bytes([hdr[16], hdr[17]]),
                    u32::from_be_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]),
                ));
            }
            out
        };
        feed.offer(&[r]);
        let (mut first, _) = listener.accept().expect("first connection");
        let one = messages(&mut first, 2);
        drop(first);
        // Sent into the closed connection (or refused on the next write), then again on a new one.
        for _ in 0..3 {
            feed.offer(&[r]);
            std::thread::sleep(Duration::from_millis(50));
        }
        let (mut second, _) = listener.accept().expect("second connection");
        second.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let two = messages(&mut second, 2);
        drop(feed);
        drop(second);
        thread.join().expect("exporter thread");
        assert_eq!(one, [(2, 0), (256, 0)], "templates, then data from sequence number 0");
        assert_eq!(two.first(), Some(&(2, 0)), "a new session starts with the templates at 0: {two:?}");
        assert!(stats.snapshot().connects >= 2, "{:?}", stats.snapshot());
    }

    /// The real exporter thread against a UDP socket of the test's: templates go first, again
    /// every `template_refresh`, and every record is sent with consecutive sequence numbers.
    #[test]
    fn the_ipfix_exporter_sends_templates_first_and_again_every_refresh_interval() {
        use crate::output::ipfix::ie::{Protocol, RecordMode};
        use crate::output::ipfix::transport::TransportKind;
        let collector = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        collector.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let address = collector.local_addr().expect("address");
        let settings = crate::output::config::IpfixSettings {
            name: "t".into(),
            collector: address.to_string(),
            address,
            protocol: Protocol::Ipfix,
            transport: TransportKind::Udp,
            record_mode: RecordMode::Biflow,
            observation_domain_id: 9,
            template_refresh: Duration::from_secs(1),
            max_message_bytes: 1400,
            flush_interval: Duration::from_millis(20),
            queue_records: 100,
            timeout: Duration::from_secs(1),
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(10),
        };
        let stats = Arc::new(ExporterStats::new("t", "ipfix", address.to_string(), 100));
        let (tx, rx) = queue(&stats);
        let feed = ExportFeed { queues: vec![tx] };
        let drain = Arc::new(Drain::default());
        let (st, d) = (Arc::clone(&stats), Arc::clone(&drain));
        let thread = std::thread::spawn(move || crate::output::ipfix::run(&settings, &rx, &st, &d));
        let r = crate::output::test_record();
        let mut sets = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2600) {
            feed.offer(&[r]);
            let mut buf = [0u8; 2048];
            while let Ok(n) = collector.recv(&mut buf) {
                // (set id, sequence number) of each message.
                sets.push((
                    u16::from_be_bytes([buf[16], buf[17]]),
                    u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                ));
                if n == 0 {
                    break;
                }
            }
        }
        drop(feed);
        thread.join().expect("exporter thread");
        let templates: Vec<usize> =
            sets.iter().enumerate().filter(|(_, (id, _))| *id == 2).map(|(i, _)| i).collect();
        assert_eq!(templates.first(), Some(&0), "templates first: {sets:?}");
        assert!(templates.len() >= 3, "templates at 0, ~1 s and ~2 s: {sets:?}");
        let data: Vec<u32> = sets.iter().filter(|(id, _)| *id == 256).map(|(_, seq)| *seq).collect();
        assert_eq!(
            data,
            (0..u32::try_from(data.len()).expect("fits")).collect::<Vec<_>>(),
            "one record per message, consecutive"
        );
        let s = stats.snapshot();
        assert_eq!(
            (s.offered, s.sent, s.template_sends),
            (data.len() as u64, data.len() as u64, templates.len() as u64)
        );
    }
}
