//! A Debian 12 system booted with systemd in `systemd-nspawn`, for the package test.
//!
//! The root file system comes from debootstrap (minbase plus systemd, dbus and the package's
//! run-time dependencies), made once and kept as a tarball under `target/nspawn/`; each test
//! unpacks a fresh copy, so no run sees another's leftovers, and drops it afterwards.
//!
//! How it boots on a host whose PID 1 is not systemd (a CI container): `--register=no` (no
//! machined to register with) and `--keep-unit` (no host systemd to create a scope unit for
//! the container; without it nspawn fails with "Failed to open system bus"). The container has
//! a network namespace of its own (`--private-network`): the test's veth pair and traffic stay
//! inside it. CAP_BPF and CAP_PERFMON are not in nspawn's default capability set and are added,
//! so that the service inside can be given them; nor is `bpf(2)` in the system calls nspawn's
//! seccomp filter lets the container's processes make (it answers EPERM: "creating BPF map:
//! permission denied"), so it is added too. Commands run through `nsenter` do not inherit
//! that filter; services started by the container's systemd do.
//!
//! Commands run in the container through `nsenter` into the namespaces of its PID 1 (no
//! machined, so no `machinectl shell`). Dropping the [`Container`] powers it off, kills
//! nspawn if it does not stop in time, and removes the unpacked tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, note};

/// Debian release and mirror of the container.
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What debootstrap adds to minbase: systemd as init, and the package's dependencies (the
/// container has no network, so `dpkg -i` must find them installed). iproute2 and ping make and
/// exercise the capture interface.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,libpcap0.8,iproute2,iputils-ping,logrotate,procps";
/// Bump when INCLUDE or the way the tree is made changes: the cache file carries it.
const CACHE_VERSION: u32 = 1;
/// What `systemctl is-system-running` may answer.
const SYSTEM_STATES: [&str; 8] =
    ["initializing", "starting", "running", "degraded", "maintenance", "stopping", "offline", "unknown"];
/// Longest the boot may take to reach `running`.
const BOOT_LIMIT: Duration = Duration::from_secs(90);

/// A booted container.
#[derive(Debug)]
pub struct Container {
    name: String,
    dir: PathBuf,
    nspawn: Child,
    leader: u32,
}

/// What a command in the container did.
#[derive(Debug)]
pub struct Output {
    /// Exited 0.
    pub ok: bool,
    /// stdout and stderr, in that order.
    pub text: String,
}

impl Container {
    /// Unpacks a fresh root file system (making the cached tarball first if needed) and boots it.
    pub fn boot(target: &Path, name: &str) -> Result<Self> {
        let tarball = ensure_tarball(target)?;
        let dir = target.join("nspawn").join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing the old {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        cmd::run("unpack the container", Command::new("tar").arg("-C").arg(&dir).arg("-xf").arg(&tarball))?;
        fs::write(dir.join("etc/hostname"), format!("{name}\n"))
            .context("writing the container's hostname")?;

        // One console log, the last run's: kept for a look after a failure, replaced by the next run.
        let log_path = target.join("nspawn").join("last-console.log");
        let log = fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut nspawn = Command::new("systemd-nspawn");
        nspawn
            .args(["--quiet", "--boot", "--register=no", "--keep-unit", "--private-network"])
            .args(["--capability=CAP_BPF,CAP_PERFMON", "--system-call-filter=bpf", "--console=pipe"])
            .arg(format!("--machine={name}"))
            .arg("--directory")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        eprintln!("    $ {}", cmd::display(&nspawn));
        let child = nspawn.spawn().context("starting systemd-nspawn (is systemd-container installed?)")?;
        let pid = child.id();
        // From here on the guard powers the container off whatever happens.
        let mut container = Self { name: name.to_owned(), dir, nspawn: child, leader: 0 };
        container.leader = find_leader(pid, &mut container.nspawn, &log_path)?;
        container.wait_running()?;
        Ok(container)
    }

    /// A path inside the container, as seen from the host.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// Runs `script` with `sh -e` in the container, at most `limit`.
    pub fn sh_status(&self, script: &str, limit: Duration) -> Result<Output> {
        let mut c = Command::new("nsenter");
        c.arg(format!("--target={}", self.leader))
            .args(["--all", "--root", "--wd", "--"])
            .args(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"])
            .args(["DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"])
            .args(["timeout", "--kill-after=5"])
            .arg(limit.as_secs().max(1).to_string())
            .args(["sh", "-ec", script])
            .stdin(Stdio::null());
        let out = c.output().context("running nsenter")?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(Output { ok: out.status.success(), text })
    }

    /// Runs `script` and fails, showing its output, unless it exits 0. Returns its output.
    pub fn sh(&self, what: &str, script: &str) -> Result<String> {
        let out = self.sh_status(script, Duration::from_secs(120))?;
        if !out.ok {
            bail!("in the container: {what} failed:\n$ {}\n{}", script.trim(), out.text.trim_end());
        }
        Ok(out.text)
    }

    fn wait_running(&self) -> Result<()> {
        let started = Instant::now();
        // Until the container's systemd has set up its private socket, systemctl cannot
        // connect ("Failed to connect to bus"): retry until it answers with a state.
        let state = loop {
            let out = self.sh_status("systemctl is-system-running --wait", BOOT_LIMIT)?;
            let state = out.text.trim().lines().last().unwrap_or_default().to_owned();
            if SYSTEM_STATES.contains(&state.as_str()) {
                break state;
            }
            if started.elapsed() > BOOT_LIMIT {
                bail!("the container did not boot within {} s: {}", BOOT_LIMIT.as_secs(), out.text.trim());
            }
            thread::sleep(Duration::from_millis(200));
        };
        let state = state.as_str();
        note(&format!(
            "container {} booted: {state} after {:.1} s",
            self.name,
            started.elapsed().as_secs_f64()
        ));
        match state {
            "running" => Ok(()),
            "degraded" => {
                let failed = self.sh_status("systemctl --failed --no-legend", Duration::from_secs(10))?;
                note(&format!("failed units (not ours; the test goes on):\n{}", failed.text));
                Ok(())
            }
            _ => bail!("the container did not boot: `systemctl is-system-running` says {state:?}"),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.leader != 0 {
            let _ = self.sh_status("systemctl poweroff --no-block", Duration::from_secs(10));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.nspawn.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
        if matches!(self.nspawn.try_wait(), Ok(None)) {
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The PID of the container's systemd: nspawn's child once it has exec'd systemd.
fn find_leader(nspawn_pid: u32, nspawn: &mut Child, log: &Path) -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let children = format!("/proc/{nspawn_pid}/task/{nspawn_pid}/children");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = nspawn.try_wait() {
            let console = fs::read_to_string(log).unwrap_or_default();
            bail!("systemd-nspawn exited with {status} before the container booted:\n{console}");
        }
        let list = fs::read_to_string(&children).unwrap_or_default();
        for pid in list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "systemd" {
                return Ok(pid);
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("systemd did not start in the container within 30 s; console: {}", log.display())
}

/// The package test's root file system: `target/nspawn/bookworm-v<N>.tar`.
fn ensure_tarball(target: &Path) -> Result<PathBuf> {
    ensure_root_fs(target, &format!("{SUITE}-v{CACHE_VERSION}"), INCLUDE)
}

/// `target/nspawn/<name>.tar`: a Debian 12 minbase tree with `include` added (comma-separated
/// packages), made with debootstrap when absent and kept for the next run.
pub fn ensure_root_fs(target: &Path, name: &str, include: &str) -> Result<PathBuf> {
    let dir = target.join("nspawn");
    let tarball = dir.join(format!("{name}.tar"));
    if tarball.is_file() {
        note(&format!("root file system: cached {}", tarball.display()));
        return Ok(tarball);
    }
    let build = dir.join(format!("debootstrap-{}", std::process::id()));
    let _ = fs::remove_dir_all(&build);
    fs::create_dir_all(&build).with_context(|| format!("creating {}", build.display()))?;
    let result = (|| -> Result<()> {
        cmd::run(
            "debootstrap",
            Command::new("debootstrap")
                .args(["--variant=minbase", &format!("--include={include}"), SUITE])
                .arg(&build)
                .arg(MIRROR),
        )?;
        let partial = tarball.with_extension("tar.partial");
        cmd::run(
            "pack the root file system",
            Command::new("tar").arg("-C").arg(&build).arg("-cf").arg(&partial).arg("."),
        )?;
        fs::rename(&partial, &tarball).with_context(|| format!("renaming to {}", tarball.display()))
    })();
    let _ = fs::remove_dir_all(&build);
    result.map(|()| tarball)
}
