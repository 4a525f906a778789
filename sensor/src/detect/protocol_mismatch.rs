//! `protocol_mismatch`: a known protocol on another protocol's port, or a
//! standard port carrying something else.
//!
//! Works on the identification of each flow direction's first payload (see
//! [`crate::protocol`]). The service side of the flow is the destination for
//! what a client sends first (TLS ClientHello, HTTP request, DNS query, QUIC)
//! and the source for an HTTP response; for banners both sides send (SSH) or
//! the server sends first (SMTP, FTP) it is the side with the lower port.
//! Then:
//!
//! - **cross**: the protocol is not among those the port is registered for,
//!   and the port is registered for something (SSH on 443 or 80, HTTP on 22,
//!   TLS on 80, HTTP on 5432): confidence 0.85;
//! - **not the standard protocol**: port 53 carrying something other than DNS,
//!   or a client sending TCP 443 neither TLS nor anything else identified:
//!   0.55;
//! - **non-standard port** (`report_nonstandard`): SSH, SMTP or FTP on a port
//!   no protocol is registered for: 0.45. TLS and HTTP on unregistered high
//!   ports are everyday traffic and are not reported.
//!
//! The host at fault is the inside endpoint (the client when both or neither
//! are inside).
//!
//! The service inventory remembers every (server, port, transport) with the
//! protocol seen and when it was first seen; a service first seen at least
//! `inventory_learn_s` ago is the organisation's own and no longer alerts.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::{FlowRef, Map};
use super::{Candidate, PointCtx, transport_name};
use crate::alert::{Detector, LearningState};
use crate::observe::Observation;
use crate::protocol::{App, Protocol, Role, Transport, registry};

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
/// breaks; `None` when it breaks none. The capture thread asks this before
/// sending an identification on, so only the few that can alert cross to the
/// analysis stage.
#[must_use]
pub fn rule_for(
    src: Endpoint,
    dst: Endpoint,
    proto: u8,
    p: &Protocol,
    report_nonstandard: bool,
) -> Option<Mismatch> {
    let (server, client, name) = sides(src, dst, p);
    let port = server.1;
    let reg = registered(port, proto);
    let (rule, confidence) = if name == "unknown" {
        // On 443 only what the client sends first counts: a server's
        // segments continue TLS records that can start with any byte.
        let standard_only = (port == 53) || (port == 443 && proto == 6 && dst.1 == 443);
        if !standard_only {
            return None;
        }
        ("not_standard_protocol", 0.55)
    } else if !reg.is_empty() && !reg.contains(&name) {
        ("cross_protocol", 0.85)
    } else if reg.is_empty() && report_nonstandard && matches!(name, "ssh" | "smtp" | "ftp") {
        ("nonstandard_port", 0.45)
    } else {
        return None;
    };
    Some(Mismatch { server, client, name, registered: reg, rule, confidence })
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

/// Looks at one identified flow direction; returns a finding when the
/// service mismatches and is not yet part of the learned inventory.
pub fn observe(
    o: &Observation,
    p: &Protocol,
    inventory: &mut Inventory,
    max_services: usize,
    ctx: &PointCtx<'_>,
    is_home: impl Fn(IpAddr) -> bool,
) -> Option<Candidate> {
    let s = &ctx.settings.protocol_mismatch;
    if !s.enabled {
        return None;
    }
    let Mismatch { server, client, name, registered: reg, rule, confidence } =
        rule_for((o.src, o.sport), (o.dst, o.dport), o.proto, p, s.report_nonstandard)?;
    let port = server.1;
    let key = (server.0, port, o.proto);
    let learn_ns = u64::try_from(s.inventory_learn_s).unwrap_or(0).saturating_mul(1_000_000_000);
    match inventory.get(&key) {
        Some(svc) if o.ts_ns.saturating_sub(svc.first_ns) >= learn_ns && svc.protocol == name => return None,
        Some(_) => {}
        None if inventory.len() < max_services => {
            inventory.insert(key, Service { protocol: name.to_owned(), first_ns: o.ts_ns });
        }
        None => {}
    }
    // The inside endpoint is at fault; when neither is inside (a tap on a
    // transit link, or home networks not configured), the client that chose
    // the port.
    let host = if is_home(client.0) || !is_home(server.0) { client.0 } else { server.0 };
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
        _ => format!("{name} on non-standard port {port}"),
    };
    cand.message = format!(
        "{}:{} → {}:{} {}: {what}",
        client.0,
        client.1,
        server.0,
        server.1,
        transport_name(o.proto).unwrap_or("ip")
    );
    Some(cand)
}
