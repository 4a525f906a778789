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
///
/// The fixed part of every line (times, endpoints, counters, Community ID, TCP state) is
/// written by [`encode`] straight into the buffer; only the optional application objects go
/// through serde ([`FlowEncoder`]). The result is byte for byte what serialising the schema's
/// serde structs writes (`reference`, which the tests hold the encoder to): this is the
/// analysis thread's hottest path, and serde's generic writer with a calendar computation per
/// timestamp cost a third of its time (BENCHMARKS.md).
pub struct FlowJsonWriter {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    enc: FlowEncoder,
}

impl std::fmt::Debug for FlowJsonWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowJsonWriter").field("observer", &self.enc.observer).finish_non_exhaustive()
    }
}

impl FlowJsonWriter {
    /// A writer to `out`, naming the sensor `observer` in every record.
    pub fn new(out: Box<dyn Write + Send>, observer: &str) -> Self {
        Self { out, buf: Vec::with_capacity(WRITE_CHUNK + 4096), enc: FlowEncoder::new(observer) }
    }

    /// Writes one record as a line, with what its first payloads said, if known.
    pub fn write(&mut self, record: &FlowRecord, meta: Option<&FlowMeta>) -> io::Result<()> {
        self.enc.encode(&mut self.buf, record, meta)?;
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

/// Encodes records as ECS documents for one sensor, keeping what records share: the observer's
/// name, escaped once, and the calendar text of recent seconds. The JSON lines writer and the
/// Kafka output each hold one.
#[derive(Debug)]
pub(crate) struct FlowEncoder {
    /// `"name"`: the observer's name as a JSON string.
    observer: String,
    clock: Clock,
}

impl FlowEncoder {
    /// An encoder naming the sensor `observer` in every record.
    pub(crate) fn new(observer: &str) -> Self {
        Self { observer: json_string(observer), clock: Clock::default() }
    }

    /// Appends one record's document (no newline) to `out`; returns its Community ID.
    fn encode(
        &mut self,
        out: &mut Vec<u8>,
        r: &FlowRecord,
        meta: Option<&FlowMeta>,
    ) -> serde_json::Result<String> {
        encode(out, r, meta, &self.observer, &mut self.clock)
    }

    /// One record's ECS document (no newline) and its Community ID, for outputs that frame
    /// records themselves (the Kafka flow output: one message per record, keyed by Community
    /// ID).
    pub(crate) fn document(&mut self, r: &FlowRecord) -> serde_json::Result<(Vec<u8>, String)> {
        let mut json = Vec::with_capacity(512);
        let id = self.encode(&mut json, r, None)?;
        Ok((json, id))
    }
}

/// `s` as a JSON string literal, quotes included.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// RFC 3339 times with microseconds, as [`humantime::format_rfc3339_micros`] writes them,
/// with the calendar part of the last few seconds seen kept: a record's three times and
/// consecutive records mostly fall in the same second.
#[derive(Debug, Default)]
struct Clock {
    /// Per slot (second modulo the slot count): the second and its `YYYY-MM-DDTHH:MM:SS`.
    slots: [(u64, Vec<u8>); 4],
}

impl Clock {
    fn write(&mut self, out: &mut Vec<u8>, ns: u64) {
        let sec = ns / 1_000_000_000;
        let micros = (ns % 1_000_000_000) / 1_000;
        let slot = &mut self.slots[(sec % 4) as usize];
        if slot.0 != sec || slot.1.is_empty() {
            let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(sec));
            slot.0 = sec;
            slot.1.clear();
            // `…:SSZ`: everything before the zone.
            let _ = write!(slot.1, "{whole}");
            slot.1.pop();
        }
        out.extend_from_slice(&slot.1);
        out.push(b'.');
        // Six digits, zero-padded.
        let mut digits = [b'0'; 6];
        let mut m = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (m % 10) as u8;
            m /= 10;
        }
        out.extend_from_slice(&digits);
        out.push(b'Z');
    }
}

/// Appends one record's document (no newline) to `out`: the bytes serde writes for the
/// reference structs in the tests, with `observer` given as a JSON string literal. Returns the
/// record's Community ID.
fn encode(
    out: &mut Vec<u8>,
    r: &FlowRecord,
    meta: Option<&FlowMeta>,
    observer: &str,
    clock: &mut Clock,
) -> serde_json::Result<String> {
    let mut num = itoa::Buffer::new();
    let interim = r.reason.is_interim();
    let proto = r.key.proto;
    let ports = has_ports(proto);
    let (cip, cport) = r.client_endpoint();
    let (sip, sport) = r.server_endpoint();

    out.extend_from_slice(b"{\"@timestamp\":\"");
    clock.write(out, r.end_ns);
    out.extend_from_slice(
        b"\",\"event\":{\"kind\":\"event\",\"category\":[\"network\"],\"type\":[\"connection\",\"",
    );
    out.extend_from_slice(if interim { b"info" } else { b"end" });
    out.extend_from_slice(b"\"],\"action\":\"");
    out.extend_from_slice(if interim { b"flow_interim" } else { b"flow_end" });
    out.extend_from_slice(b"\",\"reason\":");
    serde_json::to_writer(&mut *out, r.reason.name())?;
    out.extend_from_slice(b",\"start\":\"");
    clock.write(out, r.start_ns);
    out.extend_from_slice(b"\",\"end\":\"");
    clock.write(out, r.end_ns);
    out.extend_from_slice(b"\",\"duration\":");
    out.extend_from_slice(num.format(r.end_ns - r.start_ns).as_bytes());
    out.extend_from_slice(b"},\"source\":");
    endpoint(out, cip, ports.then_some(cport), r.client.bytes, r.client.packets);
    out.extend_from_slice(b",\"destination\":");
    endpoint(out, sip, ports.then_some(sport), r.server.bytes, r.server.packets);

    out.extend_from_slice(b",\"network\":{");
    if let Some(t) = transport_name(proto) {
        out.extend_from_slice(b"\"transport\":\"");
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"iana_number\":\"");
    out.extend_from_slice(num.format(proto).as_bytes());
    out.extend_from_slice(if cip.is_ipv4() { b"\",\"type\":\"ipv4\"" } else { b"\",\"type\":\"ipv6\"" });
    if r.key.vlan_outer != 0 {
        out.extend_from_slice(b",\"vlan\":{\"id\":\"");
        out.extend_from_slice(num.format(r.key.vlan_outer).as_bytes());
        out.extend_from_slice(b"\"}");
    }
    if r.key.vlan_inner != 0 {
        out.extend_from_slice(b",\"inner\":{\"vlan\":{\"id\":\"");
        out.extend_from_slice(num.format(r.key.vlan_inner).as_bytes());
        out.extend_from_slice(b"\"}}");
    }
    out.extend_from_slice(b",\"bytes\":");
    out.extend_from_slice(num.format(r.bytes()).as_bytes());
    out.extend_from_slice(b",\"packets\":");
    out.extend_from_slice(num.format(r.packets()).as_bytes());
    let community_id = community_id_v1(0, cip, cport, sip, sport, proto);
    out.extend_from_slice(b",\"community_id\":\"");
    out.extend_from_slice(community_id.as_bytes());
    out.push(b'"');
    if let Some(p) = meta.and_then(|m| m.protocol) {
        out.extend_from_slice(b",\"protocol\":");
        serde_json::to_writer(&mut *out, p)?;
    }
    out.push(b'}');

    let AppFields { tls, http, url, user_agent, nbad_tls, nbad_http } = app_fields(meta);
    object(out, b",\"tls\":", tls.as_ref())?;
    object(out, b",\"http\":", http.as_ref())?;
    object(out, b",\"url\":", url.as_ref())?;
    object(out, b",\"user_agent\":", user_agent.as_ref())?;
    out.extend_from_slice(b",\"observer\":{\"name\":");
    out.extend_from_slice(observer.as_bytes());
    out.extend_from_slice(b"},\"nbad\":{");
    let mut first = true;
    if proto == 6 {
        out.extend_from_slice(b"\"tcp\":{\"state\":\"");
        out.extend_from_slice(tcp_state_name(r.tcp_state).as_bytes());
        out.extend_from_slice(if r.tcp_state & tcp_state::ESTABLISHED != 0 {
            b"\",\"handshake\":true,\"source_flags\":"
        } else {
            b"\",\"handshake\":false,\"source_flags\":"
        });
        flags(out, r.client.tcp_flags);
        out.extend_from_slice(b",\"destination_flags\":");
        flags(out, r.server.tcp_flags);
        out.push(b'}');
        first = false;
    }
    if let Some(t) = &nbad_tls {
        out.extend_from_slice(if first { b"\"tls\":" } else { b",\"tls\":" });
        serde_json::to_writer(&mut *out, t)?;
        first = false;
    }
    if let Some(h) = &nbad_http {
        out.extend_from_slice(if first { b"\"http\":" } else { b",\"http\":" });
        serde_json::to_writer(&mut *out, h)?;
    }
    out.extend_from_slice(b"}}");
    Ok(community_id)
}

/// `{"ip":…,"port":…,"bytes":…,"packets":…}`.
fn endpoint(out: &mut Vec<u8>, ip: IpAddr, port: Option<u16>, bytes: u64, packets: u64) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"ip\":\"");
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(num.format(octet).as_bytes());
            }
        }
        // An address's text has nothing JSON escapes; writing to a vector cannot fail.
        IpAddr::V6(v6) => drop(write!(out, "{v6}")),
    }
    out.push(b'"');
    if let Some(p) = port {
        out.extend_from_slice(b",\"port\":");
        out.extend_from_slice(num.format(p).as_bytes());
    }
    out.extend_from_slice(b",\"bytes\":");
    out.extend_from_slice(num.format(bytes).as_bytes());
    out.extend_from_slice(b",\"packets\":");
    out.extend_from_slice(num.format(packets).as_bytes());
    out.push(b'}');
}

/// A TCP flags byte as an array of names.
fn flags(out: &mut Vec<u8>, bits: u8) {
    out.push(b'[');
    let mut first = true;
    for (bit, name) in FLAG_NAMES.iter().enumerate() {
        if bits & (1 << bit) != 0 {
            if !first {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
            first = false;
        }
    }
    out.push(b']');
}

/// `prefix` and `value` through serde, when there is one.
fn object<T: Serialize>(out: &mut Vec<u8>, prefix: &[u8], value: Option<&T>) -> serde_json::Result<()> {
    if let Some(v) = value {
        out.extend_from_slice(prefix);
        serde_json::to_writer(&mut *out, v)?;
    }
    Ok(())
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

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests;
