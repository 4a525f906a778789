//! The bench's network: two namespaces joined by one veth pair, made by [`Lab::create`] and
//! removed by [`Lab::teardown`] or on drop, with the sweep of what killed runs left behind and
//! the signalling of whatever runs inside a namespace.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use nbad_tests::lab::exec::{self, Exec};
use serde_json::Value;

use crate::cmd::note;

/// Namespace prefix: `nbb<pid>-tx`, `nbb<pid>-rx` (the lab's is `nbl`).
const PREFIX: &str = "nbb";
/// The veth ends, one in each namespace.
pub(super) const TX_IF: &str = "nbbtx";
pub(super) const RX_IF: &str = "nbbrx";

/// The two namespaces and the veth pair between them. Removed by [`Lab::teardown`] or on drop.
#[derive(Debug)]
pub(super) struct Lab {
    pub(super) tx: String,
    pub(super) rx: String,
    torn_down: bool,
}

impl Lab {
    pub(super) fn create() -> Result<Self> {
        let removed = remove_leftovers()?;
        if !removed.is_empty() {
            note(&format!("removed what earlier runs left: {}", removed.join(", ")));
        }
        let pid = std::process::id();
        let lab = Self { tx: format!("{PREFIX}{pid}-tx"), rx: format!("{PREFIX}{pid}-rx"), torn_down: false };
        // From here on an error drops `lab`, which removes what was made.
        for ns in [&lab.tx, &lab.rx] {
            run_ok(None, &["ip", "netns", "add", ns])?;
            // `default` applies to the veth made below: no IPv6 chatter (router solicitations,
            // MLD) crosses the pair, only the replay.
            let ipv6_off = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"];
            run_ok(Some(ns), &["sysctl", "-q", "-w", ipv6_off[0], ipv6_off[1]])?;
        }
        run_ok(
            None,
            &[
                "ip", "-n", &lab.tx, "link", "add", TX_IF, "type", "veth", "peer", "name", RX_IF, "netns",
                &lab.rx,
            ],
        )?;
        for (ns, dev) in [(&lab.tx, TX_IF), (&lab.rx, RX_IF)] {
            run_ok(Some(ns), &["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])?;
            run_ok(None, &["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(lab)
    }

    /// The rx veth's received packets and drops (kernel counters, cumulative).
    pub(super) fn rx_counters(&self) -> Result<(u64, u64)> {
        let out = run_ok(None, &["ip", "-n", &self.rx, "-s", "-j", "link", "show", RX_IF])?;
        let links: Value = serde_json::from_str(&out).context("parsing `ip -j -s link show`")?;
        let rx = links.pointer("/0/stats64/rx").context("no stats64.rx in `ip -j -s link show`")?;
        let get = |k: &str| rx[k].as_u64().unwrap_or(0);
        Ok((get("packets"), get("dropped")))
    }

    pub(super) fn teardown(mut self) {
        self.teardown_inner();
    }

    fn teardown_inner(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            remove_namespace(&self.rx);
            remove_namespace(&self.tx);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown_inner();
    }
}

/// Sends `signal` to every process in namespace `ns`, except those named `spare`.
pub(super) fn signal_namespace(ns: &str, signal: &str, spare: Option<&str>) {
    let Ok(out) = Exec::new(None, &["ip", "netns", "pids", ns]).uninterruptible().run() else { return };
    for pid in out.stdout.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if spare.is_none_or(|s| comm.trim() != s) {
            exec::signal(pid, signal);
        }
    }
}

/// Runs a bounded command (in namespace `ns`, or here) and returns its stdout; fails unless it
/// exits 0.
fn run_ok(ns: Option<&str>, argv: &[&str]) -> Result<String> {
    Ok(Exec::new(ns, argv).run_ok()?.stdout)
}

/// Kills whatever runs in `ns` and deletes it (its veth end, and so the pair, with it).
fn remove_namespace(ns: &str) {
    signal_namespace(ns, "KILL", None);
    let _ = Exec::new(None, &["ip", "netns", "del", ns]).uninterruptible().run();
}

/// Removes `nbb<pid>-tx`/`-rx` namespaces whose process is gone, or that carry this process's
/// pid (left by a dead process that had it before).
fn remove_leftovers() -> Result<Vec<String>> {
    let list = run_ok(None, &["ip", "netns", "list"])?;
    let mut removed = Vec::new();
    // `ip netns list` prints "NAME" or "NAME (id: N)".
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if let Some(pid) = owner_pid(name)
            && (pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists())
        {
            remove_namespace(name);
            removed.push(format!("namespace {name}"));
        }
    }
    Ok(removed)
}

/// `nbb1234-rx` → 1234; `None` for names this bench does not make.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.strip_suffix("-tx").or_else(|| rest.strip_suffix("-rx"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_only_its_own_namespace_names() {
        assert_eq!(owner_pid("nbb1234-rx"), Some(1234));
        assert_eq!(owner_pid("nbb1234-tx"), Some(1234));
        assert_eq!(owner_pid("nbl1234a-router"), None);
        assert_eq!(owner_pid("nbb-rx"), None);
        assert_eq!(owner_pid("nbbx1-rx"), None);
    }
}
