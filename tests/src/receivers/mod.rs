//! Real alert receivers for the delivery tests, started by the tests themselves on loopback,
//! on free ports, in temporary directories, and killed when their guard is dropped.
//!
//! - [`redis`]: `redis-server` (Debian `redis-server`); read back with `redis-cli XRANGE`.
//! - [`nats`]: `nats-server -js` (Debian `nats-server`); read back over the NATS protocol with
//!   the JetStream `STREAM.MSG.GET` API.
//! - [`syslog`]: `rsyslogd` (Debian `rsyslog`, `rsyslog-gnutls` for TLS) and `syslog-ng`
//!   (Debian `syslog-ng-core`, which conflicts with rsyslog as a package, so `cargo xtask setup`
//!   unpacks it under `target/receivers/syslog-ng`); both write what they receive to a file.
//! - [`opensearch`]: `osmem-server`, an OpenSearch-compatible server from PyPI, installed by
//!   `cargo xtask setup` into the venv `target/receivers/venv`.
//! - [`hec`]: a Splunk HTTP Event Collector built into the test from Splunk's documented
//!   requests, responses and status codes.
//! - [`flow_collectors`]: nfdump's `nfcapd` and pmacct's `nfacctd` (Debian `nfdump`,
//!   `pmacct`), IPFIX / NetFlow v9 collectors for the flow export tests.
//! - [`kafka`]: tansu, a Kafka-protocol broker (`cargo xtask setup` builds it into
//!   `target/tansu`), read back with tansu's own consumer; and a relay that cuts it off.
//! - [`alerts`]: ECS alert lines for `nbad-sensor alerts send`, and reading `event.id`s back.
//!
//! A receiver whose program is not installed is `None` from its `start`, and the test reports
//! itself skipped with [`not_installed`]; CI installs them all (`cargo xtask setup`) and fails
//! on such a skip.

pub mod alerts;
pub mod flow_collectors;
pub mod hec;
pub mod kafka;
pub mod nats;
pub mod opensearch;
pub mod redis;
pub mod syslog;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Reports the calling test as skipped because `what` is not installed.
pub fn not_installed(what: &str) {
    crate::gate::skip(
        crate::gate::Kind::Prerequisite,
        &format!("{what} is not installed (cargo xtask setup installs it)"),
    );
}

/// The workspace root (where `target/receivers` lives).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `name` on PATH, or the first of `also` that exists.
pub fn find_program(name: &str, also: &[PathBuf]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    on_path
        .or_else(|| {
            ["/usr/sbin", "/usr/bin", "/sbin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file())
        })
        .or_else(|| also.iter().find(|p| p.is_file()).cloned())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {limit:?}")
}

/// Polls `check` until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// A receiver process, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    what: String,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with its output in `log`.
    pub fn spawn(what: &str, cmd: &mut Command, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        Ok(Self { child, what: what.to_owned(), log: log.to_path_buf() })
    }

    /// The receiver's own output so far, for failure messages.
    pub fn log(&self) -> String {
        format!("{} log:\n{}", self.what, std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Fails if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status}); {}", self.what, self.log());
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 request to a loopback server; returns status and body.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    Ok((status, body.to_owned()))
}

/// `nbad-sensor alerts send` runs, and the configuration files they read.
pub mod send {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::thread;
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, Result};

    use crate::sensor::sensor_bin;

    /// Writes a configuration with the spool in `dir/spool` and the given sink tables (TOML
    /// `[[alerts.sinks]]` blocks); fast retries so the tests do not wait long.
    pub fn config(dir: &Path, sinks: &str) -> Result<PathBuf> {
        let path = dir.join("sensor.toml");
        let text = format!(
            "[sensor]\nid = \"test-sensor\"\n\n[alerts]\nspool_dir = \"{}\"\nfsync = \"never\"\nsegment_bytes = 65536\n\
             spool_max_bytes = 67108864\n\n{sinks}",
            dir.join("spool").display()
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// One `[[alerts.sinks]]` block with fast retries; `keys` are the type's own lines.
    pub fn sink(kind: &str, name: &str, keys: &str) -> String {
        format!(
            "[[alerts.sinks]]\ntype = \"{kind}\"\nname = \"{name}\"\nretry_initial_ms = 50\nretry_max_ms = 400\n\
             timeout_ms = 3000\n{keys}\n\n"
        )
    }

    /// Starts `nbad-sensor alerts send --config CONFIG --timeout TIMEOUT FILES...`.
    pub fn spawn(config: &Path, timeout_s: u64, files: &[&Path]) -> Result<Child> {
        spawn_bin(&sensor_bin()?, config, timeout_s, files)
    }

    /// [`spawn`] with the binary `bin`.
    pub fn spawn_bin(bin: &Path, config: &Path, timeout_s: u64, files: &[&Path]) -> Result<Child> {
        let mut cmd = Command::new(bin);
        cmd.args(["alerts", "send", "--config"]).arg(config).args(["--timeout", &timeout_s.to_string()]);
        cmd.args(files).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().context("starting nbad-sensor alerts send")
    }

    /// Runs it to the end (killed after `timeout_s` + 30 s: a hang is a failure).
    pub fn run(config: &Path, timeout_s: u64, files: &[&Path]) -> Result<Output> {
        run_bin(&sensor_bin()?, config, timeout_s, files)
    }

    /// [`run`] with the binary `bin`.
    pub fn run_bin(bin: &Path, config: &Path, timeout_s: u64, files: &[&Path]) -> Result<Output> {
        let mut child = spawn_bin(bin, config, timeout_s, files)?;
        let limit = Duration::from_secs(timeout_s + 30);
        let start = Instant::now();
        while child.try_wait()?.is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(child.wait_with_output()?)
    }

    /// stderr as text.
    pub fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
