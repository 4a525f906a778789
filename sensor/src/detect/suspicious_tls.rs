//! `suspicious_tls`: a TLS client whose context, not its port alone, says it is not ordinary web
//! traffic — circumvention clients, Tor, implants with their own TLS stacks, tunnels.
//!
//! TLS on an unregistered port is not reported for being there (browsers reach CDNs on 8443 and
//! organisations run their own services anywhere). Every ClientHello (TCP, and QUIC where the
//! Initial could be read) is scored by context instead, and the evidence names each factor with
//! its value and weight:
//!
//! | factor | weight |
//! |---|---:|
//! | the port is not registered for TLS | 1.0 |
//! | the server is outside | 1.0 |
//! | the service (server, port) is new to the organisation's inventory (counted once the inventory has learned for `protocol_mismatch.inventory_learn_s`) | 0.5 |
//! | no SNI | 1.0 |
//! | an IP-literal SNI | 1.5 |
//! | a random-looking SNI (see [`super::name_score`]) that no DNS answer gave for this server | 1.5 (0.5 when DNS did) |
//! | a JA4 fingerprint rare in this network ([`super::ja4_census`]) | 1.0 |
//! | a self-signed certificate (TLS 1.2 and earlier show it) | 1.5 |
//! | a certificate issued less than 7 days before | 0.5 |
//! | a random-looking certificate subject or issuer name | 1.0 |
//!
//! A hello scoring `min_score` (3.5) or more alerts (rule `context`); its certificate, arriving
//! with the server's flight, is scored again and can escalate the alert. Ordinary traffic stays
//! well under: a browser to a CDN on 8443 scores 1 (outside), an organisation's own service on an
//! odd port 1.5 to 2.5 until the inventory has learned it.
//!
//! **Tor** (rule `tor`): TLS to a relay port (9001, 9030, 9050, 9051, 9150 or 443) with Tor's
//! SNI shape (`www.` + random label + `.com` or `.net`) that no DNS answer gave for the server:
//! Tor clients connect to relays by address, never by name.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::FlowRef;
use super::ja4_census::Prevalence;
use super::name_score::{is_ip_literal, looks_random};
use super::names::NameCache;
use super::{Candidate, PointCtx, transport_name};
use crate::alert::{Detector, LearningState};
use crate::protocol::tls::ClientHello;
use crate::protocol::{LeafCertificate, Transport, registry};

const DESCRIPTION: &str =
    "A TLS client whose context (port, peer, SNI, fingerprint, certificate) unlike ordinary web traffic.";

/// Relay and directory ports Tor uses.
pub const TOR_PORTS: [u16; 6] = [443, 9001, 9030, 9050, 9051, 9150];

/// `[detection.suspicious_tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// Score (sum of the factors' weights) from which a hello alerts.
    pub min_score: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { enabled: true, min_score: 3.5 }
    }
}

/// One factor: its name, weight and the value that made it count.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// Name in the evidence.
    pub name: &'static str,
    /// Weight added to the score.
    pub weight: f64,
    /// What was seen.
    pub value: serde_json::Value,
}

/// What is known of one TLS connection when it is judged.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    /// Client and server.
    pub flow: FlowRef,
    /// When, ns.
    pub ts_ns: u64,
    /// TCP or QUIC.
    pub quic: bool,
    /// The ClientHello.
    pub hello: &'a ClientHello,
    /// How common its JA4 is, when it had one.
    pub ja4: Option<Prevalence>,
    /// The service (server, port) is new to the inventory.
    pub new_service: bool,
    /// The server's certificate, when its flight showed one.
    pub certificate: Option<&'a LeafCertificate>,
}

/// The factors of one connection and their sum.
#[must_use]
pub fn factors(seen: &Seen<'_>, server_outside: bool, names: &NameCache) -> Vec<Factor> {
    let mut f = Vec::new();
    let mut add = |name, weight, value| f.push(Factor { name, weight, value });
    let (server, port) = seen.flow.b;
    let transport = if seen.quic { Transport::Udp } else { Transport::Tcp };
    let reg = registry::global().protocols(port, transport);
    if !reg.contains(&"tls") && !reg.contains(&"quic") {
        add("unregistered_port", 1.0, json!(port));
    }
    if server_outside {
        add("outside_server", 1.0, json!(server));
    }
    if seen.new_service {
        add("new_service", 0.5, json!(format!("{server}:{port}")));
    }
    match seen.hello.sni.as_deref() {
        None => add("no_sni", 1.0, json!(null)),
        Some(sni) if is_ip_literal(sni) => add("ip_literal_sni", 1.5, json!(sni)),
        Some(sni) if random_sni(sni) => {
            let resolved = resolved_to(names, server, sni);
            add(
                "random_sni",
                if resolved { 0.5 } else { 1.5 },
                json!({ "sni": sni, "resolved_by_dns": resolved }),
            );
        }
        Some(_) => {}
    }
    if let Some(p) = seen.ja4
        && p.rare
    {
        add(
            "rare_ja4",
            1.0,
            json!({ "ja4": seen.hello.ja4.as_deref(), "hosts": p.hosts, "seen_before": p.hellos }),
        );
    }
    if let Some(c) = seen.certificate {
        if c.self_signed {
            add(
                "self_signed_certificate",
                1.5,
                json!({ "subject": &*c.subject, "verified": c.signature_verified }),
            );
        }
        let now_s = i64::try_from(seen.ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
        if c.not_before <= now_s && now_s - c.not_before < 7 * 86_400 {
            add("new_certificate", 0.5, json!({ "not_before": c.not_before }));
        }
        if random_dn(&c.subject) || random_dn(&c.issuer) {
            add("random_certificate_names", 1.0, json!({ "subject": &*c.subject, "issuer": &*c.issuer }));
        }
    }
    f
}

/// Whether the SNI's registered label (the one left of the public suffix) looks random.
fn random_sni(sni: &str) -> bool {
    let (domain, _) = super::dns_tunnel::split_name(sni);
    let label = domain.split('.').next().unwrap_or("");
    looks_random(label, 8)
}

/// Whether a DNS answer seen earlier gave `server` for a name under the SNI's registered domain.
fn resolved_to(names: &NameCache, server: IpAddr, sni: &str) -> bool {
    let (domain, _) = super::dns_tunnel::split_name(sni);
    names.get(server).is_some_and(|n| *n.domain == *domain)
}

/// Whether a certificate name's first CN (or, without one, the whole name) looks random.
fn random_dn(dn: &str) -> bool {
    let cn = dn.split(',').find_map(|part| part.trim().strip_prefix("CN=")).unwrap_or(dn);
    cn.split(['.', ' ']).any(|label| looks_random(label, 8))
}

/// Tor's SNI shape: `www.` + a random label + `.com` or `.net`.
fn tor_sni(sni: &str) -> bool {
    let Some(rest) = sni.strip_prefix("www.") else { return false };
    let Some(label) = rest.strip_suffix(".com").or_else(|| rest.strip_suffix(".net")) else { return false };
    !label.contains('.') && looks_random(label, 8)
}

/// Judges one connection: a finding when its score reaches `min_score`, or it looks like Tor.
#[must_use]
pub fn judge(
    seen: &Seen<'_>,
    host: IpAddr,
    server_outside: bool,
    names: &NameCache,
    ctx: &PointCtx<'_>,
) -> Option<Candidate> {
    let s = &ctx.settings.suspicious_tls;
    if !s.enabled {
        return None;
    }
    let (server, port) = seen.flow.b;
    let sni = seen.hello.sni.as_deref();
    let tor = TOR_PORTS.contains(&port) && sni.is_some_and(|n| tor_sni(n) && !resolved_to(names, server, n));
    let factors = factors(seen, server_outside, names);
    let score: f64 = factors.iter().map(|f| f.weight).sum();
    if !tor && score < s.min_score {
        return None;
    }
    let rule = if tor { "tor" } else { "context" };
    let threshold = if tor { score } else { s.min_score };
    let mut cand =
        Candidate::point(Detector::SuspiciousTls, DESCRIPTION, ctx, host, "context_score", score, threshold);
    cand.peer = Some(if host == seen.flow.a.0 { server } else { seen.flow.a.0 });
    cand.port = Some(port);
    cand.transport = transport_name(if seen.quic { 17 } else { 6 });
    cand.flow = Some(seen.flow);
    cand.strength = ((score - s.min_score) / 4.0).clamp(0.2, 1.0);
    cand.confidence = if tor { 0.85 } else { (0.4 + 0.08 * score).min(0.85) };
    cand.evidence.learning_state = LearningState::NotApplicable;
    cand.evidence.community_ids.push(seen.flow.community_id());
    let listed: serde_json::Map<String, serde_json::Value> = factors
        .iter()
        .map(|f| (f.name.to_owned(), json!({ "weight": f.weight, "value": f.value })))
        .collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(rule));
    d.insert("factors".into(), serde_json::Value::Object(listed));
    d.insert("sni".into(), json!(sni));
    d.insert("ja4".into(), json!(seen.hello.ja4.as_deref()));
    d.insert("alpn".into(), json!(seen.hello.alpn.iter().map(|a| &**a).collect::<Vec<_>>()));
    let names_of: Vec<&str> = factors.iter().map(|f| f.name).collect();
    cand.message = if tor {
        format!(
            "{} → {server}:{port}: TLS with Tor's SNI shape ({}) and no DNS resolution of the relay (Tor)",
            seen.flow.a.0,
            sni.unwrap_or("-")
        )
    } else {
        format!(
            "{} → {server}:{port}: TLS scoring {score:.1} (threshold {:.1}): {}",
            seen.flow.a.0,
            s.min_score,
            names_of.join(", ")
        )
    };
    Some(cand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tor_sni_shape_is_www_random_com() {
        assert!(tor_sni("www.4qfbe4upxp2gxkz.com"));
        assert!(tor_sni("www.vhbw5qd3dpgwlnt.net"));
        assert!(!tor_sni("www.google.com"));
        assert!(!tor_sni("www.a.b.com"));
    }

    #[test]
    fn certificate_names_with_random_common_names_are_flagged() {
        assert!(random_dn("CN=www.zq4xpvbx7mkd.net"));
        assert!(!random_dn("CN=www.example.org, O=Example Inc., C=US"));
    }
}
