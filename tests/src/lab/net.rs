//! Building and removing the lab's namespaces, links and mirror.
//!
//! Everything is created inside the lab's own namespaces: veth pairs are
//! made with both ends placed directly in their namespaces
//! (`ip -n A link add X type veth peer name Y netns B`), so the caller's
//! namespace never gets an interface, an address or a route. Removing a
//! namespace removes its veth ends, and their peers with them.
//!
//! Offloads (TSO, GSO, GRO) are off on every veth: a SPAN port carries
//! wire-sized frames, and libpcap and XDP should see the same ones rather
//! than 64 KiB GSO super-packets that exist only inside this kernel.
//!
//! The mirror: a `clsact` qdisc on the router's `inside` interface with one
//! filter on ingress and one on egress, each `matchall` with a `mirred
//! egress mirror` action per mirror port (`mirror<i>` in the router, whose
//! veth peer `span<i>` is in the sensor namespace). A frame mirrored out of
//! `mirror<i>` arrives as *ingress* on `span<i>`, so XDP, which sees ingress
//! only, gets both directions, as on a switch's SPAN port. Kernels built
//! without `cls_matchall` get the classic catch-all `u32 match u32 0 0`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::exec::{self, Exec};
use super::topology::{
    BRIDGE, HOST_IF, LAB_NET, Names, Node, PREFIX, PREFIX_LEN, ROUTER_INSIDE, ROUTER_INSIDE_IF,
    ROUTER_OUTSIDE, ROUTER_OUTSIDE_IF, is_leftover, mirror_if, span_if,
};

/// Where `ip netns exec` finds per-namespace files (resolv.conf).
const NETNS_ETC: &str = "/etc/netns";

/// The tc classifier that carries the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorFilter {
    /// `matchall` (cls_matchall).
    Matchall,
    /// `u32 match u32 0 0`, for kernels without cls_matchall.
    U32,
}

impl MirrorFilter {
    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Matchall => &["matchall"],
            Self::U32 => &["protocol", "all", "u32", "match", "u32", "0", "0"],
        }
    }

    /// The filter as tc spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Matchall => "matchall",
            Self::U32 => "u32 match-all",
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    Exec::new(None, &argv).run_ok().map(drop)
}

fn in_ns(ns: &str, argv: &[&str]) -> Result<()> {
    Exec::new(Some(ns), argv).run_ok().map(drop)
}

fn no_offloads(ns: &str, dev: &str) -> Result<()> {
    in_ns(ns, &["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])
}

/// A veth pair from `a_dev` in namespace `a` to `b_dev` in `b`, both up and
/// without offloads.
fn veth(a: &str, a_dev: &str, b: &str, b_dev: &str) -> Result<()> {
    ip(&["-n", a, "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b])?;
    for (ns, dev) in [(a, a_dev), (b, b_dev)] {
        no_offloads(ns, dev)?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    Ok(())
}

/// Builds every namespace, link, address and route, and the mirror to
/// `mirror_ports` capture interfaces. Returns the classifier used.
pub fn build(names: &Names, mirror_ports: usize) -> Result<MirrorFilter> {
    for node in Node::ALL {
        let ns = names.ns(node);
        ip(&["netns", "add", &ns])?;
        // No IPv6: no router solicitations, MLD or DAD chatter in the records.
        let mut sysctls = vec!["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"];
        match node {
            Node::Router => sysctls.push("net.ipv4.ip_forward=1"),
            // ptunnel-ng answers the tunnel's echo requests itself; the
            // kernel's own replies would double the ICMP flow.
            Node::Ptunnel => sysctls.push("net.ipv4.icmp_echo_ignore_all=1"),
            _ => {}
        }
        let mut argv = vec!["sysctl", "-q", "-w"];
        argv.extend(sysctls);
        in_ns(&ns, &argv)?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    }
    for switch in [Node::LanSwitch, Node::WanSwitch] {
        let ns = names.ns(switch);
        ip(&["-n", &ns, "link", "add", BRIDGE, "type", "bridge", "forward_delay", "0"])?;
        ip(&["-n", &ns, "link", "set", BRIDGE, "up"])?;
    }
    for host in Node::INSIDE.into_iter().chain(Node::OUTSIDE) {
        let (Some(switch), Some(addr), Some(gateway)) = (host.switch(), host.addr(), host.gateway()) else {
            continue;
        };
        let (sw, ns) = (names.ns(switch), names.ns(host));
        veth(&sw, host.short(), &ns, HOST_IF)?;
        ip(&["-n", &sw, "link", "set", host.short(), "master", BRIDGE])?;
        ip(&["-n", &ns, "addr", "add", &format!("{addr}/{PREFIX_LEN}"), "dev", HOST_IF])?;
        // The lab's address space only: no default route, nothing beyond.
        ip(&["-n", &ns, "route", "add", LAB_NET, "via", &gateway.to_string()])?;
    }
    let rtr = names.ns(Node::Router);
    for (switch, dev, addr) in [
        (Node::LanSwitch, ROUTER_INSIDE_IF, ROUTER_INSIDE),
        (Node::WanSwitch, ROUTER_OUTSIDE_IF, ROUTER_OUTSIDE),
    ] {
        let sw = names.ns(switch);
        veth(&sw, "rtr", &rtr, dev)?;
        ip(&["-n", &sw, "link", "set", "rtr", "master", BRIDGE])?;
        ip(&["-n", &rtr, "addr", "add", &format!("{addr}/{PREFIX_LEN}"), "dev", dev])?;
    }
    let sensor = names.ns(Node::Sensor);
    for i in 0..mirror_ports {
        veth(&rtr, &mirror_if(i), &sensor, &span_if(i))?;
    }
    mirror(&rtr, mirror_ports)
}

/// The clsact qdisc and the two mirror filters on the router's inside interface.
fn mirror(rtr: &str, ports: usize) -> Result<MirrorFilter> {
    let tc = |args: &[&str]| -> Result<()> {
        let mut argv = vec!["tc", "-n", rtr];
        argv.extend_from_slice(args);
        Exec::new(None, &argv).run_ok().map(drop)
    };
    tc(&["qdisc", "add", "dev", ROUTER_INSIDE_IF, "clsact"])?;
    let filter = |kind: MirrorFilter, hook: &str| -> Result<()> {
        let mut args = vec!["filter", "add", "dev", ROUTER_INSIDE_IF, hook];
        args.extend_from_slice(kind.args());
        let devs: Vec<String> = (0..ports).map(mirror_if).collect();
        for dev in &devs {
            args.extend_from_slice(&["action", "mirred", "egress", "mirror", "dev", dev]);
        }
        tc(&args)
    };
    let kind = match filter(MirrorFilter::Matchall, "ingress") {
        Ok(()) => MirrorFilter::Matchall,
        Err(matchall) => {
            filter(MirrorFilter::U32, "ingress")
                .with_context(|| format!("mirroring with neither matchall ({matchall:#}) nor u32 worked"))?;
            MirrorFilter::U32
        }
    };
    filter(kind, "egress")?;
    Ok(kind)
}

/// Points the inside hosts' resolver at the lab's dnsmasq
/// (`/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over
/// /etc/resolv.conf), so that `curl http://web.lab/` resolves as a real
/// client would.
pub fn write_resolv_conf(names: &Names) -> Result<()> {
    let resolver = Node::Dns.ip();
    for host in Node::INSIDE {
        let dir = Path::new(NETNS_ETC).join(names.ns(host));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let text =
            format!("# nbad-sensor lab\nnameserver {resolver}\nsearch lab\noptions timeout:2 attempts:1\n");
        let path = dir.join("resolv.conf");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Kills whatever still runs in `ns`, then deletes it.
fn remove_namespace(ns: &str) {
    if let Ok(out) = Exec::new(None, &["ip", "netns", "pids", ns]).uninterruptible().run() {
        for pid in out.stdout.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            exec::signal(pid, "KILL");
        }
    }
    let _ = Exec::new(None, &["ip", "netns", "del", ns]).uninterruptible().run();
}

/// Removes a lab's namespaces (and so its links) and its resolv.conf files.
/// Best effort: carries on past errors, as teardown must.
pub fn remove(names: &Names) {
    for node in Node::ALL.iter().rev() {
        remove_namespace(&names.ns(*node));
    }
    for host in Node::INSIDE {
        let _ = std::fs::remove_dir_all(Path::new(NETNS_ETC).join(names.ns(host)));
    }
    // Left in place if anything else uses it.
    let _ = std::fs::remove_dir(NETNS_ETC);
}

/// Removes what earlier labs left behind (their process is gone): namespaces,
/// interfaces in this namespace with the lab prefix (the lab never makes
/// any, but a leftover is removed all the same), /etc/netns folders and
/// scratch folders. Returns what it removed.
pub fn remove_leftovers() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let list = Exec::new(None, &["ip", "netns", "list"]).uninterruptible().run_ok()?;
    // `ip netns list` prints "NAME" or "NAME (id: N)".
    for name in list.stdout.lines().filter_map(|l| l.split_whitespace().next()) {
        if is_leftover(name) {
            remove_namespace(name);
            removed.push(format!("namespace {name}"));
        }
    }
    let links = Exec::new(None, &["ip", "-o", "link", "show"]).uninterruptible().run_ok()?;
    // "7: nbl123a-x@if6: <...>": the name is the second field, up to '@' or ':'.
    for name in links.stdout.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        let name = name.trim_end_matches(':').split('@').next().unwrap_or_default();
        if is_leftover(name) {
            let _ = Exec::new(None, &["ip", "link", "del", name]).uninterruptible().run();
            removed.push(format!("link {name}"));
        }
    }
    for dir in [PathBuf::from(NETNS_ETC), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(PREFIX) && is_leftover(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
                removed.push(entry.path().display().to_string());
            }
        }
    }
    Ok(removed)
}
