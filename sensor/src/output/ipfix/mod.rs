//! IPFIX (RFC 7011) and NetFlow v9 (RFC 3954) export to one collector: the exporter thread
//! `nbad-ipfix-N`, in the sink shape the alert sinks have: settings → batch (a message filled
//! up to `max_message_bytes`, or closed after `flush_interval`) → encode → send, with a retry
//! policy that tells retriable from permanent errors.
//!
//! - `ie.rs`: the information elements, their numbers and PENs, and the templates.
//! - `encode.rs`: records → messages, and the session's sequence numbers.
//! - `transport.rs`: UDP and TCP, errors sorted.
//!
//! Templates are sent before the first data message of every transport session (the UDP
//! socket's first send, every TCP connection), and over UDP again every `template_refresh_s`
//! (RFC 7011 §8.4: a UDP collector that restarted learns them again). Over TCP they are not
//! repeated: a collector must not receive a template twice on one session (§8.1).
//!
//! The exporter's clock (export time, v9 sysUptime, the flush and refresh timers) is the wall
//! clock: it is about when the collector hears from us, not about the flows, whose own times
//! are their packets' (flowStart/EndMilliseconds).

pub mod encode;
pub mod ie;
pub mod transport;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use self::encode::{Encoder, ExportClock, Message, Sequence};
use self::transport::{Transport, TransportError, TransportKind};
use super::config::IpfixSettings;
use super::export::{Backoff, Drain, ExporterStats, FailureLog, QueueRx, Recv};

/// One collector's exporter state.
struct Exporter<'a> {
    s: &'a IpfixSettings,
    stats: &'a ExporterStats,
    drain: &'a Drain,
    encoder: Encoder,
    transport: Transport,
    seq: Sequence,
    started: Instant,
    last_templates: Option<Instant>,
    backoff: Backoff,
    log: FailureLog,
}

/// Runs the exporter until the feed is closed and everything queued is sent (or the drain
/// time runs out).
pub(crate) fn run(s: &IpfixSettings, rx: &QueueRx, stats: &ExporterStats, drain: &Drain) {
    let mut e = Exporter {
        s,
        stats,
        drain,
        encoder: Encoder::new(s.protocol, s.record_mode, s.observation_domain_id, s.max_message_bytes),
        transport: Transport::new(s.transport, s.address, s.timeout),
        seq: Sequence::new(s.protocol),
        started: Instant::now(),
        last_templates: None,
        backoff: Backoff::new(s.retry_initial, s.retry_max),
        log: FailureLog::default(),
    };
    let mut out: Vec<Message> = Vec::new();
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(Duration::from_secs(1), |t| s.flush_interval.saturating_sub(t.elapsed()));
        let closed = match rx.recv(wait) {
            Recv::Records(chunk) => {
                let clock = e.clock();
                for r in &chunk {
                    e.encoder.push(r, clock, &mut out);
                }
                if e.encoder.pending() > 0 {
                    oldest.get_or_insert_with(Instant::now);
                }
                false
            }
            Recv::Idle => false,
            Recv::Closed => true,
        };
        if closed || oldest.is_some_and(|t| t.elapsed() >= s.flush_interval) {
            out.extend(e.encoder.finish(e.clock()));
            oldest = None;
        }
        for m in out.drain(..) {
            e.deliver(m);
        }
        if closed {
            break;
        }
        e.refresh_templates();
    }
}

impl Exporter<'_> {
    fn clock(&self) -> ExportClock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        ExportClock {
            unix_s: u32::try_from(unix).unwrap_or(u32::MAX),
            uptime_ms: u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// Sends `m` until it is sent, refused for good, or the drain time is over.
    fn deliver(&mut self, mut m: Message) {
        loop {
            if self.drain.expired() {
                self.stats.dropped_shutdown.fetch_add(m.flow_records, Relaxed);
                return;
            }
            match self.send(&mut m) {
                Ok(()) => {
                    self.stats.sent.fetch_add(m.flow_records, Relaxed);
                    self.stats.data_records.fetch_add(m.data_records, Relaxed);
                    self.backoff.reset();
                    self.log.success(self.stats);
                    return;
                }
                Err(TransportError::Permanent(reason)) => {
                    self.stats.dropped_send_error.fetch_add(m.flow_records, Relaxed);
                    self.log
                        .failure(self.stats, &format!("{reason} ({} flow records dropped)", m.flow_records));
                    return;
                }
                Err(TransportError::Retriable(reason)) => {
                    self.stats.send_errors.fetch_add(1, Relaxed);
                    self.log.failure(self.stats, &reason);
                    self.drain.sleep(self.backoff.next());
                }
            }
        }
    }

    /// One attempt: opens a session (templates first) when there is none, then sends `m`
    /// with the session's next sequence number.
    fn send(&mut self, m: &mut Message) -> Result<(), TransportError> {
        if self.transport.needs_session() {
            self.transport.open()?;
            self.stats.connects.fetch_add(1, Relaxed);
            self.seq = Sequence::new(self.s.protocol);
            self.send_templates()?;
        }
        self.seq.stamp(&mut m.bytes);
        self.transport.send(&m.bytes)?;
        self.seq.sent(m.data_records);
        self.stats.messages.fetch_add(1, Relaxed);
        self.stats.bytes.fetch_add(m.bytes.len() as u64, Relaxed);
        Ok(())
    }

    fn send_templates(&mut self) -> Result<(), TransportError> {
        let mut t = self.encoder.template_message(self.clock());
        self.seq.stamp(&mut t);
        self.transport.send(&t)?;
        self.seq.sent(0);
        self.stats.template_sends.fetch_add(1, Relaxed);
        self.stats.bytes.fetch_add(t.len() as u64, Relaxed);
        self.last_templates = Some(Instant::now());
        Ok(())
    }

    /// UDP: the templates again once `template_refresh` has passed since the last time.
    fn refresh_templates(&mut self) {
        if self.s.transport != TransportKind::Udp || self.transport.needs_session() {
            return;
        }
        if self.last_templates.is_some_and(|t| t.elapsed() >= self.s.template_refresh)
            && let Err(e) = self.send_templates()
        {
            self.stats.send_errors.fetch_add(1, Relaxed);
            self.log.failure(self.stats, &e.to_string());
            // Tried again at the next turn of the loop.
            self.last_templates = Some(Instant::now() - self.s.template_refresh + Duration::from_secs(1));
        }
    }
}
