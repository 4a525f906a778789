//! The companions of `run` and `replay` that answer people while the pipeline runs: the
//! control socket and the web console, which share one channel to the analysis stage (the
//! engine's one owner), and the console's store, fed by the alert hook; and `nbad-sensor
//! console`, the console of a stopped sensor (its alerts file and saved state).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::Receiver;

use crate::alert::Alert;
use crate::config::Config;
use crate::console::{Console, Store};
use crate::control::{self, Call};
use crate::deliver::format::ecs_in::parse_line;
use crate::pipeline::analysis::AlertHook;
use crate::stats::StatsHub;

/// What [`start`] started; dropping it closes the socket and stops the console.
#[derive(Debug)]
pub(super) struct Companions {
    _socket: Option<control::Server>,
    _console: Option<Console>,
    /// The console's store of recent alerts.
    pub store: Option<Store>,
    /// The requests, for the analysis stage (`None`: nobody can ask).
    pub requests: Option<Receiver<Call>>,
}

/// Opens the control socket (`control.socket`, with detection on) and starts the console
/// (`console.listen`).
pub(super) fn start(cfg: &Config, hub: &Arc<StatsHub>) -> anyhow::Result<Companions> {
    let detecting = cfg.detection.enabled;
    let wanted = detecting && (cfg.control_socket.is_some() || cfg.console.is_some());
    let (tx, rx) = if wanted { Some(control::channel()).unzip() } else { (None, None) };
    let socket = match (&cfg.control_socket, &tx) {
        (Some(path), Some(tx)) => Some(control::serve(path, tx.clone())?),
        _ => None,
    };
    let (console, store) = match &cfg.console {
        Some(settings) => {
            let store = Store::new(settings.max_alerts);
            let console = crate::console::start(
                settings,
                store.clone(),
                tx,
                Arc::clone(hub),
                cfg.flows.max_flows as u64,
            )?;
            eprintln!("nbad-sensor: console at {}", console.url());
            (Some(console), Some(store))
        }
        None => (None, None),
    };
    Ok(Companions { _socket: socket, _console: console, store, requests: rx })
}

/// `nbad-sensor console`: the console of a stopped sensor, answering from its saved state.
pub(super) fn serve_stopped(cfg: &Config, alerts: Option<&Path>) -> anyhow::Result<()> {
    let settings = cfg.console.as_ref().with_context(|| {
        format!(
            "{}: console.listen is not set: the console is off in this configuration",
            cfg.origin().display()
        )
    })?;
    let mut engine = super::build_engine(cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot install signal handlers")?;
    }
    let store = Store::new(settings.max_alerts);
    if let Some(path) = alerts {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the alerts file", path.display()))?;
        let (ok, bad): (Vec<_>, Vec<_>) =
            text.lines().filter(|l| !l.trim().is_empty()).map(parse_line).partition(Result::is_ok);
        store.add(&ok.into_iter().filter_map(Result::ok).collect::<Vec<Alert>>());
        if !bad.is_empty() {
            eprintln!("nbad-sensor: {}: {} lines are not alerts; left out", path.display(), bad.len());
        }
    }
    let (tx, rx) = control::channel();
    let hub = Arc::new(StatsHub::new(cfg.flows.workers.max(1)));
    let console = crate::console::start(settings, store, Some(tx), hub, cfg.flows.max_flows as u64)?;
    eprintln!("nbad-sensor: console at {} (a stopped sensor's; until SIGINT or SIGTERM)", console.url());
    while !stop.load(Ordering::Relaxed) {
        if let Ok(call) = rx.recv_timeout(POLL) {
            let _ = call.reply.send(control::answer(engine.as_mut(), call.request));
        }
    }
    Ok(())
}

/// How often the stopped sensor's console looks for a signal.
const POLL: Duration = Duration::from_millis(200);

/// `inner` (alert delivery), and the console's store when there is one.
pub(super) fn hook(store: Option<Store>, inner: Option<AlertHook>) -> Option<AlertHook> {
    match (store, inner) {
        (None, inner) => inner,
        (Some(store), None) => Some(AlertHook(Box::new(move |a: &[Alert]| store.add(a)))),
        (Some(store), Some(mut inner)) => Some(AlertHook(Box::new(move |a: &[Alert]| {
            store.add(a);
            (inner.0)(a);
        }))),
    }
}
