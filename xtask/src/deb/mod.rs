//! `cargo xtask deb`: the Debian package, built by cargo-deb from `[package.metadata.deb]` in
//! sensor/Cargo.toml and the files in packaging/.
//!
//! - `build.rs`: the assets cargo-deb cannot make itself (the gzipped man page), a check that
//!   the two unit files share one hardening block, and `cargo deb`.
//! - `lint.rs`: lintian (`--fail-on error,warning`) and `systemd-analyze verify` / `security`.
//! - `container.rs`: a Debian 12 system booted with systemd in `systemd-nspawn`, from a
//!   debootstrap tarball cached under `target/nspawn/`.
//! - `scenario.rs`: install, configure, start, capture, reload, upgrade, remove and purge the
//!   package inside that container, checking each outcome.
//!
//! `cargo xtask deb` builds the package; `--check` also lints it and runs the container
//! scenario (what `cargo xtask test` runs, as root).

mod build;
pub mod container;
mod lint;
mod scenario;

use std::path::Path;

use anyhow::Result;
use clap::Args;

use crate::cmd::{heading, note};

pub use build::Package;

#[derive(Debug, Args)]
pub struct DebArgs {
    /// Also run lintian, systemd-analyze and the install/upgrade/purge test in a systemd-nspawn
    /// container (root; needs lintian, debootstrap and systemd-container).
    #[arg(long)]
    check: bool,
    /// Skip `cargo xtask setup` (only with --check).
    #[arg(long)]
    no_setup: bool,
}

pub fn run(root: &Path, args: &DebArgs) -> Result<()> {
    if args.check {
        if !args.no_setup {
            crate::setup::run()?;
        }
        return check(root);
    }
    heading("deb: building the Debian package");
    let package = Package::build(root, None)?;
    note(&format!("built {}", package.path.display()));
    Ok(())
}

/// Builds the package and a second one with a higher version, lints the first, and runs the
/// container scenario with both.
pub fn check(root: &Path) -> Result<()> {
    heading("deb: building the Debian package");
    let first = Package::build(root, None)?;
    note(&format!("built {} (version {})", first.path.display(), first.version));
    build::release_build_is_shared(root)?;

    heading("deb: lintian --fail-on error,warning");
    lint::lintian(&first)?;

    heading("deb: systemd-analyze security (offline; verify runs in the container)");
    let score = lint::analyze_units(root, &first)?;
    note(&format!("systemd-analyze security: exposure {score:.1} (limit {})", lint::MAX_EXPOSURE));

    heading("deb: a second package with a higher version, for the upgrade");
    let second = Package::build(root, Some(&first.next_version()))?;
    note(&format!("built {}", second.path.display()));

    heading("deb: install, upgrade, remove and purge in a systemd-nspawn container");
    scenario::run(root, &first, &second)
}
