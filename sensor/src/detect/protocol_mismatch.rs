//! `protocol_mismatch`: a known protocol on another protocol's port, a registered port carrying
//! something other than its protocol, or a port-bound protocol on a port no one registered.
//!
//! Works on the identification of each flow direction's first payload (see [`crate::protocol`];
//! TCP directions only when their opening was seen, so a flow met in mid-stream is never judged).
//! The service side is taken from the payload's role: the receiver of what a client sends, the
//! sender of a server's greeting or response, and for what either side may send the side with
//! the lower port. What a port is registered for comes from the port registry
//! ([`crate::protocol::registry`]: the system's IANA services database, `/etc/services`, and a
//! documented supplement of de-facto ports). Rules:
//!
//! - **cross_protocol**: the protocol is not among those the port is registered for (SSH on 443,
//!   HTTP on 22, TLS on 80, MySQL on PostgreSQL's 5432, LDAP on 389's neighbour...). Confidence
//!   0.85 on a port below 1024, 0.7 above. Protocols that roam over any port by design (STUN and
//!   TURN, BitTorrent, WireGuard, QUIC) are not judged on ports of 1024 and above, where a random
//!   port of theirs often falls on some registered service.
//! - **not_standard_protocol** ("expected protocol absent"): the side that speaks first on the
//!   registered port (the client for TLS, HTTP, DNS, SMB...; the server for SSH, SMTP, FTP, MySQL
//!   ...) — or either side, for protocols whose both sides the identifier knows (DNS, TLS, HTTP,
//!   SSH, SMB, NTP, SNMP, Kerberos, LDAP) — sent something the identifier does not know. TCP
//!   ports of any range (0.55 below 1024, 0.45 above); UDP only for datagrams sent to ports whose datagrams are
//!   self-contained messages the identifier knows (DNS, DHCP, TFTP, Kerberos, NTP, NetBIOS name
//!   service, SNMP, CLDAP, syslog): QUIC's short headers, RTP or a VPN's data look random and
//!   need no handshake the sensor could have missed. An executable (`MZ` ... `PE`) in such a
//!   payload, or in any unidentified first payload on TCP, is rule **executable_transfer**
//!   (0.8; the receiver is at fault): binaries travel over HTTP, SMB or FTP, not over a raw
//!   connection. A first payload of at most 8 bytes that says nothing (a stager's length
//!   prefix) has the next payload looked at instead (see `observe::SHORT_FIRST_LEN`).
//! - **shell**: a command shell spoken over a bare connection (a Windows console or PowerShell
//!   banner, a prompt, `id` output, or an operator's first command line; see
//!   [`crate::protocol::shell`]), on any port: a reverse or bind shell. Confidence 0.9; the
//!   shell's host is at fault, inside or not.
//! - **fully_encrypted**: an unidentified TCP first payload that looks fully encrypted (no
//!   framing, random-looking bytes: Shadowsocks, VMess, obfs4) to an unregistered port, opened
//!   by an inside host; see [`encrypted`] for what is not judged. Confidence 0.5.
//! - **nonstandard_port** (`report_nonstandard`): a port-bound protocol (SSH, SMTP, FTP, POP3,
//!   IMAP, Telnet, the databases, LDAP, Kerberos, SMB, NetBIOS, RDP, SOCKS, IRC, MQTT, AMQP,
//!   SNMP, TFTP, DHCP, syslog, NTP, XMPP) on a port nothing is registered for: 0.45, 0.6 for
//!   those that carry an organisation's data or control (LDAP, Kerberos, SMB, RDP, the
//!   databases); not when the other side's port is the protocol's own (a request from port
//!   161 to a high port is a reflection, not a service). TLS and HTTP on unregistered ports are scored by context instead, by
//!   [`super::suspicious_tls`] and [`super::suspicious_http`].
//!
//! The host at fault is the inside endpoint (the client when both or neither are inside).
//!
//! The service inventory remembers every (server, port, transport) with the protocol seen and
//! when it was first seen; a service first seen at least `inventory_learn_s` ago with the same
//! protocol is the organisation's own and no longer alerts.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::{FlowRef, Map};
use super::{Candidate, PointCtx, transport_name};
use crate::alert::{Detector, LearningState};
use crate::observe::Observation;
use crate::protocol::{App, Protocol, Role, ShellSide, Transport, registry};

const DESCRIPTION: &str =
    "A protocol runs on a port registered for another one, or a standard port carries something else.";

/// One service in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Protocol seen.
    pub protocol: String,
    /// First seen, ns since the epoch.
    pub first_ns: u64,
}

/// Services by (server, port, transport).
pub type Inventory = Map<(IpAddr, u16, u8), Service>;

/// Notes the service an identified direction shows (its server side, see [`rule_for`]'s sides)
/// in the inventory, unless it is there or the inventory is full; returns whether the service
/// is new: absent, or first seen less than `learn_ns` before `ts_ns`.
pub fn note_service(
    inventory: &mut Inventory,
    max: usize,
    server: (IpAddr, u16),
    transport: u8,
    name: &str,
    ts_ns: u64,
    learn_ns: u64,
) -> bool {
    let key = (server.0, server.1, transport);
    match inventory.get(&key) {
        Some(svc) => ts_ns.saturating_sub(svc.first_ns) < learn_ns,
        None => {
            if inventory.len() < max {
                inventory.insert(key, Service { protocol: name.to_owned(), first_ns: ts_ns });
            }
            true
        }
    }
}

/// How long a service must have been in the inventory to be the organisation's own, ns.
#[must_use]
pub fn learn_ns(s: &crate::detect::config::ProtocolMismatch) -> u64 {
    u64::try_from(s.inventory_learn_s).unwrap_or(0).saturating_mul(1_000_000_000)
}

/// Whether the service at `key` has carried `name` since at least `learn_ns` before `ts_ns`:
/// the organisation's own, which no longer alerts.
fn learned(inventory: &Inventory, key: &(IpAddr, u16, u8), name: &str, ts_ns: u64, learn_ns: u64) -> bool {
    inventory
        .get(key)
        .is_some_and(|svc| ts_ns.saturating_sub(svc.first_ns) >= learn_ns && svc.protocol == name)
}

/// The service side of a direction from `src` to `dst` carrying `p` (see the module docs).
#[must_use]
pub fn service_side(src: (IpAddr, u16), dst: (IpAddr, u16), p: &Protocol) -> (IpAddr, u16) {
    sides(src, dst, p).0
}

/// The protocols registered on a port (what the port "should" carry), in
/// identifier names, from the process-wide port registry
/// ([`crate::protocol::registry`]: the system's services database and a
/// supplement of de-facto ports).
#[must_use]
pub fn registered(port: u16, proto: u8) -> &'static [&'static str] {
    let transport = match proto {
        6 => Transport::Tcp,
        17 => Transport::Udp,
        _ => return &[],
    };
    registry::global().protocols(port, transport)
}

/// An address and a port.
type Endpoint = (IpAddr, u16);

/// Protocols that run on any port by design: not judged on ports of 1024 and above.
const ROAMING: [&str; 5] = ["stun", "bittorrent", "wireguard", "quic", "openvpn"];
/// Protocols normally found on their registered ports, and the confidence of finding one on a
/// port no one registered.
const PORT_BOUND: [(&str, f64); 27] = [
    ("ssh", 0.45),
    ("smtp", 0.45),
    ("ftp", 0.45),
    ("pop3", 0.45),
    ("imap", 0.45),
    ("telnet", 0.45),
    ("mysql", 0.6),
    ("postgresql", 0.6),
    ("mssql", 0.6),
    ("redis", 0.6),
    ("mongodb", 0.6),
    ("ldap", 0.6),
    ("kerberos", 0.6),
    ("smb", 0.6),
    ("netbios", 0.6),
    ("rdp", 0.6),
    ("socks4", 0.45),
    ("socks5", 0.45),
    ("irc", 0.45),
    ("mqtt", 0.45),
    ("amqp", 0.45),
    ("snmp", 0.45),
    ("tftp", 0.45),
    ("dhcp", 0.45),
    ("syslog", 0.45),
    ("ntp", 0.45),
    ("xmpp", 0.45),
];
/// Protocols whose server speaks first: on their ports, the server's first payload is the one
/// that must be identified.
const SERVER_FIRST: [&str; 8] = ["ssh", "smtp", "ftp", "pop3", "imap", "mysql", "telnet", "vnc"];
/// Protocols whose both sides' first payloads the identifier knows (requests and responses,
/// hellos and greetings): on their ports an unknown payload from either side is judged.
const BOTH_SIDES: [&str; 9] = ["dns", "tls", "http", "ssh", "smb", "ntp", "snmp", "kerberos", "ldap"];
/// UDP ports judged for an unidentified payload: self-contained datagrams whose every message
/// the identifier knows. (QUIC's short headers, RTP or a VPN's data look like random bytes and
/// need no handshake the sensor could have missed.)
const UDP_JUDGED: [u16; 11] = [53, 67, 68, 69, 88, 123, 137, 161, 162, 389, 514];

/// Whether an unidentified first payload on `port` over `proto` is judged.
fn judged(port: u16, proto: u8) -> bool {
    let judged_port = match proto {
        6 => true,
        17 => UDP_JUDGED.contains(&port),
        _ => false,
    };
    judged_port && !registered(port, proto).is_empty()
}

/// Whether a payload between `sport` and `dport` that nothing identified may break
/// `not_standard_protocol` (the capture thread asks before sending it on).
#[must_use]
pub fn expects_identifiable(sport: u16, dport: u16, proto: u8) -> bool {
    judged(sport, proto) || judged(dport, proto)
}

/// The service and the client of a direction from `src` to `dst` carrying
/// `p`: the receiver of what a client sends, the sender of what a server
/// sends, and for what either side may send the side with the lower port.
fn sides(src: Endpoint, dst: Endpoint, p: &Protocol) -> (Endpoint, Endpoint, &'static str) {
    let lower_is_src = src.1 < dst.1;
    let (server, client) = match p.role {
        Role::Client => (dst, src),
        Role::Server => (src, dst),
        Role::Either if lower_is_src => (src, dst),
        Role::Either => (dst, src),
    };
    (server, client, p.name())
}

/// Whether `name` may run where `reg` is registered.
fn compatible(name: &str, reg: &[&str]) -> bool {
    reg.contains(&name)
        // HTTP/2 with prior knowledge where HTTP is registered.
        || (name == "http2" && reg.contains(&"http"))
}

/// A direction that breaks a port rule: which side is the service, what it
/// carries, what its port is registered for, and the rule with its confidence.
#[derive(Debug, Clone, Copy)]
pub struct Mismatch {
    /// The service's address and port.
    pub server: Endpoint,
    /// The client's address and port.
    pub client: Endpoint,
    /// The protocol's name.
    pub name: &'static str,
    /// What the service port is registered for.
    pub registered: &'static [&'static str],
    /// The rule broken.
    pub rule: &'static str,
    /// The rule's confidence.
    pub confidence: f64,
}

/// The rule a direction from `src` to `dst` carrying `p` on transport `proto`
/// breaks; `None` when it breaks none.
#[must_use]
pub fn rule_for(
    src: Endpoint,
    dst: Endpoint,
    proto: u8,
    p: &Protocol,
    report_nonstandard: bool,
) -> Option<Mismatch> {
    if p.is_unknown() {
        return unknown_rule(src, dst, proto);
    }
    let (server, client, name) = sides(src, dst, p);
    let port = server.1;
    let reg = registered(port, proto);
    let (rule, confidence) = if !reg.is_empty() && !compatible(name, reg) {
        if port >= 1024 && ROAMING.contains(&name) {
            return None;
        }
        ("cross_protocol", if port < 1024 { 0.85 } else { 0.7 })
    } else if reg.is_empty() && report_nonstandard {
        // A request sent *from* the protocol's own port (a reflector echoing a spoofed
        // request back at its victim, a device looping) is not a service on an odd port.
        if compatible(name, registered(client.1, proto)) {
            return None;
        }
        let (_, confidence) = PORT_BOUND.iter().find(|(n, _)| *n == name)?;
        ("nonstandard_port", *confidence)
    } else {
        return None;
    };
    Some(Mismatch { server, client, name, registered: reg, rule, confidence })
}

/// `not_standard_protocol` for an unidentified payload from `src` to `dst`: when the port it
/// went to (or came from) is judged ([`judged`]) and the side that speaks first there sent it
/// (either side, for protocols whose both sides the identifier knows).
fn unknown_rule(src: Endpoint, dst: Endpoint, proto: u8) -> Option<Mismatch> {
    // To a judged port (the client's payload), else from one (the server's).
    let (server, client, from_server) = if judged(dst.1, proto) {
        (dst, src, false)
    } else if judged(src.1, proto) {
        (src, dst, true)
    } else {
        return None;
    };
    // Over UDP only what went *to* the port is judged: a datagram from it that the sensor
    // cannot read is either the answer to a request judged already or one nobody asked for
    // (a reflection flood sends thousands, each from its own reflector).
    if from_server && proto == 17 {
        return None;
    }
    let reg = registered(server.1, proto);
    let both = reg.iter().all(|r| BOTH_SIDES.contains(r));
    let server_first = reg.iter().all(|r| SERVER_FIRST.contains(r));
    let client_first = reg.iter().all(|r| !SERVER_FIRST.contains(r));
    // The first speaker's payload is the one that must be known; the other side's first
    // payload answers something already judged, unless both sides are known.
    if !both && ((from_server && !server_first) || (!from_server && !client_first)) {
        return None;
    }
    let confidence = if server.1 < 1024 { 0.55 } else { 0.45 };
    Some(Mismatch {
        server,
        client,
        name: "unknown",
        registered: reg,
        rule: "not_standard_protocol",
        confidence,
    })
}

/// Distinct servers one host may reach over fully encrypted unknown protocols within an hour
/// before it looks like a peer-to-peer client (BitTorrent's encrypted handshakes, to a new peer
/// each time) rather than a tunnel (one server, over and over): past it, `fully_encrypted`
/// stops alerting for the host and counts instead.
pub const ENCRYPTED_MAX_PEERS: usize = 8;
/// Hosts followed for [`ENCRYPTED_MAX_PEERS`] at most; beyond it the list starts afresh.
const ENCRYPTED_MAX_HOSTS: usize = 65_536;
const HOUR_NS: u64 = 3_600_000_000_000;

/// The servers each host reached over fully encrypted unknown protocols in its current hour.
#[derive(Debug, Default)]
pub struct EncryptedPeers {
    by_host: Map<IpAddr, (u64, Vec<IpAddr>)>,
    /// Findings not raised: the host reached more than [`ENCRYPTED_MAX_PEERS`] servers.
    pub p2p_like: u64,
}

impl EncryptedPeers {
    /// Notes that `host` reached `server` at `ts_ns`; false once the host is past the cap.
    fn note(&mut self, host: IpAddr, server: IpAddr, ts_ns: u64) -> bool {
        if self.by_host.len() >= ENCRYPTED_MAX_HOSTS && !self.by_host.contains_key(&host) {
            self.by_host.clear();
        }
        let e = self.by_host.entry(host).or_insert_with(|| (ts_ns, Vec::new()));
        if ts_ns.saturating_sub(e.0) > HOUR_NS {
            *e = (ts_ns, Vec::new());
        }
        if !e.1.contains(&server) && e.1.len() <= ENCRYPTED_MAX_PEERS {
            e.1.push(server);
        }
        e.1.len() <= ENCRYPTED_MAX_PEERS
    }
}

/// The client and the server of a fully encrypted direction: the server's is the lower port.
#[must_use]
pub fn encrypted_sides(o: &Observation) -> (Endpoint, Endpoint) {
    let (src, dst) = ((o.src, o.sport), (o.dst, o.dport));
    if dst.1 < src.1 { (src, dst) } else { (dst, src) }
}

/// Rule **fully_encrypted**: a TCP flow whose client's first payload looks fully
/// encrypted ([`crate::protocol::encrypted`]) and that nothing identifies, to a server port no
/// protocol is registered for, opened by an inside host (or between two outside ones). What
/// circumvention and tunnelling tools (Shadowsocks, VMess, obfs4) look like on the wire.
/// Confidence 0.5. Not judged: a server inside reached from outside (a listener of the
/// organisation's own, such as a peer-to-peer client's port), a client port below 1024, a host
/// past [`ENCRYPTED_MAX_PEERS`] servers in the hour, and a service learned in the inventory.
pub fn encrypted(
    o: &Observation,
    len: u16,
    inventory: &Inventory,
    peers: &mut EncryptedPeers,
    ctx: &PointCtx<'_>,
    is_home: impl Fn(IpAddr) -> bool,
) -> Option<Candidate> {
    let s = &ctx.settings.protocol_mismatch;
    if !s.enabled || o.proto != 6 {
        return None;
    }
    let (client, server) = encrypted_sides(o);
    let port = server.1;
    // Tunnel clients speak first (Shadowsocks, VMess and obfs4 send their encrypted header at
    // once); a random-looking greeting from a server is a peer-to-peer or proprietary
    // protocol's answer more often than a tunnel.
    let from_client = (o.src, o.sport) == client;
    if !from_client
        || client.1 < 1024
        || !registered(port, 6).is_empty()
        || (is_home(server.0) && !is_home(client.0))
    {
        return None;
    }
    let key = (server.0, port, 6);
    if learned(inventory, &key, "encrypted", o.ts_ns, learn_ns(s)) {
        return None;
    }
    let host = client.0;
    if !peers.note(host, server.0, o.ts_ns) {
        peers.p2p_like += 1;
        return None;
    }
    let flow = FlowRef { a: client, b: server, proto: 6 };
    let mut cand = Candidate::point(Detector::ProtocolMismatch, DESCRIPTION, ctx, host, "flows", 1.0, 1.0);
    cand.peer = Some(server.0);
    cand.port = Some(port);
    cand.transport = transport_name(6);
    cand.flow = Some(flow);
    cand.strength = 0.5;
    cand.confidence = 0.5;
    cand.evidence.learning_state = LearningState::Learning;
    cand.evidence.community_ids.push(flow.community_id());
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("fully_encrypted"));
    d.insert("protocol".into(), json!("unknown"));
    d.insert("port".into(), json!(port));
    d.insert("expected".into(), json!([] as [&str; 0]));
    d.insert("payload_bytes".into(), json!(len));
    d.insert("service_first_seen_ns".into(), json!(inventory.get(&key).map_or(o.ts_ns, |s| s.first_ns)));
    cand.message = format!(
        "{}:{} → {}:{} tcp: a fully encrypted protocol nothing identifies, on unregistered port {port} \
         (the client's first payload, {len} bytes, is indistinguishable from random)",
        client.0, client.1, server.0, server.1
    );
    Some(cand)
}

/// A ClientHello's SNI and JA4 as evidence.
fn hello_details(
    d: &mut serde_json::Map<String, serde_json::Value>,
    hello: &crate::protocol::tls::ClientHello,
) {
    if let Some(sni) = &hello.sni {
        d.insert("sni".into(), json!(sni));
    }
    if let Some(ja4) = &hello.ja4 {
        d.insert("ja4".into(), json!(ja4));
    }
}

/// Looks at one identified flow direction; returns a finding when the service mismatches and
/// is not yet part of the learned inventory (the caller notes every service in it, see
/// [`note_service`]).
pub fn observe(
    o: &Observation,
    p: &Protocol,
    executable: bool,
    inventory: &Inventory,
    ctx: &PointCtx<'_>,
    is_home: impl Fn(IpAddr) -> bool,
) -> Option<Candidate> {
    let s = &ctx.settings.protocol_mismatch;
    if !s.enabled {
        return None;
    }
    let (src, dst) = ((o.src, o.sport), (o.dst, o.dport));
    let Mismatch { server, client, name, registered: reg, rule, confidence } =
        if let App::Shell { side } = p.app {
            // "server" is the shell's end: the sender of a banner, a prompt or output, the
            // receiver of a command line.
            let (shell, operator) = if side == ShellSide::Command { (dst, src) } else { (src, dst) };
            Mismatch {
                server: shell,
                client: operator,
                name: "shell",
                registered: &[],
                rule: "shell",
                confidence: 0.9,
            }
        } else if executable && p.is_unknown() {
            // "server" is the sender of the binary, "client" its receiver.
            let registered = registered(src.1.min(dst.1), o.proto);
            Mismatch {
                server: src,
                client: dst,
                name: "executable",
                registered,
                rule: "executable_transfer",
                confidence: 0.8,
            }
        } else {
            rule_for(src, dst, o.proto, p, s.report_nonstandard)?
        };
    let port = server.1;
    let key = (server.0, port, o.proto);
    if learned(inventory, &key, name, o.ts_ns, learn_ns(s)) {
        return None;
    }
    // The inside endpoint is at fault; when neither is inside (a tap on a
    // transit link, or home networks not configured), the client that chose
    // the port.
    // A shell's host is at fault wherever it is, and so is the receiver of an executable.
    let host = match rule {
        "shell" => server.0,
        "executable_transfer" => client.0,
        _ if is_home(client.0) || !is_home(server.0) => client.0,
        _ => server.0,
    };
    let peer = if host == client.0 { server.0 } else { client.0 };
    let flow = FlowRef { a: client, b: server, proto: o.proto };
    let first_ns = inventory.get(&key).map_or(o.ts_ns, |s| s.first_ns);
    let mut cand = Candidate::point(Detector::ProtocolMismatch, DESCRIPTION, ctx, host, "flows", 1.0, 1.0);
    cand.peer = Some(peer);
    cand.port = Some(port);
    cand.transport = transport_name(o.proto);
    cand.flow = Some(flow);
    cand.strength = 0.6;
    cand.confidence = confidence;
    cand.evidence.learning_state = LearningState::Learning;
    cand.evidence.community_ids.push(flow.community_id());
    let expected: Vec<&str> = reg.to_vec();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(rule));
    d.insert("protocol".into(), json!(name));
    d.insert("port".into(), json!(port));
    d.insert("expected".into(), json!(expected));
    d.insert("service_first_seen_ns".into(), json!(first_ns));
    match &p.app {
        App::Ssh { banner } => {
            d.insert("banner".into(), json!(banner));
        }
        App::Tls(info) => {
            if let crate::protocol::tls::TlsMessage::ClientHello(hello) = &info.message {
                hello_details(d, hello);
            }
        }
        App::Quic { hello: Some(hello), .. } => hello_details(d, hello),
        App::Http(info) => {
            if let crate::protocol::http::HttpInfo::Request(r) = &**info
                && let Some(h) = &r.host
            {
                d.insert("http_method".into(), json!(r.method));
                d.insert("http_host".into(), json!(h));
            }
        }
        _ => {}
    }
    let what = match rule {
        "cross_protocol" => format!("{name} on port {port}, registered for {}", expected.join("/")),
        "not_standard_protocol" => {
            format!("port {port} carrying something other than {}", expected.join("/"))
        }
        "executable_transfer" => {
            format!("a Windows executable sent over a raw TCP connection to {}", client.0)
        }
        "shell" => {
            let what = match p.app {
                App::Shell { side: ShellSide::Banner } => "console banner",
                App::Shell { side: ShellSide::Prompt } => "prompt",
                App::Shell { side: ShellSide::Output } => "command output",
                _ => "operator's command line",
            };
            format!("a command shell on a bare connection ({what}); the shell runs on {}", server.0)
        }
        _ => format!("{name} on non-standard port {port}"),
    };
    // Arrows point the way the payload went: to the service, or from the sender of a binary.
    let (from, to) = if rule == "executable_transfer" { (server, client) } else { (client, server) };
    cand.message = format!(
        "{}:{} → {}:{} {}: {what}",
        from.0,
        from.1,
        to.0,
        to.1,
        transport_name(o.proto).unwrap_or("ip")
    );
    Some(cand)
}

#[cfg(test)]
mod tests {
    use crate::alert::Detector;
    use crate::detect::testing::{T0, engine, v4};
    use crate::observe::{ObsKind, Observation};

    fn encrypted(src: (std::net::IpAddr, u16), dst: (std::net::IpAddr, u16), at: u64) -> Observation {
        Observation {
            ts_ns: at,
            src: src.0,
            dst: dst.0,
            sport: src.1,
            dport: dst.1,
            proto: 6,
            kind: ObsKind::Encrypted { len: 300 },
        }
    }

    fn rules(e: &mut crate::detect::Engine) -> Vec<String> {
        e.take_alerts()
            .iter()
            .filter(|a| a.detector == Detector::ProtocolMismatch && a.record.is_none())
            .filter_map(|a| a.evidence.details.get("rule").and_then(|r| r.as_str()).map(str::to_owned))
            .collect()
    }

    #[test]
    fn an_inside_client_speaking_a_fully_encrypted_protocol_to_an_unregistered_port_is_reported() {
        let mut e = engine("10.0.0.0/8", "");
        let (inside, outside) = (v4(10, 0, 0, 5), v4(198, 51, 100, 7));
        e.observation(&encrypted((inside, 40_818), (outside, 18_234), T0));
        assert_eq!(rules(&mut e), ["fully_encrypted"]);
    }

    #[test]
    fn server_greetings_inbound_listeners_and_registered_ports_are_not() {
        let mut e = engine("10.0.0.0/8", "");
        let (inside, outside) = (v4(10, 0, 0, 5), v4(198, 51, 100, 7));
        // The server's random-looking greeting (a peer-to-peer answer more often than a tunnel).
        e.observation(&encrypted((outside, 18_234), (inside, 40_818), T0));
        // An outside client reaching a listener inside.
        e.observation(&encrypted((outside, 40_001), (inside, 18_234), T0));
        // A registered port (HTTPS): the port rules judge it, not this one.
        e.observation(&encrypted((inside, 40_002), (outside, 443), T0));
        assert!(rules(&mut e).is_empty());
    }

    #[test]
    fn a_host_reaching_many_servers_this_way_looks_peer_to_peer_and_stops_alerting() {
        let mut e = engine("10.0.0.0/8", "");
        let inside = v4(10, 0, 0, 5);
        for n in 0..20u8 {
            e.observation(&encrypted((inside, 40_000 + u16::from(n)), (v4(198, 51, 100, n + 1), 18_234), T0));
        }
        assert_eq!(rules(&mut e).len(), super::ENCRYPTED_MAX_PEERS);
    }
}
