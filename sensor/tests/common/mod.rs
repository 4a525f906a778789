//! Helpers shared by the integration tests: running the real `nbad-sensor` binary (built by cargo
//! for this package's tests, `CARGO_BIN_EXE_nbad-sensor`) with a time limit, and reading the flow
//! records and statistics it writes.
//!
//! Each test file declares `pub mod common;` so that helpers one file does not use are not
//! reported as dead code there.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub mod live;

use serde_json::Value;

/// Longest a non-live sensor command may run before the test calls it hung.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The sensor binary under test.
#[must_use]
pub fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nbad-sensor"))
}

/// What a finished sensor command left behind.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing the command's output, unless it exited with `expected`.
    pub fn assert_code(&self, expected: i32, what: &str) {
        assert_eq!(
            self.code,
            Some(expected),
            "{what}: expected exit code {expected}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty child cannot block on a full pipe.
pub fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            // A read error only shortens the text that a failing assertion shows.
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Waits up to `limit` for `child` to exit and returns its exit code (`None` when killed by a
/// signal); `Err` when it was still running at the limit, after which it has been killed.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Result<Option<i32>, Duration> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("polling the sensor process") {
            Some(status) => return Ok(status.code()),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(limit);
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs the sensor with `args` to completion (at most [`RUN_LIMIT`]).
pub fn run_sensor<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let what =
        format!("nbad-sensor {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let mut child = sensor()
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the nbad-sensor binary");
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let code = wait_or_kill(&mut child, RUN_LIMIT);
    let (stdout, stderr) =
        (stdout.join().expect("stdout reader thread"), stderr.join().expect("stderr reader thread"));
    match code {
        Ok(code) => Outcome { code, stdout, stderr },
        Err(limit) => panic!("{what}: still running after {limit:?}, killed\n--- stderr\n{stderr}"),
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// Every line of a flow-record file, each parsed as JSON (a line that is not JSON fails the test,
/// naming the line).
pub fn read_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON ({e}): {line}", path.display(), i + 1))
        })
        .collect()
}

/// The statistics JSON file.
pub fn read_stats(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{text}", path.display()))
}

/// The unsigned integer at JSON `pointer` (e.g. `/network/packets`); panics naming the pointer.
pub fn u64_at(value: &Value, pointer: &str) -> u64 {
    value
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no integer at {pointer} in {value}"))
}

/// The string at JSON `pointer`; panics naming the pointer.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

/// Whether `record` is the flow from `client` (ip, port) to `server` (ip, port) over `transport`.
/// A port of `None` matches a record without ports (ICMP).
pub fn is_flow(
    record: &Value,
    transport: &str,
    client: (&str, Option<u16>),
    server: (&str, Option<u16>),
) -> bool {
    let port = |side: &str| record.pointer(&format!("/{side}/port")).and_then(Value::as_u64);
    record.pointer("/network/transport").and_then(Value::as_str) == Some(transport)
        && record.pointer("/source/ip").and_then(Value::as_str) == Some(client.0)
        && record.pointer("/destination/ip").and_then(Value::as_str) == Some(server.0)
        && port("source") == client.1.map(u64::from)
        && port("destination") == server.1.map(u64::from)
}

/// Packets and bytes summed over `records`, per direction: `((client packets, client bytes),
/// (server packets, server bytes))`. Records carry deltas, so the sum is the flow's total.
pub fn direction_totals(records: &[&Value]) -> ((u64, u64), (u64, u64)) {
    records.iter().fold(((0, 0), (0, 0)), |((cp, cb), (sp, sb)), r| {
        (
            (cp + u64_at(r, "/source/packets"), cb + u64_at(r, "/source/bytes")),
            (sp + u64_at(r, "/destination/packets"), sb + u64_at(r, "/destination/bytes")),
        )
    })
}

/// Writes the self-test's capture (generated by the sensor: an office and its attack episodes)
/// to `dir/scenario.pcap` and returns the path.
pub fn selftest_capture(dir: &Path) -> PathBuf {
    let pcap = dir.join("scenario.pcap");
    let file = std::fs::File::create(&pcap).expect("create pcap");
    nbad_sensor::selftest::scenario()
        .write_pcap(std::io::BufWriter::new(file))
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .expect("write pcap");
    pcap
}
