//! The package's life in a booted Debian 12 container: install, configure, start, capture
//! (XDP through the main unit, libpcap through a template instance), reload, upgrade, remove,
//! purge. Each step checks what an operator would look at.
//!
//! The capture interface is `span0`, one end of a veth pair made inside the container's own
//! network namespace; the other end sits in a namespace `gen` inside it, from which a bounded
//! `ping` (10 echoes, 2 s) is the traffic. Nothing leaves the container: it has no uplink.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Package;
use super::container::Container;
use super::lint::{MAX_EXPOSURE, parse_exposure};
use crate::cmd::note;
use crate::target_dir;

const CONFIG: &str = "/etc/nbad-sensor/sensor.toml";
const FLOWS: &str = "/var/log/nbad-sensor/flows.json";
const STATS: &str = "/var/lib/nbad-sensor/stats.json";
/// The four capabilities of the service: NET_ADMIN (12), NET_RAW (13), PERFMON (38), BPF (39).
const CAPS: &str = "000000c000003000";
/// What the sensor keeps once capture is open: NET_ADMIN, and BPF on the XDP path (its map reads
/// are bpf(2) calls); with libpcap NET_ADMIN alone.
const KEPT_XDP: &str = "0000008000001000";
const KEPT_PCAP: &str = "0000000000001000";
/// The traffic generator's address: flow records that name it came from the test's pings.
const GEN_ADDR: &str = "10.254.0.2";

/// The capture link and the generator's namespace.
const MAKE_LINK: &str = "
ip link add span0 type veth peer name gen0
ip netns add gen
ip link set gen0 netns gen
ip addr add 10.254.0.1/30 dev span0
ip link set span0 up
ip -n gen link set lo up
ip -n gen addr add 10.254.0.2/30 dev gen0
ip -n gen link set gen0 up
";
const PING: &str = "ip netns exec gen ping -q -c 10 -i 0.2 -W 1 10.254.0.1";

/// Runs the whole scenario with `first` installed, then upgraded to `second`.
pub fn run(root: &Path, first: &Package, second: &Package) -> Result<()> {
    let started = Instant::now();
    let target = target_dir(root);
    let c = Container::boot(&target, &format!("nbadpkg{}", std::process::id()))?;
    for package in [first, second] {
        let name = package.path.file_name().context("package file name")?;
        fs::copy(&package.path, c.host_path("/root").join(name))
            .with_context(|| format!("copying {} into the container", package.path.display()))?;
    }
    c.sh("make the capture link", MAKE_LINK)?;

    install(&c, first)?;
    let pid = start_and_capture(&c)?;
    template_with_libpcap(&c)?;
    reload(&c, pid)?;
    upgrade(&c, second, pid)?;
    remove(&c)?;
    purge(&c)?;
    note(&format!("package scenario passed in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(())
}

fn deb_in_container(p: &Package) -> String {
    format!("/root/{}", p.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// Installs, and checks the user, the enablement, the unit files and the exposure score.
fn install(c: &Container, first: &Package) -> Result<()> {
    c.sh("dpkg -i", &format!("dpkg -i {}", deb_in_container(first)))?;
    let user = c.sh("the nbad user", "getent passwd nbad")?;
    if !user.contains("/usr/sbin/nologin") {
        bail!("the nbad user has a login shell: {user}");
    }
    c.sh("enabled on install", "systemctl is-enabled nbad-sensor.service")?;
    // Not started: the packaged configuration names no interface yet.
    let active = c.sh_status("systemctl is-active nbad-sensor.service", Duration::from_secs(10))?;
    if active.ok {
        bail!("the service started before capture.interface was set");
    }
    // The container has no man-db (minbase), so `man nbad-sensor(8)` is checked as a file.
    c.sh("the man page", "test -s /usr/share/man/man8/nbad-sensor.8.gz")?;
    let verify = c.sh(
        "systemd-analyze verify",
        "systemd-analyze verify --man=no nbad-sensor.service nbad-sensor@eth1.service 2>&1",
    )?;
    if !verify.trim().is_empty() {
        bail!("systemd-analyze verify is not clean:\n{verify}");
    }
    note("systemd-analyze verify: clean (both units, installed)");
    let security =
        c.sh("systemd-analyze security", "systemd-analyze security --no-pager nbad-sensor.service")?;
    let score = parse_exposure(&security).context("no exposure score in systemd-analyze security")?;
    note(&format!("systemd-analyze security (installed, online): exposure {score:.1}"));
    if score > MAX_EXPOSURE {
        bail!("exposure {score} is above {MAX_EXPOSURE}:\n{security}");
    }
    Ok(())
}

/// Points the sensor at span0, starts it and checks it runs as `nbad` with exactly the four
/// capabilities, attached XDP, and wrote the pings' flow records. Returns its PID.
fn start_and_capture(c: &Container) -> Result<u32> {
    // The operator's edit: the interface, and short ICMP timeouts so records come quickly.
    c.sh(
        "edit the configuration",
        &format!(
            "sed -i 's/^# interface = \"eth1\"/interface = \"span0\"/' {CONFIG}
             grep -q '^interface = \"span0\"' {CONFIG}
             printf '\\n[flows]\\nicmp_idle_timeout_s = 2\\nemergency_idle_timeout_s = 2\\n' >> {CONFIG}
             sed -i 's/^stats_interval_s = 10/stats_interval_s = 1/' {CONFIG}
             nbad-sensor check-config {CONFIG} >/dev/null"
        ),
    )?;
    c.sh("systemctl start", "systemctl start nbad-sensor.service")?;
    let pid = wait_for_capture(c)?;
    let status = c.sh("process status", &format!("cat /proc/{pid}/status"))?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_default().to_owned()
    };
    let uid = c.sh("the nbad uid", "id -u nbad")?;
    if field("Uid:").split_whitespace().next() != Some(uid.trim()) {
        bail!("the sensor does not run as nbad: Uid: {}", field("Uid:"));
    }
    // The unit grants the four (the bounding set keeps them); once capture is open the sensor
    // drops what opened it from the sets it holds.
    if field("CapBnd:") != CAPS {
        bail!(
            "CapBnd: {} is not exactly CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON ({CAPS})",
            field("CapBnd:")
        );
    }
    let kept = field("CapEff:");
    if kept != KEPT_XDP && kept != KEPT_PCAP {
        bail!("CapEff: {kept} is not what capture keeps ({KEPT_XDP} with XDP, {KEPT_PCAP} with libpcap)");
    }
    for cap in ["CapPrm:", "CapAmb:"] {
        if field(cap) != kept {
            bail!("{cap} {} differs from CapEff: {kept}", field(cap));
        }
    }
    if field("NoNewPrivs:") != "1" {
        bail!("NoNewPrivs is not set");
    }
    note(&format!(
        "running as nbad (pid {pid}) with capabilities {CAPS} granted and {kept} kept after capture opened, no new privileges"
    ));

    c.sh("ping from the generator namespace", PING)?;
    wait_for(
        c,
        "flow records of the pings",
        Duration::from_secs(30),
        &format!("grep -q '{GEN_ADDR}' {FLOWS}"),
    )?;
    wait_for(c, "statistics", Duration::from_secs(10), &format!("grep -q packets_read {STATS}"))?;
    let owner = c.sh("output ownership", &format!("stat -c '%U %a' {FLOWS} {STATS}"))?;
    note(&format!(
        "flow records of the pings in {FLOWS}; owner and mode: {}",
        owner.split_whitespace().collect::<Vec<_>>().join(" ")
    ));
    Ok(pid)
}

/// A second sensor from the per-interface template, on the same interface with libpcap: the
/// template works, and so does the libpcap path under the same restrictions. It keeps
/// running, so that removing the package has a template instance to stop.
fn template_with_libpcap(c: &Container) -> Result<()> {
    let instance = "nbad-sensor@span-pcap.service";
    let records = "/var/log/nbad-sensor/span-pcap.json";
    let config = format!(
        "[capture]\nmode = \"pcap\"\ninterface = \"span0\"\n\n[flows]\nicmp_idle_timeout_s = 2\n\
         emergency_idle_timeout_s = 2\n\n[output]\nflows = \"{records}\"\n"
    );
    fs::write(c.host_path("/etc/nbad-sensor/span-pcap.toml"), config)
        .context("writing the instance's configuration")?;
    c.sh("start the instance", &format!("systemctl start {instance}"))?;
    wait_for(
        c,
        "the libpcap instance capturing",
        Duration::from_secs(20),
        &format!("journalctl -u {instance} --no-pager -o cat | grep -q 'capturing on span0 with libpcap'"),
    )?;
    c.sh("ping from the generator namespace", PING)?;
    wait_for(
        c,
        "the instance's flow records",
        Duration::from_secs(30),
        &format!("grep -q '{GEN_ADDR}' {records}"),
    )?;
    let user = c.sh(
        "the instance's user",
        &format!("ps -o user= -p $(systemctl show -p MainPID --value {instance})"),
    )?;
    if user.trim() != "nbad" {
        bail!("{instance} runs as {user:?}, not nbad");
    }
    note(&format!("{instance}: libpcap on span0 as nbad, flow records in {records}"));
    Ok(())
}

/// Waits until the journal says how the sensor captures; fails on the libpcap fallback (the
/// test is that XDP attaches under the unit's restrictions). Returns the main PID.
fn wait_for_capture(c: &Container) -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let journal = c.sh("the journal", "journalctl -u nbad-sensor.service --no-pager -o cat")?;
        if let Some(line) = journal.lines().find(|l| l.contains("capturing on span0")) {
            if !line.contains("with XDP") {
                bail!("XDP did not attach under the service's restrictions:\n{journal}");
            }
            note(&format!("journal: {line}"));
            let pid = c.sh("main pid", "systemctl show -p MainPID --value nbad-sensor.service")?;
            return pid.trim().parse().with_context(|| format!("MainPID {pid:?}"));
        }
        if Instant::now() > deadline {
            let status =
                c.sh_status("systemctl status --no-pager nbad-sensor.service", Duration::from_secs(10))?;
            bail!("the sensor did not start capturing within 30 s:\n{journal}\n{}", status.text);
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// `systemctl reload` keeps the process (same PID) and logs that the configuration was read.
fn reload(c: &Container, pid: u32) -> Result<()> {
    c.sh("systemctl reload", "systemctl reload nbad-sensor.service")?;
    wait_for(
        c,
        "the reload in the journal",
        Duration::from_secs(10),
        "journalctl -u nbad-sensor.service --no-pager -o cat | grep -q 'configuration reloaded'",
    )?;
    let now = main_pid(c)?;
    if now != pid {
        bail!("reload restarted the sensor (pid {pid} became {now})");
    }
    note("systemctl reload: configuration reread, same process");
    Ok(())
}

/// Upgrades to `second`: the edited configuration stays, the sensor restarts on the new
/// package, and the earlier flow records are kept.
fn upgrade(c: &Container, second: &Package, old_pid: u32) -> Result<()> {
    let lines_before = c.sh("count records", &format!("wc -l < {FLOWS}"))?;
    let instance_pid =
        c.sh("instance pid", "systemctl show -p MainPID --value nbad-sensor@span-pcap.service")?;
    c.sh("dpkg -i (upgrade)", &format!("dpkg -i {}", deb_in_container(second)))?;
    let version = c.sh("installed version", "dpkg-query -W -f='${Version}' nbad-sensor")?;
    if version.trim() != second.version {
        bail!("after the upgrade dpkg reports version {version}, not {}", second.version);
    }
    c.sh("the edited configuration survived", &format!("grep -q '^interface = \"span0\"' {CONFIG}; test ! -e {CONFIG}.dpkg-dist; test ! -e {CONFIG}.dpkg-old"))?;
    c.sh("running after the upgrade", "systemctl is-active nbad-sensor.service")?;
    let pid = main_pid(c)?;
    if pid == old_pid {
        bail!("the upgrade did not restart the sensor");
    }
    let instance_now =
        c.sh("instance pid", "systemctl show -p MainPID --value nbad-sensor@span-pcap.service")?;
    if instance_now.trim() == instance_pid.trim() || instance_now.trim() == "0" {
        bail!(
            "the upgrade did not restart nbad-sensor@span-pcap.service (pid {instance_pid} -> {instance_now})"
        );
    }
    let lines_after = c.sh("count records", &format!("wc -l < {FLOWS}"))?;
    let (before, after): (u64, u64) = (lines_before.trim().parse()?, lines_after.trim().parse()?);
    if after < before {
        bail!("the restart truncated {FLOWS}: {before} records before, {after} after");
    }
    note(&format!(
        "upgraded to {}: configuration kept, both sensors restarted (pid {pid}), {after} records kept",
        second.version
    ));
    Ok(())
}

/// `dpkg -r`: stopped, binary gone, configuration and data kept.
fn remove(c: &Container) -> Result<()> {
    c.sh("dpkg -r", "dpkg -r nbad-sensor")?;
    c.sh(
        "after remove",
        &format!(
            "! systemctl is-active --quiet nbad-sensor.service
             ! systemctl is-active --quiet nbad-sensor@span-pcap.service
             test ! -e /usr/sbin/nbad-sensor
             test -f {CONFIG}
             test -f {FLOWS}"
        ),
    )?;
    // SIGTERM from systemd: the sensor flushed its flows and said so on its way out.
    let stops = c.sh(
        "graceful stops in the journal",
        "journalctl -u nbad-sensor.service --no-pager -o cat | grep -c '^nbad-sensor: stopped: ' || true",
    )?;
    if stops.trim().parse::<u32>().unwrap_or(0) < 2 {
        bail!("the journal shows {} graceful stops, expected 2 (upgrade restart, removal)", stops.trim());
    }
    note(
        "removed: both sensors stopped (flows flushed on SIGTERM), binary gone, configuration and records kept",
    );
    Ok(())
}

/// `dpkg -P`: nothing of the package is left but the `nbad` user, which owns nothing.
fn purge(c: &Container) -> Result<()> {
    c.sh("dpkg -P", "dpkg -P nbad-sensor")?;
    c.sh(
        "after purge",
        "test ! -e /etc/nbad-sensor
         test ! -e /var/lib/nbad-sensor
         test ! -e /var/log/nbad-sensor
         test ! -e /etc/systemd/system/multi-user.target.wants/nbad-sensor.service
         ! ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q nbad
         ! ls /var/lib/systemd/deb-systemd-helper-masked/ 2>/dev/null | grep -q nbad
         ! dpkg-query -W -f='${Status}' nbad-sensor 2>/dev/null | grep -q installed",
    )?;
    let owned = c.sh("files owned by nbad", "find / -xdev -user nbad 2>/dev/null || true")?;
    if !owned.trim().is_empty() {
        bail!("files still owned by nbad after purge:\n{owned}");
    }
    note("purged: configuration, records, state and unit symlinks gone; the nbad user owns nothing");
    Ok(())
}

fn main_pid(c: &Container) -> Result<u32> {
    let pid = c.sh("main pid", "systemctl show -p MainPID --value nbad-sensor.service")?;
    pid.trim().parse().with_context(|| format!("MainPID {pid:?}"))
}

/// Polls `check` (a shell test) until it succeeds or `limit` passes.
fn wait_for(c: &Container, what: &str, limit: Duration, check: &str) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if c.sh_status(check, Duration::from_secs(10))?.ok {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(500));
    }
    let journal = c.sh_status(
        "journalctl -u nbad-sensor.service --no-pager -o cat | tail -20",
        Duration::from_secs(10),
    )?;
    bail!("{what}: not seen within {} s; the sensor's journal:\n{}", limit.as_secs(), journal.text)
}
