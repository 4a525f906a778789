//! Alert delivery as `run` and `replay` use it: the spool and its sinks started from
//! `[alerts]`, every alert submitted, and the drain at the end.

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Config;
use crate::deliver::{Delivery, Undelivered};
use crate::pipeline;
use crate::stats::StatsHub;

/// Alert delivery for `cfg`: the spool and its sinks (`None` without sinks).
pub(super) fn start(cfg: &Config) -> anyhow::Result<Option<Arc<Delivery>>> {
    if cfg.alerts.sinks.is_empty() {
        return Ok(None);
    }
    let delivery = Delivery::start(&cfg.alerts, &cfg.sensor.id).context("starting alert delivery")?;
    Ok(Some(Arc::new(delivery)))
}

/// Spools every alert; a refusal (a full spool after its bounded wait) is
/// counted by the spool and logged here.
pub(super) fn submit_all(delivery: &Delivery, alerts: &[crate::alert::Alert]) {
    for a in alerts {
        if let Err(e) = delivery.submit(a) {
            eprintln!("nbad-sensor: error: alert {} not spooled: {e}", a.id);
        }
    }
}

/// Delivers what the spool still holds (for at most `alerts.drain_timeout_ms`), says how each
/// sink stands, and rewrites the statistics with the final delivery metrics. Returns what is
/// still undelivered (`None`: nothing, or no sinks): it stays in the spool for the next start.
pub(super) fn finish(delivery: Option<Arc<Delivery>>, hub: &StatsHub, cfg: &Config) -> Option<Undelivered> {
    let delivery = delivery.and_then(|d| Arc::try_unwrap(d).ok())?;
    let drain = cfg.alerts.drain_timeout;
    let m = delivery.shutdown(drain);
    if let Ok(json) = serde_json::to_value(&m) {
        hub.publish_delivery(json);
        if let Err(e) = pipeline::write_stats(&cfg.output.stats, &hub.snapshot()) {
            eprintln!("nbad-sensor: warning: {e:#}");
        }
    }
    let mut pending = 0;
    for s in &m.sinks {
        eprintln!(
            "nbad-sensor: sink {} ({}): {} sent, {} dead-lettered, {} below min_score, {} left in the spool",
            s.name, s.kind, s.sent, s.dead_lettered, s.filtered, s.spool_depth
        );
        pending += s.spool_depth;
    }
    (pending > 0).then(|| Undelivered { pending, spool: cfg.alerts.spool_dir.clone(), waited: drain })
}
