//! `nbad-sensor verdict ALERT_ID ...` and `nbad-sensor report`: analysts'
//! verdicts and the figures they give, against the running sensor (its control
//! socket) or a stopped one's state file.
//!
//! Where they go: `--socket` or `--state` when given; otherwise the
//! configuration's `control.socket` when a sensor answers on it, else its
//! `detection.state_file`. A verdict is never written into the state file of a
//! sensor that is running: its next snapshot would overwrite it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{self, Config, ConfigError};
use crate::control::{self, Reply, Report, Request};
use crate::detect::{state, verdict};

/// Where a command goes.
#[derive(Debug)]
enum Target {
    Live(PathBuf),
    Stopped(PathBuf, Box<Config>),
}

fn target(cfg_path: &Path, socket: Option<PathBuf>, state_file: Option<PathBuf>) -> anyhow::Result<Target> {
    if let Some(s) = socket {
        return Ok(Target::Live(s));
    }
    let cfg =
        if cfg_path.exists() || state_file.is_none() { config::load(cfg_path)? } else { config::default() };
    if let Some(path) = state_file {
        if let Some(s) = cfg.control_socket.as_ref().filter(|s| control::is_live(s)) {
            anyhow::bail!(
                "a sensor answers on {}: give verdicts through it (--socket), or stop it first; its next snapshot would overwrite {}",
                s.display(),
                path.display()
            );
        }
        return Ok(Target::Stopped(path, Box::new(cfg)));
    }
    if let Some(s) = cfg.control_socket.clone().filter(|s| control::is_live(s)) {
        return Ok(Target::Live(s));
    }
    let path = cfg.detection.state_file.clone().ok_or_else(|| {
        anyhow::Error::new(ConfigError::Missing {
            path: cfg_path.to_path_buf(),
            key: "detection.state_file".into(),
            expected: "the file baselines and verdicts are saved in (or pass --state FILE or --socket PATH)"
                .into(),
        })
    })?;
    Ok(Target::Stopped(path, Box::new(cfg)))
}

fn load(path: &Path) -> anyhow::Result<state::State> {
    state::load(path)?.with_context(|| format!("{}: no state saved yet", path.display()))
}

/// `nbad-sensor verdict`.
pub(super) fn give(
    req: verdict::Request,
    cfg_path: &Path,
    socket: Option<PathBuf>,
    state_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let outcome = match target(cfg_path, socket, state_file)? {
        Target::Live(sock) => match control::call(&sock, &Request::Verdict { verdict: req })? {
            Reply::Applied { outcome } => outcome,
            Reply::Error { message } => anyhow::bail!("the sensor refused the verdict: {message}"),
            _ => anyhow::bail!("{}: the sensor answered something else", sock.display()),
        },
        Target::Stopped(path, cfg) => {
            let mut st = load(&path)?;
            let mut req = req;
            if let Some(real) =
                crate::privacy::Privacy::from_config(&cfg).and_then(|p| p.real_id(&req.id, &st.verdicts))
            {
                req.id = real;
            }
            let outcome = verdict::give_to_state(&mut st, &req, &cfg.detection)
                .map_err(|e| anyhow::anyhow!("the verdict is refused: {e}"))?;
            state::save(&path, &st)?;
            outcome
        }
    };
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    eprintln!("nbad-sensor: verdict {}", outcome.summary());
    Ok(())
}

/// `nbad-sensor report`.
pub(super) fn report(
    cfg_path: &Path,
    socket: Option<PathBuf>,
    state_file: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let report = match target(cfg_path, socket, state_file)? {
        Target::Live(sock) => match control::call(&sock, &Request::Report)? {
            Reply::Report { report } => report,
            Reply::Error { message } => anyhow::bail!("the sensor refused: {message}"),
            _ => anyhow::bail!("{}: the sensor answered something else", sock.display()),
        },
        Target::Stopped(path, _) => Report::of(&load(&path)?.verdicts),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// The author when `--author` is not given: the user who ran the command (through sudo too),
/// else the process's user id (a service or a container may set no user variables).
pub(super) fn default_author() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("unknown");
            format!("uid {uid}")
        })
}
