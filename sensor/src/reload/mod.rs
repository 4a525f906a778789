//! Live reconfiguration: SIGHUP rereads the configuration file and swaps in what can change
//! while the sensor runs, without touching flow state.
//!
//! [`ConfigHandle`] holds the running configuration behind an [`ArcSwap`] with a version
//! number. Any stage polls [`ConfigHandle::version`] (one relaxed atomic load) where it is
//! cheap to do so, and loads the new configuration only when the number moved. A reload
//! ([`ConfigHandle::reload`]) reads and validates the whole file first: a file that does not
//! parse or validate, or whose new flow output cannot be opened, is refused with the reason
//! and the running configuration stays as it was. A valid file replaces the *reloadable*
//! settings and bumps the version; every other changed setting is reported as needing a
//! restart and keeps its running value, so the running configuration is always one that the
//! pipeline really runs with.
//!
//! Reloadable today: `output.flows` (reopened at the next record boundary by
//! [`ReloadableOutput`], also when the path is unchanged, so logrotate can move the file).
//! The detectors' thresholds and allow-lists join this list when they exist: they read them
//! through the same handle. Flow tables, baselines and the capture are never rebuilt by a
//! reload.
//!
//! [`SighupReloader`] is the thread that waits for SIGHUP and calls `reload`.

mod output;
mod signal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::config::{self, Config, ConfigError, OutputTarget};
pub use output::ReloadableOutput;
pub use signal::SighupReloader;

/// One version of the running configuration.
#[derive(Debug)]
pub struct Versioned {
    /// 1 for the configuration the sensor started with, then one more per accepted reload.
    pub version: u64,
    /// The configuration.
    pub config: Config,
}

/// The running configuration, shared by every stage with reloadable settings.
pub struct ConfigHandle {
    current: ArcSwap<Versioned>,
    version: AtomicU64,
    /// Applied to every file read (the command line's `--flows`/`--stats` overrides).
    overrides: Box<dyn Fn(&mut Config) + Send + Sync>,
}

impl std::fmt::Debug for ConfigHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigHandle").field("current", &self.current.load()).finish_non_exhaustive()
    }
}

/// What an accepted reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new version number.
    pub version: u64,
    /// Reloadable settings that changed (or were reopened) and now apply.
    pub applied: Vec<&'static str>,
    /// Settings that changed in the file but apply only after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The new flow output cannot be opened.
    #[error("{path}: cannot open the new output.flows file: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ConfigHandle {
    /// A handle on `config` (version 1); `overrides` is applied to every reloaded file too.
    pub fn new(config: Config, overrides: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        Self {
            current: ArcSwap::from_pointee(Versioned { version: 1, config }),
            version: AtomicU64::new(1),
            overrides: Box::new(overrides),
        }
    }

    /// The current version number: cheap enough for a hot loop.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current configuration.
    #[must_use]
    pub fn load(&self) -> Arc<Versioned> {
        self.current.load_full()
    }

    /// Rereads `path`. On success the reloadable settings are swapped in and the version
    /// bumped; on failure nothing changes.
    pub fn reload(&self, path: &Path) -> Result<ReloadReport, ReloadError> {
        let mut new = config::load(path)?;
        (self.overrides)(&mut new);
        if let OutputTarget::File(file) = &new.output.flows {
            output::open_append(file).map_err(|source| ReloadError::Output { path: file.clone(), source })?;
        }
        let old = self.current.load_full();
        let (running, report) = merge(&old.config, new, old.version + 1);
        self.current.store(Arc::new(Versioned { version: report.version, config: running }));
        self.version.store(report.version, Ordering::Release);
        Ok(report)
    }
}

/// The configuration to run after a reload: `old` with the reloadable settings of `new`.
fn merge(old: &Config, new: Config, version: u64) -> (Config, ReloadReport) {
    let mut needs_restart = Vec::new();
    let changed = [
        ("sensor", old.sensor != new.sensor),
        ("capture", old.capture != new.capture),
        ("decode", old.decode != new.decode),
        ("flows", old.flows != new.flows),
        ("output.stats", old.output.stats != new.output.stats),
        ("output.stats_interval_s", old.output.stats_interval != new.output.stats_interval),
        ("output.ipfix/output.kafka", old.output.export != new.output.export),
        ("metrics", old.metrics != new.metrics),
        ("detection.state_file", old.detection.state_file != new.detection.state_file),
        ("detection.bucket_s", old.detection.bucket != new.detection.bucket),
        // The output rewrite is built with the pipeline; a key changed under a running
        // sensor would give hosts two pseudonyms in one run.
        ("privacy", old.privacy != new.privacy),
    ];
    for (name, differs) in changed {
        if differs {
            needs_restart.push(name);
        }
    }
    let mut running = old.clone();
    running.output.flows = new.output.flows;
    // Thresholds, allow-list, assets and suppression apply at once; where the
    // state is saved and the bucket length keep their running values.
    let mut detection = new.detection;
    detection.state_file.clone_from(&old.detection.state_file);
    detection.bucket = old.detection.bucket;
    running.detection = detection;
    (running, ReloadReport { version, applied: vec!["output.flows", "detection"], needs_restart })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn a_bad_file_is_refused_and_the_running_configuration_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = write(dir.path(), "good.toml", "[output]\nflows = \"\"\n");
        let handle = ConfigHandle::new(config::load(&good).expect("loads"), |_| {});
        let bad = write(dir.path(), "bad.toml", "[flows]\nmax_flows = -1\n");
        let err = handle.reload(&bad).expect_err("refused");
        assert!(err.to_string().contains("flows.max_flows"), "{err}");
        assert_eq!(handle.version(), 1);
        assert_eq!(handle.load().config.output.flows, OutputTarget::None);
    }

    #[test]
    fn a_new_flow_output_applies_and_other_changes_wait_for_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(dir.path(), "a.toml", "[output]\nflows = \"\"\n");
        let handle = ConfigHandle::new(config::load(&first).expect("loads"), |_| {});
        let out = dir.path().join("new.json");
        let second = write(
            dir.path(),
            "b.toml",
            &format!("[flows]\nmax_flows = 5000\n\n[output]\nflows = {:?}\n", out.display().to_string()),
        );
        let report = handle.reload(&second).expect("accepted");
        assert_eq!(
            report,
            ReloadReport {
                version: 2,
                applied: vec!["output.flows", "detection"],
                needs_restart: vec!["flows"]
            }
        );
        let running = handle.load();
        assert_eq!(running.version, 2);
        assert_eq!(running.config.output.flows, OutputTarget::File(out));
        assert_eq!(running.config.flows.max_flows, 1_000_000, "the flow table is not resized");
    }

    #[test]
    fn a_changed_privacy_section_waits_for_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(dir.path(), "a.toml", "[output]\nflows = \"\"\n");
        let handle = ConfigHandle::new(config::load(&first).expect("loads"), |_| {});
        let second =
            write(dir.path(), "b.toml", "[output]\nflows = \"\"\n[privacy]\ndrop_payload_fields = true\n");
        let report = handle.reload(&second).expect("accepted");
        assert_eq!(report.needs_restart, ["privacy"]);
        assert!(!handle.load().config.privacy.drop_payload_fields, "kept until a restart");
    }

    #[test]
    fn an_unwritable_flow_output_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(dir.path(), "a.toml", "[output]\nflows = \"\"\n");
        let handle = ConfigHandle::new(config::load(&first).expect("loads"), |_| {});
        let second = write(dir.path(), "b.toml", "[output]\nflows = \"/nonexistent-dir/x/flows.json\"\n");
        let err = handle.reload(&second).expect_err("refused");
        assert!(matches!(err, ReloadError::Output { .. }), "{err}");
        assert_eq!(handle.version(), 1);
    }
}
