//! A capture thread: reads one source, decodes each frame, hashes its flow key, dispatches it to
//! the flow worker that owns the key's shard, and shows it to its own observer.
//!
//! A replay and a single-handle live capture have one capture thread (the pipeline's calling
//! thread). A live capture with `capture.threads = N` has N, one per libpcap handle of the
//! interface's `PACKET_FANOUT` group (see `crate::capture::fanout`). Each has everything that is
//! per packet to itself, so nothing on the hot path is shared or locked:
//!
//! - its [`Dispatcher`], into the *same* flow workers as every other capture thread, hashing with
//!   the same seeded hasher: a flow's packets reach one worker whichever thread read them, so a
//!   flow is never split into two records, even for a packet the kernel's hash sent elsewhere;
//! - its clock: the dispatcher's, the latest timestamp this thread saw (or the wall clock on an
//!   idle tick). Workers take the largest clock any thread sent them, and a flow table never
//!   moves its clock back, so a thread a little behind another only delays nothing;
//! - its [`Observer`], an analysis-stage input of its own (with its own clock, heartbeat and
//!   `Done`): the observer's tables are per flow, and the fanout hash keeps a flow on one thread;
//! - its decoder, capture-loss tracker and counters, published to its own slot in the
//!   [`StatsHub`] (summed there; kernel drops are per socket, so per thread).
//!
//! Ending: a stop signal ends every thread at its next housekeeping; a thread that fails raises
//! the shared `halt` flag, so that the others end too instead of running on without it; a
//! source that simply ends (a file) leaves the others to read theirs to the end. Each thread
//! sends its final observations, and each but the first its open batches; once every
//! capture thread has ended, the first thread's dispatcher sends its own with the workers'
//! `Finish` (as a single-threaded run always did).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::capture::{Next, PacketSource};
use crate::capture_loss::AckTracker;
use crate::config::OutputTarget;
use crate::decode::{Decoder, Skip};
use crate::observe::Observer;
use crate::pipeline::analysis::AnalysisMsg;
use crate::pipeline::{Dispatcher, write_stats};
use crate::stats::{CaptureCounters, StatsHub};

/// Packets between two looks at the wall clock for periodic work.
const HOUSEKEEPING_EVERY: u32 = 4096;
/// Packets after which a capture thread sends the analysis stage its clock, observations or
/// not. The stage merges its inputs by their clocks and holds every worker's records until this
/// input's clock passes them: with only a send per second, a flood of 500 000 new flows a second
/// made it hold a second of records (over 100 MiB at 10 million SYNs, tests/tests/flood.rs).
const OBS_CLOCK_EVERY: u32 = 16_384;

/// A capture thread's link to the analysis stage: its observer and sender.
#[derive(Debug)]
pub(super) struct ObsLink {
    pub observer: Observer,
    pub tx: crossbeam_channel::Sender<AnalysisMsg>,
    pub input: usize,
    /// The clock of the last message sent.
    pub sent_clock: u64,
    /// Calls of [`ObsLink::send_if_due`] (one per packet) since the last send.
    pub since_send: u32,
}

impl ObsLink {
    /// A link for analysis input `input`, due every `tick_ns` of capture time.
    pub fn new(tx: crossbeam_channel::Sender<AnalysisMsg>, input: usize, tick_ns: u64) -> Self {
        Self { observer: Observer::new().with_tick(tick_ns), tx, input, sent_clock: 0, since_send: 0 }
    }

    /// Sends the observations when the observer's batch is `full`, the capture clock has
    /// entered a new tick since the last send, or [`OBS_CLOCK_EVERY`] packets went by.
    fn send_if_due(&mut self, full: bool, clock_ns: u64) -> anyhow::Result<()> {
        self.since_send += 1;
        if full || self.since_send >= OBS_CLOCK_EVERY || self.observer.new_tick(clock_ns) {
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
        let counters = self.observer.counters();
        self.tx
            .send(AnalysisMsg::Observations { input: self.input, clock_ns, obs, counters })
            .map_err(|_| anyhow::anyhow!("the analysis stage stopped unexpectedly"))
    }

    /// Sends the last observations and says this input is done (errors ignored: the analysis
    /// stage reports its own failure).
    fn close(mut self, clock_ns: u64) {
        let _ = self.send(clock_ns);
        let _ = self.tx.send(AnalysisMsg::Done { input: self.input });
    }
}

/// What tells capture threads to stop, and where they report.
#[derive(Debug, Clone, Copy)]
pub(super) struct Control<'a> {
    pub hub: &'a StatsHub,
    /// Set by a signal handler (live capture).
    pub stop: &'a AtomicBool,
    /// Set when a capture thread has failed.
    pub halt: &'a AtomicBool,
    /// Print and write the statistics this often, and where (the first capture thread only).
    pub report: Option<(Duration, &'a OutputTarget)>,
}

/// One capture thread's state.
#[derive(Debug)]
pub(super) struct CaptureThread<'a> {
    /// The thread's number: its statistics slot.
    pub index: usize,
    pub dispatcher: Dispatcher,
    pub decoder: Decoder,
    /// Its analysis-stage input, when detection is on.
    pub obs: Option<ObsLink>,
    pub control: Control<'a>,
}

/// A capture thread once its source has ended or it was stopped.
#[derive(Debug)]
pub(super) struct Ended {
    /// The capture counters, or why the thread failed.
    pub result: anyhow::Result<CaptureCounters>,
    /// Its dispatcher, open batches sent; the pipeline finishes the workers through one of
    /// them once every capture thread has ended.
    pub dispatcher: Dispatcher,
    pub decoder: Decoder,
}

impl CaptureThread<'_> {
    /// Reads `source` until it ends, `stop` or `halt` is set, or an error (which raises `halt`);
    /// then sends the open batches (but the first thread's, which go with the workers' `Finish`)
    /// and the last observations, and publishes the final counters.
    pub fn run<S: PacketSource>(mut self, source: &mut S) -> Ended {
        let mut result = self.capture_loop(source);
        if result.is_err() {
            self.control.halt.store(true, Ordering::Relaxed);
        }
        if self.index != 0
            && let Err(e) = self.dispatcher.send_open()
        {
            result = result.and(Err(e.into()));
        }
        if let Some(link) = self.obs.take() {
            link.close(self.dispatcher.now_ns());
        }
        if let Ok(c) = &result {
            let hub = self.control.hub;
            hub.publish_capture(self.index, c, &self.decoder.counters, &self.dispatcher.counters, true);
        }
        Ended { result, dispatcher: self.dispatcher, decoder: self.decoder }
    }

    /// Reads the source until it ends or the thread is told to stop, decoding and dispatching
    /// every packet. Returns the capture counters.
    fn capture_loop<S: PacketSource>(&mut self, source: &mut S) -> anyhow::Result<CaptureCounters> {
        let hub = self.control.hub;
        let dispatcher = &mut self.dispatcher;
        let decoder = &mut self.decoder;
        let mut obs = self.obs.as_mut();
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
                Next::Idle => {
                    // Samples wait in the XDP ring between polls: read them at every pause, so
                    // that a first payload reaches the detectors within a tick, not a poll.
                    if let Some(link) = obs.as_deref_mut() {
                        observe_samples(source, link, &mut sample_decoder, dispatcher)?;
                    }
                    true
                }
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
                hub.publish_capture(self.index, &c, &decoder.counters, &dispatcher.counters, false);
                hub.publish_capture_loss(self.index, &loss.counters, false);
                if let Some((every, target)) = self.control.report
                    && last_report.elapsed() >= every
                {
                    last_report = Instant::now();
                    let snapshot = hub.snapshot();
                    eprintln!("nbad-sensor: stats: {}", snapshot.summary());
                    write_stats(target, &snapshot)?;
                }
                if self.control.stop.load(Ordering::Relaxed) || self.control.halt.load(Ordering::Relaxed) {
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
        hub.publish_capture_loss(self.index, &loss.counters, true);
        Ok(c)
    }
}

/// Shows the source's packet samples (the XDP path's) to the observer, and
/// sends the observations when a batch is full or a tick has begun.
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
