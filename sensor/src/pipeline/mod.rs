//! The pipeline: capture → decode → dispatch (this thread, or one thread per
//! capture handle with `capture.threads`) → flow-table workers (one thread per
//! shard) → analysis and output (one thread).
//!
//! Packets cross threads only in batches over bounded crossbeam channels;
//! records cross in vectors. File replay and live capture run the very same
//! code: only the [`PacketSource`] differs.
//!
//! Several sources ([`run_sharded`], a live capture's `PACKET_FANOUT` handles)
//! each get a capture thread of their own ([`capture`]), all dispatching into
//! the same workers with the same flow hash; the workers, the analysis stage and
//! the end-of-run flush are the same as with one. Each capture thread is one more
//! input of the analysis stage's merge; the workers are told to finish only once
//! every capture thread has ended.

pub mod analysis;
mod batch;
mod capture;
mod dispatch;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::bounded;

use crate::capture::PacketSource;
use crate::config::{Config, OutputTarget};
use crate::decode::Decoder;
use crate::detect::Engine;
use crate::flow::{EndReason, FlowHasher, FlowTable, Timeouts};
use crate::output::flow_json::FlowJsonWriter;
use crate::stats::{StatsHub, StatsSnapshot};
use analysis::{AlertHook, AlertPull, AlertWriter, Analysis, AnalysisMsg, SettingsPull};
pub use batch::{Batch, WorkerMsg};
use capture::{CaptureThread, Control, Ended, ObsLink};
pub use dispatch::Dispatcher;
pub use worker::RECORD_CHUNK;

/// Messages queued to the analysis stage per input.
pub const ANALYSIS_QUEUE_PER_INPUT: usize = 4;

/// [`RunOptions::tick`] of live capture.
pub const LIVE_TICK: Duration = Duration::from_millis(20);
/// [`RunOptions::tick`] of replays.
pub const REPLAY_TICK: Duration = Duration::from_secs(1);

/// How one run of the pipeline is set up.
#[derive(Debug)]
pub struct RunOptions {
    /// Where flow records go (`None`: nowhere).
    pub flows: Option<FlowJsonWriter>,
    /// Where the stats JSON goes at the end (and periodically when live).
    pub stats: OutputTarget,
    /// Print and write statistics this often (live mode).
    pub periodic_stats: Option<Duration>,
    /// How often, in capture time, every input tells the analysis stage its clock (the
    /// dispatcher sends each worker a batch, the workers and the capture thread send what they
    /// have): the merge releases nothing newer than its slowest input's clock, so this bounds
    /// how long an observation waits before the detectors see it. [`LIVE_TICK`] live (a
    /// protocol misuse is alerted within tens of milliseconds), [`REPLAY_TICK`] for captures
    /// read from files, where latency does not matter and fewer messages are cheaper.
    pub tick: Duration,
    /// Set by a signal handler to stop a live capture.
    pub stop: Arc<AtomicBool>,
    /// The reason given to flows still open at the end.
    pub end_reason: EndReason,
    /// Seed for the flow hash (random by default; fixed in tests).
    pub hasher: FlowHasher,
    /// The detection engine (`None`: detection off).
    pub engine: Option<Engine>,
    /// Where alerts are written as ECS JSON lines.
    pub alerts: Option<AlertWriter>,
    /// Called with every batch of alerts (alert delivery).
    pub on_alerts: Option<AlertHook>,
    /// Alerts raised outside the engine (the capture-loss watch).
    pub side_alerts: Option<AlertPull>,
    /// New detection settings after a reload.
    pub settings: Option<SettingsPull>,
    /// Flow export: the exporters' feed (`None`: no `[[output.ipfix]]` or `[output.kafka]`).
    pub export: Option<crate::output::export::ExportFeed>,
    /// Requests from the control socket (`control.socket`), answered by the analysis stage.
    pub control: Option<crossbeam_channel::Receiver<crate::control::Call>>,
    /// Automated response: every alert is offered to it, never waited for.
    pub respond: Option<crate::respond::Feed>,
    /// Where the stages publish their counters; a fresh hub when `None`. A live sensor passes
    /// its own, which the metrics endpoint and the capture-loss watch read.
    pub hub: Option<Arc<StatsHub>>,
    /// After the input ends, keep answering control requests (the control socket, the
    /// console) from the final state until this flag is set (`replay --hold`).
    pub hold: Option<Arc<AtomicBool>>,
}

/// Runs `source` through the pipeline until it ends (or `stop` is set) and
/// every flow has been flushed; returns the final statistics.
pub fn run<S: PacketSource + Send>(
    config: &Config,
    source: &mut S,
    opts: RunOptions,
) -> anyhow::Result<StatsSnapshot> {
    run_sharded(config, std::slice::from_mut(source), opts)
}

/// Runs several sources (the handles of one `PACKET_FANOUT` group), each read by a capture
/// thread of its own, into one set of flow workers and one analysis stage, until every source
/// has ended or `stop` is set, and every flow has been flushed; returns the final statistics.
/// The first source is read on the calling thread.
///
/// # Errors
/// No source; the hub passed in has fewer capture slots than there are sources; a thread could
/// not be started or failed; the outputs could not be written.
pub fn run_sharded<S: PacketSource + Send>(
    config: &Config,
    sources: &mut [S],
    mut opts: RunOptions,
) -> anyhow::Result<StatsSnapshot> {
    let Some((first, rest)) = sources.split_first_mut() else {
        anyhow::bail!("the pipeline was given no packet source");
    };
    let threads = rest.len() + 1;
    let workers = config.flows.workers.max(1);
    let hub = opts.hub.take().unwrap_or_else(|| Arc::new(StatsHub::with_capture_threads(workers, threads)));
    let hub = &*hub;
    anyhow::ensure!(
        hub.capture_threads() >= threads,
        "the statistics hub has {} capture slots for {threads} capture threads",
        hub.capture_threads()
    );
    let timeouts = Timeouts::from_settings(&config.flows);
    let per_shard_cap = config.flows.max_flows.div_ceil(workers);
    // Inputs of the analysis stage: the workers, then (with detection) one per capture thread.
    let detecting = opts.engine.is_some();
    let merge_inputs = if detecting { workers + threads } else { workers };
    let (rec_tx, rec_rx) = bounded::<AnalysisMsg>(ANALYSIS_QUEUE_PER_INPUT * merge_inputs);
    let halt = AtomicBool::new(false);
    let tick_ns = u64::try_from(opts.tick.as_nanos()).unwrap_or(u64::MAX).max(1);

    std::thread::scope(|scope| -> anyhow::Result<StatsSnapshot> {
        let mut links = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for id in 0..workers {
            let (tx, rx) = bounded::<WorkerMsg>(config.flows.channel_depth);
            let (recycle_tx, recycle_rx) = bounded::<Batch>(config.flows.channel_depth + 2);
            let table = FlowTable::new(timeouts, per_shard_cap, opts.hasher.clone());
            let records = rec_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("nbad-flow-{id}"))
                .spawn_scoped(scope, move || worker::run(id, table, &rx, &recycle_tx, &records, hub, tick_ns))
                .context("cannot start a flow worker thread")?;
            handles.push(handle);
            links.push((tx, recycle_rx));
        }

        let analysis = Analysis {
            flows: opts.flows.take(),
            engine: opts.engine.take(),
            alerts: opts.alerts.take(),
            on_alerts: opts.on_alerts.take(),
            side_alerts: opts.side_alerts.take(),
            settings: opts.settings.take(),
            export: opts.export.take(),
            control: opts.control.take(),
            respond: opts.respond.take(),
            privacy: crate::privacy::Privacy::from_config(config),
            hold: opts.hold.take(),
        };
        let hub_ref = hub;
        let output = std::thread::Builder::new()
            .name("nbad-analysis".into())
            .spawn_scoped(scope, move || analysis.run(&rec_rx, merge_inputs, hub_ref))
            .context("cannot start the analysis thread")?;

        // Every capture thread: its own dispatcher into the same workers (same hasher, so the
        // same shards), decoder and analysis input. Only the first reports periodically.
        let report = opts.periodic_stats.map(|every| (every, &opts.stats));
        let capture_thread = |index: usize| CaptureThread {
            index,
            dispatcher: Dispatcher::new(links.clone(), opts.hasher.clone(), config.flows.batch_size, tick_ns),
            decoder: Decoder::new(&config.decode),
            obs: detecting.then(|| ObsLink::new(rec_tx.clone(), workers + index, tick_ns)),
            control: Control { hub, stop: &opts.stop, halt: &halt, report: report.filter(|_| index == 0) },
        };
        let mut capture_handles = Vec::with_capacity(rest.len());
        for (i, source) in rest.iter_mut().enumerate() {
            let thread = capture_thread(i + 1);
            let spawned = std::thread::Builder::new()
                .name(format!("nbad-capture-{}", i + 1))
                .spawn_scoped(scope, move || thread.run(source));
            match spawned {
                Ok(h) => capture_handles.push(h),
                Err(e) => {
                    halt.store(true, Ordering::Relaxed);
                    return Err(anyhow::Error::from(e).context("cannot start a capture thread"));
                }
            }
        }
        let first_thread = capture_thread(0);
        drop(links);
        drop(rec_tx);
        let Ended { result: first_result, dispatcher, decoder } = first_thread.run(first);
        let mut others = Vec::with_capacity(capture_handles.len());
        for h in capture_handles {
            others.push(h.join().map_err(|_| anyhow::anyhow!("a capture thread panicked"))?);
        }
        // Every capture thread has sent its last batch: the workers may flush.
        let end_reason =
            if opts.stop.load(Ordering::Relaxed) { EndReason::Shutdown } else { opts.end_reason };
        let finish_result = dispatcher.finish(end_reason);
        for handle in handles {
            if handle.join().is_err() {
                anyhow::bail!("a flow worker thread panicked");
            }
        }
        // Published before the analysis stage is joined: one that holds (`replay --hold`)
        // serves the final capture counters meanwhile.
        if let (Ok(c), Ok(d)) = (&first_result, &finish_result) {
            hub.publish_capture(0, c, &decoder.counters, d, true);
        }
        let output_result = output.join().map_err(|_| anyhow::anyhow!("the analysis thread panicked"))?;
        first_result?;
        for other in others {
            other.result?;
        }
        finish_result?;
        output_result.context("cannot write flow records or alerts")?;
        let snapshot = hub.snapshot();
        write_stats(&opts.stats, &snapshot)?;
        Ok(snapshot)
    })
}

/// Writes the statistics JSON to its target (atomically for files).
pub fn write_stats(target: &OutputTarget, snapshot: &StatsSnapshot) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(snapshot).context("cannot encode statistics")?;
    match target {
        OutputTarget::None => {}
        OutputTarget::Stdout => println!("{json}"),
        // Not a regular file (/dev/null, a FIFO, /dev/stdout): written in
        // place; renaming over it would replace the device node.
        OutputTarget::File(path) if path.exists() && !path.is_file() => {
            std::fs::write(path, json + "\n")
                .with_context(|| format!("{}: cannot write statistics", path.display()))?;
        }
        OutputTarget::File(path) => {
            // Written to a temporary file beside the target and renamed over
            // it, so a reader never sees half a file.
            let dir =
                path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let write = || -> std::io::Result<()> {
                let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
                std::io::Write::write_all(&mut tmp, json.as_bytes())?;
                std::io::Write::write_all(&mut tmp, b"\n")?;
                tmp.persist(path).map_err(|e| e.error)?;
                Ok(())
            };
            write().with_context(|| format!("{}: cannot write statistics", path.display()))?;
        }
    }
    Ok(())
}
