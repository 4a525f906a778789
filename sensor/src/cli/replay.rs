//! `nbad-sensor replay`: capture files through the same pipeline as live capture, with a
//! fixed flow-hash seed (the same input and saved state give the same alerts, byte for byte),
//! progress on stderr, and an honest exit: alerts still undelivered when the drain ends make
//! the command fail with [`crate::deliver::Undelivered`] (exit code 3).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;

use super::progress::{Mode, Progress};
use super::{delivery, export};
use crate::capture::file::FileSource;
use crate::config::{Config, OutputTarget};
use crate::flow::{EndReason, FlowHasher};
use crate::pipeline::analysis::AlertHook;
use crate::pipeline::{self, RunOptions};
use crate::stats::StatsHub;

/// The flow-hash seed of replays: fixed, so that a replay shards flows the
/// same way every time and its alerts are reproducible byte for byte.
const REPLAY_HASH_SEED: u64 = 0x6e62_6164_7265_706c;

/// How a replay reports its progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProgressArgs {
    /// `--quiet`: no bar.
    pub quiet: bool,
    /// `--progress-interval`: seconds between summary lines when no bar is drawn (0: none).
    pub interval_s: u64,
    /// `--hold`: keep answering the control socket and the console after the input ends.
    pub hold: bool,
}

pub(super) fn replay(
    cfg: &Config,
    pcaps: &[PathBuf],
    alerts: Option<&str>,
    progress: ProgressArgs,
) -> anyhow::Result<()> {
    let mut source = FileSource::new(pcaps)?;
    let hub = Arc::new(StatsHub::new(cfg.flows.workers.max(1)));
    let delivery = delivery::start(cfg)?;
    let (export, feed) = export::start(cfg, &hub)?.unzip();
    let on_alerts = delivery.as_ref().map(|d| {
        let d = Arc::clone(d);
        AlertHook(Box::new(move |a: &[crate::alert::Alert]| delivery::submit_all(&d, a)))
    });
    let mut companions = super::console::start(cfg, &hub)?;
    let on_alerts = super::console::hook(companions.store.take(), on_alerts);
    // `--hold`: until SIGINT or SIGTERM.
    let hold = if progress.hold {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
        }
        Some(stop)
    } else {
        None
    };
    let opts = RunOptions {
        flows: super::flow_writer(cfg)?,
        stats: cfg.output.stats.clone(),
        periodic_stats: None,
        tick: pipeline::REPLAY_TICK,
        stop: Arc::new(AtomicBool::new(false)),
        end_reason: EndReason::EndOfCapture,
        hasher: FlowHasher::with_seed(REPLAY_HASH_SEED),
        engine: super::build_engine(cfg)?,
        alerts: super::alert_writer(alerts)?,
        on_alerts,
        side_alerts: None,
        settings: None,
        export: feed,
        control: companions.requests.take(),
        // Response acts on the world now: never on a replay of old traffic.
        respond: None,
        hub: Some(Arc::clone(&hub)),
        hold,
    };
    let shown = Progress::start(
        Mode::choose(progress.quiet, progress.interval_s),
        source.progress(),
        Arc::clone(&hub),
    );
    let snapshot = pipeline::run(cfg, &mut source, opts);
    shown.finish();
    export::finish(export, &hub, cfg);
    let undelivered = delivery::finish(delivery, &hub, cfg);
    let snapshot = snapshot?;
    if cfg.output.stats != OutputTarget::Stdout {
        eprintln!("nbad-sensor: {}", snapshot.summary());
    }
    match undelivered {
        Some(left) => Err(left.into()),
        None => Ok(()),
    }
}
