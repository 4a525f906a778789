//! The sensor under test, run as an operator would: `nbad-sensor run` in
//! the lab's sensor namespace on a capture interface fed by the mirror,
//! stopped with SIGTERM so that it ends every open flow and writes its
//! records.
//!
//! Its stdout (flow records, one JSON object a line) and stderr (its log)
//! are read by two threads: every line is kept (up to a cap) and handed to
//! an optional callback, so a terminal can show records as they come.

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::Lab;
use super::exec::{self, Exec, nap, stop_child, stop_requested, tail_block};
use super::servers::{LAB_LIFETIME, path_str};
use super::topology::Node;

/// Longest the sensor may take to attach and start capturing.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Longest it may take to end its flows and exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(15);
/// Wait before SIGTERM: a few XDP polls (200 ms each in configs/lab.toml),
/// so the kernel's last counts are read.
const SETTLE: Duration = Duration::from_millis(700);
/// Lines kept per stream; beyond it they are still passed to the callback.
const KEEP_LINES: usize = 200_000;
/// The log line the sensor prints once it captures.
const READY_MARK: &str = "capturing on ";

/// A callback for each line of one of the sensor's streams.
pub type LineHook = Box<dyn FnMut(&str) + Send>;

/// `base` (the text of configs/lab.toml) with `capture.mode` and
/// `capture.interface` set. Both keys must be present in `[capture]`: the
/// file is rewritten line by line, comments and all, not re-serialised.
pub fn config_with(base: &str, mode: &str, interface: &str) -> Result<String> {
    let mut section = String::new();
    let (mut saw_mode, mut saw_interface) = (false, false);
    let mut out = String::with_capacity(base.len());
    for line in base.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
        }
        let key = trimmed.split('=').next().unwrap_or_default().trim();
        if section == "[capture]" && key == "mode" && trimmed.contains('=') {
            out.push_str(&format!("mode = \"{mode}\"\n"));
            saw_mode = true;
        } else if section == "[capture]" && key == "interface" && trimmed.contains('=') {
            out.push_str(&format!("interface = \"{interface}\"\n"));
            saw_interface = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !(saw_mode && saw_interface) {
        bail!("the lab configuration must set both `mode` and `interface` in [capture]");
    }
    Ok(out)
}

/// A running sensor.
#[derive(Debug)]
pub struct LabSensor {
    name: String,
    child: Option<Child>,
    records: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    capture_line: String,
    /// Where the sensor writes its alerts (ECS JSON lines).
    alerts_path: PathBuf,
    /// Where it writes its statistics.
    stats_path: PathBuf,
    /// Alert lines already handed out by [`LabSensor::new_alerts`].
    alerts_seen: usize,
}

/// What a sensor wrote, read back after it stopped.
#[derive(Debug)]
pub struct SensorOutput {
    /// Its flow records.
    pub records: Vec<Value>,
    /// Its log (stderr).
    pub log: String,
    /// True when it exited 0 after SIGTERM.
    pub clean_exit: bool,
    /// Its alerts.
    pub alerts: Vec<Value>,
    /// Its statistics as it wrote them on exit (`Value::Null` when it wrote none).
    pub stats: Value,
}

impl Lab {
    /// Starts `bin run --config <config_text>` in the sensor namespace and
    /// waits until it says it is capturing. `name` names its files and
    /// messages; `on_record` and `on_log` see each line of its stdout and
    /// stderr as it comes.
    pub fn start_sensor(
        &self,
        bin: &Path,
        config_text: &str,
        name: &str,
        on_record: Option<LineHook>,
        on_log: Option<LineHook>,
    ) -> Result<LabSensor> {
        let config = self.dir().join(format!("{name}.toml"));
        std::fs::write(&config, config_text).with_context(|| format!("writing {}", config.display()))?;
        let alerts_path = self.dir().join(format!("{name}-alerts.jsonl"));
        let stats_path = self.dir().join(format!("{name}-stats.json"));
        let exec = Exec::new(
            Some(&self.ns(Node::Sensor)),
            &[
                path_str(bin)?.as_str(),
                "run",
                "--config",
                &path_str(&config)?,
                "--alerts",
                &path_str(&alerts_path)?,
                "--stats",
                &path_str(&stats_path)?,
            ],
        )
        .limit(LAB_LIFETIME);
        let (child, stdout, stderr) = exec.spawn_piped()?;
        let records = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let readers =
            vec![reader(stdout, Arc::clone(&records), on_record), reader(stderr, Arc::clone(&log), on_log)];
        let mut sensor = LabSensor {
            name: name.to_owned(),
            child: Some(child),
            records,
            log,
            readers,
            capture_line: String::new(),
            alerts_path,
            stats_path,
            alerts_seen: 0,
        };
        sensor.wait_capturing()?;
        Ok(sensor)
    }
}

fn reader<R: Read + Send + 'static>(
    pipe: R,
    keep: Arc<Mutex<Vec<String>>>,
    mut hook: Option<LineHook>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(hook) = hook.as_mut() {
                hook(&line);
            }
            let mut kept = keep.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.len() < KEEP_LINES {
                kept.push(line);
            }
        }
    })
}

impl LabSensor {
    fn log_text(&self) -> String {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).join("\n")
    }

    fn wait_capturing(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            let found = self
                .log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|l| l.contains(READY_MARK))
                .cloned();
            if let Some(line) = found {
                self.capture_line = line;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                // Let the reader threads catch the last lines.
                thread::sleep(Duration::from_millis(100));
                bail!(
                    "sensor {} exited ({status}) before capturing{}",
                    self.name,
                    tail_block(&self.log_text())
                );
            }
            if start.elapsed() > START_LIMIT {
                bail!(
                    "sensor {} not capturing after {START_LIMIT:?}{}",
                    self.name,
                    tail_block(&self.log_text())
                );
            }
            nap(Duration::from_millis(50))?;
        }
    }

    /// The sensor's "capturing on …" line: says whether XDP (and in which
    /// mode) or libpcap is in use.
    #[must_use]
    pub fn capture_line(&self) -> &str {
        &self.capture_line
    }

    /// Alerts written since the last call (the sensor flushes each batch of
    /// alerts as it raises them).
    pub fn new_alerts(&mut self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.alerts_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let fresh: Vec<Value> =
            lines.iter().skip(self.alerts_seen).filter_map(|l| serde_json::from_str(l).ok()).collect();
        self.alerts_seen = lines.len();
        fresh
    }

    /// Flow records written so far (JSON lines, unparsed).
    #[must_use]
    pub fn record_count(&self) -> usize {
        self.records.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Waits for the last kernel poll, sends SIGTERM, waits for the sensor
    /// to write its records and exit, and reads them back.
    pub fn stop(mut self) -> Result<SensorOutput> {
        if !stop_requested() {
            let _ = nap(SETTLE);
        }
        let mut clean_exit = false;
        if let Some(mut child) = self.child.take() {
            // To `timeout`, which passes it on to the sensor.
            exec::signal(child.id(), "TERM");
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        clean_exit = status.success();
                        break;
                    }
                    Ok(None) if start.elapsed() < STOP_LIMIT => thread::sleep(Duration::from_millis(20)),
                    _ => {
                        stop_child(&mut child);
                        break;
                    }
                }
            }
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let lines = std::mem::take(&mut *self.records.lock().unwrap_or_else(PoisonError::into_inner));
        let mut records = Vec::with_capacity(lines.len());
        for (n, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let value = serde_json::from_str(line)
                .with_context(|| format!("sensor {} stdout line {}: not JSON: {line}", self.name, n + 1))?;
            records.push(value);
        }
        let alerts = std::fs::read_to_string(&self.alerts_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // Rewritten whole (atomically) on every write: the last is the one at exit.
        let stats = std::fs::read_to_string(&self.stats_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        Ok(SensorOutput { records, log: self.log_text(), clean_exit, alerts, stats })
    }
}

impl Drop for LabSensor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }
}
