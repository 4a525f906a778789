//! Flow export as `run` and `replay` use it: the exporters started from `[[output.ipfix]]` and
//! `[output.kafka]`, their counters attached to the statistics, and the drain at the end.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::output::export::{ExportFeed, FlowExport};
use crate::pipeline;
use crate::stats::StatsHub;

/// How long the exporters get, once the pipeline has ended, to send what is still queued
/// (records left after it are counted in `dropped_shutdown`). Kept under systemd's stop
/// timeout together with `alerts.drain_timeout_ms`.
pub(super) const EXPORT_DRAIN: Duration = Duration::from_secs(10);

/// The exporters for `cfg` and their feed (`None` when nothing is exported); their counters
/// show in `hub`'s snapshots from now on.
pub(super) fn start(cfg: &Config, hub: &Arc<StatsHub>) -> anyhow::Result<Option<(FlowExport, ExportFeed)>> {
    if cfg.output.export.is_empty() {
        return Ok(None);
    }
    let (export, feed) =
        FlowExport::start(&cfg.output.export, &cfg.sensor.id).context("starting flow export")?;
    hub.attach_export(export.metrics_fn());
    Ok(Some((export, feed)))
}

/// Lets the exporters send what is queued (the pipeline has ended, so the feed is gone), says
/// how each stands, and rewrites the statistics with the final counters.
pub(super) fn finish(export: Option<FlowExport>, hub: &StatsHub, cfg: &Config) {
    let Some(export) = export else { return };
    let last = export.finish(EXPORT_DRAIN);
    if let Err(e) = pipeline::write_stats(&cfg.output.stats, &hub.snapshot()) {
        eprintln!("nbad-sensor: warning: {e:#}");
    }
    for x in &last {
        eprintln!(
            "nbad-sensor: flow export {} ({} to {}): {} of {} records sent, {} dropped (queue full {}, send error {}, \
             shutdown {}), {} messages, {} bytes, {} template sends",
            x.name,
            x.kind,
            x.destination,
            x.sent,
            x.offered,
            x.dropped_queue_full + x.dropped_send_error + x.dropped_shutdown,
            x.dropped_queue_full,
            x.dropped_send_error,
            x.dropped_shutdown,
            x.messages,
            x.bytes,
            x.template_sends
        );
    }
}
