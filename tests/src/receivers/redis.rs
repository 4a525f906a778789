//! `redis-server` on a free loopback port, persisting to an append-only file in a temporary
//! directory (fsync always), so a stopped and restarted Redis still has what it acknowledged.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{Process, find_program, wait_for_port};

/// A running Redis.
#[derive(Debug)]
pub struct Redis {
    /// Its port.
    pub port: u16,
    /// The server process.
    pub process: Process,
}

impl Redis {
    /// Starts redis-server on `port`; `None` when it is not installed.
    pub fn start(dir: &Path, port: u16) -> Result<Option<Self>> {
        let Some(bin) = find_program("redis-server", &[]) else { return Ok(None) };
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir);
        let process = Process::spawn("redis-server", &mut cmd, &dir.join(format!("redis-{port}.log")))?;
        wait_for_port(port, Duration::from_secs(10)).with_context(|| process.log())?;
        Ok(Some(Self { port, process }))
    }

    /// The URL the sink is configured with.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `XRANGE stream - +` as (field, value) lists, via redis-cli.
    pub fn stream_text(&self, stream: &str) -> Result<String> {
        let cli = find_program("redis-cli", &[]).context("redis-cli not found")?;
        let out = Command::new(cli)
            .args(["-p", &self.port.to_string(), "--raw", "XRANGE", stream, "-", "+"])
            .output()?;
        if !out.status.success() {
            bail!("redis-cli XRANGE failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
