//! A real Kafka-protocol broker for the Kafka tests: tansu (crates.io `tansu`, built with its
//! `dynostore` feature for the `memory://` storage engine by `cargo xtask setup` into
//! `target/tansu/bin`, because Apache Kafka is not in Debian), on a free loopback port.
//! Records are read back with tansu's own client (`tansu cat consume`, one partition at a
//! time), which is not the sensor's (rskafka): the check does not trust the code it checks.
//!
//! tansu's memory engine keeps nothing across a restart. To cut a running broker off in the
//! middle of a delivery without losing what it already acknowledged, the tests put a
//! [`Relay`] between the sensor and the broker (the broker advertises the relay's address),
//! and take the relay down and up: every connection is cut and new ones are closed at once,
//! as a stopped broker's would be.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{Process, find_program, free_port, wait_for_port, workspace};

/// Where `cargo xtask setup` installs tansu.
#[must_use]
pub fn tansu_path() -> PathBuf {
    workspace().join("target/tansu/bin/tansu")
}

/// A running tansu broker.
#[derive(Debug)]
pub struct Tansu {
    /// Its own port.
    pub port: u16,
    /// The port it advertises to clients (its own, or a relay's).
    pub advertised: u16,
    bin: PathBuf,
    process: Process,
}

impl Tansu {
    /// Starts tansu on `port`, advertising `advertised`; `None` when it is not installed.
    pub fn start(dir: &Path, port: u16, advertised: u16) -> Result<Option<Self>> {
        let Some(bin) = find_program("tansu", &[tansu_path()]) else { return Ok(None) };
        let mut cmd = Command::new(&bin);
        cmd.args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
            "--storage-engine",
            "memory://tansu/",
        ]);
        let process = Process::spawn("tansu", &mut cmd, &dir.join(format!("tansu-{port}.log")))?;
        wait_for_port(port, Duration::from_secs(20)).with_context(|| process.log())?;
        Ok(Some(Self { port, advertised, bin, process }))
    }

    /// `host:port` clients bootstrap from.
    #[must_use]
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    /// Every record of `topic` as (partition, value parsed as JSON), read with `tansu cat
    /// consume` from each of the topic's partitions.
    pub fn consume(&self, topic: &str) -> Result<Vec<(u32, Value)>> {
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        let list = Command::new(&self.bin).args(["topic", "list", "--broker", &broker]).output()?;
        if !list.status.success() {
            bail!("tansu topic list: {}", String::from_utf8_lossy(&list.stderr));
        }
        let topics: Value = serde_json::from_slice(&list.stdout).context("tansu topic list output")?;
        let partitions = topics
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == topic))
            .and_then(|t| t["partitions"].as_array())
            .map_or(0, Vec::len);
        let mut out = Vec::new();
        for p in 0..partitions {
            let run = Command::new(&self.bin)
                .args(["cat", "consume", "--broker", &broker, "--partition", &p.to_string()])
                .args(["--max-wait-time-ms", "500", topic])
                .output()?;
            if !run.status.success() {
                bail!("tansu cat consume {topic}/{p}: {}", String::from_utf8_lossy(&run.stderr));
            }
            let text = String::from_utf8_lossy(&run.stdout);
            for chunk in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
                let chunk = chunk.with_context(|| format!("tansu cat consume output: {}", clip(&text)))?;
                for record in chunk.as_array().cloned().unwrap_or_default() {
                    out.push((u32::try_from(p)?, record["value"].clone()));
                }
            }
        }
        Ok(out)
    }

    /// The broker's log.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A TCP relay on a free loopback port to `target`, which can be taken down (every
/// connection cut, new ones closed at once) and brought back.
#[derive(Debug)]
pub struct Relay {
    /// The relay's port.
    pub port: u16,
    up: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Starts relaying `127.0.0.1:port` (a free port) to `127.0.0.1:target`.
    pub fn start(target: u16) -> Result<Self> {
        let port = free_port()?;
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let up = Arc::new(AtomicBool::new(true));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, streams2) = (Arc::clone(&up), Arc::clone(&streams));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                if let Ok(mut list) = streams2.lock()
                    && let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone())
                {
                    list.push(c);
                    list.push(s);
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Ok(Self { port, up, streams })
    }

    /// Cuts every connection and closes new ones until [`up`](Self::up).
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut list) = self.streams.lock() {
            for s in list.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Relays again.
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { return };
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Kafka's default partitioner (murmur2 of the key, positive, modulo the partitions), written
/// here from Kafka's `Utils.murmur2` so the tests check the sensor's placement independently.
#[must_use]
pub fn default_partition(key: &[u8], partitions: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ u32::try_from(key.len()).unwrap_or(u32::MAX);
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    for (i, b) in tail.iter().enumerate().rev() {
        h ^= u32::from(*b) << (8 * i);
    }
    if !tail.is_empty() {
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    (h & 0x7fff_ffff) % partitions.max(1)
}

fn clip(text: &str) -> String {
    text.chars().take(400).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_partitioner_matches_kafkas_murmur2() {
        // Kafka's UtilsTest: murmur2("21") = -973932308, so partition = (h & 0x7fffffff) % n.
        let h = (-973_932_308_i32).cast_unsigned() & 0x7fff_ffff;
        assert_eq!(default_partition(b"21", 7), h % 7);
        let h = 479_470_107_u32 & 0x7fff_ffff;
        assert_eq!(default_partition(b"abc", 5), h % 5);
    }
}
