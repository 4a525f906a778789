//! `cargo xtask`: the project's developer tasks (setup, demo, lab, test, bench).
//!
//! This crate depends on neither the sensor nor libpcap, so that `cargo xtask setup` compiles on a
//! fresh machine before anything is installed. Every task prints what it runs; a failing step
//! ends the process with a non-zero exit code and names the step.

mod bench;
mod cmd;
mod deb;
mod demo;
mod detect_report;
mod fresh;
mod fuzz;
mod lab;
mod lab_console;
mod setup;
mod stats;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Developer tasks for nbad-sensor", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what building and testing need on Debian 12 (idempotent; run as root).
    Setup,
    /// Setup, build the sensor, generate a synthetic capture and replay it.
    Demo(demo::DemoArgs),
    /// Live demo (root): a lab network in namespaces with real clients and servers, the sensor on
    /// a mirror port, benign traffic and episodes (upload, DNS and ICMP tunnels, SSH on 443, scan).
    Lab(lab::LabArgs),
    /// Setup, then fmt check, clippy, eBPF lint and the workspace tests (what CI runs).
    Test(test::TestArgs),
    /// Build the Debian package (cargo-deb); --check also lints it and runs the install,
    /// upgrade and purge test in a systemd-nspawn container (root).
    Deb(deb::DebArgs),
    /// Build a large benchmark capture from the corpus and measure the sensor against libpcap.
    Bench(bench::BenchArgs),
    /// The README's two commands on a fresh Debian 12 machine (a systemd-nspawn container with
    /// only the host's rustup toolchains); prints their exit codes (root; 40-70 minutes).
    Fresh(fresh::FreshArgs),
    /// Run the fuzz targets (nightly, cargo-fuzz): minutes or executions per target, with
    /// executions, coverage and crashes reported per target; --save merges new coverage into
    /// the committed seeds, which the tests replay.
    Fuzz(fuzz::FuzzArgs),
    /// Detection figures on the corpus for nbad-sensor and nDPI; updates docs/DETECTION.md.
    DetectReport(detect_report::DetectReportArgs),
    /// Internal: read a file in 1 MiB chunks and discard it (the bench's raw-read baseline).
    #[command(hide = true)]
    RawRead { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = repo_root();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::Demo(args) => demo::run(&root, &args),
        Task::Lab(args) => lab::run(&root, &args),
        Task::Test(args) => test::run(&root, &args),
        Task::Deb(args) => deb::run(&root, &args),
        Task::Bench(args) => bench::run(&root, &args),
        Task::Fresh(args) => fresh::run(&root, &args),
        Task::Fuzz(args) => fuzz::run(&root, &args),
        Task::DetectReport(args) => detect_report::run(&root, &args),
        Task::RawRead { file } => bench::raw_read::run(&file),
    };
    cmd::end_step();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nxtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask always lives one level below it.
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}
