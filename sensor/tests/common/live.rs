//! Live capture tests' scaffolding: a veth pair whose far end sits in a network namespace made
//! for the test (deleted on drop, with leftovers of killed runs cleaned up), and the sensor
//! running `nbad-sensor run` on the near end with its stderr followed line by line.
//!
//! Nothing leaves such a link: its two addresses sit in a /30 inside 10.199.0.0/16 and no other
//! route is added anywhere. Needs root, `ip netns` and python3 ([`require`]).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use nbad_tests::gate::{self, Need, Ran};

use super::sensor;

/// Every test-made interface and namespace name starts with this, followed by the test process id.
pub const PREFIX: &str = "nbadt";
/// The gate of every test here: root, `ip` (network namespaces) and python3 (the traffic
/// generator); otherwise the test is reported as skipped (`nbad_tests::gate`).
pub fn require() -> Option<Ran> {
    gate::require(&[
        Need::Root,
        Need::Program { program: "ip", package: "iproute2" },
        Need::Program { program: "python3", package: "python3" },
    ])
}

pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs a setup command, failing the test with its stderr if it fails.
pub fn must(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a best-effort command (teardown, optional tuning); its failure is ignored.
pub fn try_run(args: &[&str]) {
    let _ = succeeds(Command::new(args[0]).args(&args[1..]));
}

/// The test process that made `name` (`nbadt<pid>t<tag>`, `nbadt<pid>t<tag>a`, `nbadt<pid>br`), if
/// it has that shape.
pub fn owner_pid(name: &str) -> Option<u32> {
    let digits: String = name.strip_prefix(PREFIX)?.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Deletes namespaces and interfaces left by earlier runs whose process is gone (a run that was
/// killed before its teardown). Those of a run still going are left alone.
pub fn delete_leftovers() {
    let stale = |name: &str| owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    let list = |args: &[&str]| {
        Command::new("ip").args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // `ip netns list` prints "NAME" or "NAME (id: N)".
    for line in list(&["netns", "list"]).unwrap_or_default().lines() {
        if let Some(name) = line.split_whitespace().next().filter(|n| stale(n)) {
            try_run(&["ip", "netns", "del", name]);
        }
    }
    // `ip -o link show` prints "N: NAME@PEER: <FLAGS> ...".
    for line in list(&["-o", "link", "show"]).unwrap_or_default().lines() {
        let name = line.split(": ").nth(1).and_then(|n| n.split('@').next()).unwrap_or("");
        if stale(name) {
            try_run(&["ip", "link", "del", name]);
        }
    }
}

/// The namespace and the veth pair; dropping it deletes both, whatever happened in between.
#[derive(Debug)]
pub struct Link {
    pub netns: String,
    pub host_if: String,
    pub peer_if: String,
    pub host_ip: String,
    pub peer_ip: String,
}

impl Link {
    /// A namespace and veth pair; `tag` (0..=3) tells apart the links of
    /// tests running at once in one process.
    pub fn create(tag: u32) -> Self {
        let pid = std::process::id();
        let subnet = pid % 64 * 4;
        let link = Self {
            netns: format!("{PREFIX}{pid}t{tag}"),
            host_if: format!("{PREFIX}{pid}t{tag}a"),
            peer_if: format!("{PREFIX}{pid}t{tag}b"),
            host_ip: format!("10.199.{}.{}", pid / 64 % 64 + 64 * tag, subnet + 1),
            peer_ip: format!("10.199.{}.{}", pid / 64 % 64 + 64 * tag, subnet + 2),
        };
        must(&["ip", "netns", "add", &link.netns]);
        let (ns, host, peer) = (link.netns.as_str(), link.host_if.as_str(), link.peer_if.as_str());
        must(&["ip", "link", "add", host, "type", "veth", "peer", "name", peer]);
        must(&["ip", "link", "set", peer, "netns", ns]);
        // No IPv6 on the link: no router solicitations or MLD reports beside the test's packets.
        try_run(&["sysctl", "-qw", &format!("net.ipv6.conf.{host}.disable_ipv6=1")]);
        try_run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{peer}.disable_ipv6=1"),
        ]);
        must(&["ip", "addr", "add", &format!("{}/30", link.host_ip), "dev", host]);
        must(&["ip", "netns", "exec", ns, "ip", "addr", "add", &format!("{}/30", link.peer_ip), "dev", peer]);
        must(&["ip", "link", "set", host, "up"]);
        must(&["ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"]);
        link
    }

    /// Runs a python3 script inside the namespace and returns its stdout.
    pub fn python_in_netns(&self, script: &str, args: &[&str]) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "python3", "-c", script]).args(args);
        let out = cmd.output().expect("running python3 in the namespace");
        assert!(out.status.success(), "python3 in {}: {}", self.netns, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace destroys the peer end, and with it the whole pair; the explicit
        // delete covers a pair whose peer never made it into the namespace.
        try_run(&["ip", "netns", "del", &self.netns]);
        try_run(&["ip", "link", "del", &self.host_if]);
    }
}

/// The running sensor; dropping it kills a sensor that is still running.
#[derive(Debug)]
pub struct Sensor {
    pub child: Child,
    stderr_lines: Receiver<String>,
    stderr: Vec<String>,
}

impl Sensor {
    /// Reads stderr until a line contains `needle`; false if the sensor exits or `limit` passes.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr.push(line);
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Everything the sensor wrote to stderr; call after it exited.
    pub fn all_stderr(&mut self) -> String {
        self.stderr.extend(self.stderr_lines.iter());
        self.stderr.join("\n")
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn start_sensor(config: &Path, flows: &Path, stats: &Path) -> Sensor {
    let mut child = sensor()
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--flows")
        .arg(flows)
        .arg("--stats")
        .arg(stats)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting nbad-sensor run");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Sensor { child, stderr_lines: rx, stderr: Vec::new() }
}

/// Polls the periodic stats file until `capture.packets_read` reaches `at_least` (or `limit`).
pub fn wait_for_packets_read(stats: &Path, at_least: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let read = std::fs::read_to_string(stats)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.pointer("/capture/packets_read").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        if read >= at_least || Instant::now() >= deadline {
            return read;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Capability bits (linux/capability.h).
pub const NET_ADMIN: u64 = 1 << 12;
pub const NET_RAW: u64 = 1 << 13;
pub const BPF: u64 = 1 << 39;

/// The effective capabilities of every thread of `pid` (or'ed), once `ready` holds for them or
/// `limit` passed.
pub fn effective_capabilities(pid: u32, limit: Duration, ready: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = 0;
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the sensor's threads");
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let eff = status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0);
            all |= eff;
        }
        if ready(all) || Instant::now() >= deadline {
            return all;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
