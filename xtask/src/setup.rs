//! `cargo xtask setup`: the prerequisites of a fresh Debian 12 machine, installed idempotently.
//!
//! Each item is checked first and skipped when present, so running it twice changes nothing.
//! What it installs:
//! - apt: libpcap-dev (the `pcap` crate links libpcap), pkg-config and build-essential (linking),
//!   tshark and tcpdump (reading and cross-checking captures), iproute2 (veth/netns lab setups),
//!   jq (reading the sensor's JSON in scripts), libndpi-bin (`ndpiReader`, the comparison in
//!   `cargo xtask detect-report`); lintian, systemd (systemd-analyze), debootstrap and
//!   systemd-container (the Debian package's checks, its container test and `cargo xtask
//!   fresh`); chromium and fonts-dejavu-core (the web console's browser test); the alert receivers of the delivery tests; every program the lab runs (servers and
//!   clients: dnsmasq, OpenSSH, iodine, ptunnel-ng, nmap, curl, dig, ethtool, ...; the list is
//!   `nbad_tests::lab::preflight::PROGRAMS`, which the lab's own check reads too); and what
//!   `cargo xtask bench` runs: tcpreplay (`--live`), softflowd and Suricata 7 from
//!   bookworm-backports (`--peers`). clang is not needed: the XDP program is built by rustc and
//!   linked by bpf-linker, which loads rustc's own LLVM.
//!
//!   Packages are installed with services kept from starting (a `policy-rc.d` that says no,
//!   while apt runs, unless one is already there): installing openssh-server must not start an
//!   sshd on the machine's port 22. The lab starts its own servers inside its namespaces.
//! - rustup: clippy and rustfmt for the default toolchain; a `nightly` toolchain (never a dated
//!   one) with rust-src (`-Z build-std=core` for the BPF target) and clippy (the eBPF lint).
//! - `cargo install bpf-linker@0.10.0 --locked` unless that version is already installed.
//! - `cargo install cargo-deb@3.8.0 --locked` likewise (the Debian package).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, heading, note};

/// Debian packages the build, the tests and the demo need.
const APT_PACKAGES: &[&str] = &[
    "build-essential",
    "pkg-config",
    "libpcap-dev",
    "tshark",
    "tcpdump",
    "iproute2",
    "jq",
    "libndpi-bin",
    "python3",
    "util-linux",
    // The Debian package and its container test (`cargo xtask deb --check`): lintian,
    // systemd-analyze, debootstrap and systemd-nspawn.
    "lintian",
    "systemd",
    "debootstrap",
    "systemd-container",
    // Alert delivery tests (tests/tests/delivery*.rs): real receivers, the test CA, the venv
    // for osmem-server, and the libraries of syslog-ng-core, which `ensure_delivery_receivers`
    // unpacks beside rsyslog (the two packages conflict).
    "rsyslog",
    "rsyslog-gnutls",
    "redis-server",
    "nats-server",
    "openssl",
    "python3-venv",
    "libivykis0",
    "libjson-c5",
    "libnet1",
    "libpcre3",
    "libwrap0",
    "libglib2.0-0",
    // Automated response (tests/tests/response.rs): real nftables on the lab's router.
    "nftables",
    // Flow export tests (tests/tests/export_ipfix.rs): real IPFIX / NetFlow v9 collectors.
    "nfdump",
    "pmacct",
    // The web console's test (tests/tests/console.rs) drives a real headless Chromium; the
    // DejaVu fonts make its screenshots (docs/console/) readable.
    "chromium",
    "fonts-dejavu-core",
];

/// What `cargo xtask bench --live` runs besides the sensor; `--peers` wants softflowd and
/// Suricata 7, which [`crate::bench::peers::install`] installs (Suricata from
/// bookworm-backports).
const BENCH_PACKAGES: &[&str] = &["tcpreplay"];

const BPF_LINKER_VERSION: &str = "0.10.0";
/// tansu, the Kafka-protocol broker of the Kafka tests (Apache Kafka is not in Debian).
const TANSU_VERSION: &str = "0.6.0";
/// cargo-deb builds the Debian package (`cargo xtask deb`).
const CARGO_DEB_VERSION: &str = "3.8.0";

pub fn run() -> Result<()> {
    heading("setup: checking prerequisites (installing only what is missing)");
    let mut apt = Apt::default();
    apt.ensure(APT_PACKAGES, &[])?;
    apt.ensure(&nbad_tests::lab::preflight::apt_packages(), &[])?;
    apt.ensure(BENCH_PACKAGES, &[])?;
    crate::bench::peers::install(&mut apt)?;
    ensure_delivery_receivers()?;
    ensure_tansu()?;
    ensure_rust_toolchains()?;
    ensure_bpf_linker()?;
    ensure_cargo_deb()?;
    note("setup complete");
    Ok(())
}

/// apt-get with `apt-get update` run at most once per xtask invocation.
#[derive(Debug, Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// Installs those of `packages` that dpkg does not report as installed. `extra_args` go to
    /// `apt-get install` (e.g. `-t bookworm-backports`).
    pub fn ensure(&mut self, packages: &[&str], extra_args: &[&str]) -> Result<()> {
        let mut missing = Vec::new();
        for &package in packages {
            match installed_version(package)? {
                Some(version) => note(&format!("apt: {package} {version} present")),
                None => missing.push(package),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.install(&missing, extra_args)
    }

    /// `apt-get install` of `packages` whatever is installed (upgrades an older version). No
    /// service a package ships is started (see [`NoServiceStarts`]).
    pub fn install(&mut self, packages: &[&str], extra_args: &[&str]) -> Result<()> {
        note(&format!("apt: installing {}", packages.join(" ")));
        self.update()?;
        let _quiet = NoServiceStarts::new()?;
        let mut install = apt_get();
        install.args(["install", "-y", "--no-install-recommends"]).args(extra_args).args(packages);
        cmd::run("apt-get install (are you root?)", &mut install)?;
        disable_test_services(packages);
        Ok(())
    }

    /// `apt-get update`, once.
    pub fn update(&mut self) -> Result<()> {
        if !self.updated {
            cmd::run("apt-get update (are you root?)", apt_get().arg("update"))?;
            self.updated = true;
        }
        Ok(())
    }

    /// Forces the next `update` to run again (after adding an apt source).
    pub fn sources_changed(&mut self) {
        self.updated = false;
    }
}

/// Keeps maintainer scripts from starting services while it lives: Debian's `invoke-rc.d`
/// asks `/usr/sbin/policy-rc.d`, and exit code 101 means "not allowed". Written only when no
/// such file exists (a container image may have its own) and removed again on drop.
#[derive(Debug)]
struct NoServiceStarts {
    written: bool,
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

impl NoServiceStarts {
    fn new() -> Result<Self> {
        if Path::new(POLICY_RC_D).exists() {
            return Ok(Self { written: false });
        }
        fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# Written by cargo xtask setup while apt runs: start no service.\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D} (are you root?)"))?;
        fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755))?;
        Ok(Self { written: true })
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.written {
            let _ = fs::remove_file(POLICY_RC_D);
        }
    }
}

/// Servers that setup installs only for the tests, the lab and the benchmark, with the unit
/// each package enables: the tests start their own instances, so the machine's copies are
/// disabled again (a developer's machine would otherwise run sshd, iodined, Redis, NATS,
/// Suricata ... from its next boot on). Only packages this run installed are touched.
const TEST_SERVICES: &[(&str, &str)] = &[
    ("openssh-server", "ssh.service"),
    ("iodine", "iodined.service"),
    ("redis-server", "redis-server.service"),
    ("nats-server", "nats-server.service"),
    ("rsyslog", "rsyslog.service"),
    ("softflowd", "softflowd.service"),
    ("suricata", "suricata.service"),
    ("nfdump", "nfdump.service"),
];

fn disable_test_services(installed: &[&str]) {
    for (package, unit) in TEST_SERVICES {
        if installed.contains(package) {
            // Works without systemd as PID 1 too: it only removes the enablement symlinks.
            let status = Command::new("systemctl")
                .args(["disable", "--quiet", unit])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match status {
                Ok(s) if s.success() => {
                    note(&format!("disabled {unit} (the tests start their own {package})"))
                }
                _ => note(&format!("could not disable {unit}; it may start at the next boot")),
            }
        }
    }
}

/// The installed version of a Debian package, or `None` if it is not installed.
pub fn installed_version(package: &str) -> Result<Option<String>> {
    let out = cmd::probe(Command::new("dpkg-query").args(["-W", "-f=${Status}\t${Version}", package]))?;
    Ok(out.and_then(|line| {
        let (status, version) = line.split_once('\t')?;
        (status == "install ok installed").then(|| version.to_owned())
    }))
}

/// apt-get that never asks a question (tshark's debconf prompt included) and never reads stdin.
fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive").args(["-q", "-o", "Dpkg::Use-Pty=0"]).stdin(Stdio::null());
    cmd
}

/// The alert-delivery receivers that apt cannot install directly: syslog-ng-core (it conflicts
/// with rsyslog, so its .deb is unpacked under `target/receivers/syslog-ng`; the tests run it
/// from there with its module path) and osmem-server, an OpenSearch-compatible test server from
/// PyPI, installed into the venv `target/receivers/venv`.
fn ensure_delivery_receivers() -> Result<()> {
    // Where tests/src/receivers looks, whatever CARGO_TARGET_DIR says.
    let dir = crate::repo_root().join("target/receivers");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let syslog_ng = dir.join("syslog-ng");
    if syslog_ng.join("usr/sbin/syslog-ng").is_file() {
        note("syslog-ng: unpacked in target/receivers present");
    } else {
        cmd::run(
            "apt-get download syslog-ng-core",
            Command::new("apt-get").args(["download", "syslog-ng-core"]).current_dir(&dir),
        )?;
        let deb = fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("syslog-ng-core_") && n.ends_with(".deb"))
            })
            .context("apt-get download left no syslog-ng-core .deb")?;
        cmd::run("unpack syslog-ng-core", Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&syslog_ng))?;
        fs::remove_file(&deb)?;
    }
    let venv = dir.join("venv");
    let python = venv.join("bin/python3");
    let installed = Command::new(&python)
        .args(["-c", "import osmem_server"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        note("osmem-server: venv in target/receivers present");
        return Ok(());
    }
    cmd::run("create the receivers venv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    cmd::run(
        "pip install osmem-server",
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", "osmem-server"]),
    )
}

/// tansu for the Kafka tests (`tests/tests/export_kafka.rs`), built from crates.io with its
/// `dynostore` feature (the `memory://` storage engine) into `target/tansu/bin`, where
/// tests/src/receivers/kafka.rs looks. The build takes 11 to 19 minutes on two cores, so it is
/// kept: its own target folder (`target/tansu-build`) and the binary survive `cargo clean -p`
/// of the workspace, and a present binary of the right version is not rebuilt. A `tansu` of
/// that version on PATH (the tests look there first) is taken as it is.
fn ensure_tansu() -> Result<()> {
    let root = crate::repo_root().join("target/tansu");
    let bin = root.join("bin/tansu");
    for (program, where_) in [(bin.clone(), "built in target/tansu"), (PathBuf::from("tansu"), "on PATH")] {
        // `tansu --version` prints "tansu 0.6.0".
        let version = cmd::probe(Command::new(&program).arg("--version"))?;
        if version.as_deref().and_then(|v| v.split_whitespace().nth(1)) == Some(TANSU_VERSION) {
            note(&format!("tansu {TANSU_VERSION}: {where_} present"));
            return Ok(());
        }
    }
    let spec = format!("tansu@{TANSU_VERSION}");
    let build = crate::repo_root().join("target/tansu-build");
    let mut install = cmd::cargo(["install", &spec, "--locked", "--features", "dynostore", "--root"]);
    install.arg(&root).arg("--target-dir").arg(&build);
    cmd::run("build tansu (11 to 19 minutes on two cores; kept in target/tansu)", &mut install)
}

fn ensure_rust_toolchains() -> Result<()> {
    if cmd::probe(Command::new("rustup").arg("--version"))?.is_none() {
        bail!("rustup not found on PATH: install Rust with rustup (https://rustup.rs) first");
    }
    // The default toolchain (or the one RUSTUP_TOOLCHAIN names) runs fmt and clippy.
    ensure_components(None, &["clippy", "rustfmt"])?;

    let toolchains = cmd::probe(Command::new("rustup").args(["toolchain", "list"]))?
        .context("`rustup toolchain list` failed")?;
    if toolchains.lines().any(is_undated_nightly) {
        note("rustup: nightly toolchain present");
    } else {
        cmd::run(
            "install the nightly toolchain",
            Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]),
        )?;
    }
    ensure_components(Some("nightly"), &["rust-src", "clippy"])
}

/// `nightly-x86_64-unknown-linux-gnu (default)` is; `nightly-2025-06-01-x86_64-...` is not.
fn is_undated_nightly(line: &str) -> bool {
    let name = line.split_whitespace().next().unwrap_or_default();
    name == "nightly"
        || name.strip_prefix("nightly-").is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
}

fn ensure_components(toolchain: Option<&str>, components: &[&str]) -> Result<()> {
    let toolchain_args: Vec<&str> = toolchain.map(|t| vec!["--toolchain", t]).unwrap_or_default();
    let label = toolchain.unwrap_or("default toolchain");
    let installed =
        cmd::probe(Command::new("rustup").args(["component", "list", "--installed"]).args(&toolchain_args))?
            .with_context(|| format!("`rustup component list` failed for {label}"))?;
    // Lines are `rust-src` or `clippy-x86_64-unknown-linux-gnu`.
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| {
            !installed.lines().any(|l| l == *c || l.strip_prefix(c).is_some_and(|r| r.starts_with('-')))
        })
        .collect();
    if missing.is_empty() {
        note(&format!("rustup: {} present ({label})", components.join(", ")));
        return Ok(());
    }
    cmd::run(
        "rustup component add",
        Command::new("rustup").args(["component", "add"]).args(&missing).args(&toolchain_args),
    )
}

fn ensure_bpf_linker() -> Result<()> {
    if bpf_linker_version()?.is_some_and(|v| v == BPF_LINKER_VERSION) {
        note(&format!("bpf-linker {BPF_LINKER_VERSION} present"));
        return Ok(());
    }
    // A second `cargo install` of the same crate would only wait for the first one's lock and
    // then build it again: wait for a running one instead.
    let mut announced = false;
    while let Some(pid) = running_bpf_linker_install() {
        if !announced {
            note(&format!("waiting for a running `cargo install bpf-linker` (pid {pid})"));
            announced = true;
        }
        thread::sleep(Duration::from_secs(5));
    }
    if bpf_linker_version()?.is_some_and(|v| v == BPF_LINKER_VERSION) {
        note(&format!("bpf-linker {BPF_LINKER_VERSION} present"));
        return Ok(());
    }
    let spec = format!("bpf-linker@{BPF_LINKER_VERSION}");
    cmd::run("install bpf-linker", &mut cmd::cargo(["install", &spec, "--locked"]))
}

fn ensure_cargo_deb() -> Result<()> {
    // `cargo deb --version` prints "cargo-deb 3.8.0" (on stdout).
    let installed = cmd::probe(Command::new("cargo").args(["deb", "--version"]))?;
    if installed.as_deref().and_then(|v| v.split_whitespace().nth(1)) == Some(CARGO_DEB_VERSION) {
        note(&format!("cargo-deb {CARGO_DEB_VERSION} present"));
        return Ok(());
    }
    let spec = format!("cargo-deb@{CARGO_DEB_VERSION}");
    cmd::run("install cargo-deb", &mut cmd::cargo(["install", &spec, "--locked"]))
}

/// The version `bpf-linker --version` prints, looking on PATH and then in `$CARGO_HOME/bin`.
fn bpf_linker_version() -> Result<Option<String>> {
    let mut candidates = vec![PathBuf::from("bpf-linker")];
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(home).join("bin/bpf-linker"));
    }
    for program in candidates {
        if let Some(out) = cmd::probe(Command::new(&program).arg("--version"))? {
            // "bpf-linker 0.10.0"
            return Ok(out.split_whitespace().nth(1).map(str::to_owned));
        }
    }
    Ok(None)
}

/// The pid of a process whose command line is `cargo install ... bpf-linker...`, if any.
fn running_bpf_linker_install() -> Option<u32> {
    let entries = fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_cargo = args.first().is_some_and(|a| a.ends_with(b"cargo"));
        let installs = args.iter().any(|a| *a == b"install");
        let linker = args.iter().any(|a| a.starts_with(b"bpf-linker"));
        (is_cargo && installs && linker && pid != std::process::id()).then_some(pid)
    })
}
