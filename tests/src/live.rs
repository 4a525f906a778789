//! What the live tests share (`reload.rs`, `metrics.rs`, and the sensor crate's
//! `crash_safety.rs`): a capture link in network namespaces made for the test, bounded UDP
//! traffic over it, and a live `nbad-sensor run` inside the sensor's namespace with its stderr
//! in a file.
//!
//! The link: namespaces `<tag><pid>s` (the sensor's) and `<tag><pid>g` (the generator's),
//! joined by a veth pair made with both ends already inside them, addresses in a /30 of
//! 10.197.0.0/16, no route anywhere else; nothing touches the caller's namespace. Dropping
//! [`Link`] deletes both namespaces (and with them the veth), whatever happened; dropping
//! [`Sensor`] kills the sensor if it is still running. Every traffic burst is a fixed number
//! of datagrams with a time limit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::gate::{self, Need, Ran};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// What the live tests need: root, `ip` (network namespaces) and python3 (the traffic
/// generator and the scraper run inside the namespaces).
pub const NEEDS: [Need<'static>; 3] = [
    Need::Root,
    Need::Program { program: "ip", package: "iproute2" },
    Need::Program { program: "python3", package: "python3" },
];

/// The gate of every live test: `Some` guard when it can run here, else the test is
/// reported as skipped (see `crate::gate`).
pub fn require() -> Option<Ran> {
    gate::require(&NEEDS)
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The two namespaces and the veth between them.
#[derive(Debug)]
pub struct Link {
    /// The sensor's namespace; the capture interface is `cap0` in it, 10.197.<n>.1.
    pub sensor_ns: String,
    /// The generator's namespace; its end is `gen0`, 10.197.<n>.2.
    pub gen_ns: String,
    /// The sensor side's address.
    pub sensor_addr: String,
    /// The generator's address.
    pub gen_addr: String,
}

impl Link {
    /// Makes the link; `subnet` (0..=63) keeps parallel tests apart.
    pub fn new(tag: &str, subnet: u8) -> Result<Self> {
        let pid = std::process::id();
        let third = u32::from(subnet) * 4 + pid % 4;
        let link = Self {
            sensor_ns: format!("{tag}{pid}s"),
            gen_ns: format!("{tag}{pid}g"),
            sensor_addr: format!("10.197.{third}.1"),
            gen_addr: format!("10.197.{third}.2"),
        };
        // From here on, Drop removes whatever was made.
        run(&["ip", "netns", "add", &link.sensor_ns])?;
        run(&["ip", "netns", "add", &link.gen_ns])?;
        run(&[
            "ip",
            "link",
            "add",
            "cap0",
            "netns",
            &link.sensor_ns,
            "type",
            "veth",
            "peer",
            "name",
            "gen0",
            "netns",
            &link.gen_ns,
        ])?;
        for (ns, dev, addr) in
            [(&link.sensor_ns, "cap0", &link.sensor_addr), (&link.gen_ns, "gen0", &link.gen_addr)]
        {
            run(&["ip", "-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(link)
    }

    /// Sends `count` 100-byte datagrams from each of `ports` (generator side) to the sensor's
    /// address, port 9, `gap` apart per round; at most 30 s.
    pub fn send_udp(&self, ports: &[u16], count: u32, gap: Duration) -> Result<()> {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let script = format!(
            "import socket, time\n\
             socks = []\n\
             for p in [{}]:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.bind(('{}', p))\n    socks.append(s)\n\
             for i in range({count}):\n    for s in socks:\n        s.sendto(b'x' * 100, ('{}', 9))\n    time.sleep({})\n",
            ports.join(", "),
            self.gen_addr,
            self.sensor_addr,
            gap.as_secs_f64()
        );
        self.python_in_gen("UDP sender", &script)
    }

    /// Connects over TCP from the generator to each of `ports` on the sensor's address, one
    /// after the other: nothing listens there, so the sensor namespace's kernel refuses each
    /// (a vertical scan, as the sensor sees it). Each attempt gives up after 0.5 s; at most 30 s.
    pub fn probe_tcp(&self, ports: std::ops::Range<u16>) -> Result<()> {
        let script = format!(
            "import socket\n\
             for p in range({}, {}):\n    s = socket.socket()\n    s.settimeout(0.5)\n    \
             try:\n        s.connect(('{}', p))\n    except OSError:\n        pass\n    s.close()\n",
            ports.start, ports.end, self.sensor_addr
        );
        self.python_in_gen("TCP prober", &script)
    }

    /// Runs a python3 `script` in the generator's namespace, for at most 30 s.
    fn python_in_gen(&self, what: &str, script: &str) -> Result<()> {
        let out = Command::new("timeout")
            .args(["30", "ip", "netns", "exec", &self.gen_ns, "python3", "-c", script])
            .output()
            .with_context(|| format!("running the {what}"))?;
        if !out.status.success() {
            bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.sensor_ns, &self.gen_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// A live sensor in the link's sensor namespace.
#[derive(Debug)]
pub struct Sensor {
    child: Child,
    /// Its stderr, as a file.
    pub log: PathBuf,
}

impl Sensor {
    /// `nbad-sensor run --config CONFIG` in `ns`.
    pub fn start(ns: &str, config: &Path, log: PathBuf) -> Result<Self> {
        let bin = crate::sensor::sensor_bin()?;
        let err = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("starting nbad-sensor run")?;
        Ok(Self { child, log })
    }

    /// The sensor's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log has a line containing `needle` (more than `already` of them).
    pub fn wait_log(&mut self, needle: &str, already: usize, limit: Duration) -> Result<()> {
        wait_until(&format!("log line {needle:?}"), limit, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("the sensor exited ({status}):\n{}", self.log_text());
            }
            Ok(self.log_text().matches(needle).count() > already)
        })
        .with_context(|| format!("sensor log:\n{}", self.log_text()))
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (`HUP`, `TERM`).
    pub fn signal(&self, signal: &str) -> Result<()> {
        run(&["kill", &format!("-{signal}"), &self.pid().to_string()])
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill().context("SIGKILL to the sensor")?;
        self.child.wait().context("waiting for the killed sensor")?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit code (at most 20 s).
    pub fn stop(mut self) -> Result<Option<i32>> {
        self.signal("TERM")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("the sensor did not stop within 20 s of SIGTERM:\n{}", self.log_text())
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

/// Polls `ready` every 100 ms until it says yes or `limit` passes.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready()? {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("{what}: not seen within {} s", limit.as_secs())
}

/// The UDP flow records in `path` (missing file: none), as `(source port, packets from the
/// source)`.
pub fn udp_flows(path: &Path) -> Vec<(u16, u64)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["network"]["transport"] == "udp")
        .filter_map(|r| {
            let port = u16::try_from(r["source"]["port"].as_u64()?).ok()?;
            Some((port, r["source"]["packets"].as_u64()?))
        })
        .collect()
}
