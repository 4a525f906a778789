//! Static checks of the package: lintian, and systemd-analyze's exposure score of the units.
//!
//! `systemd-analyze verify` needs the unit's binary, man page and `/bin/kill` where the unit
//! names them, so it runs inside the container once the package is installed
//! (`scenario.rs`); `security --offline=true` reads the unit file alone and runs here.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::Package;
use crate::cmd::{self, note};

/// The highest `systemd-analyze security` exposure accepted (issue 6).
pub const MAX_EXPOSURE: f64 = 2.5;

/// lintian on the package: errors and warnings fail; overrides live in
/// `packaging/lintian-overrides`, each with its reason.
pub fn lintian(package: &Package) -> Result<()> {
    cmd::run(
        "lintian",
        Command::new("lintian")
            .args(["--fail-on", "error,warning", "--display-info", "--tag-display-limit", "0"])
            .arg(&package.path),
    )
}

/// The exposure score of both units (the template as an instance), offline; fails above
/// [`MAX_EXPOSURE`]. Returns the higher score.
pub fn analyze_units(root: &Path, _package: &Package) -> Result<f64> {
    let dir = tempfile_dir()?;
    let instance = dir.join("nbad-sensor@eth1.service");
    fs::copy(root.join("packaging/nbad-sensor@.service"), &instance)
        .with_context(|| format!("copying the template unit to {}", instance.display()))?;
    let mut worst = 0.0_f64;
    for unit in [root.join("packaging/nbad-sensor.service"), instance] {
        let score = exposure(&unit)?;
        note(&format!("{}: exposure {score:.1}", unit.display()));
        worst = worst.max(score);
    }
    let _ = fs::remove_dir_all(&dir);
    if worst > MAX_EXPOSURE {
        bail!("systemd-analyze security: exposure {worst:.1} is above {MAX_EXPOSURE}");
    }
    Ok(worst)
}

/// `systemd-analyze security --offline=true UNIT`'s overall exposure.
fn exposure(unit: &Path) -> Result<f64> {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["security", "--offline=true", "--no-pager"]).arg(unit);
    eprintln!("    $ {}", cmd::display(&cmd));
    let out = cmd.output().context("running systemd-analyze (is systemd installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_exposure(&text).with_context(|| {
        format!(
            "no exposure level in systemd-analyze's output:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Reads `→ Overall exposure level for X.service: 2.2 OK 🙂`.
pub fn parse_exposure(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains("Overall exposure level for"))?;
    let after = line.rsplit_once(".service:")?.1;
    after.split_whitespace().next()?.parse().ok()
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("nbad-units-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_overall_exposure_line() {
        let text = "✗ UMask= ... 0.1\n\n→ Overall exposure level for nbad-sensor.service: 2.2 OK 🙂\n";
        assert_eq!(super::parse_exposure(text), Some(2.2));
        assert_eq!(super::parse_exposure("nothing"), None);
    }
}
