//! Real IPFIX / NetFlow v9 collectors from Debian, started on a free loopback UDP port in a
//! temporary directory, for the flow export tests (`tests/tests/export_ipfix.rs`):
//!
//! - [`Nfcapd`]: nfdump's `nfcapd` (Debian `nfdump`), read back with `nfdump -R DIR -o json`.
//!   It stores RFC 5103 reverse counters as `out_packets` / `out_bytes`.
//! - [`Nfacctd`]: pmacct's `nfacctd` (Debian `pmacct`) with its print plugin aggregating per
//!   5-tuple and appending JSON lines to a file every second. It does not account RFC 5103
//!   biflow records correctly (reverse counters are ignored for TCP and UDP, and ICMP records
//!   are mis-accounted), so it is tested with unidirectional records. It forks its plugin
//!   into a child and binds with `SO_REUSEPORT`: it runs in its own process group, and the
//!   whole group is killed when the guard is dropped, or a leftover instance would share (and
//!   steal from) a later one's port.
//!
//! Both take IPFIX and NetFlow v9 on the same port, over UDP only (neither accepts IPFIX over
//! TCP in the Debian 12 versions, nfdump 1.7.1 and pmacct 1.7.7).

use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{Process, find_program, wait_until};
use crate::flows::{FlowKey, FlowTotals, proto_number};

/// A UDP port on loopback that was free a moment ago.
pub fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Stops `process` with SIGTERM (so it writes out what it holds) and waits for it.
fn terminate(process: &mut Process, limit: Duration) -> Result<()> {
    let pid = process.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().context("running kill")?;
    if !status.success() {
        bail!("kill -TERM {pid} failed");
    }
    let stopped = wait_until(limit, || matches!(process.child.try_wait(), Ok(Some(_))));
    if !stopped {
        bail!("{} did not stop within {limit:?} of SIGTERM; {}", process.what, process.log());
    }
    Ok(())
}

/// A running `nfcapd`.
#[derive(Debug)]
pub struct Nfcapd {
    /// Its UDP port.
    pub port: u16,
    dir: PathBuf,
    process: Process,
}

impl Nfcapd {
    /// Starts nfcapd on `127.0.0.1:port`, storing under `dir`; `None` when not installed.
    pub fn start(dir: &Path) -> Result<Option<Self>> {
        let Some(bin) = find_program("nfcapd", &[]) else { return Ok(None) };
        let port = free_udp_port()?;
        let store = dir.join(format!("nfcapd-{port}"));
        std::fs::create_dir_all(&store)?;
        let mut cmd = Command::new(bin);
        cmd.args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600", "-w"]).arg(&store);
        let log = dir.join(format!("nfcapd-{port}.log"));
        let process = Process::spawn("nfcapd", &mut cmd, &log)?;
        let listening = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Startup nfcapd"))
        });
        if !listening {
            bail!("nfcapd did not start; {}", process.log());
        }
        Ok(Some(Self { port, dir: store, process }))
    }

    /// Stops nfcapd (it writes its file and its summary line at SIGTERM) and reads every
    /// record back with nfdump. Returns the records and nfcapd's log.
    pub fn stop_and_read(mut self) -> Result<(Vec<Value>, String)> {
        terminate(&mut self.process, Duration::from_secs(10))?;
        let nfdump = find_program("nfdump", &[]).context("nfdump not found")?;
        let out = Command::new(nfdump).arg("-R").arg(&self.dir).args(["-o", "json"]).output()?;
        if !out.status.success() {
            bail!("nfdump -R {} failed: {}", self.dir.display(), String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let log = self.process.log();
        if text.trim().is_empty() {
            return Ok((Vec::new(), log));
        }
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("nfdump JSON: {}", clip(&text)))?;
        Ok((v.as_array().cloned().unwrap_or_default(), log))
    }
}

/// Per-flow totals of nfdump records: `in_*` plus, for biflows, `out_*`.
pub fn nfdump_totals(records: &[Value]) -> Result<FlowTotals> {
    let mut t = FlowTotals::new();
    for r in records {
        if r.get("type").and_then(Value::as_str) != Some("FLOW") {
            continue;
        }
        let addr = |k4: &str, k6: &str| -> Result<IpAddr> {
            let s = r
                .get(k4)
                .or_else(|| r.get(k6))
                .and_then(Value::as_str)
                .with_context(|| format!("no address in {r}"))?;
            s.parse().with_context(|| format!("address {s:?}"))
        };
        let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let proto = u8::try_from(n("proto"))?;
        let port = |k: &str| u16::try_from(n(k)).ok();
        let key = FlowKey::new(
            proto,
            addr("src4_addr", "src6_addr")?,
            port("src_port"),
            addr("dst4_addr", "dst6_addr")?,
            port("dst_port"),
        );
        t.entry(key).or_default().add(n("in_packets") + n("out_packets"), n("in_bytes") + n("out_bytes"));
    }
    Ok(t)
}

/// A running `nfacctd` with a print plugin writing JSON lines.
#[derive(Debug)]
pub struct Nfacctd {
    /// Its UDP port.
    pub port: u16,
    output: PathBuf,
    process: Process,
}

impl Nfacctd {
    /// Starts nfacctd on `127.0.0.1:port`, aggregating per 5-tuple into a JSON lines file in
    /// `dir` every second; `None` when not installed.
    pub fn start(dir: &Path) -> Result<Option<Self>> {
        let Some(bin) = find_program("nfacctd", &[]) else { return Ok(None) };
        let port = free_udp_port()?;
        let output = dir.join(format!("nfacctd-{port}.jsonl"));
        let conf = dir.join(format!("nfacctd-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugins: print[flows]\n\
                 aggregate[flows]: src_host, dst_host, src_port, dst_port, proto\n\
                 print_output[flows]: json\nprint_output_file[flows]: {}\nprint_output_file_append[flows]: true\n\
                 print_refresh_time[flows]: 1\n",
                output.display()
            ),
        )?;
        let mut cmd = Command::new(bin);
        cmd.arg("-f").arg(&conf);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let log = dir.join(format!("nfacctd-{port}.log"));
        let process = Process::spawn("nfacctd", &mut cmd, &log)?;
        let listening = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("waiting for NetFlow/IPFIX data"))
        });
        if !listening {
            bail!("nfacctd did not start; {}", process.log());
        }
        Ok(Some(Self { port, output, process }))
    }

    /// Per-flow totals of everything printed so far.
    pub fn totals(&self) -> Result<FlowTotals> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let mut t = FlowTotals::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: Value = serde_json::from_str(line).with_context(|| format!("nfacctd line {line:?}"))?;
            let addr = |k: &str| -> Result<IpAddr> {
                let s = r.get(k).and_then(Value::as_str).with_context(|| format!("no {k} in {line}"))?;
                s.parse().with_context(|| format!("{k} {s:?}"))
            };
            let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
            let proto = match r.get("ip_proto") {
                Some(Value::String(s)) => proto_number(s).or_else(|| s.parse().ok()),
                Some(v) => v.as_u64().and_then(|p| u8::try_from(p).ok()),
                None => None,
            }
            .with_context(|| format!("no usable ip_proto in {line}"))?;
            let port = |k: &str| u16::try_from(n(k)).ok();
            let key =
                FlowKey::new(proto, addr("ip_src")?, port("port_src"), addr("ip_dst")?, port("port_dst"));
            t.entry(key).or_default().add(n("packets"), n("bytes"));
        }
        Ok(t)
    }

    /// nfacctd's own log.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

impl Drop for Nfacctd {
    fn drop(&mut self) {
        // The core process and its plugin child: the whole process group.
        let group = format!("-{}", self.process.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

fn clip(text: &str) -> String {
    text.chars().take(400).collect()
}
