//! Privacy: what the outputs may say about the inside, and how long saved state lasts
//! (`[privacy]`, docs/PRIVACY.md).
//!
//! This module owns the rewriting of records on their way out, never the records the
//! detectors see: the analysis stage ([`crate::pipeline::analysis`]) hands every flow record
//! and every alert to one [`Privacy`] just before the outputs (the flow JSON lines, the IPFIX,
//! NetFlow and Kafka exporters, the `--alerts` file and the alert spool that every sink and
//! format reads), so every output gets the same rewrite and the baselines stay keyed by the
//! real addresses.
//!
//! - `cryptopan.rs`: the Crypto-PAn permutation.
//! - `pseudonym.rs`: pseudonyms of inside addresses, alert ids and Community IDs.
//! - `text.rs`: addresses and names inside free text.
//! - `alert.rs`: an alert rewritten.
//! - `tests/`: hand-made records and alerts; the self-test scenario through the pipeline.
//!
//! Invariant: with `[privacy]` at its defaults no [`Privacy`] is built and the outputs are
//! byte for byte what they were without this module.

mod alert;
pub mod cryptopan;
pub mod pseudonym;
pub mod text;

use std::borrow::Cow;

use crate::alert::Alert;
use crate::config::Config;
use crate::flow::FlowRecord;
use crate::flow::record::addr_of;
use crate::observe::Observation;
use crate::output::flow_meta::FlowMeta;
pub use alert::SENSOR_MADE;
pub use pseudonym::{PseudonymCounters, Pseudonyms};

/// The output rewrite of one sensor.
#[derive(Debug)]
pub struct Privacy {
    names: Option<Pseudonyms>,
    drop_payload: bool,
}

impl Privacy {
    /// The rewrite `config` asks for; `None` when `[privacy]` changes no output.
    #[must_use]
    pub fn from_config(config: &Config) -> Option<Self> {
        let p = &config.privacy;
        let names = p
            .pseudonymize_inside
            .as_ref()
            .map(|key| Pseudonyms::new(key.bytes(), &config.sensor.home_networks));
        (names.is_some() || p.drop_payload_fields)
            .then_some(Self { names, drop_payload: p.drop_payload_fields })
    }

    /// The real alert or incident id behind `shown` (an id as the outputs wrote it) among the
    /// verdicts' remembered alerts, when ids are pseudonymised: an analyst copies ids from
    /// the SIEM.
    #[must_use]
    pub fn real_id(&self, shown: &str, book: &crate::detect::verdict::Book) -> Option<String> {
        let names = self.names.as_ref()?;
        book.real_id(shown, |id| names.id(id))
    }

    /// What pseudonymisation did so far; `None` while it is off.
    #[must_use]
    pub fn counters(&self) -> Option<PseudonymCounters> {
        self.names.as_ref().map(|n| n.counters)
    }

    /// `records` as the outputs may see them: inside addresses pseudonymised (the key
    /// re-ordered so it stays canonical). Every record's Community ID is remembered for the
    /// alerts that name it.
    pub fn records<'a>(&mut self, records: &'a [FlowRecord]) -> Cow<'a, [FlowRecord]> {
        let Some(names) = self.names.as_mut() else { return Cow::Borrowed(records) };
        Cow::Owned(
            records
                .iter()
                .map(|r| {
                    names.note_flow(r.client_endpoint(), r.server_endpoint(), r.key.proto);
                    pseudonymize_record(names, r)
                })
                .collect(),
        )
    }

    /// Notes an observation's flow, whose Community ID an alert may name before the flow's
    /// record is written. The detectors orient an ICMP flow by the echo's direction, and its
    /// Community ID depends on that, so for ICMP (and other transports without ports) both
    /// orientations are noted.
    pub fn observe(&mut self, o: &Observation) {
        let Some(names) = self.names.as_mut() else { return };
        names.note_flow((o.src, o.sport), (o.dst, o.dport), o.proto);
        if !matches!(o.proto, 6 | 17 | 132) {
            names.note_flow((o.dst, o.dport), (o.src, o.sport), o.proto);
        }
    }

    /// A record's payload facts as the outputs may see them: without SNI, certificate,
    /// HTTP Host, path, User-Agent and Content-Type when payload fields are dropped (the
    /// application protocol, TLS versions and cipher, ALPN, JA4, the HTTP method and status
    /// and the URI's length stay); with pseudonyms for inside addresses written in the
    /// strings that stay (a Host header or SNI that is an address literal).
    pub fn meta(&mut self, meta: Option<FlowMeta>) -> Option<FlowMeta> {
        let mut meta = meta?;
        if self.drop_payload {
            if let Some(t) = meta.tls.as_mut() {
                t.server_name = None;
                t.certificate = None;
            }
            if let Some(h) = meta.http.as_mut() {
                h.host = None;
                h.path = None;
                h.user_agent = None;
                h.content_type = None;
            }
        }
        if let Some(names) = self.names.as_mut() {
            let mut f = |ip| names.addr(ip);
            let mut fix = |s: &mut Option<crate::protocol::Text>| {
                if let Some(Cow::Owned(new)) = s.as_deref().map(|t| text::rewrite_addrs(t, &mut f)) {
                    *s = Some(new.into());
                }
            };
            if let Some(t) = meta.tls.as_mut() {
                fix(&mut t.server_name);
                if let Some(c) = t.certificate.as_mut() {
                    let (mut subject, mut issuer) = (Some(c.subject.clone()), Some(c.issuer.clone()));
                    fix(&mut subject);
                    fix(&mut issuer);
                    (c.subject, c.issuer) = (subject.unwrap_or_default(), issuer.unwrap_or_default());
                }
            }
            if let Some(h) = meta.http.as_mut() {
                fix(&mut h.host);
                fix(&mut h.path);
            }
        }
        Some(meta)
    }

    /// `alerts` as the outputs may see them.
    pub fn alerts(&mut self, alerts: &[Alert]) -> Vec<Alert> {
        alerts.iter().map(|a| alert::rewrite(a, self.names.as_mut(), self.drop_payload)).collect()
    }
}

fn pseudonymize_record(names: &mut Pseudonyms, r: &FlowRecord) -> FlowRecord {
    let mut out = *r;
    let ip = |bytes| addr_of(&r.key, bytes);
    let lo = mapped(names.addr(ip(r.key.addr_lo)));
    let hi = mapped(names.addr(ip(r.key.addr_hi)));
    if (lo, r.key.port_lo) <= (hi, r.key.port_hi) {
        out.key.addr_lo = lo;
        out.key.addr_hi = hi;
    } else {
        out.key.addr_lo = hi;
        out.key.addr_hi = lo;
        out.key.port_lo = r.key.port_hi;
        out.key.port_hi = r.key.port_lo;
        out.client_is_lo = !r.client_is_lo;
    }
    out
}

/// An address in a key's 16 bytes (IPv4-mapped for IPv4).
fn mapped(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    }
}

#[cfg(test)]
mod tests;
