//! Flow records as ECS JSON lines.
//!
//! Field names follow the Elastic Common Schema: the client is `source`, the
//! server `destination`; `network.community_id` is Community ID v1 with seed
//! 0; sensor-specific facts (TCP state and flags per direction) live under
//! `nbad.*`. Times are RFC 3339 UTC with microseconds; `event.duration` is in
//! nanoseconds as ECS defines it.
//!
//! Where the flow's first payloads were identified ([`super::flow_meta`]):
//! `network.protocol`; for TLS `tls.version`, `tls.version_protocol`, `tls.cipher`,
//! `tls.client.server_name`, `tls.server.subject`, `tls.server.issuer`,
//! `tls.server.not_before`, `tls.server.not_after`, and `nbad.tls.ja4`,
//! `nbad.tls.client_alpn`, `nbad.tls.client_version`, `nbad.tls.self_signed`; for HTTP
//! `http.request.method`, `http.response.status_code`, `http.response.mime_type`,
//! `url.domain`, `url.port`, `url.path`, `url.query`, `url.original`,
//! `user_agent.original`, and `nbad.http.uri_length`, `nbad.http.referer_present`.

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::flow_meta::{FlowMeta, version_name};
use crate::flow::community_id::community_id_v1;
use crate::flow::record::{FlowRecord, tcp_state};

/// Bytes of encoded lines collected before one write to the output.
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes flow records as JSON lines. Lines are encoded into one reusable
/// buffer and written in large chunks.
pub struct FlowJsonWriter {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    observer: String,
}

impl std::fmt::Debug for FlowJsonWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowJsonWriter").field("observer", &self.observer).finish_non_exhaustive()
    }
}

impl FlowJsonWriter {
    /// A writer to `out`, naming the sensor `observer` in every record.
    pub fn new(out: Box<dyn Write + Send>, observer: &str) -> Self {
        Self { out, buf: Vec::with_capacity(WRITE_CHUNK + 4096), observer: observer.to_owned() }
    }

    /// Writes one record as a line, with what its first payloads said, if known.
    pub fn write(&mut self, record: &FlowRecord, meta: Option<&FlowMeta>) -> io::Result<()> {
        serde_json::to_writer(&mut self.buf, &ecs(record, meta, &self.observer))?;
        self.buf.push(b'\n');
        if self.buf.len() >= WRITE_CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out buffered lines.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

/// One record's ECS document (no newline) and its Community ID, for outputs that frame
/// records themselves (the Kafka flow output: one message per record, keyed by Community ID).
pub(crate) fn ecs_document(record: &FlowRecord, observer: &str) -> serde_json::Result<(Vec<u8>, String)> {
    let doc = ecs(record, None, observer);
    let json = serde_json::to_vec(&doc)?;
    Ok((json, doc.network.community_id))
}

/// A timestamp in ns since the epoch, serialised as RFC 3339.
#[derive(Debug, Clone, Copy)]
struct Ts(u64);

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = UNIX_EPOCH + Duration::from_nanos(self.0);
        s.collect_str(&humantime::format_rfc3339_micros(t))
    }
}

#[derive(Serialize)]
struct Ecs<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Ts,
    event: Event,
    source: Endpoint,
    destination: Endpoint,
    network: Network,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<Http<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Url<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<UserAgent<'a>>,
    observer: Observer<'a>,
    nbad: Nbad<'a>,
}

#[derive(Serialize)]
struct Tls<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cipher: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<TlsClient<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<TlsServer<'a>>,
}

#[derive(Serialize)]
struct TlsClient<'a> {
    server_name: &'a str,
}

#[derive(Serialize)]
struct TlsServer<'a> {
    subject: &'a str,
    issuer: &'a str,
    not_before: Ts,
    not_after: Ts,
}

#[derive(Serialize)]
struct Http<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<HttpRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<HttpResponse<'a>>,
}

#[derive(Serialize)]
struct HttpRequest<'a> {
    method: &'a str,
}

#[derive(Serialize)]
struct HttpResponse<'a> {
    status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    mime_type: Option<&'a str>,
}

#[derive(Serialize)]
struct Url<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<&'a str>,
}

#[derive(Serialize)]
struct UserAgent<'a> {
    original: &'a str,
}

#[derive(Serialize)]
struct Event {
    kind: &'static str,
    category: [&'static str; 1],
    #[serde(rename = "type")]
    kind_type: [&'static str; 2],
    action: &'static str,
    reason: &'static str,
    start: Ts,
    end: Ts,
    duration: u64,
}

#[derive(Serialize)]
struct Endpoint {
    ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    bytes: u64,
    packets: u64,
}

#[derive(Serialize)]
struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    iana_number: NumStr,
    #[serde(rename = "type")]
    net_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inner: Option<InnerVlan>,
    bytes: u64,
    packets: u64,
    community_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
}

#[derive(Serialize)]
struct Vlan {
    id: NumStr,
}

/// A number written as a JSON string (ECS keywords such as `network.iana_number`).
#[derive(Debug, Clone, Copy)]
struct NumStr(u16);

impl Serialize for NumStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(itoa::Buffer::new().format(self.0))
    }
}

/// TCP flags written as an array of names, without allocating.
#[derive(Debug, Clone, Copy)]
struct Flags(u8);

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.0.count_ones() as usize))?;
        for (bit, name) in FLAG_NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                seq.serialize_element(name)?;
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct InnerVlan {
    vlan: Vlan,
}

#[derive(Serialize)]
struct Observer<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Nbad<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<Tcp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<NbadTls<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<NbadHttp>,
}

#[derive(Serialize)]
struct NbadTls<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ja4: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    client_alpn: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_signed: Option<bool>,
}

#[derive(Serialize)]
struct NbadHttp {
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referer_present: Option<bool>,
}

#[derive(Serialize)]
struct Tcp {
    state: &'static str,
    handshake: bool,
    source_flags: Flags,
    destination_flags: Flags,
}

fn transport_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        132 => "sctp",
        136 => "udplite",
        _ => return None,
    })
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132 | 136)
}

const FLAG_NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

fn tcp_state_name(state: u8) -> &'static str {
    if state & tcp_state::RST != 0 {
        "reset"
    } else if state & tcp_state::FIN_CLIENT != 0 && state & tcp_state::FIN_SERVER != 0 {
        "closed"
    } else if state & (tcp_state::FIN_CLIENT | tcp_state::FIN_SERVER) != 0 {
        "closing"
    } else if state & tcp_state::ESTABLISHED != 0 {
        "established"
    } else if state & tcp_state::SYN_ACK != 0 {
        "syn_received"
    } else if state & tcp_state::SYN != 0 {
        "syn_sent"
    } else {
        "midstream"
    }
}

/// The ECS `tls`, `http`, `url`, `user_agent` objects and `nbad.tls`, `nbad.http` of a flow.
#[derive(Default)]
struct AppFields<'a> {
    tls: Option<Tls<'a>>,
    http: Option<Http<'a>>,
    url: Option<Url<'a>>,
    user_agent: Option<UserAgent<'a>>,
    nbad_tls: Option<NbadTls<'a>>,
    nbad_http: Option<NbadHttp>,
}

fn app_fields(meta: Option<&FlowMeta>) -> AppFields<'_> {
    let Some(meta) = meta else { return AppFields::default() };
    let (tls, nbad_tls) = meta.tls.as_deref().map_or((None, None), |t| {
        let version = t.version.and_then(version_name);
        let cipher = t.cipher.and_then(|c| tls_parser::TlsCipherSuite::from_id(c).map(|c| c.name));
        let server = t.certificate.as_ref().map(|c| TlsServer {
            subject: &c.subject,
            issuer: &c.issuer,
            not_before: Ts(secs_to_ns(c.not_before)),
            not_after: Ts(secs_to_ns(c.not_after)),
        });
        let tls = Tls {
            version: version.map(|v| v.1),
            version_protocol: version.map(|v| v.0),
            cipher,
            client: t.server_name.as_deref().map(|server_name| TlsClient { server_name }),
            server,
        };
        let nbad = NbadTls {
            ja4: t.ja4.as_deref(),
            client_alpn: t.client_alpn.iter().map(|a| &**a).collect(),
            client_version: t.client_version.and_then(version_name).map(|v| v.1),
            self_signed: t.certificate.as_ref().map(|c| c.self_signed),
        };
        (Some(tls), Some(nbad))
    });
    let Some(h) = meta.http.as_deref() else { return AppFields { tls, nbad_tls, ..AppFields::default() } };
    let http = Http {
        request: h.method.as_deref().map(|method| HttpRequest { method }),
        response: h
            .status
            .map(|status_code| HttpResponse { status_code, mime_type: h.content_type.as_deref() }),
    };
    let (domain, port) = h.host.as_deref().map_or((None, None), split_host);
    let (path, query) = h.path.as_deref().map_or((None, None), |p| match p.split_once('?') {
        Some((path, query)) => (Some(path), Some(query)),
        None => (Some(p), None),
    });
    let url = (domain.is_some() || path.is_some()).then_some(Url {
        domain,
        port,
        path,
        query,
        original: h.path.as_deref(),
    });
    let ua = h.user_agent.as_deref().map(|original| UserAgent { original });
    let nbad_http = NbadHttp { uri_length: h.uri_len, referer_present: h.referer };
    AppFields { tls, http: Some(http), url, user_agent: ua, nbad_tls, nbad_http: Some(nbad_http) }
}

/// A Host header's name and port: `example.org:8080` → (`example.org`, 8080), `[2001:db8::1]`
/// → (`2001:db8::1`, none).
fn split_host(h: &str) -> (Option<&str>, Option<u16>) {
    if let Some(rest) = h.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (Some(addr), after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match h.split_once(':') {
        Some((name, port)) if !port.contains(':') => (Some(name), port.parse().ok()),
        _ => (Some(h), None),
    }
}

fn secs_to_ns(s: i64) -> u64 {
    u64::try_from(s).unwrap_or(0).saturating_mul(1_000_000_000)
}

fn ecs<'a>(r: &FlowRecord, meta: Option<&'a FlowMeta>, observer: &'a str) -> Ecs<'a> {
    let AppFields { tls, http, url, user_agent, nbad_tls, nbad_http } = app_fields(meta);
    let proto = r.key.proto;
    let ports = has_ports(proto);
    let (cip, cport) = r.client_endpoint();
    let (sip, sport) = r.server_endpoint();
    let vlan = |id: u16| (id != 0).then_some(Vlan { id: NumStr(id) });
    Ecs {
        timestamp: Ts(r.end_ns),
        event: Event {
            kind: "event",
            category: ["network"],
            kind_type: ["connection", if r.reason.is_interim() { "info" } else { "end" }],
            action: if r.reason.is_interim() { "flow_interim" } else { "flow_end" },
            reason: r.reason.name(),
            start: Ts(r.start_ns),
            end: Ts(r.end_ns),
            duration: r.end_ns - r.start_ns,
        },
        source: Endpoint {
            ip: cip,
            port: ports.then_some(cport),
            bytes: r.client.bytes,
            packets: r.client.packets,
        },
        destination: Endpoint {
            ip: sip,
            port: ports.then_some(sport),
            bytes: r.server.bytes,
            packets: r.server.packets,
        },
        network: Network {
            transport: transport_name(proto),
            iana_number: NumStr(u16::from(proto)),
            net_type: if cip.is_ipv4() { "ipv4" } else { "ipv6" },
            vlan: vlan(r.key.vlan_outer),
            inner: vlan(r.key.vlan_inner).map(|vlan| InnerVlan { vlan }),
            bytes: r.bytes(),
            packets: r.packets(),
            community_id: community_id_v1(0, cip, cport, sip, sport, proto),
            protocol: meta.and_then(|m| m.protocol),
        },
        tls,
        http,
        url,
        user_agent,
        observer: Observer { name: observer },
        nbad: Nbad {
            tcp: (proto == 6).then(|| Tcp {
                state: tcp_state_name(r.tcp_state),
                handshake: r.tcp_state & tcp_state::ESTABLISHED != 0,
                source_flags: Flags(r.client.tcp_flags),
                destination_flags: Flags(r.server.tcp_flags),
            }),
            tls: nbad_tls,
            http: nbad_http,
        },
    }
}
