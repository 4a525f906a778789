//! Conservative automated response (opt-in, off by default): a webhook and an
//! nftables quarantine or block for alerts and incident records above a score,
//! behind guardrails, every step in an audit log.
//!
//! Guardrails, in the order [`Guard::decide`] applies them:
//! 1. only alerts at or above `min_score`, of the listed detectors (never
//!    `capture_loss`: the sensor's own health);
//! 2. never act on an address that is not one host's (unspecified, broadcast,
//!    multicast: a DHCP flood from `0.0.0.0`), on the `never_act` networks (gateways, DNS servers, ...), on
//!    the alert sinks' receivers, on an inside host the sensor learned serves
//!    DNS or DHCP, or on an asset of `never_act_min_criticality` or more;
//! 3. no action while the host is still learning (or stale): its baseline
//!    cannot yet tell its own normal from an attack;
//! 4. at most `max_actions_per_hour` actions in any rolling hour;
//! 5. one action per address at a time (a repeat while it lasts does nothing);
//! 6. `dry_run`: the audit log says what would have been done, nothing is.
//!
//! Every action ends after `ttl_s`: the nftables element carries the TTL as its
//! kernel timeout (undone even if the sensor dies) and the sensor deletes it and
//! logs the undo. Response runs on its own thread (`nft` or SSH may take
//! seconds); the analysis stage hands it alerts over a bounded channel and never
//! waits: when the channel is full the alert is not acted on and is counted.
//!
//! Response acts on the world now, so it runs in `nbad-sensor run` only (never
//! on a replay of old traffic) and its times are the wall clock's.

pub mod audit;
pub mod config;
pub mod nft;

use std::collections::VecDeque;
use std::net::{IpAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, select, tick};
use ipnet::IpNet;

use self::audit::{AuditLog, Event, Outcome};
use self::config::{NftAction, ResponseSettings};
use crate::alert::{Alert, Detector, LearningState};
use crate::deliver::Delivery;

pub use config::ResponseSettings as Settings;

/// Alerts waiting for the response thread, at most.
const QUEUE: usize = 1_024;
/// One hour, ns.
const HOUR_NS: u64 = 3_600_000_000_000;

/// What the guardrails decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not a candidate at all (score, detector): nothing is logged.
    Ignore,
    /// A candidate a guardrail stopped: logged with the reason.
    Refuse(String),
    /// Act on this address.
    Act(IpAddr),
}

/// One action in force.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Active {
    target: IpAddr,
    alert_id: String,
    detector: &'static str,
    score: u8,
    expires_ns: u64,
}

/// The guardrails' state: actions in the last hour, actions in force, addresses never acted on.
#[derive(Debug)]
pub struct Guard {
    settings: ResponseSettings,
    /// Wall-clock times of the actions of the last hour.
    recent: VecDeque<u64>,
    active: Vec<Active>,
    /// The alert sinks' receivers.
    collectors: Vec<IpAddr>,
    /// `[[detection.assets]]` at or above the criticality bar.
    critical: Vec<IpNet>,
}

impl Guard {
    /// The guard of `settings`; `collectors` are the alert sinks' addresses, `critical` the
    /// networks of assets at or above `never_act_min_criticality`.
    #[must_use]
    pub fn new(settings: ResponseSettings, collectors: Vec<IpAddr>, critical: Vec<IpNet>) -> Self {
        Self { settings, recent: VecDeque::new(), active: Vec::new(), collectors, critical }
    }

    /// The address the configured action takes from `alert`.
    fn target(&self, alert: &Alert) -> Option<IpAddr> {
        match self.settings.nft().map(|n| n.action) {
            Some(NftAction::BlockPeer) => alert.peer,
            Some(NftAction::QuarantineHost) | None => Some(alert.host),
        }
    }

    /// What to do with `alert`, whose host's baseline is in `state`, at wall-clock `now_ns`.
    #[must_use]
    pub fn decide(&self, alert: &Alert, state: LearningState, now_ns: u64) -> Decision {
        let s = &self.settings;
        if alert.risk_score < s.min_score
            || alert.detector == Detector::CaptureLoss
            || (!s.detectors.is_empty() && !s.detectors.contains(&alert.detector))
        {
            return Decision::Ignore;
        }
        let Some(target) = self.target(alert) else {
            return Decision::Refuse("the alert names no peer to block".into());
        };
        if !one_host(target) {
            return Decision::Refuse(format!("{target} is not one host's address"));
        }
        if let Some(net) = s.never_act.iter().find(|n| n.contains(&target)) {
            return Decision::Refuse(format!("{target} is in never_act ({net})"));
        }
        if self.collectors.contains(&target) {
            return Decision::Refuse(format!("{target} receives the sensor's alerts"));
        }
        if let Some(net) = self.critical.iter().find(|n| n.contains(&target)) {
            return Decision::Refuse(format!(
                "{target} is an asset of criticality {} or more ({net})",
                s.never_act_min_criticality
            ));
        }
        if target == alert.host
            && let Some(svc) = alert.host_role.as_ref().and_then(|r| {
                r.services
                    .iter()
                    .find(|x| ["/53 ", "/67 "].iter().any(|p| x.contains(p)) || x.ends_with("/53"))
            })
        {
            return Decision::Refuse(format!("{target} serves the network ({svc})"));
        }
        if matches!(state, LearningState::Learning | LearningState::Stale) {
            return Decision::Refuse(format!("{} is still learning its baseline", alert.host));
        }
        if self.active.iter().any(|a| a.target == target) {
            return Decision::Refuse(format!("an action on {target} is already in force"));
        }
        let hour_ago = now_ns.saturating_sub(HOUR_NS);
        if self.recent.iter().filter(|t| **t > hour_ago).count() >= s.max_actions_per_hour as usize {
            return Decision::Refuse(format!(
                "rate limit: {} actions in the last hour",
                s.max_actions_per_hour
            ));
        }
        Decision::Act(target)
    }

    /// Notes an action taken at `now_ns` on `target` for `alert`.
    fn record(&mut self, target: IpAddr, alert: &Alert, now_ns: u64) -> u64 {
        let hour_ago = now_ns.saturating_sub(HOUR_NS);
        while self.recent.front().is_some_and(|t| *t <= hour_ago) {
            self.recent.pop_front();
        }
        self.recent.push_back(now_ns);
        let expires_ns =
            now_ns.saturating_add(u64::try_from(self.settings.ttl.as_nanos()).unwrap_or(u64::MAX));
        self.active.push(Active {
            target,
            alert_id: alert.id.clone(),
            detector: alert.detector.name(),
            score: alert.risk_score,
            expires_ns,
        });
        expires_ns
    }

    /// Takes the actions that ended by `now_ns`.
    fn expired(&mut self, now_ns: u64) -> Vec<Active> {
        let (done, keep) = std::mem::take(&mut self.active).into_iter().partition(|a| a.expires_ns <= now_ns);
        self.active = keep;
        done
    }
}

/// What response did, for the statistics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Actions taken (or, in a dry run, that would have been).
    pub actions: AtomicU64,
    /// Candidates a guardrail refused.
    pub refused: AtomicU64,
    /// Actions undone at their TTL.
    pub undone: AtomicU64,
    /// Actions whose command failed.
    pub failed: AtomicU64,
    /// Alerts not acted on because the response thread's queue was full.
    pub dropped: AtomicU64,
}

/// Whether `ip` can name one host: not unspecified, broadcast or multicast.
fn one_host(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// An alert for the response thread, with its host's learning state.
#[derive(Debug)]
pub struct Job {
    /// The alert or incident record, with the real addresses the actions need.
    pub alert: Alert,
    /// The same as the outputs show it (`[privacy]`): what the webhook sends.
    pub shown: Alert,
    /// Its host's baseline state.
    pub state: LearningState,
}

/// Where the analysis stage hands alerts to the response thread.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: Sender<Job>,
    counters: Arc<Counters>,
}

impl Feed {
    /// Offers an alert (`shown`: as the outputs show it); never blocks (a full queue counts the
    /// alert as dropped).
    pub fn offer(&self, alert: &Alert, shown: &Alert, state: LearningState) {
        if self.tx.try_send(Job { alert: alert.clone(), shown: shown.clone(), state }).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The response thread.
#[derive(Debug)]
pub struct Responder {
    thread: Option<JoinHandle<()>>,
    stop: Sender<()>,
    /// What it did.
    pub counters: Arc<Counters>,
}

/// The alert sinks' receiver addresses (names resolved now, best effort).
#[must_use]
pub fn collector_addresses(sinks: &[crate::deliver::SinkSettings]) -> Vec<IpAddr> {
    sinks
        .iter()
        .flat_map(|s| s.kind.endpoints())
        .filter_map(|e| e.to_socket_addrs().ok())
        .flatten()
        .map(|a| a.ip())
        .collect()
}

impl Responder {
    /// Starts response: opens the audit log, sets up the nftables table, starts the webhook's
    /// delivery and the thread.
    ///
    /// # Errors
    /// The audit log cannot be opened, the nftables setup fails, or the webhook's spool cannot
    /// start.
    pub fn start(settings: ResponseSettings, guard: Guard, sensor_id: &str) -> anyhow::Result<(Self, Feed)> {
        let mut audit = AuditLog::open(&settings.audit_log, sensor_id)?;
        if let Some(n) = settings.nft().filter(|n| n.setup && !settings.dry_run) {
            nft::run(&n.command, &nft::setup_script(&n.table))
                .map_err(|e| anyhow::anyhow!("response.nftables: setting up table {}: {e}", n.table))?;
        }
        let webhook = match &settings.webhook {
            Some(d) => {
                Some(Delivery::start(d, sensor_id).map_err(|e| anyhow::anyhow!("response.webhook: {e}"))?)
            }
            None => None,
        };
        let (tx, rx) = bounded(QUEUE);
        let (stop, stopped) = bounded(1);
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new().name("nbad-respond".into()).spawn(move || {
            let mut w = Worker { guard, audit: &mut audit, webhook, counters: &c };
            w.run(&rx, &stopped);
            if let Some(d) = w.webhook.take() {
                let _ = d.shutdown(Duration::from_secs(5));
            }
        })?;
        let feed = Feed { tx, counters: Arc::clone(&counters) };
        Ok((Self { thread: Some(thread), stop, counters }, feed))
    }

    /// Stops the thread. Actions in force stay: their kernel timeouts undo them.
    pub fn finish(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker<'a> {
    guard: Guard,
    audit: &'a mut AuditLog,
    webhook: Option<Delivery>,
    counters: &'a Counters,
}

impl Worker<'_> {
    fn run(&mut self, rx: &Receiver<Job>, stop: &Receiver<()>) {
        let ticks = tick(Duration::from_millis(500));
        loop {
            select! {
                recv(rx) -> job => match job {
                    Ok(job) => self.handle(&job),
                    Err(_) => break,
                },
                recv(ticks) -> _ => self.undo_expired(crate::clock::wall_ns()),
                recv(stop) -> _ => break,
            }
        }
        // Jobs already queued when the sensor stops are still judged (and audited).
        while let Ok(job) = rx.try_recv() {
            self.handle(&job);
        }
    }

    fn handle(&mut self, job: &Job) {
        let now = crate::clock::wall_ns();
        let a = &job.alert;
        let s = &self.guard.settings;
        let (dry_run, nft_action) = (s.dry_run, s.nft().map(|n| n.action));
        let action = nft_action.map_or("webhook", NftAction::name);
        let event = |action, target, outcome, reason: String, expires_ns| Event {
            at_ns: now,
            action,
            target,
            alert_id: &a.id,
            detector: a.detector.name(),
            score: a.risk_score,
            dry_run,
            outcome,
            reason,
            expires_ns,
        };
        let target = match self.guard.decide(a, job.state, now) {
            Decision::Ignore => return,
            Decision::Refuse(why) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                self.audit.write(&event(action, Some(a.host), Outcome::Unknown, why, None));
                return;
            }
            Decision::Act(t) => t,
        };
        let expires = self.guard.record(target, a, now);
        self.counters.actions.fetch_add(1, Ordering::Relaxed);
        if dry_run {
            let why = "dry run: nothing was changed".to_owned();
            self.audit.write(&event(action, Some(target), Outcome::Unknown, why, Some(expires)));
            return;
        }
        if let Some(d) = &self.webhook {
            let (outcome, why) = match d.submit(&job.shown) {
                Ok(()) => (Outcome::Success, String::new()),
                Err(e) => (Outcome::Failure, e.to_string()),
            };
            self.audit.write(&event("webhook", Some(target), outcome, why, None));
        }
        if let Some(n) = self.guard.settings.nft() {
            let (outcome, why) =
                match nft::run(&n.command, &nft::add_script(n, target, self.guard.settings.ttl)) {
                    Ok(()) => (Outcome::Success, String::new()),
                    Err(e) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        (Outcome::Failure, e)
                    }
                };
            self.audit.write(&event(n.action.name(), Some(target), outcome, why, Some(expires)));
        }
    }

    fn undo_expired(&mut self, now: u64) {
        for a in self.guard.expired(now) {
            self.counters.undone.fetch_add(1, Ordering::Relaxed);
            let s = &self.guard.settings;
            let (outcome, reason, action) = match s.nft() {
                Some(n) if !s.dry_run => match nft::run(&n.command, &nft::delete_script(n, a.target)) {
                    Ok(()) => (Outcome::Success, String::new(), n.action),
                    Err(e) if nft::is_already_gone(&e) => {
                        (Outcome::Success, "already removed by its kernel timeout".to_owned(), n.action)
                    }
                    Err(e) => (Outcome::Failure, e, n.action),
                },
                Some(n) => (Outcome::Unknown, "dry run: nothing to undo".to_owned(), n.action),
                None => continue,
            };
            let name = match action {
                NftAction::QuarantineHost => "undo_quarantine_host",
                NftAction::BlockPeer => "undo_block_peer",
            };
            self.audit.write(&Event {
                at_ns: now,
                action: name,
                target: Some(a.target),
                alert_id: &a.alert_id,
                detector: a.detector,
                score: a.score,
                dry_run: s.dry_run,
                outcome,
                reason,
                expires_ns: Some(a.expires_ns),
            });
        }
    }
}

#[cfg(test)]
mod tests;
