//! `nats-server -js` on a free loopback port, and a minimal NATS protocol client that reads a
//! stream's messages back with the JetStream API (`$JS.API.STREAM.INFO` / `STREAM.MSG.GET`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use serde_json::Value;

use super::{Process, find_program, wait_for_port};

/// A running NATS server with JetStream.
#[derive(Debug)]
pub struct Nats {
    /// Its client port.
    pub port: u16,
    /// The server process.
    pub process: Process,
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        // One request is several small writes: without this, Nagle and delayed ACKs cost 40 ms each.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut c = Self { reader: BufReader::new(stream.try_clone()?), writer: stream };
        let mut info = String::new();
        c.reader.read_line(&mut info)?;
        c.writer.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB _INBOX.t 1\r\n")?;
        Ok(c)
    }

    /// A JetStream API request; returns the JSON reply.
    fn request(&mut self, subject: &str, body: &str) -> Result<Value> {
        self.writer.write_all(format!("PUB {subject} _INBOX.t {}\r\n{body}\r\n", body.len()).as_bytes())?;
        for _ in 0..100 {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("connection closed");
            }
            if line.starts_with("PING") {
                self.writer.write_all(b"PONG\r\n")?;
            } else if let Some(rest) = line.strip_prefix("MSG ") {
                let len: usize =
                    rest.split_whitespace().last().and_then(|n| n.parse().ok()).context("MSG length")?;
                let mut payload = vec![0; len + 2];
                self.reader.read_exact(&mut payload)?;
                payload.truncate(len);
                return Ok(serde_json::from_slice(&payload)?);
            } else if line.starts_with("-ERR") {
                bail!("nats: {line}");
            }
        }
        bail!("no reply to {subject}")
    }
}

impl Nats {
    /// Starts nats-server with JetStream storing in `dir`; `None` when it is not installed.
    pub fn start(dir: &Path, port: u16) -> Result<Option<Self>> {
        let Some(bin) = find_program("nats-server", &[]) else { return Ok(None) };
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"]).arg(dir.join("js"));
        let process = Process::spawn("nats-server", &mut cmd, &dir.join(format!("nats-{port}.log")))?;
        wait_for_port(port, Duration::from_secs(10)).with_context(|| process.log())?;
        Ok(Some(Self { port, process }))
    }

    /// The URL the sink is configured with.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// How many messages `stream` holds.
    pub fn count(&self, stream: &str) -> Result<u64> {
        let info = Conn::open(self.port)?.request(&format!("$JS.API.STREAM.INFO.{stream}"), "")?;
        Ok(info["state"]["messages"].as_u64().unwrap_or(0))
    }

    /// The payload of every message in `stream`, in order.
    pub fn messages(&self, stream: &str) -> Result<Vec<String>> {
        let mut c = Conn::open(self.port)?;
        let info = c.request(&format!("$JS.API.STREAM.INFO.{stream}"), "")?;
        let state = &info["state"];
        let (first, last) =
            (state["first_seq"].as_u64().unwrap_or(1), state["last_seq"].as_u64().unwrap_or(0));
        let mut out = Vec::new();
        for seq in first..=last {
            let reply =
                c.request(&format!("$JS.API.STREAM.MSG.GET.{stream}"), &format!("{{\"seq\":{seq}}}"))?;
            let data = reply["message"]["data"].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD.decode(data)?;
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(out)
    }
}
