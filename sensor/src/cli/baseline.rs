//! `nbad-sensor baseline show|reset HOST`: a host's saved baseline.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::BaselineAction;
use crate::config::{self, ConfigError};
use crate::detect::state;

fn state_path(cfg_path: &Path, state: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(s) = state {
        return Ok(s);
    }
    let cfg = config::load(cfg_path)?;
    cfg.detection.state_file.ok_or_else(|| {
        anyhow::Error::new(ConfigError::Missing {
            path: cfg_path.to_path_buf(),
            key: "detection.state_file".into(),
            expected: "the file baselines are saved in (or pass --state FILE)".into(),
        })
    })
}

/// Runs a `baseline` command.
pub(super) fn execute(action: BaselineAction) -> anyhow::Result<()> {
    match action {
        BaselineAction::Show { host, config, state: st } => {
            let path = state_path(&config, st)?;
            let saved = state::load(&path)?
                .with_context(|| format!("{}: no baseline state saved yet", path.display()))?;
            let b = saved
                .hosts
                .get(&host)
                .with_context(|| format!("{host}: no baseline in {}", path.display()))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::detect::baseline::describe(host, b, saved.saved_at_ns))?
            );
            Ok(())
        }
        BaselineAction::Reset { host, config, state: st } => {
            let path = state_path(&config, st)?;
            let mut saved = state::load(&path)?
                .with_context(|| format!("{}: no baseline state saved yet", path.display()))?;
            if saved.hosts.remove(&host).is_none() {
                anyhow::bail!("{host}: no baseline in {}", path.display());
            }
            state::save(&path, &saved)?;
            eprintln!(
                "nbad-sensor: {host}: baseline removed from {}; it learns again from scratch",
                path.display()
            );
            Ok(())
        }
    }
}
