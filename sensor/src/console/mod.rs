//! The local web console (`[console]`): server-rendered pages for an analyst on the sensor
//! machine: open incidents with their stages and risk, an alert's evidence drawn against its
//! baseline band and threshold with the flows behind it, a host's baselines, peers, protocols
//! and learning state, verdict buttons, and capture health (drops, capture loss, flow-table
//! fill, sink status).
//!
//! Owns: the console's settings ([`config`]), its credentials ([`auth`]), the ring of recent
//! alerts it lists ([`store`]), its pages and charts ([`pages`], [`chart`]) and its HTTP
//! server ([`server`]). It owns no detection state: host views and verdicts are asked of the
//! analysis stage over the control channel ([`crate::control::Call`]), so the engine keeps one
//! owner and a verdict applies between two messages, in packet order, as one from
//! `nbad-sensor verdict` does.
//!
//! Off by default; when on it binds the loopback address unless an address is written out (and
//! then needs TLS), and every page needs the token or a TLS client certificate.

pub mod auth;
pub mod chart;
pub mod config;
pub mod pages;
pub mod server;
pub mod store;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use crossbeam_channel::Sender;

pub use config::ConsoleSettings;
pub use store::Store;

use crate::control::Call;
use crate::stats::StatsHub;

/// The running console; dropping it stops the server.
#[derive(Debug)]
pub struct Console {
    addr: SocketAddr,
    url: String,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<JoinHandle<()>>,
}

impl Console {
    /// The address bound (the port chosen when `listen` asked for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The console's URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the console on its own thread.
///
/// # Errors
/// The token file or TLS files are unusable, or the address cannot be bound.
pub fn start(
    settings: &ConsoleSettings,
    store: Store,
    control: Option<Sender<Call>>,
    hub: Arc<StatsHub>,
    flow_capacity: u64,
) -> anyhow::Result<Console> {
    let tls = settings.tls.as_ref();
    let auth = auth::Auth::load(
        settings.token_file.as_deref(),
        tls.is_some_and(|t| t.client_ca.is_some()),
        tls.is_some(),
    )?;
    let acceptor = match tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(&t.cert, &t.key, t.client_ca.as_deref())
                .map_err(|e| anyhow::anyhow!("console.tls_cert / console.tls_key: {e}"))?,
        )),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("console: cannot start its runtime")?;
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("console.listen = \"{}\": cannot listen there", settings.listen))?;
    listener.set_nonblocking(true).context("console: cannot make the listener non-blocking")?;
    let addr = listener.local_addr().context("console: the listener has no address")?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener).context("console: cannot register the listener")?
    };
    let app = Arc::new(server::App { auth, store, control, hub, flow_capacity });
    let router = server::router(app);
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("nbad-console".into())
        .spawn(move || runtime.block_on(server::accept_loop(listener, acceptor, router, stopping)))
        .context("cannot start the console's thread")?;
    Ok(Console { addr, url: settings.url(addr), stop, thread: Some(thread) })
}
