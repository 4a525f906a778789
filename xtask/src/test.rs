//! `cargo xtask test`: what CI runs (`.ci/run`) and what the README tells a contributor to run.
//!
//! Steps, in order, each stopping the run on failure with the step's name: setup, `cargo fmt
//! --check`, workspace clippy with `-D warnings`, the eBPF crate's own clippy, `cargo test
//! --workspace`. The test step is last and prints nothing after cargo, so the closing lines of
//! the output are cargo's test summary.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use clap::Args;

use crate::cmd::{self, heading};
use crate::setup;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    no_setup: bool,
}

pub fn run(root: &Path, args: &TestArgs) -> Result<()> {
    if !args.no_setup {
        setup::run()?;
    }

    heading("test: formatting (cargo fmt --check)");
    cmd::run("cargo fmt --check", cmd::cargo(["fmt", "--all", "--check"]).current_dir(root))?;

    heading("test: workspace lints (clippy -D warnings)");
    cmd::run(
        "cargo clippy (workspace)",
        cmd::cargo(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]).current_dir(root),
    )?;

    heading("test: eBPF crate lints");
    lint_ebpf(root)?;

    heading("test: cargo test --workspace");
    cmd::run("cargo test", cmd::cargo(["test", "--workspace"]).current_dir(root))
}

// ---------------------------------------------------------------------------------------------
// lint_ebpf: PROVISIONAL FLAGS. The eBPF crate's owner is settling the exact command (target,
// build-std, features); change it here only, CI and the README both go through this function.
// ---------------------------------------------------------------------------------------------
/// Clippy for `ebpf/nbad-ebpf`, which the workspace excludes (it is `no_std` for the BPF target
/// and needs nightly's `-Z build-std=core`).
fn lint_ebpf(root: &Path) -> Result<()> {
    let manifest = root.join("ebpf/nbad-ebpf/Cargo.toml");
    if !manifest.is_file() {
        bail!("step `cargo clippy (eBPF)` failed: {} does not exist", manifest.display());
    }
    // The crate is outside the workspace: its formatting and lints are checked on their own.
    // Its target directory stays outside the crate, because sensor/build.rs rebuilds the
    // object whenever anything under the crate changes.
    cmd::run(
        "cargo fmt --check (eBPF)",
        Command::new("cargo").arg("fmt").arg("--manifest-path").arg(&manifest).arg("--check"),
    )?;
    cmd::run(
        "cargo clippy (eBPF)",
        cmd::cargo_nightly(["clippy", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(root.join("target/nbad-ebpf"))
            .args(["--", "-D", "warnings"]),
    )
}
