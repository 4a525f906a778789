//! `osmem-server`, an in-memory OpenSearch-compatible server (PyPI `osmem-server`, installed by
//! `cargo xtask setup` into `target/receivers/venv`), on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{Process, find_program, http, wait_for_port, workspace};

/// A running osmem-server.
#[derive(Debug)]
pub struct OpenSearch {
    /// Its port.
    pub port: u16,
    /// The server process.
    pub process: Process,
}

/// Where the PyPI package puts its bundled server binary inside the venv.
fn venv_binaries() -> Vec<PathBuf> {
    let lib = workspace().join("target/receivers/venv/lib");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            found.push(e.path().join("site-packages/osmem_server/bin/osmem-server"));
        }
    }
    if let Some(bin) = std::env::var_os("OSMEM_SERVER_BIN") {
        found.insert(0, PathBuf::from(bin));
    }
    found
}

impl OpenSearch {
    /// Starts osmem-server; `None` when it is not installed.
    pub fn start(dir: &Path, port: u16) -> Result<Option<Self>> {
        let Some(bin) = find_program("osmem-server", &venv_binaries()) else { return Ok(None) };
        let mut cmd = Command::new(bin);
        cmd.args(["--addr", &format!("127.0.0.1:{port}"), "--no-stdin-watch", "--no-ja"]);
        let process = Process::spawn("osmem-server", &mut cmd, &dir.join(format!("osmem-{port}.log")))?;
        wait_for_port(port, Duration::from_secs(20)).with_context(|| process.log())?;
        Ok(Some(Self { port, process }))
    }

    /// The URL the sink is configured with.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `_id` of every document in `index`.
    pub fn ids(&self, index: &str) -> Result<Vec<String>> {
        let (status, body) =
            http(self.port, "GET", &format!("/{index}/_search?size=10000&_source=false"), "")?;
        if status == 404 {
            return Ok(Vec::new());
        }
        if status != 200 {
            bail!("_search: HTTP {status}: {body}");
        }
        let doc: Value = serde_json::from_str(&body)?;
        let hits = doc["hits"]["hits"].as_array().cloned().unwrap_or_default();
        Ok(hits.iter().filter_map(|h| h["_id"].as_str().map(str::to_owned)).collect())
    }
}
