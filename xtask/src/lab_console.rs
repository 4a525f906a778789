//! The end of `cargo xtask lab`: the web console of the run just shown. The lab's sensor runs
//! in its own network namespace and is stopped with the lab, so the console the demo ends with
//! is `nbad-sensor console` on this machine's loopback, serving the lab sensor's alerts and
//! saved state (host pages, verdicts).
//!
//! On a terminal it serves until Ctrl-C; otherwise (CI, `cargo xtask fresh`) the demo prints
//! the command and the URL it would serve and ends.

use std::fs;
use std::io::{IsTerminal as _, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cmd::{heading, note};
use nbad_tests::lab::exec;

/// The console's port on 127.0.0.1.
pub const PORT: u16 = 8480;

/// The files the console needs, in the lab's output folder.
#[derive(Debug)]
pub struct Files {
    /// The lab sensor's state file (baselines, verdicts).
    pub state: PathBuf,
    token: PathBuf,
    alerts: PathBuf,
    config: PathBuf,
}

impl Files {
    /// Names them in `out_dir`, removes the last run's state and writes a fresh token.
    pub fn prepare(out_dir: &Path) -> Result<Self> {
        let files = Self {
            state: out_dir.join("state.json"),
            token: out_dir.join("console.token"),
            alerts: out_dir.join("alerts.jsonl"),
            config: out_dir.join("console.toml"),
        };
        let _ = fs::remove_file(&files.state);
        let mut bytes = [0u8; 18];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .context("reading /dev/urandom")?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        fs::write(&files.token, &token).with_context(|| format!("writing {}", files.token.display()))?;
        fs::set_permissions(&files.token, fs::Permissions::from_mode(0o600))?;
        Ok(files)
    }

    /// `config` with the state file set under `[detection]`, so that the console can show the
    /// hosts' baselines after the sensor stopped.
    pub fn with_state(&self, config: &str) -> String {
        config.replacen(
            "[detection]\n",
            &format!("[detection]\nstate_file = \"{}\"\n", self.state.display()),
            1,
        )
    }

    fn token(&self) -> Result<String> {
        fs::read_to_string(&self.token).with_context(|| format!("reading {}", self.token.display()))
    }
}

/// Writes the alerts and the console's configuration, then serves the console (on a terminal,
/// until Ctrl-C) or prints how to.
pub fn finish(sensor_bin: &Path, files: &Files, lab_config: &str, alerts: &[Value]) -> Result<()> {
    heading("lab: the web console of this run");
    let lines: String = alerts.iter().map(|a| format!("{a}\n")).collect();
    fs::write(&files.alerts, lines).with_context(|| format!("writing {}", files.alerts.display()))?;
    let config = format!(
        "{}\n[console]\nlisten = \"{PORT}\"\ntoken_file = \"{}\"\n",
        lab_config.trim_end(),
        files.token.display()
    );
    fs::write(&files.config, config).with_context(|| format!("writing {}", files.config.display()))?;
    let url = format!("http://127.0.0.1:{PORT}/login?token={}", files.token()?);
    let command = format!(
        "{} console -c {} --alerts {}",
        sensor_bin.display(),
        files.config.display(),
        files.alerts.display()
    );
    if !std::io::stdin().is_terminal() {
        note(&format!("not a terminal: the console is not started; to browse this run, run\n    {command}"));
        println!("console: {url}");
        return Ok(());
    }
    let mut child = Command::new(sensor_bin)
        .args(["console", "-c"])
        .arg(&files.config)
        .arg("--alerts")
        .arg(&files.alerts)
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {command}"))?;
    println!("console: {url}");
    note("open it in a browser on this machine; Ctrl-C ends the console and the demo");
    while !exec::stop_requested() {
        if let Some(status) = child.try_wait()? {
            note(&format!("the console stopped ({status}); to start it again: {command}"));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    Ok(())
}
