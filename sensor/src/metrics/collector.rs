//! What a scrape reports: a fresh [`StatsSnapshot`](crate::stats::StatsSnapshot) of every stage,
//! the capture-loss ratio, the hooks, and the configuration version. Names follow Prometheus
//! conventions: `nbad_` prefix, base units, counters end in `_total` (added by the encoder).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::hooks::Hooks;
use crate::reload::ConfigHandle;
use crate::stats::StatsHub;

/// A ratio shared as the bits of an `f64` (one atomic, no lock).
#[derive(Debug, Default)]
pub struct SharedRatio(AtomicU64);

impl SharedRatio {
    /// Stores `v`.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The last value stored (0 at first).
    #[must_use]
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Everything the endpoint reads.
#[derive(Debug)]
pub struct Sources {
    /// Per-stage counters.
    pub hub: Arc<StatsHub>,
    /// Flow-table capacity (`flows.max_flows`), for the fill ratio.
    pub flow_capacity: u64,
    /// The capture-loss ratio over the alert window, kept by the loss watch.
    pub capture_loss: Arc<SharedRatio>,
    /// Alerts, sinks and latency.
    pub hooks: Arc<Hooks>,
    /// The running configuration's version.
    pub config: Option<Arc<ConfigHandle>>,
}

type Enc<'a> = DescriptorEncoder<'a>;

fn counter(enc: &mut Enc<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut Enc<'_>,
    name: &str,
    help: &str,
    v: V,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)
}

fn labelled<'a>(
    enc: &mut Enc<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    items: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (value, n) in items {
        let labels = [(label, value)];
        let mut family = metric.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => family.encode_gauge(&n)?,
            _ => family.encode_counter::<NoLabelSet, _, u64>(&n, None)?,
        }
    }
    Ok(())
}

/// What the detectors' bounded tables refused or forgot for room, one series per counter of
/// [`crate::detect::EngineCounters`] that names a table (`scan.sources_dropped`,
/// `capped.host_peers`, ...): the caps of docs/RELIABILITY.md.
fn bounded_state(e: &mut Enc<'_>, engine: &crate::detect::EngineCounters) -> fmt::Result {
    fn flatten(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, u64)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(v, &key, out);
                }
            }
            serde_json::Value::Number(n) => out.extend(n.as_u64().map(|n| (prefix.to_owned(), n))),
            _ => {}
        }
    }
    let mut items = Vec::new();
    if let Ok(v) = serde_json::to_value(engine) {
        flatten(&v, "", &mut items);
    }
    let capped = |k: &str| k.contains("dropped") || k.contains("evicted") || k.starts_with("capped.");
    labelled(
        e,
        "nbad_detection_capped",
        "Entries a detector's bounded table refused or forgot because it was full, by counter",
        MetricType::Counter,
        "counter",
        items.iter().filter(|(k, _)| capped(k)).map(|(k, n)| (k.as_str(), *n)),
    )
}

/// What analysts' verdicts say: verdicts and precision per detector and rule, time to detect
/// over the true-positive incidents, and the suppressions (see `crate::detect::verdict`).
fn verdicts(e: &mut Enc<'_>, v: &crate::detect::verdict::VerdictStats) -> fmt::Result {
    let f = &v.figures;
    let mut m = e.encode_descriptor(
        "nbad_verdicts",
        "Analysts' verdicts, by detector, rule and verdict",
        None,
        MetricType::Counter,
    )?;
    for r in &f.rules {
        for (kind, n) in [
            ("true_positive", r.true_positive),
            ("false_positive", r.false_positive),
            ("benign_expected", r.benign_expected),
        ] {
            let labels = [("detector", r.detector.as_str()), ("rule", r.rule.as_str()), ("verdict", kind)];
            m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
    }
    let mut m = e.encode_descriptor(
        "nbad_alert_precision_ratio",
        "TP / (TP + FP) of the judged alerts, by detector and rule",
        None,
        MetricType::Gauge,
    )?;
    for r in f.rules.iter().chain(&f.detectors) {
        if let Some(p) = r.precision {
            let labels = [("detector", r.detector.as_str()), ("rule", r.rule.as_str())];
            m.encode_family(&labels)?.encode_gauge(&p)?;
        }
    }
    let mut m = e.encode_descriptor(
        "nbad_time_to_detect_seconds",
        "Time from the first evidence to the first alert of true-positive incidents",
        None,
        MetricType::Gauge,
    )?;
    for (q, x) in [("0.5", f.ttd_median_s), ("0.9", f.ttd_p90_s), ("1", f.ttd_max_s)] {
        if let Some(x) = x {
            m.encode_family(&[("quantile", q)])?.encode_gauge(&x)?;
        }
    }
    gauge(e, "nbad_true_positive_incidents", "True-positive incidents timed", f.detections.len() as u64)?;
    gauge(e, "nbad_suppressions_active", "Suppressions from verdicts in force", v.suppressions_active)?;
    counter(
        e,
        "nbad_verdict_suppressed_findings",
        "Findings a verdict's suppression silenced",
        v.counters.suppressed,
    )?;
    counter(
        e,
        "nbad_verdict_below_raised_threshold_findings",
        "Findings under a threshold that false-positive verdicts raised",
        v.counters.below_raised_threshold,
    )
}

/// Per flow exporter (label `exporter`, the collector's name): the counters of
/// [`crate::stats::ExporterJson`].
fn export(e: &mut Enc<'_>, x: &[crate::stats::ExporterJson]) -> fmt::Result {
    if x.is_empty() {
        return Ok(());
    }
    type Get = fn(&crate::stats::ExporterJson) -> u64;
    let counters: [(&str, &str, Get); 11] = [
        ("nbad_export_records_offered", "Flow records handed to the exporter", |j| j.offered),
        ("nbad_export_records_sent", "Flow records sent to the collector", |j| j.sent),
        ("nbad_export_dropped_queue_full", "Flow records dropped: the exporter's queue was full", |j| {
            j.dropped_queue_full
        }),
        ("nbad_export_dropped_send_error", "Flow records dropped on a permanent send error", |j| {
            j.dropped_send_error
        }),
        ("nbad_export_dropped_shutdown", "Flow records unsent when the shutdown drain ended", |j| {
            j.dropped_shutdown
        }),
        ("nbad_export_data_records", "IPFIX/v9 data records or Kafka messages sent", |j| j.data_records),
        ("nbad_export_messages", "IPFIX/v9 messages or Kafka batches sent", |j| j.messages),
        ("nbad_export_bytes", "Bytes sent by the exporter", |j| j.bytes),
        ("nbad_export_template_sends", "IPFIX/v9 template messages sent", |j| j.template_sends),
        ("nbad_export_send_errors", "Failed export attempts (retried)", |j| j.send_errors),
        ("nbad_export_connects", "Connections or sockets the exporter opened", |j| j.connects),
    ];
    for (name, help, get) in counters {
        labelled(
            e,
            name,
            help,
            MetricType::Counter,
            "exporter",
            x.iter().map(|j| (j.name.as_str(), get(j))),
        )?;
    }
    labelled(
        e,
        "nbad_export_queued",
        "Flow records in the exporter's queue",
        MetricType::Gauge,
        "exporter",
        x.iter().map(|j| (j.name.as_str(), j.queued)),
    )?;
    labelled(
        e,
        "nbad_export_spooled",
        "Flow records in the exporter's on-disk spool, not yet sent",
        MetricType::Gauge,
        "exporter",
        x.iter().map(|j| (j.name.as_str(), j.spooled)),
    )?;
    labelled(
        e,
        "nbad_export_up",
        "Whether the exporter's last send succeeded (1) or not (0)",
        MetricType::Gauge,
        "exporter",
        x.iter().map(|j| (j.name.as_str(), u64::from(j.healthy))),
    )
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = self.hub.snapshot();
        let e = &mut enc;
        let c = &s.capture;
        counter(e, "nbad_capture_packets", "Packets read from the capture", c.packets_read)?;
        counter(e, "nbad_capture_bytes", "Wire bytes of the packets read", c.bytes_read)?;
        counter(
            e,
            "nbad_capture_kernel_dropped",
            "Packets the kernel dropped (capture buffer full)",
            c.kernel_dropped,
        )?;
        counter(e, "nbad_capture_interface_dropped", "Packets the interface dropped", c.interface_dropped)?;
        labelled(
            e,
            "nbad_capture_source",
            "The capture source's own counters (the XDP program's outcomes)",
            MetricType::Counter,
            "counter",
            c.source.iter().map(|(k, v)| (*k, *v)),
        )?;
        if !c.threads.is_empty() {
            // capture.threads > 1: each capture thread's reads and its socket's kernel drops.
            let names: Vec<String> = (0..c.threads.len()).map(|i| i.to_string()).collect();
            let per = |f: fn(&crate::stats::CaptureThreadJson) -> u64| {
                names.iter().map(String::as_str).zip(c.threads.iter().map(f)).collect::<Vec<_>>()
            };
            labelled(
                e,
                "nbad_capture_thread_packets",
                "Packets read by each capture thread (capture.threads)",
                MetricType::Counter,
                "thread",
                per(|t| t.packets_read),
            )?;
            labelled(
                e,
                "nbad_capture_thread_kernel_dropped",
                "Packets the kernel dropped on each capture thread's socket",
                MetricType::Counter,
                "thread",
                per(|t| t.kernel_dropped),
            )?;
        }
        let l = &s.capture_loss;
        counter(
            e,
            "nbad_capture_loss_ack_events",
            "TCP ACKs of new data checked for capture loss",
            l.ack_events,
        )?;
        counter(
            e,
            "nbad_capture_loss_unseen_ack_events",
            "TCP ACKs of data the sensor never saw",
            l.unseen_ack_events,
        )?;
        gauge(
            e,
            "nbad_capture_loss_tracked_flows",
            "Flows in the capture-loss sequence table",
            l.tracked_flows,
        )?;
        counter(
            e,
            "nbad_capture_loss_table_resets",
            "Times the capture-loss table was full and emptied",
            l.table_resets,
        )?;
        gauge(
            e,
            "nbad_capture_loss_ratio",
            "Estimated fraction of traffic not captured over the alert window (0..1)",
            self.capture_loss.get(),
        )?;

        let d = &s.decode;
        counter(e, "nbad_decode_parsed", "Packets decoded and accounted to flows", d.parsed)?;
        counter(e, "nbad_decode_non_ip", "Frames without IP", d.non_ip)?;
        labelled(
            e,
            "nbad_decode_malformed",
            "Malformed packets by reason",
            MetricType::Counter,
            "reason",
            d.malformed.iter().map(|(k, v)| (*k, *v)),
        )?;
        counter(e, "nbad_decode_decapsulated", "Packets taken out of GRE or VXLAN tunnels", d.decapsulated)?;
        counter(e, "nbad_decode_fragments", "IP fragments", d.fragments)?;
        counter(
            e,
            "nbad_decode_orphan_fragments",
            "Later fragments without their first",
            d.orphan_fragments,
        )?;
        counter(
            e,
            "nbad_decode_fragments_overwritten",
            "First fragments that took the place of another datagram's in the fragment table",
            d.fragments_overwritten,
        )?;

        counter(e, "nbad_dispatch_batches", "Batches sent to flow workers", s.dispatch.batches)?;
        counter(
            e,
            "nbad_dispatch_channel_full_waits",
            "Sends that waited on a full worker queue",
            s.dispatch.channel_full_waits,
        )?;

        let f = &s.flows;
        counter(e, "nbad_flows_created", "Flows created", f.created)?;
        gauge(e, "nbad_flows_active", "Flows tracked now", f.active)?;
        gauge(e, "nbad_flows_active_peak", "Most flows tracked at once", f.active_peak)?;
        gauge(e, "nbad_flows_capacity", "Flow-table capacity (flows.max_flows)", self.flow_capacity)?;
        gauge(
            e,
            "nbad_flows_fill_ratio",
            "Flows tracked now over capacity (0..1)",
            f.active as f64 / self.flow_capacity.max(1) as f64,
        )?;
        counter(e, "nbad_flows_evicted", "Flows evicted from a full table", f.evicted)?;
        counter(
            e,
            "nbad_flows_emergency_entered",
            "Times a flow table entered emergency mode",
            f.emergency_entered,
        )?;
        labelled(
            e,
            "nbad_flows_ended",
            "Flow records by end reason",
            MetricType::Counter,
            "reason",
            f.ended.iter().map(|(k, v)| (*k, *v)),
        )?;
        counter(
            e,
            "nbad_output_flow_records_written",
            "Flow records written",
            s.output.flow_records_written,
        )?;
        export(e, &s.output.export)?;
        gauge(e, "nbad_workers", "Flow worker threads", s.workers as u64)?;
        gauge(e, "nbad_uptime_seconds", "Seconds since the pipeline started", s.elapsed_s)?;
        if let Some(config) = &self.config {
            gauge(
                e,
                "nbad_config_version",
                "Version of the running configuration (1 + accepted reloads)",
                config.version(),
            )?;
        }

        if let Some(d) = &s.detection {
            verdicts(e, &d.verdicts)?;
            bounded_state(e, &d.engine)?;
        }
        let alerts = self.hooks.alerts.snapshot();
        labelled(
            e,
            "nbad_alerts",
            "Alerts raised, by detector",
            MetricType::Counter,
            "detector",
            alerts.iter().map(|(d, n)| (d.name(), *n)),
        )?;
        let sinks = self.hooks.sinks.snapshot();
        labelled(
            e,
            "nbad_sink_up",
            "Whether an alert sink can deliver now (1) or not (0)",
            MetricType::Gauge,
            "sink",
            sinks.iter().map(|(k, v)| (k.as_str(), u64::from(v.up))),
        )?;
        labelled(
            e,
            "nbad_sink_delivered",
            "Alerts delivered, by sink",
            MetricType::Counter,
            "sink",
            sinks.iter().map(|(k, v)| (k.as_str(), v.delivered)),
        )?;
        labelled(
            e,
            "nbad_sink_failed",
            "Failed delivery attempts, by sink",
            MetricType::Counter,
            "sink",
            sinks.iter().map(|(k, v)| (k.as_str(), v.failed)),
        )?;
        let h = self.hooks.latency.snapshot();
        e.encode_descriptor(
            "nbad_packet_to_alert_latency_seconds",
            "Time from the newest packet of an alert's evidence to the alert",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(h.sum_s, h.count, &h.buckets, None)?;
        let mut m = e.encode_descriptor(
            "nbad_packet_to_alert_latency_by_detector_seconds",
            "Packet-to-alert latency per detector: median, 99th percentile and maximum",
            None,
            MetricType::Gauge,
        )?;
        for (d, q) in self.hooks.latency_by_detector.snapshot() {
            for (quantile, ms) in [("0.5", q.p50_ms), ("0.99", q.p99_ms), ("1", q.max_ms)] {
                m.encode_family(&[("detector", d.name()), ("quantile", quantile)])?
                    .encode_gauge(&(ms / 1e3))?;
            }
        }
        Ok(())
    }
}
