//! The Prometheus metrics endpoint: `GET /metrics` on `metrics.listen` (off by default).
//!
//! - `collector.rs`: what a scrape reports: per-stage counters from the [`StatsHub`]
//!   (capture, drops, decode, dispatch, flow-table fill and evictions, output), the
//!   capture-loss ratio, the configuration version, and the [`Hooks`].
//! - `hooks.rs`: alerts per detector, sink health and the packet-to-alert latency, which the
//!   alert and delivery stages fill in.
//! - `histogram.rs`: the latency histogram (HdrHistogram) exposed with Prometheus buckets.
//! - `http.rs`: a std-only HTTP/1.1 responder, one connection at a time.
//!
//! Exposition is prometheus-client (the Prometheus project's own Rust client): it writes the
//! OpenMetrics text format with correct escaping, `_total` suffixes and `# EOF`, which are easy
//! to get subtly wrong by hand. Counters are read at scrape time from the same snapshot the
//! stats file uses: nothing on the packet path knows the endpoint exists.

mod collector;
mod histogram;
mod hooks;
pub(crate) mod http;

use std::net::SocketAddr;

use prometheus_client::registry::Registry;

pub use collector::{SharedRatio, Sources};
pub use histogram::{BUCKETS_S, HistogramSnapshot, LatencyHistogram, LatencyQuantiles};
pub use hooks::{AlertCounters, Hooks, SinkHealth, SinkState};
pub use http::HttpServer;

#[cfg(doc)]
use crate::stats::StatsHub;

/// The whole page for one scrape.
#[must_use]
pub fn render(registry: &Registry) -> String {
    let mut page = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut page, registry) {
        eprintln!("nbad-sensor: error: encoding metrics failed: {e}");
    }
    page
}

/// Serves `sources` at `http://<listen>/metrics` until the returned server is dropped.
pub fn serve(listen: SocketAddr, sources: Sources) -> anyhow::Result<HttpServer> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources));
    HttpServer::start(listen, Box::new(move || render(&registry)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alert::Detector;
    use crate::stats::StatsHub;

    /// One scrape of the metrics of `hub` and `hooks`, with a flow table of `flow_capacity`.
    fn scrape(hub: Arc<StatsHub>, flow_capacity: u64, hooks: Arc<Hooks>) -> String {
        let sources = Sources {
            hub,
            flow_capacity,
            capture_loss: Arc::new(SharedRatio::default()),
            hooks,
            config: None,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(sources));
        render(&registry)
    }

    #[test]
    fn a_scrape_shows_stage_counters_hooks_and_the_latency_histogram() {
        let hooks = Arc::new(Hooks::default());
        hooks.alerts.raised(Detector::Scan);
        hooks.sinks.set_up("syslog", true);
        hooks.latency.record(std::time::Duration::from_millis(30));
        let page = scrape(Arc::new(StatsHub::new(2)), 1000, hooks);
        for line in [
            "# TYPE nbad_capture_packets counter",
            "nbad_capture_packets_total 0",
            "nbad_flows_capacity 1000",
            "nbad_capture_loss_ratio 0.0",
            "nbad_alerts_total{detector=\"scan\"} 1",
            "nbad_alerts_total{detector=\"capture_loss\"} 0",
            "nbad_sink_up{sink=\"syslog\"} 1",
            "nbad_packet_to_alert_latency_seconds_bucket{le=\"0.01\"} 0",
            "nbad_packet_to_alert_latency_seconds_bucket{le=\"0.05\"} 1",
            "nbad_packet_to_alert_latency_seconds_bucket{le=\"+Inf\"} 1",
            "nbad_packet_to_alert_latency_seconds_count 1",
            "# EOF",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line:?} in:\n{page}");
        }
    }

    #[test]
    fn a_scrape_shows_each_flow_exporters_counters_by_name() {
        let hub = Arc::new(StatsHub::new(1));
        hub.attach_export(Box::new(|| {
            vec![crate::stats::ExporterJson {
                name: "nfcapd".into(),
                kind: "ipfix".into(),
                offered: 10,
                sent: 7,
                dropped_queue_full: 3,
                template_sends: 2,
                healthy: true,
                ..Default::default()
            }]
        }));
        let page = scrape(hub, 1, Arc::new(Hooks::default()));
        for line in [
            "nbad_export_records_offered_total{exporter=\"nfcapd\"} 10",
            "nbad_export_records_sent_total{exporter=\"nfcapd\"} 7",
            "nbad_export_dropped_queue_full_total{exporter=\"nfcapd\"} 3",
            "nbad_export_template_sends_total{exporter=\"nfcapd\"} 2",
            "nbad_export_up{exporter=\"nfcapd\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line:?} in:\n{page}");
        }
    }

    #[test]
    fn a_scrape_shows_each_capture_threads_packets_and_drops_and_their_sums() {
        use crate::stats::{CaptureCounters, DispatchCounters};
        let hub = Arc::new(StatsHub::with_capture_threads(1, 2));
        let decode = crate::decode::DecodeCounters::default();
        for (thread, packets, dropped) in [(0, 30, 1), (1, 12, 2)] {
            let c = CaptureCounters { packets_read: packets, kernel_dropped: dropped, ..Default::default() };
            hub.publish_capture(thread, &c, &decode, &DispatchCounters::default(), true);
        }
        let page = scrape(hub, 1, Arc::new(Hooks::default()));
        for line in [
            "nbad_capture_packets_total 42",
            "nbad_capture_kernel_dropped_total 3",
            "nbad_capture_thread_packets_total{thread=\"0\"} 30",
            "nbad_capture_thread_packets_total{thread=\"1\"} 12",
            "nbad_capture_thread_kernel_dropped_total{thread=\"1\"} 2",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line:?} in:\n{page}");
        }
    }
}
