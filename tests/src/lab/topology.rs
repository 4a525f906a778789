//! Who is where in the lab: the nodes (one network namespace each), their
//! addresses, their interface names, and how a lab's names are made.
//!
//! ```text
//!  in1 10.77.1.11 ─┐                                      ┌─ web    10.77.2.10  HTTP :80, HTTPS :443
//!  in2 10.77.1.12 ─┼─ lan ─ inside ROUTER outside ─ wan ──┼─ dns    10.77.2.53  dnsmasq
//!  in3 10.77.1.13 ─┘        10.77.1.1   10.77.2.1         ├─ ssh    10.77.2.22  sshd :22 and :443
//!                              │ tc mirred: ingress+egress├─ iodine 10.77.2.30  iodined (t.lab)
//!                              ▼                          ├─ ptun   10.77.2.40  ptunnel-ng proxy
//!                  mirror0 ── span0 (sensor namespace)    └─ sink   10.77.2.50  HTTP PUT sink
//! ```
//!
//! `lan` and `wan` are namespaces holding one bridge each; every host has
//! one veth (`eth0`) to its bridge. The router forwards between `inside`
//! and `outside`. Every host's only route is `10.77.0.0/16` via the router:
//! no namespace has a route to anything outside the lab, and nothing is
//! created in the caller's own namespace.
//!
//! Names: a lab's prefix is `nbl<pid><tag>` (tag `a`, `b`, … per lab of the
//! process), its namespaces `<prefix>-<node>`. The pid in the name is how a
//! later run tells a leftover (its process is gone) from a lab that is
//! still running.

use std::net::Ipv4Addr;

/// Every lab name starts with this.
pub const PREFIX: &str = "nbl";
/// The whole lab address space: the only route any host has.
pub const LAB_NET: &str = "10.77.0.0/16";
/// The inside LAN, the sensor's home network.
pub const INSIDE_NET: &str = "10.77.1.0/24";
/// The router's inside address.
pub const ROUTER_INSIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
/// The router's outside address.
pub const ROUTER_OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);
/// Inside the iodine tunnel: the server's end (iodined hands clients `.2` on).
pub const TUNNEL_SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 3, 1);
/// The DNS zone iodined serves; the resolver forwards it there.
pub const TUNNEL_DOMAIN: &str = "t.lab";
/// Prefix length of both LANs and of the tunnel network.
pub const PREFIX_LEN: u8 = 24;
/// A host's interface, in its own namespace.
pub const HOST_IF: &str = "eth0";
/// The router's interface towards the inside LAN: the one that is mirrored.
pub const ROUTER_INSIDE_IF: &str = "inside";
/// The router's interface towards the outside.
pub const ROUTER_OUTSIDE_IF: &str = "outside";
/// The bridge in each switch namespace.
pub const BRIDGE: &str = "br0";

/// The capture interface of mirror port `index` (in the sensor namespace).
#[must_use]
pub fn span_if(index: usize) -> String {
    format!("span{index}")
}

/// The router's end of mirror port `index`.
#[must_use]
pub fn mirror_if(index: usize) -> String {
    format!("mirror{index}")
}

/// One network namespace of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// The inside LAN's bridge.
    LanSwitch,
    /// The outside LAN's bridge.
    WanSwitch,
    /// Forwards between the two LANs; its inside interface is mirrored.
    Router,
    /// Holds the capture interfaces (`span0`, `span1`); no addresses.
    Sensor,
    /// Inside host 1.
    In1,
    /// Inside host 2.
    In2,
    /// Inside host 3.
    In3,
    /// HTTP (python3 http.server) on :80, HTTPS (openssl s_server) on :443.
    Web,
    /// The resolver (dnsmasq); forwards the tunnel zone to iodined.
    Dns,
    /// sshd on :22 and a second sshd on :443.
    Ssh,
    /// iodined, the DNS tunnel server.
    Iodine,
    /// The ptunnel-ng proxy (ICMP tunnel server).
    Ptunnel,
    /// An HTTP server that takes uploads (PUT) and throws them away.
    Sink,
}

impl Node {
    /// Every node, switches and router first (they are built first).
    pub const ALL: [Self; 13] = [
        Self::LanSwitch,
        Self::WanSwitch,
        Self::Router,
        Self::Sensor,
        Self::In1,
        Self::In2,
        Self::In3,
        Self::Web,
        Self::Dns,
        Self::Ssh,
        Self::Iodine,
        Self::Ptunnel,
        Self::Sink,
    ];
    /// The inside hosts.
    pub const INSIDE: [Self; 3] = [Self::In1, Self::In2, Self::In3];
    /// The outside servers.
    pub const OUTSIDE: [Self; 6] = [Self::Web, Self::Dns, Self::Ssh, Self::Iodine, Self::Ptunnel, Self::Sink];

    /// Short name: the namespace suffix, and the host's port name on its bridge.
    #[must_use]
    pub fn short(self) -> &'static str {
        match self {
            Self::LanSwitch => "lan",
            Self::WanSwitch => "wan",
            Self::Router => "rtr",
            Self::Sensor => "sensor",
            Self::In1 => "in1",
            Self::In2 => "in2",
            Self::In3 => "in3",
            Self::Web => "web",
            Self::Dns => "dns",
            Self::Ssh => "ssh",
            Self::Iodine => "iodine",
            Self::Ptunnel => "ptun",
            Self::Sink => "sink",
        }
    }

    /// A host's address (`None` for switches, router and sensor).
    #[must_use]
    pub fn addr(self) -> Option<Ipv4Addr> {
        let last = match self {
            Self::In1 => 11,
            Self::In2 => 12,
            Self::In3 => 13,
            Self::Web => 10,
            Self::Ssh => 22,
            Self::Iodine => 30,
            Self::Ptunnel => 40,
            Self::Sink => 50,
            Self::Dns => 53,
            Self::LanSwitch | Self::WanSwitch | Self::Router | Self::Sensor => return None,
        };
        let lan = if Self::INSIDE.contains(&self) { 1 } else { 2 };
        Some(Ipv4Addr::new(10, 77, lan, last))
    }

    /// A host's address, for hosts only.
    ///
    /// # Panics
    /// On a node without an address (a switch, the router, the sensor): a
    /// programming error in the lab, not something traffic can cause.
    #[must_use]
    pub fn ip(self) -> Ipv4Addr {
        self.addr().unwrap_or_else(|| panic!("lab node {} has no address", self.short()))
    }

    /// The name the resolver gives this host (`web.lab`), if any.
    #[must_use]
    pub fn dns_name(self) -> Option<&'static str> {
        Some(match self {
            Self::Web => "web.lab",
            Self::Dns => "dns.lab",
            Self::Ssh => "ssh.lab",
            Self::Iodine => "iodine.lab",
            Self::Ptunnel => "ptun.lab",
            Self::Sink => "sink.lab",
            _ => return None,
        })
    }

    /// The bridge namespace a host hangs off.
    #[must_use]
    pub fn switch(self) -> Option<Self> {
        if Self::INSIDE.contains(&self) {
            Some(Self::LanSwitch)
        } else if Self::OUTSIDE.contains(&self) {
            Some(Self::WanSwitch)
        } else {
            None
        }
    }

    /// The host's gateway (the router's address on its LAN).
    #[must_use]
    pub fn gateway(self) -> Option<Ipv4Addr> {
        match self.switch()? {
            Self::LanSwitch => Some(ROUTER_INSIDE),
            _ => Some(ROUTER_OUTSIDE),
        }
    }
}

/// The names of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names for this process's lab number `tag` (`'a'`, `'b'`, …).
    #[must_use]
    pub fn new(tag: char) -> Self {
        Self { prefix: format!("{PREFIX}{}{tag}", std::process::id()) }
    }

    /// `nbl<pid><tag>`.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace of `node`.
    #[must_use]
    pub fn ns(&self, node: Node) -> String {
        format!("{}-{}", self.prefix, node.short())
    }
}

/// The process that owns a lab name (`nbl1234a-rtr`, `nbl1234a` → 1234);
/// `None` for names that are not lab names.
#[must_use]
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    let mut tail = after.chars();
    // The tag, then the end of the name or `-<node>`.
    if !tail.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let tail = tail.as_str();
    if !(tail.is_empty() || tail.starts_with('-')) {
        return None;
    }
    digits.parse().ok()
}

/// True when `name` belongs to a lab whose process is gone.
#[must_use]
pub fn is_leftover(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_owner_pid_from_lab_names_only() {
        assert_eq!(owner_pid("nbl1234a-rtr"), Some(1234));
        assert_eq!(owner_pid("nbl1234b"), Some(1234));
        assert_eq!(owner_pid("nbl1234-rtr"), None, "no tag");
        assert_eq!(owner_pid("nbl1234ab-rtr"), None, "tag is one letter");
        assert_eq!(owner_pid("nbx1234a-rtr"), None, "another prefix");
        assert_eq!(owner_pid("nblx-rtr"), None, "no pid");
    }

    #[test]
    fn a_running_process_owns_its_lab_and_a_dead_one_leaves_leftovers() {
        let own = Names::new('a');
        assert!(!is_leftover(&own.ns(Node::Router)), "this process is alive");
        // Above the kernel's pid limit (4194304): never a live process.
        assert!(is_leftover("nbl4999999a-rtr"));
    }

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(Node::In2.addr(), Some(Ipv4Addr::new(10, 77, 1, 12)));
        assert_eq!(Node::Dns.addr(), Some(Ipv4Addr::new(10, 77, 2, 53)));
        assert_eq!(Node::Router.addr(), None);
        assert_eq!(Node::In1.gateway(), Some(ROUTER_INSIDE));
        assert_eq!(Node::Sink.gateway(), Some(ROUTER_OUTSIDE));
        let mut addrs: Vec<_> = Node::ALL.iter().filter_map(|n| n.addr()).collect();
        let hosts = addrs.len();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), hosts, "every host has its own address");
    }
}
