//! Running the real `nbad-sensor` binary.
//!
//! The binary is `NBAD_SENSOR_BIN` if that is set. Otherwise it is
//! `target/<profile>/nbad-sensor`, beside the `deps/` folder that holds the
//! test executable. Cargo builds a package's binaries only for that
//! package's own integration tests, so `cargo test --workspace` does not
//! reliably build it, and a binary left from an older build would be tested
//! stale: when the tests run under cargo (`CARGO` is set), the first call
//! runs `cargo build -p nbad-sensor` for the same profile and target folder
//! (a no-op when it is up to date). Run outside cargo, the file must exist.
//!
//! Every run has a time limit: a sensor that hangs on a capture is a
//! failure, not a stuck test run.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Environment variable that overrides the sensor binary's path.
pub const SENSOR_BIN_ENV: &str = "NBAD_SENSOR_BIN";

/// How often a running sensor is polled for exit.
const POLL: Duration = Duration::from_millis(20);

/// The sensor binary to test, or an error that says how to get one. Builds
/// it first when running under cargo (see the module docs); the build runs
/// once per test process, and its outcome is shared by every test in it.
pub fn sensor_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(SENSOR_BIN_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{SENSOR_BIN_ENV}={} is not a file", path.display());
        }
        return Ok(path);
    }
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_and_locate().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build_and_locate() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/nbad-sensor
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("{} has no grandparent folder", exe.display()))?;
    let path = profile_dir.join(format!("nbad-sensor{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        build(&cargo, profile_dir)?;
    }
    if !path.is_file() {
        bail!(
            "sensor binary not found at {}: run `cargo build -p nbad-sensor`, or set \
             {SENSOR_BIN_ENV}",
            path.display()
        );
    }
    Ok(path)
}

/// `cargo build -p nbad-sensor` into `profile_dir` (`<target-dir>/<profile>`).
fn build(cargo: &OsStr, profile_dir: &Path) -> Result<()> {
    let target_dir =
        profile_dir.parent().with_context(|| format!("{} has no parent folder", profile_dir.display()))?;
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "nbad-sensor", "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => bail!("cannot tell the build profile from {}", profile_dir.display()),
    }
    let out = cmd.output().context("running cargo to build the sensor")?;
    if !out.status.success() {
        bail!(
            "`cargo build -p nbad-sensor` failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
    Ok(())
}

/// What one run of the sensor did.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// Exit status; `None` when the run was killed at its time limit.
    pub status: Option<ExitStatus>,
    /// How long it ran.
    pub elapsed: Duration,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// The highest resident set size it reached (`VmHWM`, sampled every 20 ms while it ran),
    /// bytes; 0 when it could not be read.
    pub peak_rss: u64,
}

/// The highest resident set size process `pid` has reached so far (`VmHWM`), bytes.
#[must_use]
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

impl Run {
    /// True when it exited by itself with status 0.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// One paragraph for a failure message: command, outcome, stderr tail.
    #[must_use]
    pub fn describe(&self) -> String {
        let outcome = match self.status {
            None => format!("killed after {:.1?} (time limit)", self.elapsed),
            Some(s) => format!("{s} after {:.1?}", self.elapsed),
        };
        let stderr =
            if self.stderr.trim().is_empty() { "(empty)".to_owned() } else { tail(&self.stderr, 15) };
        format!("`{}`: {outcome}\nstderr (last lines):\n{stderr}", self.command)
    }
}

/// Runs the sensor with `args`, killing it after `limit`. Output goes to
/// files in `scratch` (so a chatty sensor cannot block on a full pipe) and is
/// read back when it ends.
pub fn run(args: &[&OsStr], scratch: &Path, limit: Duration) -> Result<Run> {
    let bin = sensor_bin()?;
    let command = std::iter::once(bin.as_os_str())
        .chain(args.iter().copied())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out_path = scratch.join("sensor.stdout");
    let err_path = scratch.join("sensor.stderr");
    let stdout = File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    let stderr = File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;

    let start = Instant::now();
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut peak = 0;
    let status = loop {
        peak = peak.max(peak_rss(child.id()).unwrap_or(0));
        if let Some(status) = child.try_wait().context("waiting for the sensor")? {
            break Some(status);
        }
        if start.elapsed() >= limit {
            // Kill and reap; an error here means it exited meanwhile.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(POLL);
    };
    let elapsed = start.elapsed();
    Ok(Run {
        command,
        status,
        elapsed,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        peak_rss: peak,
    })
}

/// Output files of one `nbad-sensor replay`.
#[derive(Debug)]
pub struct Replay {
    /// The run itself.
    pub run: Run,
    /// The `--flows` file (one ECS JSON object per line).
    pub flows: PathBuf,
    /// The `--stats` file.
    pub stats: PathBuf,
}

/// Runs `nbad-sensor replay --flows <scratch>/flows.json --stats
/// <scratch>/stats.json <capture>` with a time limit.
pub fn replay(capture: &Path, scratch: &Path, limit: Duration) -> Result<Replay> {
    let flows = scratch.join("flows.json");
    let stats = scratch.join("stats.json");
    let args: [&OsStr; 6] = [
        OsStr::new("replay"),
        OsStr::new("--flows"),
        flows.as_os_str(),
        OsStr::new("--stats"),
        stats.as_os_str(),
        capture.as_os_str(),
    ];
    let run = run(&args, scratch, limit)?;
    Ok(Replay { run, flows, stats })
}

/// Reads a JSON-lines file: one JSON value per non-empty line.
pub fn read_json_lines(path: &Path) -> Result<Vec<Value>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut values = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON: {}", path.display(), n + 1, clip(&line)))?;
        values.push(value);
    }
    Ok(values)
}

/// Reads a stats file: one JSON document, or JSON lines of snapshots of
/// which the last one is the final count.
pub fn read_stats(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(value) = serde_json::from_str(&text) {
        return Ok(value);
    }
    let mut last = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        last = Some(
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON: {}", path.display(), n + 1, clip(line)))?,
        );
    }
    last.with_context(|| format!("{} is empty", path.display()))
}

/// The value at a dotted `path` (`decode.malformed_total`): nested objects
/// first, then a flat key spelled with the dots.
#[must_use]
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let nested = path.split('.').try_fold(value, |v, key| v.as_object()?.get(key));
    nested.or_else(|| value.as_object()?.get(path))
}

/// Every value stored under `key` at any depth, with its dotted path.
#[must_use]
pub fn find_key<'a>(value: &'a Value, key: &str) -> Vec<(String, &'a Value)> {
    fn walk<'a>(v: &'a Value, key: &str, prefix: &str, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    if k == key {
                        out.push((path.clone(), child));
                    }
                    walk(child, key, &path, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, key, &format!("{prefix}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, key, "", &mut out);
    out
}

/// The last `n` lines of `text`.
#[must_use]
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn clip(line: &str) -> String {
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_nested_and_flat_dotted_keys() {
        let nested = serde_json::json!({"decode": {"malformed_total": 3}});
        let flat = serde_json::json!({"decode.malformed_total": 4});
        assert_eq!(lookup(&nested, "decode.malformed_total").and_then(Value::as_u64), Some(3));
        assert_eq!(lookup(&flat, "decode.malformed_total").and_then(Value::as_u64), Some(4));
        assert!(lookup(&nested, "decode.missing").is_none());
    }

    #[test]
    fn finds_a_key_at_any_depth() {
        let v = serde_json::json!({"capture": {"packets_read": 6}, "x": [{"packets_read": 1}]});
        let found = find_key(&v, "packets_read");
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["capture.packets_read", "x[0].packets_read"]);
    }
}
