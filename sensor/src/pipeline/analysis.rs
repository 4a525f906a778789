//! The analysis stage: one thread that writes flow records, merges its inputs
//! into one deterministic order, and runs the detection engine on it.
//!
//! Inputs are the flow workers (records) and the capture threads
//! (observations; one input per capture thread, `capture.threads`). Each
//! message carries its sender's clock, which never goes back; every input
//! sends at least one message per tick of packet time (a second in replays,
//! 20 ms live: [`crate::pipeline::RunOptions::tick`]; each capture thread's
//! dispatcher sends every worker a batch when its clock enters a new tick, and
//! the capture thread its observations at the same moment). The
//! merge holds each input's messages in a queue and releases the one with the
//! smallest clock (ties: the lowest input) only when every input still
//! running has one queued, so the engine sees the same sequence whatever the
//! threads' timing: the same capture gives the same alerts. The queues never
//! block a sender; they hold at most about a tick of input.
//!
//! With detection on, flow records are written in merge order, each with what
//! its flow's first payloads said ([`FlowMetas`]: protocol, TLS, HTTP), which
//! the observations before it in that order carry: a record's line waits at
//! most about a tick. With detection off, records are written as they
//! arrive.
//!
//! This stage is the one place where records and alerts leave for the outputs, so the
//! `[privacy]` rewrite ([`Privacy`]) happens here: every flow record on its way to the JSON
//! lines writer and the exporters, every alert on its way to the alert file and the spool.
//! The engine is handed the records as they came.

use std::collections::VecDeque;
use std::io::Write;

use crossbeam_channel::Receiver;

use crate::alert::{Alert, Detector, LearningState};
use crate::control::{Call, Request};
use crate::detect::Engine;
use crate::flow::FlowRecord;
use crate::observe::{Observation, ObserveCounters};
use crate::output::flow_json::FlowJsonWriter;
use crate::output::flow_meta::FlowMetas;
use crate::privacy::Privacy;
use crate::stats::{DetectionJson, ObservedJson, StatsHub};

/// How often a holding analysis stage looks at its flag.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// A message to the analysis stage.
#[derive(Debug)]
pub enum AnalysisMsg {
    /// Flow records from a worker, with the worker's clock.
    Records {
        /// The worker.
        input: usize,
        /// The worker's clock (its last batch's), ns.
        clock_ns: u64,
        /// Records, possibly none (a heartbeat).
        records: Vec<FlowRecord>,
    },
    /// Observations from the capture thread, with the capture clock.
    Observations {
        /// The capture thread's input number.
        input: usize,
        /// The capture clock, ns.
        clock_ns: u64,
        /// Observations, possibly none (a heartbeat).
        obs: Vec<Observation>,
        /// The observer's counters so far.
        counters: ObserveCounters,
    },
    /// The input has sent everything.
    Done {
        /// The input.
        input: usize,
    },
}

impl AnalysisMsg {
    fn input(&self) -> usize {
        match self {
            Self::Records { input, .. } | Self::Observations { input, .. } | Self::Done { input } => *input,
        }
    }

    fn clock(&self) -> u64 {
        match self {
            Self::Records { clock_ns, .. } | Self::Observations { clock_ns, .. } => *clock_ns,
            Self::Done { .. } => u64::MAX,
        }
    }
}

/// Orders messages of several inputs by their clocks.
#[derive(Debug)]
struct Merge {
    queues: Vec<VecDeque<AnalysisMsg>>,
    done: Vec<bool>,
}

impl Merge {
    fn new(inputs: usize) -> Self {
        Self { queues: (0..inputs).map(|_| VecDeque::new()).collect(), done: vec![false; inputs] }
    }

    fn push(&mut self, msg: AnalysisMsg) {
        if let Some(q) = self.queues.get_mut(msg.input()) {
            q.push_back(msg);
        }
    }

    /// The next message in order, if every running input has one queued.
    fn pop(&mut self) -> Option<AnalysisMsg> {
        let mut best: Option<(u64, usize)> = None;
        for (i, q) in self.queues.iter().enumerate() {
            match q.front() {
                Some(m) => {
                    if best.is_none_or(|(c, _)| m.clock() < c) {
                        best = Some((m.clock(), i));
                    }
                }
                None if self.done[i] => {}
                None => return None,
            }
        }
        let (_, i) = best?;
        let msg = self.queues[i].pop_front()?;
        if matches!(msg, AnalysisMsg::Done { .. }) {
            self.done[i] = true;
        }
        Some(msg)
    }
}

/// The observer counters of each capture thread (each message carries its thread's counters so
/// far), summed for the statistics.
#[derive(Debug, Default)]
struct Observed {
    by_input: Vec<(usize, ObserveCounters)>,
}

impl Observed {
    fn set(&mut self, input: usize, counters: ObserveCounters) {
        match self.by_input.iter_mut().find(|(i, _)| *i == input) {
            Some((_, c)) => *c = counters,
            None => self.by_input.push((input, counters)),
        }
    }

    fn total(&self) -> ObserveCounters {
        let mut t = ObserveCounters::default();
        for (_, c) in &self.by_input {
            t.add(c);
        }
        t
    }
}

/// Where alerts are written as ECS JSON lines.
pub struct AlertWriter {
    out: Box<dyn Write + Send>,
    /// Alerts written.
    pub written: u64,
}

impl std::fmt::Debug for AlertWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertWriter").field("written", &self.written).finish_non_exhaustive()
    }
}

impl AlertWriter {
    /// A writer to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out, written: 0 }
    }

    /// Writes alerts, one line each, and flushes: alerts are few and wanted at once.
    pub fn write(&mut self, alerts: &[Alert]) -> std::io::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for a in alerts {
            serde_json::to_writer(&mut buf, &a.to_ecs())?;
            buf.push(b'\n');
        }
        self.out.write_all(&buf)?;
        self.out.flush()?;
        self.written += alerts.len() as u64;
        Ok(())
    }
}

/// The analysis stage's parts.
#[derive(Debug)]
pub struct Analysis {
    /// Flow record output.
    pub flows: Option<FlowJsonWriter>,
    /// The detection engine (`None`: detection off).
    pub engine: Option<Engine>,
    /// Alert output.
    pub alerts: Option<AlertWriter>,
    /// Called with every batch of alerts raised (alert delivery hooks in here).
    pub on_alerts: Option<AlertHook>,
    /// Alerts raised outside the engine (the capture-loss watch), taken
    /// whenever a message has been handled and written like the engine's.
    pub side_alerts: Option<AlertPull>,
    /// New detection settings after a reload (SIGHUP), polled between messages.
    pub settings: Option<SettingsPull>,
    /// Flow export (IPFIX, NetFlow v9, Kafka): every record is offered, never waited for.
    pub export: Option<crate::output::export::ExportFeed>,
    /// Requests from the control socket (verdicts, reports), answered between messages.
    pub control: Option<Receiver<Call>>,
    /// Automated response (`run` only): every alert is offered with its host's learning state.
    pub respond: Option<crate::respond::Feed>,
    /// The `[privacy]` rewrite of what goes out (`None`: outputs get records and alerts as
    /// they are).
    pub privacy: Option<Privacy>,
    /// Set: after the input ends, keep answering control requests until the flag is set.
    pub hold: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// A function that returns new detection settings once after each reload.
pub struct SettingsPull(pub Box<dyn FnMut() -> Option<crate::detect::config::DetectionSettings> + Send>);

impl std::fmt::Debug for SettingsPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SettingsPull")
    }
}

/// A function that hands over alerts raised elsewhere since its last call.
pub struct AlertPull(pub Box<dyn FnMut() -> Vec<Alert> + Send>);

impl std::fmt::Debug for AlertPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertPull")
    }
}

/// What an [`AlertHook`] calls.
pub type AlertFn = dyn FnMut(&[Alert]) + Send;

/// A function that takes every batch of alerts raised.
pub struct AlertHook(pub Box<AlertFn>);

impl std::fmt::Debug for AlertHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertHook")
    }
}

impl Analysis {
    /// Runs until every input is done; returns the engine (for its state).
    pub fn run(
        mut self,
        rx: &Receiver<AnalysisMsg>,
        inputs: usize,
        hub: &StatsHub,
    ) -> std::io::Result<Option<Engine>> {
        let mut merge = Merge::new(inputs);
        let mut observed = Observed::default();
        let mut metas = FlowMetas::default();
        loop {
            let msg = match self.control.as_ref() {
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
                Some(ctl) => crossbeam_channel::select! {
                    recv(rx) -> m => match m {
                        Ok(m) => m,
                        Err(_) => break,
                    },
                    recv(ctl) -> call => {
                        match call {
                            Ok(call) => {
                                self.answer(call);
                                self.publish(hub, observed.total());
                            }
                            // The socket's thread is gone: no more requests.
                            Err(_) => self.control = None,
                        }
                        continue;
                    },
                },
            };
            if self.engine.is_none() {
                if let AnalysisMsg::Records { records, .. } = &msg {
                    self.write_records(records, None, hub)?;
                    if rx.is_empty()
                        && let Some(w) = self.flows.as_mut()
                    {
                        w.flush()?;
                    }
                }
                self.emit()?;
                continue;
            }
            if let (Some(pull), Some(engine)) = (self.settings.as_mut(), self.engine.as_mut())
                && let Some(new) = (pull.0)()
            {
                // Thresholds and allow-lists change; baselines and buckets stay.
                engine.reconfigure(new);
            }
            merge.push(msg);
            let mut raised = false;
            while let Some(m) = merge.pop() {
                raised |= self.process(m, &mut observed, &mut metas, hub)?;
            }
            if rx.is_empty()
                && let Some(w) = self.flows.as_mut()
            {
                w.flush()?;
            }
            if raised || rx.is_empty() {
                self.publish(hub, observed.total());
            }
        }
        // Every sender is gone: whatever is queued goes through in order.
        merge.done.iter_mut().for_each(|d| *d = true);
        while let Some(m) = merge.pop() {
            self.process(m, &mut observed, &mut metas, hub)?;
        }
        if let Some(w) = self.flows.as_mut() {
            w.flush()?;
        }
        if let Some(engine) = self.engine.as_mut() {
            engine.finish();
        }
        self.emit()?;
        self.publish(hub, observed.total());
        self.hold(hub, observed.total());
        Ok(self.engine)
    }

    /// `replay --hold`: answers control requests from the final state until the hold flag is
    /// set; a verdict is saved to the state file as during the run.
    fn hold(&mut self, hub: &StatsHub, observed: ObserveCounters) {
        let Some(until) = self.hold.take() else { return };
        eprintln!("nbad-sensor: input ended; holding the control socket and console until SIGINT or SIGTERM");
        while !until.load(std::sync::atomic::Ordering::Relaxed) {
            let Some(ctl) = self.control.as_ref() else {
                std::thread::sleep(HOLD_POLL);
                continue;
            };
            match ctl.recv_timeout(HOLD_POLL) {
                Ok(call) => {
                    self.answer(call);
                    self.publish(hub, observed);
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => self.control = None,
            }
        }
    }

    fn process(
        &mut self,
        msg: AnalysisMsg,
        observed: &mut Observed,
        metas: &mut FlowMetas,
        hub: &StatsHub,
    ) -> std::io::Result<bool> {
        if self.engine.is_none() {
            return Ok(false);
        }
        match msg {
            AnalysisMsg::Records { clock_ns, records, .. } => {
                self.write_records(&records, Some(metas), hub)?;
                let Some(engine) = self.engine.as_mut() else { return Ok(false) };
                engine.advance(clock_ns);
                for r in &records {
                    engine.record(r);
                }
            }
            AnalysisMsg::Observations { input, clock_ns, obs, counters } => {
                observed.set(input, counters);
                let Some(engine) = self.engine.as_mut() else { return Ok(false) };
                let keep = self.flows.is_some();
                for o in &obs {
                    if keep {
                        metas.observe(o);
                    }
                    if let Some(p) = self.privacy.as_mut() {
                        p.observe(o);
                    }
                    engine.observation(o);
                }
                engine.advance(clock_ns);
            }
            AnalysisMsg::Done { .. } => {}
        }
        self.emit()
    }

    /// Answers a control request (see [`crate::control::answer`]).
    fn answer(&mut self, call: Call) {
        let mut request = call.request;
        // An id copied from a pseudonymising output names its real alert.
        if let (Request::Verdict { verdict }, Some(p), Some(engine)) =
            (&mut request, self.privacy.as_ref(), self.engine.as_ref())
            && let Some(real) = p.real_id(&verdict.id, engine.verdicts())
        {
            verdict.id = real;
        }
        let _ = call.reply.send(crate::control::answer(self.engine.as_mut(), request));
    }

    /// Writes `records` to the flow output (with their payload facts from `metas`, when
    /// detection runs) and offers them to the exporters, rewritten by `[privacy]` first.
    fn write_records(
        &mut self,
        records: &[FlowRecord],
        metas: Option<&mut FlowMetas>,
        hub: &StatsHub,
    ) -> std::io::Result<()> {
        // With pseudonyms on, records pass the rewrite even with no flow output: it remembers
        // their Community IDs for the alerts.
        if self.flows.is_none() && self.export.is_none() && self.privacy.is_none() {
            hub.add_records_written(records.len() as u64);
            return Ok(());
        }
        let out = match self.privacy.as_mut() {
            Some(p) => p.records(records),
            None => std::borrow::Cow::Borrowed(records),
        };
        if let Some(w) = self.flows.as_mut() {
            let mut metas = metas;
            for (real, r) in records.iter().zip(out.iter()) {
                // Facts are found by the real endpoints, then rewritten.
                let meta = metas.as_deref_mut().and_then(|m| m.for_record(real));
                let meta = match self.privacy.as_mut() {
                    Some(p) => p.meta(meta),
                    None => meta,
                };
                w.write(r, meta.as_ref())?;
            }
        }
        if let Some(feed) = self.export.as_ref() {
            feed.offer(&out);
        }
        hub.add_records_written(records.len() as u64);
        Ok(())
    }

    fn emit(&mut self) -> std::io::Result<bool> {
        let mut alerts = self.engine.as_mut().map(Engine::take_alerts).unwrap_or_default();
        if let Some(pull) = self.side_alerts.as_mut() {
            alerts.extend((pull.0)());
        }
        if alerts.is_empty() {
            return Ok(false);
        }
        // Response acts on the real addresses; what it sends out (the webhook) is rewritten.
        let real = self.respond.is_some().then(|| alerts.clone());
        if let Some(p) = self.privacy.as_mut() {
            alerts = p.alerts(&alerts);
        }
        if let Some(w) = self.alerts.as_mut() {
            w.write(&alerts)?;
        }
        if let Some(hook) = self.on_alerts.as_mut() {
            (hook.0)(&alerts);
        }
        if let (Some(feed), Some(real)) = (self.respond.as_ref(), real) {
            for (a, shown) in real.iter().zip(&alerts) {
                let state =
                    self.engine.as_ref().map_or(LearningState::NotApplicable, |e| e.host_state(a.host));
                feed.offer(a, shown, state);
            }
        }
        Ok(true)
    }

    fn publish(&self, hub: &StatsHub, o: ObserveCounters) {
        let Some(engine) = self.engine.as_ref() else { return };
        let (alerts, per) = engine.alert_counters();
        hub.publish_detection(DetectionJson {
            observed: ObservedJson {
                identified: o.identified,
                dns: o.dns,
                icmp_echo: o.icmp_echo,
                malformed: o.malformed,
                evasive: o.evasive,
                unreachable: o.unreachable,
                arp_requests: o.arp_requests,
                dhcp_requests: o.dhcp_requests,
                flights_dropped: o.flights_dropped,
            },
            engine: engine.counters(),
            alerts,
            alerts_by_detector: Detector::ALL.iter().zip(per).map(|(d, n)| (d.name(), n)).collect(),
            alerts_written: self.alerts.as_ref().map_or(0, |w| w.written),
            verdicts: engine.verdict_figures(),
            privacy: self.privacy.as_ref().and_then(Privacy::counters),
        });
    }
}
