//! The pipeline: capture → decode → dispatch (this thread) → flow-table
//! workers (one thread per shard) → output (one thread).
//!
//! Packets cross threads only in batches over bounded crossbeam channels;
//! records cross in vectors. File replay and live capture run the very same
//! code: only the [`PacketSource`] differs.

pub mod analysis;
mod batch;
mod dispatch;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::bounded;

use crate::capture::{Next, PacketSource};
use crate::capture_loss::AckTracker;
use crate::config::{Config, OutputTarget};
use crate::decode::{Decoder, Skip};
use crate::detect::Engine;
use crate::flow::{EndReason, FlowHasher, FlowTable, Timeouts};
use crate::observe::Observer;
use crate::output::flow_json::FlowJsonWriter;
use crate::stats::{CaptureCounters, StatsHub, StatsSnapshot};
use analysis::{AlertHook, AlertPull, AlertWriter, Analysis, AnalysisMsg, SettingsPull};
pub use batch::{Batch, WorkerMsg};
pub use dispatch::Dispatcher;
pub use worker::RECORD_CHUNK;

/// Messages queued to the analysis stage per input.
pub const ANALYSIS_QUEUE_PER_INPUT: usize = 4;
/// Packets between two looks at the wall clock for periodic work.
const HOUSEKEEPING_EVERY: u32 = 4096;
/// Packets after which the capture thread sends the analysis stage its clock, observations or
/// not. The stage merges its inputs by their clocks and holds every worker's records until this
/// input's clock passes them: with only a send per second, a flood of 500 000 new flows a second
/// made it hold a second of records (over 100 MiB at 10 million SYNs, tests/tests/flood.rs).
const OBS_CLOCK_EVERY: u32 = 16_384;

/// How one run of the pipeline is set up.
#[derive(Debug)]
pub struct RunOptions {
    /// Where flow records go (`None`: nowhere).
    pub flows: Option<FlowJsonWriter>,
    /// Where the stats JSON goes at the end (and periodically when live).
    pub stats: OutputTarget,
    /// Print and write statistics this often (live mode).
    pub periodic_stats: Option<Duration>,
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

/// The capture thread's link to the analysis stage: its observer and sender.
struct ObsLink {
    observer: Observer,
    tx: crossbeam_channel::Sender<AnalysisMsg>,
    input: usize,
    /// The clock of the last message sent.
    sent_clock: u64,
    /// Calls of [`ObsLink::send_if_due`] (one per packet) since the last send.
    since_send: u32,
}

impl ObsLink {
    /// Sends the observations when the observer's batch is `full`, the capture clock has
    /// entered a new second since the last send, or [`OBS_CLOCK_EVERY`] packets went by.
    fn send_if_due(&mut self, full: bool, clock_ns: u64) -> anyhow::Result<()> {
        self.since_send += 1;
        if full || self.since_send >= OBS_CLOCK_EVERY || self.observer.new_second(clock_ns) {
            self.send(clock_ns)?;
        }
        Ok(())
    }

    /// Sends the observations gathered so far. The message's clock is its first observation's
    /// time (the capture clock when it has none; never behind the last message's): the
    /// analysis stage's merge then sees a flow's first payloads before its record, which a
    /// worker may emit, within the same second, before this batch is sent.
    fn send(&mut self, clock_ns: u64) -> anyhow::Result<()> {
        self.since_send = 0;
        let obs = self.observer.take(clock_ns);
        let first = obs.first().map_or(clock_ns, |o| o.ts_ns.min(clock_ns));
        let clock_ns = first.max(self.sent_clock);
        self.sent_clock = clock_ns;
        let counters = self.observer.counters;
        self.tx
            .send(AnalysisMsg::Observations { input: self.input, clock_ns, obs, counters })
            .map_err(|_| anyhow::anyhow!("the analysis stage stopped unexpectedly"))
    }
}

/// Runs `source` through the pipeline until it ends (or `stop` is set) and
/// every flow has been flushed; returns the final statistics.
pub fn run<S: PacketSource>(
    config: &Config,
    source: &mut S,
    mut opts: RunOptions,
) -> anyhow::Result<StatsSnapshot> {
    let workers = config.flows.workers.max(1);
    let hub = opts.hub.take().unwrap_or_else(|| Arc::new(StatsHub::new(workers)));
    let hub = &*hub;
    let timeouts = Timeouts::from_settings(&config.flows);
    let per_shard_cap = config.flows.max_flows.div_ceil(workers);
    let inputs = workers + 1;
    // Without detection only the workers send (their record chunks); with it
    // the capture thread sends observations too.
    let senders = if opts.engine.is_some() { inputs } else { workers };
    let (rec_tx, rec_rx) = bounded::<AnalysisMsg>(ANALYSIS_QUEUE_PER_INPUT * senders);
    let detecting = opts.engine.is_some();
    let mut obs_link = detecting.then(|| ObsLink {
        observer: Observer::new(),
        tx: rec_tx.clone(),
        input: workers,
        sent_clock: 0,
        since_send: 0,
    });

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
                .spawn_scoped(scope, move || worker::run(id, table, &rx, &recycle_tx, &records, hub))
                .context("cannot start a flow worker thread")?;
            handles.push(handle);
            links.push((tx, recycle_rx));
        }
        drop(rec_tx);

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
        // With detection on, every input (workers and the capture thread)
        // takes part in the merge; without it, only the workers send.
        let merge_inputs = if detecting { inputs } else { workers };
        let output = std::thread::Builder::new()
            .name("nbad-analysis".into())
            .spawn_scoped(scope, move || analysis.run(&rec_rx, merge_inputs, hub_ref))
            .context("cannot start the analysis thread")?;

        let mut dispatcher = Dispatcher::new(links, opts.hasher.clone(), config.flows.batch_size);
        let mut decoder = Decoder::new(&config.decode);
        let capture_result =
            capture_loop(source, &mut dispatcher, &mut decoder, hub, &opts, obs_link.as_mut());
        if let Some(link) = obs_link.as_mut() {
            let clock = dispatcher.now_ns();
            let _ = link.send(clock);
            let _ = link.tx.send(AnalysisMsg::Done { input: link.input });
        }
        drop(obs_link);
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
        if let (Ok(c), Ok(d)) = (&capture_result, &finish_result) {
            hub.publish_capture(c, &decoder.counters, d, true);
        }
        let output_result = output.join().map_err(|_| anyhow::anyhow!("the analysis thread panicked"))?;
        let counters = capture_result?;
        let dispatch = finish_result?;
        output_result.context("cannot write flow records or alerts")?;
        hub.publish_capture(&counters, &decoder.counters, &dispatch, true);
        let snapshot = hub.snapshot();
        write_stats(&opts.stats, &snapshot)?;
        Ok(snapshot)
    })
}

/// Reads the source until it ends or `stop` is set, decoding and dispatching
/// every packet. Returns the capture counters.
fn capture_loop<S: PacketSource>(
    source: &mut S,
    dispatcher: &mut Dispatcher,
    decoder: &mut Decoder,
    hub: &StatsHub,
    opts: &RunOptions,
    mut obs: Option<&mut ObsLink>,
) -> anyhow::Result<CaptureCounters> {
    let mut c = CaptureCounters::default();
    let mut loss = AckTracker::new();
    // Decodes the XDP path's samples for the observer; its counters are not
    // the capture's (the kernel counted those packets already).
    let mut sample_decoder = decoder.clone_settings();
    let mut since_housekeeping = 0u32;
    let mut last_report = Instant::now();
    loop {
        let idle = match source.next_packet()? {
            Next::Packet(p) => {
                c.packets_read += 1;
                c.bytes_read += u64::from(p.wire_len);
                match decoder.decode(p.link, p.ts_ns, p.data) {
                    Ok(mut meta) => {
                        meta.hash = dispatcher.hash(&meta.key);
                        if AckTracker::samples(meta.hash) {
                            loss.observe(&meta, p.link, p.data);
                        }
                        if let Some(link) = obs.as_deref_mut() {
                            let full = link.observer.packet(&meta, decoder.last_l4(), p.data);
                            dispatcher.push(meta)?;
                            link.send_if_due(full, dispatcher.now_ns())?;
                        } else {
                            dispatcher.push(meta)?;
                        }
                    }
                    Err(skip) => {
                        // Not IP, malformed or an orphan fragment: counted by the
                        // decoder; its timestamp still moves the clock. The
                        // observer reports malformed senders and ARP requests.
                        dispatcher.tick(p.ts_ns)?;
                        if let Some(link) = obs.as_deref_mut() {
                            let full = match skip {
                                Skip::Malformed(reason) => {
                                    link.observer.malformed(decoder.last_src(), reason, p.ts_ns)
                                }
                                Skip::NotIp => link.observer.not_ip(p.link, p.data, p.ts_ns),
                                Skip::OrphanFragment => false,
                            };
                            link.send_if_due(full, dispatcher.now_ns())?;
                        }
                    }
                }
                since_housekeeping += 1;
                false
            }
            Next::Decoded(metas) => {
                push_decoded(metas, &mut c, decoder, dispatcher)?;
                since_housekeeping += u32::try_from(metas.len()).unwrap_or(u32::MAX);
                if let Some(link) = obs.as_deref_mut() {
                    observe_samples(source, link, &mut sample_decoder, dispatcher)?;
                }
                false
            }
            Next::Idle => true,
            Next::End => break,
        };
        if idle || since_housekeeping >= HOUSEKEEPING_EVERY {
            since_housekeeping = 0;
            if idle && let Some(now) = source.idle_clock_ns() {
                dispatcher.tick(now)?;
                if let Some(link) = obs.as_deref_mut() {
                    link.send_if_due(false, dispatcher.now_ns())?;
                }
            }
            take_source_stats(source, &mut c, hub);
            hub.publish_capture(&c, &decoder.counters, &dispatcher.counters, false);
            hub.publish_capture_loss(&loss.counters, false);
            if let Some(every) = opts.periodic_stats
                && last_report.elapsed() >= every
            {
                last_report = Instant::now();
                let snapshot = hub.snapshot();
                eprintln!("nbad-sensor: stats: {}", snapshot.summary());
                write_stats(&opts.stats, &snapshot)?;
            }
            if opts.stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    // What the source still holds (the XDP map's deltas since its last poll)
    // goes through before the flows are flushed.
    if let Next::Decoded(metas) = source.flush()? {
        push_decoded(metas, &mut c, decoder, dispatcher)?;
    }
    if let Some(link) = obs {
        observe_samples(source, link, &mut sample_decoder, dispatcher)?;
    }
    take_source_stats(source, &mut c, hub);
    hub.publish_capture_loss(&loss.counters, true);
    Ok(c)
}

/// Shows the source's packet samples (the XDP path's) to the observer, and
/// sends the observations when a batch is full or a second has begun.
fn observe_samples<S: PacketSource>(
    source: &mut S,
    link: &mut ObsLink,
    decoder: &mut Decoder,
    dispatcher: &Dispatcher,
) -> anyhow::Result<()> {
    let mut full = false;
    source.take_samples(&mut |ts_ns, frame| {
        if let Ok(mut meta) = decoder.decode(crate::capture::LinkType::Ethernet, ts_ns, frame) {
            meta.hash = dispatcher.hash(&meta.key);
            full |= link.observer.packet(&meta, decoder.last_l4(), frame);
        }
    });
    link.send_if_due(full, dispatcher.now_ns())
}

/// Copies the source's own counters (drops, cut files) into the capture
/// counters and publishes its extra counters.
fn take_source_stats<S: PacketSource>(source: &mut S, c: &mut CaptureCounters, hub: &StatsHub) {
    let stats = source.source_stats();
    c.kernel_dropped = stats.kernel_dropped;
    c.interface_dropped = stats.interface_dropped;
    c.truncated_files = stats.truncated_files;
    hub.publish_source_extra(stats.extra);
}

/// Accounts aggregates decoded in the kernel (the XDP path).
fn push_decoded(
    metas: &[crate::decode::PacketMeta],
    c: &mut CaptureCounters,
    decoder: &mut Decoder,
    dispatcher: &mut Dispatcher,
) -> anyhow::Result<()> {
    for meta in metas {
        c.packets_read += u64::from(meta.packets);
        c.bytes_read += u64::from(meta.ip_len);
        decoder.counters.parsed += u64::from(meta.packets);
        dispatcher.push(*meta)?;
    }
    Ok(())
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
