//! `cargo xtask fresh`: the README's two commands on a machine that has nothing but a Rust
//! toolchain, as a reviewer would run them.
//!
//! The machine is a Debian 12 tree made by debootstrap (minbase, plus what any Rust program
//! needs to link and what cloning takes: gcc, libc6-dev, git, ca-certificates), cached as a
//! tarball under `target/nspawn/` and unpacked afresh for every run. The host's rustup
//! toolchains are bind-mounted read-only (`$RUSTUP_HOME`, and the `rustup` binary behind the
//! `cargo`/`rustc` proxies); cargo's home inside is empty, so bpf-linker and cargo-deb are not
//! carried over from the host. A clean `git clone` of this repository's committed `HEAD` (not
//! the working tree) goes to `/work/nbad-sensor`, with `../shared` bind-mounted read-only beside
//! it when the host has one.
//!
//! The one thing copied from the host is its local CA certificates
//! (`/usr/local/share/ca-certificates`), where it has any: a network that inspects TLS (this
//! workplace's egress does) makes crates.io and PyPI unreachable without them. That is a
//! property of the network, not something the project needs, so it is not setup's job.
//!
//! In it, `systemd-nspawn` (no `--boot`: PID 1 is the command, as on a CI machine) runs
//! `cargo xtask lab`, then `cargo xtask test`, each as root, with the host's network (apt and
//! crates.io must be reachable), every capability, no seccomp filter and writable `/proc/sys`
//! and `/sys` (the lab makes namespaces, sets sysctls in them and attaches XDP; the package test
//! boots a container of its own). Each command's output goes to the terminal and to
//! `target/fresh/<command>.log`; the check ends by printing both exit codes and fails unless
//! both are 0. It takes 40–70 minutes on two cores (everything is built from nothing), so CI
//! does not run it; run it whenever setup, the README or the tests change.

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::cmd::{self, heading, note};
use crate::deb::container::ensure_root_fs;
use crate::target_dir;

/// The fresh machine's root file system: minbase and what linking and cloning need.
const INCLUDE: &str = "ca-certificates,git,gcc,libc6-dev";
/// Bump when INCLUDE changes: the cached tarball carries it.
const ROOT_FS: &str = "fresh-bookworm-v1";
/// Where the clone lives inside (so `../shared` is `/work/shared`).
const CLONE: &str = "/work/nbad-sensor";
/// Programs rustup serves through its proxies, linked to the mounted `rustup` binary: every
/// proxy a rustup install puts in `~/.cargo/bin` (`cargo fmt` needs `cargo-fmt`, not only
/// `rustfmt`: without it the fresh machine said "no such command: fmt", which a real rustup
/// install never does).
const PROXIES: [&str; 13] = [
    "cargo",
    "cargo-clippy",
    "cargo-fmt",
    "cargo-miri",
    "clippy-driver",
    "rls",
    "rust-analyzer",
    "rust-gdb",
    "rust-gdbgui",
    "rust-lldb",
    "rustc",
    "rustdoc",
    "rustfmt",
];

#[derive(Debug, Args)]
pub struct FreshArgs {
    /// Run only these README commands (comma-separated: lab, test).
    #[arg(long, default_value = "lab,test", value_name = "LIST")]
    commands: String,
    /// Keep the container's tree after the run (under target/nspawn/), for a look inside.
    #[arg(long)]
    keep: bool,
}

/// One README command and its exit code.
#[derive(Debug)]
struct Outcome {
    command: String,
    code: Option<i32>,
    took: Duration,
}

pub fn run(root: &Path, args: &FreshArgs) -> Result<()> {
    if !nbad_tests::lab::preflight::is_root() {
        bail!("cargo xtask fresh needs root (debootstrap and systemd-nspawn)");
    }
    let commands: Vec<&str> = args.commands.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    for c in &commands {
        if !matches!(*c, "lab" | "test") {
            bail!("--commands: unknown command {c:?}; valid: lab, test");
        }
    }
    let started = Instant::now();
    crate::setup::Apt::default().ensure(&["debootstrap", "systemd-container", "git"], &[])?;
    let target = target_dir(root);

    heading("fresh: the root file system (debootstrap, cached)");
    let step = Instant::now();
    let tarball = ensure_root_fs(&target, ROOT_FS, INCLUDE)?;
    note(&format!("took {:.0} s", step.elapsed().as_secs_f64()));

    heading("fresh: unpack the machine and clone the repository into it");
    let step = Instant::now();
    let tree = target.join("nspawn").join(format!("fresh-{}", std::process::id()));
    let guard = Tree { path: tree.clone(), keep: args.keep };
    fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    cmd::run("unpack the machine", Command::new("tar").arg("-C").arg(&tree).arg("-xf").arg(&tarball))?;
    let clone = tree.join(CLONE.trim_start_matches('/'));
    cmd::run(
        "git clone (committed HEAD)",
        Command::new("git").arg("clone").arg("--quiet").arg("--no-local").arg(root).arg(&clone),
    )?;
    let head = cmd::probe(Command::new("git").arg("-C").arg(&clone).args(["log", "--oneline", "-1"]))?
        .unwrap_or_default();
    note(&format!("clone at {}", head.trim()));
    make_proxies(&tree)?;
    let machine = Machine { tree: tree.clone(), rustup_home: rustup_home()?, rustup_bin: rustup_binary()? };
    if copy_local_cas(&tree)? > 0 {
        cmd::run(
            "update-ca-certificates (in the fresh machine)",
            &mut machine.command(&[], &["update-ca-certificates"]),
        )?;
    }
    note(&format!("took {:.0} s", step.elapsed().as_secs_f64()));

    let shared = root.join("../shared");
    let log_dir = target.join("fresh");
    fs::create_dir_all(&log_dir)?;

    let mut outcomes = Vec::new();
    for command in commands {
        heading(&format!("fresh: cargo xtask {command} (in the fresh machine)"));
        let log = log_dir.join(format!("{command}.log"));
        let step = Instant::now();
        let mut options = Vec::new();
        if shared.is_dir() {
            options.push(format!("--bind-ro={}:/work/shared", shared.canonicalize()?.display()));
        }
        let code = run_logged(&mut machine.command(&options, &["cargo", "xtask", command]), &log)?;
        let took = step.elapsed();
        note(&format!(
            "cargo xtask {command}: exit {} after {:.0} s (log: {})",
            code.map_or_else(|| "by signal".to_owned(), |c| c.to_string()),
            took.as_secs_f64(),
            log.display()
        ));
        outcomes.push(Outcome { command: format!("cargo xtask {command}"), code, took });
    }
    drop(guard);

    heading("fresh: result");
    for o in &outcomes {
        println!(
            "fresh machine: `{}` exited {} ({:.0} s)",
            o.command,
            o.code.map_or_else(|| "by signal".to_owned(), |c| c.to_string()),
            o.took.as_secs_f64()
        );
    }
    println!("fresh machine: whole check {:.0} s", started.elapsed().as_secs_f64());
    let failed: Vec<&str> =
        outcomes.iter().filter(|o| o.code != Some(0)).map(|o| o.command.as_str()).collect();
    if !failed.is_empty() {
        bail!("on the fresh machine, {} failed", failed.join(" and "));
    }
    Ok(())
}

/// The unpacked machine and what is mounted into it.
#[derive(Debug)]
struct Machine {
    tree: PathBuf,
    rustup_home: PathBuf,
    rustup_bin: PathBuf,
}

impl Machine {
    /// `systemd-nspawn` running `argv` in the machine, as root in the clone's folder, with
    /// `options` added to nspawn's own.
    fn command(&self, options: &[String], argv: &[&str]) -> Command {
        let mut nspawn = Command::new("systemd-nspawn");
        nspawn
            .env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "1")
            .env("SYSTEMD_SECCOMP", "0")
            .args(["--quiet", "--register=no", "--keep-unit", "--capability=all", "--resolv-conf=copy-host"])
            .arg(format!("--machine=nbadfresh{}", std::process::id()))
            .arg("--directory")
            .arg(&self.tree)
            .arg(format!("--bind-ro={}:/opt/rustup", self.rustup_home.display()))
            .arg(format!("--bind-ro={}:/opt/rustup-bin/rustup", self.rustup_bin.display()))
            .args(["--setenv=RUSTUP_HOME=/opt/rustup", "--setenv=CARGO_HOME=/root/.cargo"])
            .arg("--setenv=PATH=/root/.cargo/bin:/opt/rustup-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["--setenv=HOME=/root", "--setenv=LANG=C.UTF-8", "--setenv=TERM=dumb"])
            .arg(format!("--chdir={CLONE}"))
            .args(options)
            .arg("--")
            .args(argv)
            .stdin(Stdio::null());
        nspawn
    }
}

/// Copies the host's local CA certificates into the machine; returns how many.
fn copy_local_cas(tree: &Path) -> Result<usize> {
    let from = Path::new("/usr/local/share/ca-certificates");
    let Ok(entries) = fs::read_dir(from) else { return Ok(0) };
    let to = tree.join("usr/local/share/ca-certificates");
    fs::create_dir_all(&to)?;
    let mut n = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "crt") && path.is_file() {
            fs::copy(&path, to.join(entry.file_name()))
                .with_context(|| format!("copying {} into the fresh machine", path.display()))?;
            n += 1;
        }
    }
    if n > 0 {
        note(&format!(
            "copied {n} local CA certificates of the host's network (TLS inspection) into the machine"
        ));
    }
    Ok(n)
}

/// Links each rustup proxy name to the mounted `rustup` binary (rustup picks its role from the
/// name it was started as).
fn make_proxies(tree: &Path) -> Result<()> {
    let bin = tree.join("opt/rustup-bin");
    fs::create_dir_all(&bin)?;
    // The bind mount needs a file to mount over.
    fs::write(bin.join("rustup"), b"")?;
    fs::create_dir_all(tree.join("opt/rustup"))?;
    for name in PROXIES.iter().filter(|n| **n != "rustup") {
        std::os::unix::fs::symlink("rustup", bin.join(name))
            .with_context(|| format!("linking {name} in {}", bin.display()))?;
    }
    Ok(())
}

fn rustup_home() -> Result<PathBuf> {
    let home = std::env::var_os("RUSTUP_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".rustup"),
        PathBuf::from,
    );
    if !home.join("toolchains").is_dir() {
        bail!("no rustup toolchains under {} (set RUSTUP_HOME)", home.display());
    }
    Ok(home)
}

fn rustup_binary() -> Result<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"),
        PathBuf::from,
    );
    let rustup = cargo_home.join("bin/rustup");
    if !rustup.is_file() {
        bail!("no rustup binary at {} (set CARGO_HOME)", rustup.display());
    }
    Ok(rustup)
}

/// Runs `cmd` with its stdout and stderr shown and copied to `log`; returns its exit code.
fn run_logged(cmd: &mut Command, log: &Path) -> Result<Option<i32>> {
    eprintln!("    $ {}", cmd::display(cmd));
    let mut file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    // One pipe for both streams, so the log keeps their order.
    let (reader, writer) = std::io::pipe().context("a pipe for the command's output")?;
    let mut child = cmd
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .with_context(|| format!("starting {}", cmd::display(cmd)))?;
    // `cmd` keeps the write ends it was given: replace them, so that the pipe ends when the
    // child (and its children) close theirs.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap_or_else(|e| format!("(unreadable output: {e})"));
        eprintln!("{line}");
        writeln!(file, "{line}")?;
    }
    Ok(child.wait()?.code())
}

/// The unpacked tree, removed when the check ends (unless `--keep`).
#[derive(Debug)]
struct Tree {
    path: PathBuf,
    keep: bool,
}

impl Drop for Tree {
    fn drop(&mut self) {
        if self.keep {
            note(&format!("kept the fresh machine's tree at {}", self.path.display()));
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
