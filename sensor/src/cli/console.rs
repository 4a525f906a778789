//! The companions of `run` and `replay` that answer people while the pipeline runs: the
//! control socket and the web console, which share one channel to the analysis stage (the
//! engine's one owner), and the console's store, fed by the alert hook.

use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::alert::Alert;
use crate::config::Config;
use crate::console::{Console, Store};
use crate::control::{self, Call};
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
