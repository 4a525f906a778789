//! The audit log of automated response: one ECS event (`event.kind = "event"`,
//! `event.dataset = "nbad.response"`) per action, undo, dry run and refusal, as
//! JSON lines in `response.audit_log` (append-only, flushed per event), for the
//! log shipper that already carries the sensor's files to the SIEM.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::alert::{ECS_VERSION, rfc3339};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Tried, failed (the error is in the event).
    Failure,
    /// Not done: dry run, or a guardrail refused it.
    Unknown,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Unknown => "unknown",
        }
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Wall-clock time, ns since the epoch.
    pub at_ns: u64,
    /// `quarantine_host`, `block_peer`, `webhook`, `undo_quarantine_host`, `undo_block_peer`.
    pub action: &'a str,
    /// The address acted on.
    pub target: Option<IpAddr>,
    /// The alert (or incident record) that caused it.
    pub alert_id: &'a str,
    /// Its detector.
    pub detector: &'a str,
    /// Its score.
    pub score: u8,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// What happened.
    pub outcome: Outcome,
    /// Why (a guardrail's refusal, a dry run, the command's error), empty when done.
    pub reason: String,
    /// When the action ends, wall-clock ns (actions with a TTL).
    pub expires_ns: Option<u64>,
}

impl Event<'_> {
    /// The ECS document.
    #[must_use]
    pub fn to_ecs(&self, sensor_id: &str) -> Value {
        let kind = if self.action.starts_with("undo_") { "end" } else { "denied" };
        let mut doc = json!({
            "@timestamp": rfc3339(self.at_ns),
            "ecs": { "version": ECS_VERSION },
            "event": {
                "kind": "event",
                "category": ["network"],
                "type": [if self.outcome == Outcome::Success { kind } else { "info" }],
                "action": self.action,
                "outcome": self.outcome.name(),
                "module": "nbad",
                "dataset": "nbad.response",
                "reason": self.reason,
            },
            "observer": { "name": sensor_id, "type": "sensor", "vendor": "nbad", "product": "nbad-sensor" },
            "rule": { "name": self.detector },
            "nbad": { "response": {
                "alert_id": self.alert_id,
                "score": self.score,
                "dry_run": self.dry_run,
            } },
        });
        if let Some(t) = self.target {
            doc["related"] = json!({ "ip": [t.to_string()] });
            doc["nbad"]["response"]["target"] = json!(t.to_string());
        }
        if let Some(e) = self.expires_ns {
            doc["event"]["end"] = json!(rfc3339(e));
        }
        doc
    }
}

/// The audit log file.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    sensor_id: String,
    /// Events written.
    pub written: u64,
}

impl AuditLog {
    /// Opens (appends to) `path`, creating its directory.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn open(path: &Path, sensor_id: &str) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("{}: cannot open the response audit log", path.display()))?;
        Ok(Self { file, sensor_id: sensor_id.to_owned(), written: 0 })
    }

    /// Appends one event; an error is logged, never fatal (the action itself happened or not).
    pub fn write(&mut self, e: &Event<'_>) {
        let mut line = e.to_ecs(&self.sensor_id).to_string();
        line.push('\n');
        match self.file.write_all(line.as_bytes()).and_then(|()| self.file.flush()) {
            Ok(()) => self.written += 1,
            Err(err) => eprintln!("nbad-sensor: warning: response audit log: {err}"),
        }
        eprintln!(
            "nbad-sensor: response: {} {} ({}, alert {}){}",
            e.action,
            e.target.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            e.outcome.name(),
            e.alert_id,
            if e.reason.is_empty() { String::new() } else { format!(": {}", e.reason) }
        );
    }
}
