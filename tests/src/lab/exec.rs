//! Every process the lab starts, bounded in time twice over.
//!
//! - Each one runs under `timeout(1)` (`timeout -k 2 <limit>`), so it ends
//!   even if the process that started it is killed with SIGKILL and never
//!   tears down. `timeout` also puts it in a process group of its own: a
//!   Ctrl-C on the terminal reaches only the caller, which then tears down
//!   in order (sensor first, so that it can write its last records).
//! - The caller waits against a deadline and polls [`stop_requested`]: a
//!   signal handler that calls [`request_stop`] makes every wait return
//!   early, and the process is killed. Teardown's own commands are
//!   [`Exec::uninterruptible`]: they run because of the stop.
//!
//! Signals go through `kill(1)` (procps), so this module needs no unsafe
//! code and no libc binding. SIGTERM to `timeout` is passed on to its whole
//! process group; SIGKILL reaches `timeout` only, which is why teardown
//! also kills whatever still runs in the lab's namespaces.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::preflight::search_path;

/// How often waits look at the child and at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Grace between SIGTERM and SIGKILL (also `timeout -k`).
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// Output kept per stream of a short command; the rest is read and dropped.
const OUTPUT_CAP: usize = 1 << 20;

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every wait in the lab to give up: for a SIGINT/SIGTERM handler
/// (an atomic store is async-signal-safe).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// True once [`request_stop`] was called.
#[must_use]
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The error an interrupted wait returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped by a signal")
    }
}

impl std::error::Error for Stopped {}

/// Sleeps for `d`, or less when a stop is requested (then `Err(Stopped)`).
pub fn nap(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop_requested() {
            return Err(Stopped.into());
        }
        thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// Polls `ready` until it is true, `limit` passes (error naming `what`) or a
/// stop is requested.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let end = Instant::now() + limit;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("{what}: not ready after {limit:?}");
        }
        nap(Duration::from_millis(50))?;
    }
}

/// Sends `signal` (`"TERM"`, `"KILL"`) to `pid`; errors are ignored (the
/// process may have exited meanwhile).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .env("PATH", search_path())
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A command line to run in a lab namespace (or, without one, here).
#[derive(Debug, Clone)]
pub struct Exec {
    ns: Option<String>,
    argv: Vec<String>,
    limit: Duration,
    stdin: Option<PathBuf>,
    interruptible: bool,
}

impl Exec {
    /// `argv` in namespace `ns` (`None`: the caller's namespace, for `ip`
    /// and `tc` commands that name their namespace themselves). The default
    /// limit is 10 s.
    pub fn new<S: AsRef<str>>(ns: Option<&str>, argv: &[S]) -> Self {
        Self {
            ns: ns.map(str::to_owned),
            argv: argv.iter().map(|a| a.as_ref().to_owned()).collect(),
            limit: Duration::from_secs(10),
            stdin: None,
            interruptible: true,
        }
    }

    /// Sets the time limit.
    #[must_use]
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Feeds a file to standard input (otherwise /dev/null).
    #[must_use]
    pub fn stdin(mut self, path: &Path) -> Self {
        self.stdin = Some(path.to_owned());
        self
    }

    /// Runs to the end (or its limit) even after a stop request: for
    /// teardown, which runs *because* of one.
    #[must_use]
    pub fn uninterruptible(mut self) -> Self {
        self.interruptible = false;
        self
    }

    /// The command line, for messages.
    #[must_use]
    pub fn display(&self) -> String {
        let ns = self.ns.as_ref().map(|ns| format!("[{ns}] ")).unwrap_or_default();
        format!("{ns}{}", self.argv.join(" "))
    }

    /// `[ip netns exec NS] timeout -k 2 LIMIT argv…`
    fn command(&self) -> Command {
        let mut cmd;
        if let Some(ns) = &self.ns {
            cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, "timeout"]);
        } else {
            cmd = Command::new("timeout");
        }
        cmd.env("PATH", search_path());
        cmd.arg("-k").arg(secs(KILL_GRACE)).arg(secs(self.limit)).args(&self.argv);
        cmd
    }

    /// Runs it to the end (or its limit) and returns what it did.
    pub fn run(&self) -> Result<Output> {
        let mut cmd = self.command();
        let stdin = match &self.stdin {
            Some(path) => {
                Stdio::from(File::open(path).with_context(|| format!("opening {}", path.display()))?)
            }
            None => Stdio::null(),
        };
        cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting `{}`", self.display()))?;
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        // `timeout` ends it at the limit; this deadline is a backstop.
        let backstop = self.limit + 2 * KILL_GRACE;
        let status = loop {
            if let Some(status) = child.try_wait().context("waiting for a lab command")? {
                break status;
            }
            let stopped = self.interruptible && stop_requested();
            if stopped || start.elapsed() > backstop {
                stop_child(&mut child);
                if stopped {
                    return Err(Stopped.into());
                }
                bail!("`{}` outlived its time limit of {:?}", self.display(), self.limit);
            }
            thread::sleep(POLL);
        };
        Ok(Output {
            command: self.display(),
            // timeout(1) exits 124 when it had to stop the command.
            timed_out: status.code() == Some(124),
            status,
            elapsed: start.elapsed(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// Runs it and fails unless it exits 0 within its limit.
    pub fn run_ok(&self) -> Result<Output> {
        let out = self.run()?;
        if !out.status.success() {
            bail!("{}", out.describe());
        }
        Ok(out)
    }

    /// Starts it as a long-running process whose stdout and stderr go to `log`.
    pub fn spawn(&self, name: &str, log: &Path) -> Result<Daemon> {
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let file2 = file.try_clone().context("duplicating a log file handle")?;
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2)
            .spawn()
            .with_context(|| format!("starting {name}: `{}`", self.display()))?;
        Ok(Daemon { name: name.to_owned(), command: self.display(), child, log: log.to_owned() })
    }

    /// Starts it with stdout and stderr piped to the caller.
    pub fn spawn_piped(&self) -> Result<(Child, ChildStdout, ChildStderr)> {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{}`", self.display()))?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            stop_child(&mut child);
            bail!("`{}`: no pipes", self.display());
        };
        Ok((child, out, err))
    }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs().max(1))
}

fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    thread::spawn(move || {
        let Some(mut pipe) = pipe else { return String::new() };
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = OUTPUT_CAP.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// SIGTERM, up to [`KILL_GRACE`] to exit, then SIGKILL; reaps it.
pub fn stop_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), "TERM");
    let end = Instant::now() + KILL_GRACE;
    while Instant::now() < end {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    /// The command line.
    pub command: String,
    /// Its exit status (`timeout`'s, which is the command's unless it timed out).
    pub status: ExitStatus,
    /// True when `timeout` stopped it at its limit.
    pub timed_out: bool,
    /// How long it ran.
    pub elapsed: Duration,
    /// Standard output (at most 1 MiB).
    pub stdout: String,
    /// Standard error (at most 1 MiB).
    pub stderr: String,
}

impl Output {
    /// One paragraph: the command, how it ended, the end of its stderr.
    #[must_use]
    pub fn describe(&self) -> String {
        let how = if self.timed_out {
            format!("stopped at its time limit after {:.1?}", self.elapsed)
        } else {
            format!("{} after {:.1?}", self.status, self.elapsed)
        };
        format!("`{}`: {how}{}", self.command, tail_block(&self.stderr))
    }
}

/// The last lines of `text`, indented under a message (empty when blank).
#[must_use]
pub fn tail_block(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(8)..];
    format!("\n    {}", tail.join("\n    "))
}

/// A long-running lab process (a server, a tunnel client). Stopped on drop.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    command: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// What it is (`"dnsmasq"`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True while it runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails, with the end of its log, if it has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        bail!("{} exited early: `{}`{}", self.name, self.command, tail_block(&self.log_text()))
    }

    /// Everything it logged so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
