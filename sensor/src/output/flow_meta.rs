//! What a flow's first payloads said, kept until the flow's record is written: the application
//! protocol, the TLS hello and certificate, the HTTP request and response.
//!
//! The analysis stage feeds every observation to [`FlowMetas::observe`] and asks
//! [`FlowMetas::for_record`] for a record's facts just before writing it; the ECS writer
//! ([`super::flow_json`]) puts them into `network.protocol`, `tls.*`, `http.*`, `url.*` and
//! `user_agent.original`, and what ECS has no field for into `nbad.tls` and `nbad.http`.
//!
//! Keyed by the flow's two endpoints and transport, whatever the direction. A final record
//! takes its flow's entry; an interim record copies it. Bounded: [`MAX_FLOWS`] entries; when
//! full, the older half goes (a flow whose record never came: its packets stopped being
//! captured, or its entry was noted after its record).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::flow::FlowRecord;
use crate::observe::{ObsKind, Observation};
use crate::protocol::http::HttpInfo;
use crate::protocol::tls::TlsMessage;
use crate::protocol::{App, Role, Text};

/// Flows with facts kept at most.
pub const MAX_FLOWS: usize = 1 << 18;

type Endpoint = (IpAddr, u16);
type Key = (Endpoint, Endpoint, u8);

fn key(a: Endpoint, b: Endpoint, proto: u8) -> Key {
    if a <= b { (a, b, proto) } else { (b, a, proto) }
}

/// What the TLS handshake showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsMeta {
    /// The client's SNI.
    pub server_name: Option<Text>,
    /// ALPN protocols the client offered.
    pub client_alpn: Vec<Text>,
    /// The client's JA4.
    pub ja4: Option<Text>,
    /// The highest version the client offered (supported_versions, else the legacy field).
    pub client_version: Option<u16>,
    /// The version the server chose.
    pub version: Option<u16>,
    /// The cipher suite the server chose.
    pub cipher: Option<u16>,
    /// The leaf certificate's subject, issuer, validity (s since the epoch) and self-signedness.
    pub certificate: Option<CertificateMeta>,
}

/// A leaf certificate's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateMeta {
    /// Subject (RFC 4514).
    pub subject: Text,
    /// Issuer (RFC 4514).
    pub issuer: Text,
    /// Start of validity, s since the epoch.
    pub not_before: i64,
    /// End of validity, s since the epoch.
    pub not_after: i64,
    /// Issued by itself.
    pub self_signed: bool,
}

/// What the first HTTP request and response showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpMeta {
    /// Request method.
    pub method: Option<Text>,
    /// Host header.
    pub host: Option<Text>,
    /// Request target (path and query).
    pub path: Option<Text>,
    /// Request target length.
    pub uri_len: Option<usize>,
    /// User-Agent.
    pub user_agent: Option<Text>,
    /// Whether a Referer was sent.
    pub referer: Option<bool>,
    /// Response status.
    pub status: Option<u16>,
    /// Response Content-Type.
    pub content_type: Option<Text>,
}

/// A flow's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowMeta {
    /// The application protocol (the client's side's, else the server's).
    pub protocol: Option<&'static str>,
    /// TLS facts.
    pub tls: Option<Box<TlsMeta>>,
    /// HTTP facts.
    pub http: Option<Box<HttpMeta>>,
    ts_ns: u64,
}

/// Every open flow's facts.
#[derive(Debug, Default)]
pub struct FlowMetas {
    map: HashMap<Key, FlowMeta>,
    /// Entries forgotten for room.
    pub evicted: u64,
}

impl FlowMetas {
    /// Notes what an observation says about its flow.
    pub fn observe(&mut self, o: &Observation) {
        let k = key((o.src, o.sport), (o.dst, o.dport), o.proto);
        match &o.kind {
            ObsKind::App { protocol, .. } if !protocol.is_unknown() => {
                let m = self.entry(k, o.ts_ns);
                if m.protocol.is_none() || protocol.role == Role::Client {
                    m.protocol = Some(protocol.name());
                }
                match &protocol.app {
                    App::Tls(info) => match &info.message {
                        TlsMessage::ClientHello(h) => client_hello(m, h),
                        TlsMessage::ServerHello(h) => {
                            let t = m.tls.get_or_insert_default();
                            t.version = Some(h.version);
                            t.cipher = Some(h.cipher_suite);
                        }
                        _ => {}
                    },
                    App::Quic { hello: Some(h), .. } => client_hello(m, h),
                    App::Http(info) => {
                        let h = m.http.get_or_insert_default();
                        match &**info {
                            HttpInfo::Request(r) => {
                                h.method = Some(r.method.clone());
                                h.host.clone_from(&r.host);
                                h.path.clone_from(&r.path);
                                h.uri_len = Some(r.uri_len);
                                h.user_agent.clone_from(&r.user_agent);
                                h.referer = Some(r.referer);
                            }
                            HttpInfo::Response(r) => {
                                h.status = Some(r.status);
                                h.content_type.clone_from(&r.content_type);
                            }
                        }
                    }
                    _ => {}
                }
            }
            ObsKind::Dns(_) => {
                self.entry(k, o.ts_ns).protocol.get_or_insert("dns");
            }
            ObsKind::TlsServer(flight) => {
                let m = self.entry(k, o.ts_ns);
                let t = m.tls.get_or_insert_default();
                if let Some(h) = &flight.hello {
                    t.version = Some(h.version);
                    t.cipher = Some(h.cipher_suite);
                }
                if let Some(c) = &flight.certificate {
                    t.certificate = Some(CertificateMeta {
                        subject: c.subject.clone(),
                        issuer: c.issuer.clone(),
                        not_before: c.not_before,
                        not_after: c.not_after,
                        self_signed: c.self_signed,
                    });
                }
            }
            _ => {}
        }
    }

    /// The facts of `record`'s flow: taken when the record is final, copied when interim.
    pub fn for_record(&mut self, record: &FlowRecord) -> Option<FlowMeta> {
        if self.map.is_empty() {
            return None;
        }
        let k = key(record.client_endpoint(), record.server_endpoint(), record.key.proto);
        if record.reason.is_interim() { self.map.get(&k).cloned() } else { self.map.remove(&k) }
    }

    /// Flows with facts kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no flow has facts kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn entry(&mut self, k: Key, ts_ns: u64) -> &mut FlowMeta {
        if self.map.len() >= MAX_FLOWS && !self.map.contains_key(&k) {
            let mut times: Vec<u64> = self.map.values().map(|m| m.ts_ns).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.map.retain(|_, m| m.ts_ns > cut);
            self.evicted += 1;
        }
        self.map.entry(k).or_insert_with(|| FlowMeta { ts_ns, ..FlowMeta::default() })
    }
}

fn client_hello(m: &mut FlowMeta, h: &crate::protocol::tls::ClientHello) {
    let t = m.tls.get_or_insert_default();
    t.server_name.clone_from(&h.sni);
    t.client_alpn.clone_from(&h.alpn);
    t.ja4.clone_from(&h.ja4);
    let grease = |v: &&u16| *v & 0x0f0f != 0x0a0a;
    t.client_version = h.supported_versions.iter().filter(grease).max().copied().or(Some(h.version));
}

/// A TLS version number as ECS writes it: `("tls", "1.3")`, `("ssl", "3.0")`.
#[must_use]
pub fn version_name(v: u16) -> Option<(&'static str, &'static str)> {
    Some(match v {
        0x0300 => ("ssl", "3.0"),
        0x0301 => ("tls", "1.0"),
        0x0302 => ("tls", "1.1"),
        0x0303 => ("tls", "1.2"),
        0x0304 => ("tls", "1.3"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{self, Transport};

    fn obs(src: Endpoint, dst: Endpoint, kind: ObsKind) -> Observation {
        Observation { ts_ns: 1, src: src.0, dst: dst.0, sport: src.1, dport: dst.1, proto: 6, kind }
    }

    fn app(payload: &[u8]) -> ObsKind {
        ObsKind::App {
            protocol: protocol::identify(Transport::Tcp, payload),
            body_entropy: None,
            executable: false,
            body_follows: false,
        }
    }

    #[test]
    fn both_directions_of_an_http_exchange_land_on_one_flow() {
        let c = (IpAddr::from([10, 0, 0, 1]), 40_000);
        let s = (IpAddr::from([192, 0, 2, 9]), 8080);
        let mut m = FlowMetas::default();
        m.observe(&obs(c, s, app(b"GET /a?b=1 HTTP/1.1\r\nHost: x.example\r\nUser-Agent: curl/8\r\n\r\n")));
        m.observe(&obs(s, c, app(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")));
        assert_eq!(m.len(), 1);
        let got = m.map.values().next().expect("present");
        assert_eq!(got.protocol, Some("http"));
        let h = got.http.as_deref().expect("present");
        assert_eq!(h.method.as_deref(), Some("GET"));
        assert_eq!(h.path.as_deref(), Some("/a?b=1"));
        assert_eq!(h.status, Some(200));
        assert_eq!(h.content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn versions_are_named_as_ecs_writes_them() {
        assert_eq!(version_name(0x0303), Some(("tls", "1.2")));
        assert_eq!(version_name(0x0300), Some(("ssl", "3.0")));
        assert_eq!(version_name(0x7f1c), None);
    }
}
