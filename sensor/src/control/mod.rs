//! The local control socket: how `nbad-sensor verdict` and `nbad-sensor report`
//! reach a running sensor.
//!
//! A Unix stream socket (`control.socket`), mode 0660: whoever may write to it
//! may give verdicts, so it is the sensor user's and group's alone. One request
//! per connection, one JSON line each way ([`Request`], [`Reply`]). The
//! listener thread hands each request to the analysis stage, which owns the
//! detection engine, over a bounded channel and waits for its answer; the
//! analysis stage answers between two messages of its input, so a verdict
//! applies to the findings after it, in packet order.
//!
//! Bounded: a request line is at most [`MAX_REQUEST`] bytes and must arrive
//! within [`IO_TIMEOUT`]; a client that sends more, or nothing, is answered
//! with an error and dropped. One connection is served at a time.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender, bounded};
use serde::{Deserialize, Serialize};

use crate::detect::verdict;

/// The longest request line, bytes.
pub const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request, and the sensor to answer it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// An analyst's verdict.
    Verdict {
        /// The verdict.
        verdict: verdict::Request,
    },
    /// Precision, time to detect, suppressions.
    Report,
    /// What the engine knows of one host (the console's host page).
    Host {
        /// The host.
        host: std::net::IpAddr,
    },
    /// The hosts the engine tracks (the console's host list).
    Hosts,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reply {
    /// A verdict was applied.
    Applied {
        /// What it did.
        outcome: verdict::Outcome,
    },
    /// The report.
    Report {
        /// What the verdicts say.
        report: Report,
    },
    /// One host ([`Request::Host`]); `None` when the engine does not track it.
    Host {
        /// The host's view.
        view: Option<Box<crate::detect::view::HostView>>,
    },
    /// The host list ([`Request::Hosts`]).
    Hosts {
        /// Most recently learned first.
        hosts: Vec<crate::detect::view::HostSummary>,
    },
    /// The request was refused.
    Error {
        /// Why.
        message: String,
    },
}

/// What `nbad-sensor report` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Precision per detector and rule, time to detect.
    pub figures: verdict::Figures,
    /// Suppressions in force.
    pub suppressions: Vec<verdict::Suppression>,
    /// What verdicts did to findings.
    pub counters: verdict::Counters,
    /// Alerts remembered for verdicts.
    pub ledger: usize,
}

impl Report {
    /// The report of `book`.
    #[must_use]
    pub fn of(book: &verdict::Book) -> Self {
        Self {
            figures: book.figures(),
            suppressions: book.suppressions.clone(),
            counters: book.counters,
            ledger: book.ledger.len(),
        }
    }

    /// Plain text for a terminal.
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = self.figures.to_text();
        let c = &self.counters;
        let _ = writeln!(
            out,
            "suppressions in force: {} (findings silenced {}, under raised thresholds {}, expired {}); alerts remembered: {}",
            self.suppressions.len(),
            c.suppressed,
            c.below_raised_threshold,
            c.expired,
            self.ledger
        );
        for s in &self.suppressions {
            let _ = writeln!(out, "  {} (silenced {})", s.describe(), s.hits);
        }
        out
    }
}

/// The engine's answer to `request`. A verdict is saved at once (a snapshot of the state
/// file, when one is configured): it must survive a crash right after the analyst was told it
/// was applied.
pub fn answer(engine: Option<&mut crate::detect::Engine>, request: Request) -> Reply {
    let Some(engine) = engine else {
        return Reply::Error { message: "detection is off in this sensor".into() };
    };
    match request {
        Request::Report => Reply::Report { report: Report::of(engine.verdicts()) },
        Request::Host { host } => Reply::Host { view: engine.host_view(host).map(Box::new) },
        Request::Hosts => Reply::Hosts { hosts: engine.host_list() },
        Request::Verdict { verdict } => match engine.give_verdict(&verdict) {
            Ok(outcome) => {
                if let Some(path) = engine.settings().state_file.clone() {
                    engine.snapshot_to(&path);
                }
                Reply::Applied { outcome }
            }
            Err(e) => Reply::Error { message: e.to_string() },
        },
    }
}

/// A request from a client, and where its answer goes.
#[derive(Debug)]
pub struct Call {
    /// The request.
    pub request: Request,
    /// Its answer.
    pub reply: Sender<Reply>,
}

/// The listening socket; removed when dropped.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees `stop`.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The channel that carries requests to the analysis stage: the control socket's thread and
/// the web console send on it.
#[must_use]
pub fn channel() -> (Sender<Call>, Receiver<Call>) {
    bounded(1)
}

/// Opens the control socket at `path` and serves it on a thread; requests go to `tx` (see
/// [`channel`]).
///
/// # Errors
/// The socket cannot be created (its directory is missing, or another sensor answers on it).
pub fn serve(path: &Path, tx: Sender<Call>) -> anyhow::Result<Server> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("{}: another sensor answers on this control socket", path.display());
        }
        // A socket left by a sensor that was killed.
        std::fs::remove_file(path)
            .with_context(|| format!("{}: cannot remove the stale control socket", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("{}: cannot open the control socket", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("{}: cannot set the control socket's mode", path.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("nbad-control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = conn {
                    serve_one(stream, &tx);
                }
            }
        })
        .context("cannot start the control socket's thread")?;
    Ok(Server { path: path.to_path_buf(), stop })
}

fn serve_one(mut stream: UnixStream, tx: &Sender<Call>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let reply = match read_request(&stream) {
        Err(message) => Reply::Error { message },
        Ok(request) => {
            let (reply_tx, reply_rx) = bounded(1);
            match tx.send_timeout(Call { request, reply: reply_tx }, IO_TIMEOUT) {
                Err(_) => Reply::Error { message: "the sensor is busy or stopping; try again".into() },
                Ok(()) => reply_rx.recv_timeout(IO_TIMEOUT).unwrap_or_else(|_| Reply::Error {
                    message: "the sensor did not answer in time (is detection on?)".into(),
                }),
            }
        }
    };
    if let Ok(mut line) = serde_json::to_vec(&reply) {
        line.push(b'\n');
        let _ = stream.write_all(&line);
    }
    // Closing with unread bytes would reset the connection before the client read the answer
    // (an oversized request): end the answer, then drain what is left, boundedly.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = std::io::copy(&mut (&stream).take(DRAIN_LIMIT), &mut std::io::sink());
}

/// The most read and discarded after an answer, bytes.
const DRAIN_LIMIT: u64 = 1024 * 1024;

fn read_request(stream: &UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST + 1));
    reader.read_line(&mut line).map_err(|e| format!("cannot read the request: {e}"))?;
    if line.len() as u64 > MAX_REQUEST {
        return Err(format!("the request is longer than {MAX_REQUEST} bytes"));
    }
    serde_json::from_str(line.trim_end()).map_err(|e| format!("not a control request: {e}"))
}

/// Sends `request` to the sensor listening at `path` and returns its answer.
///
/// # Errors
/// The socket cannot be reached, or the answer is not one.
pub fn call(path: &Path, request: &Request) -> anyhow::Result<Reply> {
    let mut stream = UnixStream::connect(path)
        .with_context(|| format!("{}: cannot reach the sensor's control socket", path.display()))?;
    stream.set_read_timeout(Some(IO_TIMEOUT * 2))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream.take(16 * 1024 * 1024))
        .read_line(&mut answer)
        .with_context(|| format!("{}: no answer from the sensor", path.display()))?;
    serde_json::from_str(answer.trim_end())
        .with_context(|| format!("{}: the sensor's answer is not a control reply", path.display()))
}

/// Whether a sensor answers on `path`.
#[must_use]
pub fn is_live(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

#[cfg(test)]
mod tests;
