//! Protocol identification from the first payload bytes of one flow direction.
//!
//! [`identify`] looks at the first TCP or UDP payload a direction carried and
//! names the application protocol from its bytes alone, never from the port:
//! TLS on port 80 is TLS, SSH on 443 is SSH, HTTP on 5060 is HTTP. Each family
//! lives in its own file and answers `Some` only when the bytes fit it well:
//!
//! | file | protocols | parsed with |
//! |---|---|---|
//! | [`tls`] | TLS records; ClientHello with its SNI | tls-parser, over a hand-read record and handshake header |
//! | [`http`] | HTTP/1.x requests (method, Host) and responses (status); the HTTP/2 preface | httparse |
//! | [`dns`] | DNS over UDP and over TCP (length-prefixed): header and first question | hickory-proto |
//! | [`banner`] | SSH identification line; SMTP and FTP greetings and first client commands | by hand: a prefix and a line |
//! | [`quic`] | QUIC long header (v1, v2, IETF drafts): the version | by hand: five bytes |
//!
//! Invariants: identification never panics on any bytes; it reads at most
//! [`INSPECT_LIMIT`] bytes and every parser is linear in what it reads, so the
//! work per call is bounded; a payload cut short (a sampler keeps the first 256
//! bytes, a snaplen cuts the frame) is identified from what is there. Strings in
//! the result hold no control characters, so they can go into logs and alerts
//! as they are: SNI, Host and banner are at most 255 bytes; a query name is at
//! most 255 bytes on the wire, longer only by its escapes (see [`dns`]).
//!
//! Cost: the result owns its strings and tls-parser collects the cipher list,
//! so a call allocates a little. It is meant for the first payload of each flow
//! direction, not for every packet.
//!
//! [`l4_payload`] finds that payload in a captured frame.

pub mod banner;
pub mod dns;
pub mod http;
pub mod quic;
pub mod tls;

#[cfg(test)]
mod tests;

use etherparse::{LaxSlicedPacket, TransportSlice};

use crate::capture::LinkType;
use crate::decode::link::{self, L3, Vlans};

/// Bytes of a payload that identification reads at most; the rest is ignored,
/// as if the payload had been cut there.
pub const INSPECT_LIMIT: usize = 4096;

/// Longest string identification puts into a [`Protocol`] (a DNS name's limit).
pub const MAX_TEXT: usize = 255;

/// The transport that carried a payload: it decides how DNS is framed and
/// whether QUIC is possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP: a byte stream; DNS carries a two-byte length prefix.
    Tcp,
    /// UDP: one datagram.
    Udp,
}

/// The application protocol found in a direction's first payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// A TLS record.
    Tls {
        /// The ClientHello's server name (`host_name` type), when the SNI
        /// extension lies whole within the bytes inspected.
        sni: Option<String>,
        /// Whether the record starts a ClientHello (the client's direction);
        /// false for a ServerHello or any other record.
        client_hello: bool,
    },
    /// An SSH identification line (`SSH-2.0-...` or `SSH-1.99-...`).
    Ssh {
        /// The line without its CR LF, control characters replaced by `?`.
        banner: String,
    },
    /// An HTTP/1.x request (or the HTTP/2 prior-knowledge preface, method `PRI`).
    HttpRequest {
        /// The request method as sent (`GET`, `POST`, `M-SEARCH`, ...).
        method: String,
        /// The Host header's value (with its port, if any), when it lies within
        /// the bytes inspected and is printable ASCII.
        host: Option<String>,
    },
    /// An HTTP/1.x response.
    HttpResponse {
        /// The status code (100–599).
        status: u16,
    },
    /// A DNS message.
    Dns {
        /// True for a query, false for a response.
        query: bool,
        /// The first question's name in presentation form, without the final dot
        /// (the root is `.`); `None` when the bytes end inside the question.
        qname: Option<String>,
        /// The first question's type (1 = A, 28 = AAAA, 16 = TXT, ...); `None`
        /// when the bytes end inside the question.
        qtype: Option<u16>,
    },
    /// An SMTP server greeting or client `EHLO`/`HELO`.
    Smtp,
    /// An FTP server greeting or client `USER`/`AUTH TLS`.
    Ftp,
    /// A QUIC long-header packet.
    Quic {
        /// The version field (1, 0x6b33_43cf for v2, 0xff00_00xx for drafts).
        version: u32,
    },
    /// None of the above.
    Unknown,
}

impl Protocol {
    /// The protocol's short name, as alerts and records show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tls { .. } => "tls",
            Self::Ssh { .. } => "ssh",
            Self::HttpRequest { .. } | Self::HttpResponse { .. } => "http",
            Self::Dns { .. } => "dns",
            Self::Smtp => "smtp",
            Self::Ftp => "ftp",
            Self::Quic { .. } => "quic",
            Self::Unknown => "unknown",
        }
    }
}

/// Names the protocol of a flow direction from its first payload.
///
/// TCP payloads are tried as TLS, SSH, HTTP, SMTP/FTP, then DNS with its length
/// prefix; UDP payloads as QUIC, DNS, then HTTP (SSDP and other HTTP over UDP).
/// Each check wants its own first bytes; DNS comes last on TCP and after QUIC on
/// UDP because its first bytes (a length, an id) can be anything, so the more
/// specific checks get the first word. Only the first [`INSPECT_LIMIT`] bytes are read.
pub fn identify(transport: Transport, payload: &[u8]) -> Protocol {
    let payload = payload.get(..INSPECT_LIMIT).unwrap_or(payload);
    if payload.is_empty() {
        return Protocol::Unknown;
    }
    let found = match transport {
        Transport::Tcp => tls::identify(payload)
            .or_else(|| banner::ssh(payload))
            .or_else(|| http::identify(payload))
            .or_else(|| banner::smtp_or_ftp(payload))
            .or_else(|| dns::identify_tcp(payload)),
        Transport::Udp => {
            quic::identify(payload).or_else(|| dns::identify_udp(payload)).or_else(|| http::identify(payload))
        }
    };
    found.unwrap_or(Protocol::Unknown)
}

/// The TCP or UDP payload of a captured frame, with its transport.
///
/// The link layer is stripped as the decoder strips it ([`link::strip`]: Ethernet
/// with VLAN tags, cooked, loopback, raw IP), then etherparse's lax slicer reads
/// IP and the transport header, so a frame cut by a snaplen still yields the
/// payload bytes it holds. IP lengths trim Ethernet padding. The payload may be
/// empty (a bare ACK). `None` for a frame that is not TCP or UDP over IP, is
/// malformed, or is an IP fragment (the first one included: etherparse does not
/// slice a fragmented payload). Tunnels are not opened: for VXLAN or GRE the
/// outer packet's payload is what comes back.
pub fn l4_payload(link: LinkType, frame: &[u8]) -> Option<(Transport, &[u8])> {
    let mut vlans = Vlans::default();
    let L3::Ip(ip) = link::strip(link, frame, &mut vlans).ok()? else {
        return None;
    };
    match LaxSlicedPacket::from_ip(ip).ok()?.transport? {
        TransportSlice::Tcp(tcp) => Some((Transport::Tcp, tcp.payload())),
        TransportSlice::Udp(udp) => Some((Transport::Udp, udp.payload())),
        _ => None,
    }
}

/// The bytes up to the first CR or LF (or the end), at most `max` of them.
fn first_line(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(bytes.len());
    &bytes[..end.min(max)]
}

/// `bytes` as a string when they are 1 to `max` printable ASCII characters
/// without spaces (a host name, with or without a port).
fn ascii_token(bytes: &[u8], max: usize) -> Option<String> {
    let printable = !bytes.is_empty() && bytes.len() <= max && bytes.iter().all(u8::is_ascii_graphic);
    printable.then(|| bytes.iter().map(|&b| char::from(b)).collect())
}

/// `bytes` as text, each byte that is neither printable ASCII nor a space shown as `?`.
fn printable_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b == b' ' || b.is_ascii_graphic() { char::from(b) } else { '?' }).collect()
}
