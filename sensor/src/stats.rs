//! Pipeline statistics: each stage keeps plain counters of its own and
//! publishes a copy every batch (never per packet) into the [`StatsHub`];
//! readers take a [`StatsSnapshot`] for the periodic log line, the end-of-run
//! summary and the `--stats` JSON file.
//!
//! A multi-threaded live capture (`capture.threads`) has one capture slot per
//! capture thread (its reads, its handle's kernel drops, its decoder, dispatcher
//! and capture-loss counters); a snapshot sums them and lists each thread's
//! reads and drops under `capture.threads`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::capture_loss::CaptureLossCounters;
use crate::decode::{DecodeCounters, Malformed};
use crate::flow::{EndReason, FlowCounters};

/// Counters of the capture stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Frames read from the source.
    pub packets_read: u64,
    /// Bytes on the wire of those frames.
    pub bytes_read: u64,
    /// Kernel drops reported by libpcap.
    pub kernel_dropped: u64,
    /// Interface drops reported by libpcap.
    pub interface_dropped: u64,
    /// Capture files that ended inside a record.
    pub truncated_files: u64,
}

/// Counters of the dispatcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchCounters {
    /// Batches sent to workers.
    pub batches: u64,
    /// Sends that found a worker's channel full and had to wait.
    pub channel_full_waits: u64,
}

/// What one capture thread publishes.
#[derive(Debug, Clone, Copy, Default)]
struct CaptureSlot {
    capture: CaptureCounters,
    decode: DecodeCounters,
    dispatch: DispatchCounters,
}

/// Where stages publish their counters.
#[derive(Debug)]
pub struct StatsHub {
    /// One slot per capture thread.
    captures: Vec<Mutex<CaptureSlot>>,
    /// One slot per capture thread.
    capture_loss: Vec<Mutex<CaptureLossCounters>>,
    workers: Vec<Mutex<FlowCounters>>,
    worker_active: Vec<AtomicU64>,
    active_peak: AtomicU64,
    records_written: AtomicU64,
    source_extra: Mutex<Vec<(&'static str, u64)>>,
    detection: Mutex<Option<DetectionJson>>,
    delivery: Mutex<Option<serde_json::Value>>,
    alert_latency: Mutex<std::collections::BTreeMap<&'static str, crate::metrics::LatencyQuantiles>>,
    export: Mutex<Option<ExportFn>>,
    started: std::time::Instant,
}

/// What the flow exporters attach: a function returning each exporter's counters, read at
/// every snapshot (the exporters keep their own atomics; nothing is published on the hot path).
pub type ExportSource = dyn Fn() -> Vec<ExporterJson> + Send + Sync;

struct ExportFn(Box<ExportSource>);

impl std::fmt::Debug for ExportFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExportFn")
    }
}

/// Publishes `value` into `slot`. Hot-path callers pass `wait = false`: if a
/// reader holds the lock, this publication is skipped and the next one wins.
fn publish<T: Copy>(slot: &Mutex<T>, value: &T, wait: bool) {
    let guard = if wait { slot.lock().ok() } else { slot.try_lock().ok() };
    if let Some(mut guard) = guard {
        *guard = *value;
    }
}

fn read<T: Copy + Default>(slot: &Mutex<T>) -> T {
    slot.lock().map(|g| *g).unwrap_or_default()
}

impl StatsHub {
    /// A hub for `workers` flow-table shards and one capture thread.
    pub fn new(workers: usize) -> Self {
        Self::with_capture_threads(workers, 1)
    }

    /// A hub for `workers` flow-table shards and `capture_threads` capture threads
    /// (`capture.threads`; at least one).
    pub fn with_capture_threads(workers: usize, capture_threads: usize) -> Self {
        let threads = capture_threads.max(1);
        Self {
            captures: (0..threads).map(|_| Mutex::default()).collect(),
            capture_loss: (0..threads).map(|_| Mutex::default()).collect(),
            workers: (0..workers).map(|_| Mutex::default()).collect(),
            worker_active: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            active_peak: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            source_extra: Mutex::default(),
            detection: Mutex::default(),
            delivery: Mutex::default(),
            alert_latency: Mutex::default(),
            export: Mutex::default(),
            started: std::time::Instant::now(),
        }
    }

    /// Capture threads this hub has slots for.
    pub fn capture_threads(&self) -> usize {
        self.captures.len()
    }

    /// Publishes capture thread `thread`'s counters (its reads and its handle's drops, its
    /// decoder's and its dispatcher's).
    pub fn publish_capture(
        &self,
        thread: usize,
        c: &CaptureCounters,
        d: &DecodeCounters,
        x: &DispatchCounters,
        wait: bool,
    ) {
        if let Some(slot) = self.captures.get(thread) {
            publish(slot, &CaptureSlot { capture: *c, decode: *d, dispatch: *x }, wait);
        }
    }

    /// Publishes capture thread `thread`'s capture-loss tracker counters.
    pub fn publish_capture_loss(&self, thread: usize, c: &CaptureLossCounters, wait: bool) {
        if let Some(slot) = self.capture_loss.get(thread) {
            publish(slot, c, wait);
        }
    }

    /// Publishes one worker's flow counters and updates the peak of flows
    /// tracked across all workers.
    pub fn publish_worker(&self, worker: usize, f: &FlowCounters, wait: bool) {
        if let Some(slot) = self.workers.get(worker) {
            publish(slot, f, wait);
            self.worker_active[worker].store(f.active, Ordering::Relaxed);
            let total: u64 = self.worker_active.iter().map(|a| a.load(Ordering::Relaxed)).sum();
            self.active_peak.fetch_max(total, Ordering::Relaxed);
        }
    }

    /// Publishes the source's own counters (empty for sources without any).
    pub fn publish_source_extra(&self, extra: Vec<(&'static str, u64)>) {
        if !extra.is_empty()
            && let Ok(mut slot) = self.source_extra.lock()
        {
            *slot = extra;
        }
    }

    /// Publishes the detection stage's counters.
    pub fn publish_detection(&self, d: DetectionJson) {
        if let Ok(mut slot) = self.detection.lock() {
            *slot = Some(d);
        }
    }

    /// Publishes the alert delivery stage's metrics (spool and sinks).
    pub fn publish_delivery(&self, metrics: serde_json::Value) {
        if let Ok(mut slot) = self.delivery.lock() {
            *slot = Some(metrics);
        }
    }

    /// Publishes the packet-to-alert latency of each detector that alerted (live capture).
    pub fn publish_alert_latency(
        &self,
        by_detector: &[(crate::alert::Detector, crate::metrics::LatencyQuantiles)],
    ) {
        if let Ok(mut slot) = self.alert_latency.lock() {
            *slot = by_detector.iter().map(|(d, q)| (d.name(), *q)).collect();
        }
    }

    /// Attaches the flow exporters' counters (`output.export` in snapshots).
    pub fn attach_export(&self, source: Box<ExportSource>) {
        if let Ok(mut slot) = self.export.lock() {
            *slot = Some(ExportFn(source));
        }
    }

    /// Counts flow records written by the output stage.
    pub fn add_records_written(&self, n: u64) {
        self.records_written.fetch_add(n, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let slots: Vec<CaptureSlot> = self.captures.iter().map(read).collect();
        let (capture, decode, dispatch) = sum_slots(&slots);
        let loss = self.capture_loss.iter().map(read).fold(CaptureLossCounters::default(), |mut sum, l| {
            sum.ack_events += l.ack_events;
            sum.unseen_ack_events += l.unseen_ack_events;
            sum.tracked_flows += l.tracked_flows;
            sum.table_resets += l.table_resets;
            sum
        });
        let mut flows = FlowCounters::default();
        for w in &self.workers {
            let c = read(w);
            flows.created += c.created;
            flows.active += c.active;
            flows.records += c.records;
            flows.emergency_entered += c.emergency_entered;
            flows.timer_checks += c.timer_checks;
            for (sum, n) in flows.ended.iter_mut().zip(c.ended) {
                *sum += n;
            }
        }
        let peak = self.active_peak.load(Ordering::Relaxed).max(flows.active);
        StatsSnapshot {
            capture: CaptureJson {
                packets_read: capture.packets_read,
                bytes_read: capture.bytes_read,
                kernel_dropped: capture.kernel_dropped,
                interface_dropped: capture.interface_dropped,
                truncated_files: capture.truncated_files,
                source: self.source_extra.lock().map(|v| v.iter().copied().collect()).unwrap_or_default(),
                threads: if slots.len() > 1 {
                    slots
                        .iter()
                        .map(|s| CaptureThreadJson {
                            packets_read: s.capture.packets_read,
                            bytes_read: s.capture.bytes_read,
                            kernel_dropped: s.capture.kernel_dropped,
                            interface_dropped: s.capture.interface_dropped,
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            },
            decode: DecodeJson {
                parsed: decode.parsed,
                non_ip: decode.non_ip,
                malformed_total: decode.malformed.iter().sum(),
                malformed: Malformed::ALL
                    .iter()
                    .map(|r| (r.name(), decode.malformed[r.index()]))
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                decapsulated: decode.decapsulated,
                fragments: decode.fragments,
                orphan_fragments: decode.orphan_fragments,
                fragments_overwritten: decode.fragments_overwritten,
            },
            dispatch: DispatchJson {
                batches: dispatch.batches,
                channel_full_waits: dispatch.channel_full_waits,
            },
            flows: FlowsJson {
                created: flows.created,
                active: flows.active,
                active_peak: peak,
                records: flows.records,
                interim_records: flows.ended[EndReason::ActiveTimeout as usize],
                evicted: flows.ended[EndReason::Evicted as usize],
                emergency_entered: flows.emergency_entered,
                timer_checks: flows.timer_checks,
                ended: EndReason::ALL.iter().map(|r| (r.name(), flows.ended[*r as usize])).collect(),
            },
            capture_loss: CaptureLossJson {
                ack_events: loss.ack_events,
                unseen_ack_events: loss.unseen_ack_events,
                tracked_flows: loss.tracked_flows,
                table_resets: loss.table_resets,
                kernel_drop_ratio: ratio(
                    capture.kernel_dropped,
                    capture.packets_read + capture.kernel_dropped,
                ),
                unseen_ack_ratio: ratio(loss.unseen_ack_events, loss.ack_events),
            },
            output: OutputJson {
                flow_records_written: self.records_written.load(Ordering::Relaxed),
                export: self.export.lock().ok().and_then(|s| s.as_ref().map(|f| (f.0)())).unwrap_or_default(),
            },
            detection: self.detection.lock().map(|d| d.clone()).unwrap_or_default(),
            delivery: self.delivery.lock().map(|d| d.clone()).unwrap_or_default(),
            alert_latency: self.alert_latency.lock().map(|l| l.clone()).unwrap_or_default(),
            workers: self.workers.len(),
            elapsed_s: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// The capture, decode and dispatch counters of every capture thread, summed (the interface's
/// drops excepted: the largest of the threads' readings).
fn sum_slots(slots: &[CaptureSlot]) -> (CaptureCounters, DecodeCounters, DispatchCounters) {
    let mut c = CaptureCounters::default();
    let mut d = DecodeCounters::default();
    let mut x = DispatchCounters::default();
    for s in slots {
        c.packets_read += s.capture.packets_read;
        c.bytes_read += s.capture.bytes_read;
        c.kernel_dropped += s.capture.kernel_dropped;
        // The interface's drops are the interface's, not a socket's: every handle reports the
        // same counter (since its own opening), so summing would count them once per thread.
        c.interface_dropped = c.interface_dropped.max(s.capture.interface_dropped);
        c.truncated_files += s.capture.truncated_files;
        d.add(&s.decode);
        x.batches += s.dispatch.batches;
        x.channel_full_waits += s.dispatch.channel_full_waits;
    }
    (c, d, x)
}

/// Everything the sensor counts, as written by `--stats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsSnapshot {
    /// Capture stage.
    pub capture: CaptureJson,
    /// Decoder.
    pub decode: DecodeJson,
    /// Dispatcher.
    pub dispatch: DispatchJson,
    /// Flow tables, summed over workers.
    pub flows: FlowsJson,
    /// Capture-loss self-measurement (since the start).
    pub capture_loss: CaptureLossJson,
    /// Output stage.
    pub output: OutputJson,
    /// Detection counters (absent when detection is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionJson>,
    /// Alert delivery: the spool and every sink (absent without sinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<serde_json::Value>,
    /// Live capture: packet-to-alert latency per detector that alerted (the newest packet of an
    /// alert's evidence to its emission), milliseconds.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub alert_latency: std::collections::BTreeMap<&'static str, crate::metrics::LatencyQuantiles>,
    /// Worker threads.
    pub workers: usize,
    /// Seconds since the pipeline started.
    pub elapsed_s: f64,
}

/// Capture counters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CaptureJson {
    /// Frames read.
    pub packets_read: u64,
    /// Wire bytes read.
    pub bytes_read: u64,
    /// Kernel drops.
    pub kernel_dropped: u64,
    /// Interface drops.
    pub interface_dropped: u64,
    /// Files cut inside a record.
    pub truncated_files: u64,
    /// The source's own counters (the XDP program's outcomes), when it has any.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source: std::collections::BTreeMap<&'static str, u64>,
    /// Each capture thread's share of the figures above, when `capture.threads` is more than
    /// one (in thread order; the figures above are their sums).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<CaptureThreadJson>,
}

/// One capture thread's reads and its handle's drops.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CaptureThreadJson {
    /// Frames read by this thread.
    pub packets_read: u64,
    /// Wire bytes of those frames.
    pub bytes_read: u64,
    /// Kernel drops on this thread's socket.
    pub kernel_dropped: u64,
    /// Interface drops as this thread's handle reports them.
    pub interface_dropped: u64,
}

/// Decoder counters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DecodeJson {
    /// Frames accounted to flows.
    pub parsed: u64,
    /// Frames without IP.
    pub non_ip: u64,
    /// Malformed frames in all.
    pub malformed_total: u64,
    /// Malformed frames by reason (reasons with a count only).
    pub malformed: std::collections::BTreeMap<&'static str, u64>,
    /// Packets taken out of tunnels.
    pub decapsulated: u64,
    /// IP fragments.
    pub fragments: u64,
    /// Later fragments without their first fragment.
    pub orphan_fragments: u64,
    /// First fragments that took the place of another datagram's in the fragment table.
    pub fragments_overwritten: u64,
}

/// Dispatcher counters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DispatchJson {
    /// Batches sent.
    pub batches: u64,
    /// Waits on a full worker channel.
    pub channel_full_waits: u64,
}

/// Flow-table counters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlowsJson {
    /// Flows created.
    pub created: u64,
    /// Flows tracked now.
    pub active: u64,
    /// Most flows tracked at once.
    pub active_peak: u64,
    /// Records emitted.
    pub records: u64,
    /// Interim records (active timeout).
    pub interim_records: u64,
    /// Flows evicted from a full table.
    pub evicted: u64,
    /// Times a table entered emergency mode.
    pub emergency_entered: u64,
    /// Flows looked at by the expiry timer wheel.
    pub timer_checks: u64,
    /// Records by end reason.
    pub ended: std::collections::BTreeMap<&'static str, u64>,
}

/// Detection counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DetectionJson {
    /// Observations taken in the capture thread.
    pub observed: ObservedJson,
    /// The engine.
    pub engine: crate::detect::EngineCounters,
    /// The alert stage.
    pub alerts: crate::detect::alerting::AlertCounters,
    /// Alerts raised per detector.
    pub alerts_by_detector: std::collections::BTreeMap<&'static str, u64>,
    /// Alerts written to `--alerts`.
    pub alerts_written: u64,
    /// What analysts' verdicts say: precision, time to detect, suppressions.
    pub verdicts: crate::detect::verdict::VerdictStats,
    /// `[privacy]` pseudonymisation (absent while it is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy: Option<crate::privacy::PseudonymCounters>,
}

/// What the capture thread observed for the detectors.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ObservedJson {
    /// Flow directions identified from their first payload.
    pub identified: u64,
    /// DNS messages.
    pub dns: u64,
    /// ICMP echo packets.
    pub icmp_echo: u64,
    /// Malformed frames attributed to a sender.
    pub malformed: u64,
    /// Evasive TCP packets.
    pub evasive: u64,
    /// ICMP and ICMPv6 destination unreachables.
    pub unreachable: u64,
    /// Broadcast ARP requests.
    pub arp_requests: u64,
    /// DHCP client messages.
    pub dhcp_requests: u64,
    /// TLS server flights not joined because too many were open.
    pub flights_dropped: u64,
}

/// Capture-loss counters and ratios since the start; the windowed ratio that alerts is
/// `LossMonitor`'s (see `crate::capture_loss`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaptureLossJson {
    /// TCP ACKs of new data checked.
    pub ack_events: u64,
    /// Of those, ACKs of data the sensor never saw.
    pub unseen_ack_events: u64,
    /// Flows in the sequence table now.
    pub tracked_flows: u64,
    /// Times the sequence table was full and emptied.
    pub table_resets: u64,
    /// Kernel drops / (packets read + kernel drops); 0 before any packet.
    pub kernel_drop_ratio: f64,
    /// Unseen-ACK events / ACK events; 0 before any ACK.
    pub unseen_ack_ratio: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Output counters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutputJson {
    /// Flow records written.
    pub flow_records_written: u64,
    /// One entry per flow exporter (`[[output.ipfix]]`, `[output.kafka]`); absent without any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub export: Vec<ExporterJson>,
}

/// One flow exporter's counters. Flow records: `offered = sent + dropped_queue_full +
/// dropped_send_error + dropped_shutdown + queued`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExporterJson {
    /// The collector's `name` (`kafka` for `[output.kafka]`).
    pub name: String,
    /// `ipfix`, `netflow9` or `kafka`.
    pub kind: String,
    /// The collector's address, or the brokers and topic.
    pub destination: String,
    /// Flow records handed to the exporter.
    pub offered: u64,
    /// Flow records sent (UDP: handed to the socket; TCP: written; Kafka: acknowledged).
    pub sent: u64,
    /// Flow records dropped because the exporter's queue was full.
    pub dropped_queue_full: u64,
    /// Flow records dropped on a permanent send error.
    pub dropped_send_error: u64,
    /// Flow records still unsent when the drain at shutdown ended.
    pub dropped_shutdown: u64,
    /// IPFIX/v9 data records (two per flow record in unidirectional mode) or Kafka messages.
    pub data_records: u64,
    /// IPFIX/v9 messages, or Kafka produce batches, sent.
    pub messages: u64,
    /// Bytes sent (messages and templates; Kafka: keys and values before compression).
    pub bytes: u64,
    /// Template messages sent.
    pub template_sends: u64,
    /// Failed send attempts (each retried).
    pub send_errors: u64,
    /// Connections (TCP, Kafka) or sockets (UDP) opened.
    pub connects: u64,
    /// Flow records in the queue now.
    pub queued: u64,
    /// Flow records in the on-disk spool not yet sent (`[output.kafka] spool_dir`), records of
    /// an earlier run included.
    pub spooled: u64,
    /// The queue's capacity in flow records.
    pub queue_capacity: u64,
    /// False from a failed send until the next successful one.
    pub healthy: bool,
    /// The last failure's reason.
    pub last_error: Option<String>,
}

impl StatsSnapshot {
    /// One human-readable paragraph, for the terminal and the journal.
    pub fn summary(&self) -> String {
        let mpps = self.capture.packets_read as f64 / self.elapsed_s.max(1e-9) / 1e6;
        format!(
            "packets read {} ({} bytes, {:.2} Mpps), parsed {}, non-IP {}, malformed {}{}, \
             decapsulated {}, fragments {} ({} orphan); flows created {}, active {}, peak {}, \
             records {} ({} interim), evicted {}, emergency {}; kernel drops {}, interface drops {}; \
             batches {}, channel waits {}; {} workers, {:.3} s",
            self.capture.packets_read,
            self.capture.bytes_read,
            mpps,
            self.decode.parsed,
            self.decode.non_ip,
            self.decode.malformed_total,
            if self.decode.malformed.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.decode.malformed)
            },
            self.decode.decapsulated,
            self.decode.fragments,
            self.decode.orphan_fragments,
            self.flows.created,
            self.flows.active,
            self.flows.active_peak,
            self.flows.records,
            self.flows.interim_records,
            self.flows.evicted,
            self.flows.emergency_entered,
            self.capture.kernel_dropped,
            self.capture.interface_dropped,
            self.dispatch.batches,
            self.dispatch.channel_full_waits,
            self.workers,
            self.elapsed_s,
        )
    }
}
