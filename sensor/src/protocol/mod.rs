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

pub mod amqp;
pub mod banner;
mod ber;
pub mod bittorrent;
pub mod dhcp;
mod dispatch;
pub mod dns;
pub mod http;
pub mod ike;
pub mod irc;
pub mod ja4;
pub mod kerberos;
pub mod ldap;
pub mod mailbox;
pub mod model;
pub mod mongodb;
pub mod mqtt;
pub mod mssql;
pub mod mysql;
pub mod netbios;
pub mod ntp;
pub mod openvpn;
pub mod postgres;
pub mod quic;
pub mod rdp;
pub mod redis;
pub mod registry;
pub mod server_flight;
pub mod sip_rtsp;
pub mod smb;
pub mod snmp;
pub mod socks;
pub mod stun;
pub mod syslog;
pub mod telnet;
mod text;
pub mod tftp;
pub mod tls;
pub mod vnc;
pub mod wireguard;
pub mod xmpp;

#[cfg(test)]
mod plausibility;
#[cfg(test)]
pub(crate) mod tests;

use etherparse::{LaxSlicedPacket, TransportSlice};

pub use model::{App, DnsInfo, Protocol, Role, SocksTarget, StartLine, Text};
pub use server_flight::{LeafCertificate, ServerFlight, server_flight};

use crate::capture::LinkType;
use crate::decode::link::{self, L3, Vlans};

/// Bytes of a payload that identification reads at most; the rest is ignored,
/// as if the payload had been cut there.
pub const INSPECT_LIMIT: usize = 4096;

/// Longest string identification puts into a [`Protocol`] (a DNS name's limit).
pub const MAX_TEXT: usize = 255;

/// The transport that carried a payload: it decides how DNS and Kerberos are
/// framed and which protocols are possible (QUIC is UDP only, TLS TCP only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP: a byte stream; DNS carries a two-byte length prefix.
    Tcp,
    /// UDP: one datagram.
    Udp,
}

/// Names the protocol of a flow direction from its first payload, and the
/// role of its sender.
///
/// The first byte and the transport pick the identifiers asked (see
/// [`dispatch`]); each answers only when the bytes fit it well, and the first
/// answer wins. Only the first [`INSPECT_LIMIT`] bytes are read.
#[must_use]
pub fn identify(transport: Transport, payload: &[u8]) -> Protocol {
    let payload = payload.get(..INSPECT_LIMIT).unwrap_or(payload);
    let found = match transport {
        Transport::Tcp => dispatch::tcp(payload),
        Transport::Udp => dispatch::udp(payload),
    };
    found.unwrap_or(Protocol::UNKNOWN)
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
