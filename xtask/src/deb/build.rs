//! Building the package: generated assets, the unit-file check, and `cargo deb`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, note};
use crate::target_dir;

/// The Debian revision of a package built from this tree.
const REVISION: &str = "1";
/// The lines between these markers must be the same in both unit files.
const HARDENING_START: &str = "# --- hardening:";
const HARDENING_END: &str = "# --- end of hardening ---";
const UNITS: [&str; 2] = ["packaging/nbad-sensor.service", "packaging/nbad-sensor@.service"];

/// A built `.deb`.
#[derive(Debug, Clone)]
pub struct Package {
    /// The file.
    pub path: PathBuf,
    /// Its Debian version (`0.1.0-1`).
    pub version: String,
}

impl Package {
    /// Builds the package; `version` overrides the Debian version (the upgrade test's second
    /// package, which reuses the first one's binary and goes to its own folder).
    pub fn build(root: &Path, version: Option<&str>) -> Result<Self> {
        check_units(root)?;
        let target = target_dir(root);
        write_man_page(root, &target)?;
        let reuse_binary = version.is_some();
        let version = version.map_or_else(default_version, str::to_owned);
        let out_dir = target.join("debian").join(&version);
        fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        // --strip: the release profile keeps line tables for backtraces; Debian ships stripped binaries.
        let mut deb =
            cmd::cargo(["deb", "-p", "nbad-sensor", "--locked", "--strip", "--deb-version", &version]);
        deb.arg("--output").arg(&out_dir).current_dir(root);
        if reuse_binary {
            // The second package of the upgrade test: same binary, no second release build.
            deb.arg("--no-build");
        }
        if cmd::probe(Command::new("cargo").args(["deb", "--version"]))?.is_none() {
            bail!(
                "cargo-deb is not installed: run `cargo xtask setup` (or `cargo install cargo-deb --locked`)"
            );
        }
        cmd::run("cargo deb", &mut deb)?;
        let path = out_dir.join(format!("nbad-sensor_{version}_amd64.deb"));
        if !path.is_file() {
            bail!("cargo deb did not write {}", path.display());
        }
        Ok(Self { path, version })
    }

    /// The version of the upgrade test's second package: the next Debian revision.
    pub fn next_version(&self) -> String {
        match self.version.rsplit_once('-') {
            Some((upstream, rev)) => match rev.parse::<u32>() {
                Ok(n) => format!("{upstream}-{}", n + 1),
                Err(_) => format!("{}.1", self.version),
            },
            None => format!("{}-1", self.version),
        }
    }
}

/// Checks that the package's release build and a plain `cargo build --release` are the same
/// build: run after `cargo deb`, the plain one must compile nothing. (They once differed in an
/// environment variable a build script tracks, and each rebuilt the whole sensor with LTO,
/// undoing the other; see [`cmd::without_cargo_run_env`].)
pub fn release_build_is_shared(root: &Path) -> Result<()> {
    let mut build = cmd::cargo(["build", "--release", "--locked"]);
    build.current_dir(root);
    let line = cmd::display(&build);
    let started = std::time::Instant::now();
    let out = build.output().with_context(|| format!("running {line}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("`{line}` failed after cargo deb:\n{err}");
    }
    let rebuilt: Vec<&str> = err.lines().filter(|l| l.trim_start().starts_with("Compiling")).collect();
    if !rebuilt.is_empty() {
        bail!(
            "`{line}` after `cargo deb` rebuilt {} crates (the two builds must be one): {}",
            rebuilt.len(),
            rebuilt.join("; ")
        );
    }
    note(&format!("`{line}` after cargo deb: nothing rebuilt ({:.1} s)", started.elapsed().as_secs_f64()));
    Ok(())
}

/// `<workspace version>-1`.
fn default_version() -> String {
    format!("{}-{REVISION}", env!("CARGO_PKG_VERSION"))
}

/// `packaging/nbad-sensor.8` gzipped with `gzip -9n` (no name, no time stamp: reproducible, as
/// lintian wants) to `target/deb-assets/`, where `[package.metadata.deb]` expects it.
fn write_man_page(root: &Path, target: &Path) -> Result<()> {
    let source = root.join("packaging/nbad-sensor.8");
    let dir = target.join("deb-assets");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = Command::new("gzip")
        .args(["-9n", "--stdout"])
        .arg(&source)
        .output()
        .with_context(|| format!("running gzip on {}", source.display()))?;
    if !out.status.success() {
        bail!("gzip -9n {} failed: {}", source.display(), String::from_utf8_lossy(&out.stderr));
    }
    let dest = dir.join("nbad-sensor.8.gz");
    fs::File::create(&dest)
        .and_then(|mut f| f.write_all(&out.stdout))
        .with_context(|| format!("writing {}", dest.display()))?;
    note(&format!("man page: {}", dest.display()));
    Ok(())
}

/// Fails unless both unit files carry the same hardening block.
fn check_units(root: &Path) -> Result<()> {
    let blocks = UNITS
        .iter()
        .map(|unit| {
            let path = root.join(unit);
            let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            hardening_block(&text).with_context(|| format!("{unit}: no `{HARDENING_START}` ... block"))
        })
        .collect::<Result<Vec<_>>>()?;
    if blocks[0] != blocks[1] {
        bail!("{} and {} have different hardening blocks; keep them identical", UNITS[0], UNITS[1]);
    }
    Ok(())
}

fn hardening_block(unit: &str) -> Option<String> {
    let start = unit.find(HARDENING_START)?;
    let end = unit[start..].find(HARDENING_END)? + start;
    Some(unit[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::{Package, hardening_block};

    #[test]
    fn upgrade_version_is_the_next_revision() {
        let p = Package { path: "x.deb".into(), version: "0.1.0-1".into() };
        assert_eq!(p.next_version(), "0.1.0-2");
    }

    #[test]
    fn both_unit_files_share_one_hardening_block() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        super::check_units(&root).expect("identical hardening blocks");
        assert!(hardening_block("x\n").is_none());
    }
}
