//! The saved detection state: every host's baseline and the service
//! inventory, as one versioned JSON document.
//!
//! Fields added after version 1 was first written (a host's outlier
//! distribution, administrative pairs, role and held buckets; the peer groups;
//! the verdicts) are optional
//! when read: an older file loads, and what it lacks starts empty.
//!
//! Written atomically (a temporary file beside the target, synced, then
//! renamed over it), so a crash mid-write leaves the previous snapshot. A
//! file of another format or version is refused with a message that says so,
//! rather than half-read.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::baseline::HostBaseline;

/// The `format` field of a state file.
pub const FORMAT: &str = "nbad-sensor-baselines";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// One service of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The server.
    pub server: IpAddr,
    /// Its port.
    pub port: u16,
    /// IANA transport number.
    pub transport: u8,
    /// The protocol seen.
    pub protocol: String,
    /// First seen, ns since the epoch.
    pub first_ns: u64,
}

/// The whole saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this build.
    pub version: u32,
    /// Packet time of the snapshot, ns since the epoch.
    pub saved_at_ns: u64,
    /// Baselines by host.
    pub hosts: BTreeMap<IpAddr, HostBaseline>,
    /// The service inventory.
    pub services: Vec<ServiceEntry>,
    /// `host_outlier`'s peer groups.
    #[serde(default)]
    pub peer_groups: super::outlier::groups::Groups,
    /// Analysts' verdicts, the suppressions they made, and the alert ledger they refer to.
    #[serde(default)]
    pub verdicts: super::verdict::Book,
}

impl State {
    /// A state of the current format and version.
    #[must_use]
    pub fn new(saved_at_ns: u64, hosts: BTreeMap<IpAddr, HostBaseline>, services: Vec<ServiceEntry>) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            saved_at_ns,
            hosts,
            services,
            peer_groups: super::outlier::groups::Groups::default(),
            verdicts: super::verdict::Book::default(),
        }
    }
}

/// Loads the state at `path`; `Ok(None)` when there is no such file.
pub fn load(path: &Path) -> anyhow::Result<Option<State>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("{}: cannot read the baseline state", path.display()));
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: the baseline state is not valid JSON", path.display()))?;
    let format = value.get("format").and_then(serde_json::Value::as_str).unwrap_or("");
    let version = value.get("version").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if format != FORMAT || version != u64::from(VERSION) {
        anyhow::bail!(
            "{}: not a baseline state this build reads (format {format:?} version {version}; expected {FORMAT:?} version {VERSION}); move it away or reset it",
            path.display()
        );
    }
    let state = serde_json::from_value(value)
        .with_context(|| format!("{}: the baseline state is damaged", path.display()))?;
    Ok(Some(state))
}

/// Saves `state` to `path` atomically.
pub fn save(path: &Path, state: &State) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            serde_json::to_writer(&mut w, state)?;
            w.write_all(b"\n")?;
            w.flush()?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().with_context(|| format!("{}: cannot save the baseline state", path.display()))
}
