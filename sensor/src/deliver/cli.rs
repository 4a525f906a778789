//! `nbad-sensor alerts send FILE... [--config PATH]`: the operator's re-send tool.
//!
//! Reads alerts, one JSON object per line (ECS alert documents as `--alerts PATH` writes
//! them, the alert model's JSON, or dead-letter lines), submits them through the spool of the
//! configured `[alerts]` and delivers until every sink has them or `--timeout` passes. With
//! no FILE it delivers what is already spooled (after a crash, say). Whatever is not
//! delivered in time stays in the spool for the next run; the exit code is then 3
//! ([`super::Undelivered`]), as for `replay`.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use super::format::ecs_in::parse_line;
use super::{Delivery, Undelivered};
use crate::alert::Alert;
use crate::config;

/// `nbad-sensor alerts …`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Deliver alerts from files (ECS alert JSON lines, alert JSON, or dead-letter lines)
    /// through the configured sinks, via the spool. Without FILE, deliver what is spooled.
    Send {
        /// Configuration file with the [alerts] table.
        #[arg(long, short, value_name = "FILE", default_value = crate::cli::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Give up after this many seconds; what is undelivered stays spooled (exit code 3).
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
        /// Alert files.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Reads every alert in `files`; any line that is not an alert is an error naming the file and
/// line (nothing is submitted then).
pub fn read_alerts(files: &[PathBuf]) -> anyhow::Result<Vec<Alert>> {
    let mut alerts = Vec::new();
    for path in files {
        let file = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot open the alerts file", path.display()))?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("{}: cannot read", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let alert =
                parse_line(&line).with_context(|| format!("{}:{}: not an alert", path.display(), i + 1))?;
            alerts.push(alert);
        }
    }
    Ok(alerts)
}

/// Runs an `alerts` command.
pub fn execute(command: AlertsCommand) -> anyhow::Result<()> {
    let AlertsCommand::Send { config: path, timeout, files } = command;
    let cfg = config::load(&path)?;
    if cfg.alerts.sinks.is_empty() {
        bail!("{}: no [[alerts.sinks]] configured: nothing to deliver to", path.display());
    }
    let alerts = read_alerts(&files)?;
    let delivery = Delivery::start(&cfg.alerts, &cfg.sensor.id).context("starting alert delivery")?;
    for alert in &alerts {
        delivery.submit(alert).with_context(|| format!("spooling alert {}", alert.id))?;
    }
    eprintln!(
        "nbad-sensor: spooled {} alerts from {} files; delivering (at most {timeout} s)",
        alerts.len(),
        files.len()
    );
    let waited = Duration::from_secs(timeout);
    let m = delivery.shutdown(waited);
    let mut undelivered = 0;
    for s in &m.sinks {
        eprintln!(
            "nbad-sensor: sink {} ({}): {} sent, {} dead-lettered, {} below min_score, {} retried, {} left in the spool",
            s.name, s.kind, s.sent, s.dead_lettered, s.filtered, s.retried, s.spool_depth
        );
        undelivered += s.spool_depth;
    }
    if undelivered > 0 {
        return Err(Undelivered { pending: undelivered, spool: cfg.alerts.spool_dir.clone(), waited }.into());
    }
    Ok(())
}
