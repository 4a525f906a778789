//! A small network in namespaces, with real clients and servers, and the
//! sensor on a mirror of the router's inside interface: the live lab behind
//! `cargo xtask lab` and `tests/tests/lab.rs`.
//!
//! - [`topology`]: the nodes, their addresses and names (a diagram is there).
//! - [`net`]: namespaces, veths, bridges, routes, and the tc mirror.
//! - [`servers`]: generated files and keys, and the outside servers.
//! - [`episodes`]: benign traffic and the episodes, one function each.
//! - [`sensor`]: `nbad-sensor run` on a capture interface, stopped by SIGTERM.
//! - [`exec`]: bounded commands and tracked processes; the stop flag.
//! - [`preflight`]: root, and the programs needed, with their packages.
//!
//! Network safety, the invariants every part keeps: traffic exists only
//! inside namespaces the lab creates, joined by veth pairs; no namespace has
//! a route beyond `10.77.0.0/16`; nothing is created in the caller's
//! namespace; every process is bounded in time (`timeout(1)`) and, for
//! traffic generators, in count; [`Lab`]'s `Drop` tears everything down;
//! and every start first removes what a dead earlier run left (names with
//! the `nbl` prefix whose pid is gone).
//!
//! This module uses only `std`, `anyhow` and `serde_json`, so that xtask can
//! compile the same files (`#[path]`) without depending on this crate.

pub mod episodes;
pub mod exec;
pub mod net;
pub mod preflight;
pub mod sensor;
pub mod servers;
pub mod topology;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context as _, Result, bail};

pub use episodes::{Episode, Outcome};
pub use exec::{request_stop, stop_requested};
pub use net::MirrorFilter;
pub use sensor::{LabSensor, SensorOutput, config_with};
pub use servers::Materials;
pub use topology::Node;

use exec::Daemon;
use topology::Names;

/// Tag of the next lab this process starts (`a`, `b`, …).
static NEXT_TAG: AtomicU8 = AtomicU8::new(b'a');

/// How a lab is built.
#[derive(Debug, Clone, Copy)]
pub struct LabOptions {
    /// Capture interfaces fed by the mirror (`span0`, `span1`, …), so that
    /// several sensors can capture the same traffic at once. 1 to 4.
    pub mirror_ports: usize,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self { mirror_ports: 1 }
    }
}

/// A running lab. Torn down by [`Lab::teardown`] or, failing that, on drop.
#[derive(Debug)]
pub struct Lab {
    names: Names,
    dir: PathBuf,
    materials: Option<Materials>,
    mirror: Option<MirrorFilter>,
    servers: Vec<Daemon>,
    leftovers_removed: Vec<String>,
    torn_down: bool,
}

impl Lab {
    /// Removes leftovers of dead earlier labs, builds the network, generates
    /// the files and keys, and starts every server. Fails (after tearing
    /// down what it built) if any step fails; see [`preflight::unavailable`]
    /// for what it needs.
    pub fn start(options: LabOptions) -> Result<Self> {
        if let Some(why) = preflight::unavailable() {
            bail!("{why}");
        }
        if !(1..=4).contains(&options.mirror_ports) {
            bail!("mirror_ports = {}: valid is 1 to 4", options.mirror_ports);
        }
        let leftovers_removed = net::remove_leftovers().context("removing leftovers of earlier labs")?;
        let tag = char::from(NEXT_TAG.fetch_add(1, Ordering::SeqCst));
        if !tag.is_ascii_lowercase() {
            bail!("this process already started 26 labs");
        }
        let names = Names::new(tag);
        let dir = std::env::temp_dir().join(names.prefix());
        let mut lab = Self {
            names,
            dir,
            materials: None,
            mirror: None,
            servers: Vec::new(),
            leftovers_removed,
            torn_down: false,
        };
        // From here on, an error drops `lab`, which tears down.
        std::fs::create_dir_all(&lab.dir).with_context(|| format!("creating {}", lab.dir.display()))?;
        let materials = Materials::generate(&lab.dir).context("generating the lab's files and keys")?;
        lab.mirror = Some(net::build(&lab.names, options.mirror_ports).context("building the lab network")?);
        net::write_resolv_conf(&lab.names)?;
        lab.servers = servers::start(&lab.names, &materials).context("starting the lab's servers")?;
        lab.materials = Some(materials);
        Ok(lab)
    }

    /// The namespace of `node`.
    #[must_use]
    pub fn ns(&self, node: Node) -> String {
        self.names.ns(node)
    }

    /// The lab's name prefix (`nbl<pid><tag>`).
    #[must_use]
    pub fn prefix(&self) -> &str {
        self.names.prefix()
    }

    /// The scratch folder (files, keys, logs, sensor configs).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generated files.
    ///
    /// # Panics
    /// Never after [`Lab::start`] returned: it sets them before returning.
    #[must_use]
    pub fn materials(&self) -> &Materials {
        self.materials.as_ref().unwrap_or_else(|| panic!("lab {} has no materials", self.prefix()))
    }

    /// The tc classifier carrying the mirror.
    #[must_use]
    pub fn mirror_filter(&self) -> Option<MirrorFilter> {
        self.mirror
    }

    /// What the start removed from dead earlier labs.
    #[must_use]
    pub fn leftovers_removed(&self) -> &[String] {
        &self.leftovers_removed
    }

    /// The running servers' names.
    #[must_use]
    pub fn server_names(&self) -> Vec<&str> {
        self.servers.iter().map(Daemon::name).collect()
    }

    /// Stops every server and removes every namespace, file and folder.
    pub fn teardown(mut self) {
        self.teardown_inner();
    }

    fn teardown_inner(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for server in &mut self.servers {
            server.stop();
        }
        self.servers.clear();
        net::remove(&self.names);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown_inner();
    }
}
