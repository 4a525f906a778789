//! Protocol identification from the first payload bytes of one flow direction.
//!
//! [`identify`] looks at the first TCP or UDP payload a direction carried and
//! names the application protocol from its bytes alone, never from the port:
//! TLS on port 80 is TLS, SSH on 443 is SSH, HTTP on 5060 is HTTP. Either
//! direction's first payload will do: the result ([`Protocol`]) carries the
//! protocol with what its bytes told cheaply ([`App`]) and the [`Role`] of
//! the sender (client, server, or either), so the port rules know which
//! endpoint is the service. Each family lives in its own file, of the same
//! shape (`pub(super) fn identify(payload) -> Option<Protocol>` and its
//! tests), and answers `Some` only when the bytes fit it well:
//!
//! | file | protocols (name) | parsed with |
//! |---|---|---|
//! | [`tls`] | TLS records, both sides (`tls`): ClientHello SNI, ALPN, versions, cipher count, [`ja4`]; ServerHello version and cipher | tls-parser, over a hand-read record and handshake header; sha2 for JA4 |
//! | [`server_flight`](mod@server_flight) | a TLS server's first flight: ServerHello and leaf certificate (not used by [`identify`]) | tls-parser, x509-parser (with ring to verify a self-signed signature) |
//! | [`http`] | HTTP/1.x requests and responses (`http`), CONNECT; the HTTP/2 preface (`http2`) | httparse |
//! | [`sip_rtsp`] | SIP (`sip`) and RTSP (`rtsp`) requests and responses | by hand: a start line |
//! | [`quic`] | QUIC long header and version negotiation (`quic`) | by hand: five bytes and two lengths |
//! | [`quic_initial`] | a client Initial's ClientHello: SNI, ALPN, `q` JA4 | ring (HKDF, AES header protection, AES-GCM), then [`tls`] |
//! | [`dns`] | DNS over UDP and TCP, every opcode (`dns`) | hickory-proto |
//! | [`netbios`] | NetBIOS name service and session request/response (`netbios`) | by hand: DNS-like header, half-byte names |
//! | [`banner`] | SSH identification (`ssh`); SMTP (`smtp`) and FTP (`ftp`) greetings and first commands | by hand: a prefix and a line |
//! | [`mailbox`] | POP3 (`pop3`) and IMAP (`imap`) greetings and first commands | by hand: a prefix and a line |
//! | [`irc`] | IRC registration and server lines (`irc`) | by hand: lines |
//! | [`telnet`] | Telnet option negotiation (`telnet`) | by hand: IAC commands |
//! | [`mysql`] | MySQL greeting (v10), early error, client handshake (`mysql`) | by hand: 3-byte length framing |
//! | [`postgres`] | PostgreSQL startup/SSL/GSS/cancel requests, R/E/S replies (`postgresql`) | by hand |
//! | [`mssql`] | MS SQL TDS PRELOGIN and its response (`mssql`) | by hand: TDS header, option table |
//! | [`redis`] | Redis RESP commands, inline commands, replies (`redis`) | by hand |
//! | [`mongodb`] | MongoDB OP_MSG, OP_QUERY, OP_REPLY, OP_COMPRESSED (`mongodb`) | by hand: message header |
//! | [`ldap`] | LDAP and CLDAP messages (`ldap`) | `ber`, a no-allocation BER header reader |
//! | [`kerberos`] | Kerberos AS/TGS requests and replies, KRB-ERROR, UDP and TCP (`kerberos`) | `ber` |
//! | [`snmp`] | SNMP v1, v2c, v3 (`snmp`) | `ber` |
//! | [`smb`] | SMB1, SMB2/3, SMB3 transform after the NetBIOS session header (`smb`) | by hand |
//! | [`rdp`] | RDP X.224 Connection Request/Confirm in TPKT (`rdp`) | by hand |
//! | [`socks`] | SOCKS4/4a (`socks4`) and SOCKS5 (`socks5`) greetings, requests, replies | by hand |
//! | [`mqtt`] | MQTT CONNECT and CONNACK (`mqtt`) | by hand |
//! | [`amqp`] | AMQP protocol header, Connection.Start (`amqp`) | by hand |
//! | [`ntp`] | NTP modes 1–5 (`ntp`) | by hand: header plausibility |
//! | [`tftp`] | TFTP requests and opening replies (`tftp`) | by hand |
//! | [`dhcp`] | DHCP/BOOTP with the magic cookie (`dhcp`) | by hand |
//! | [`syslog`] | syslog RFC 5424/3164, octet-counted over TCP (`syslog`) | by hand |
//! | [`openvpn`] | OpenVPN hard resets, UDP and TCP, plain/tls-auth/tls-crypt (`openvpn`) | by hand |
//! | [`wireguard`] | WireGuard messages 1–4 (`wireguard`) | by hand: type, zeros, size |
//! | [`ike`] | IKEv1/IKEv2 headers, NAT-T marker (`ike`) | by hand |
//! | [`bittorrent`] | BitTorrent handshake and DHT (`bittorrent`) | by hand |
//! | [`vnc`] | RFB version line (`vnc`) | by hand |
//! | [`stun`] | STUN/TURN messages (`stun`) | by hand |
//! | [`xmpp`] | XMPP stream header (`xmpp`) | by hand |
//! | [`shell`] | a command shell on a bare connection: banner, prompt, `id` output, or an operator's command line (`shell`) | by hand: a line |
//! | [`registry`] | ports to the names above, from `/etc/services` and a supplement | by hand: the services file format |
//!
//! `dispatch` decides which of them a payload is offered to, by its first
//! byte and transport; [`model`] holds the result types; `text` the
//! bounded-string and checked-read helpers they share.
//!
//! Invariants: identification never panics on any bytes; it reads at most
//! [`INSPECT_LIMIT`] bytes and every parser is linear in what it reads (every
//! loop is bounded by the bytes or a constant), so the work per call is
//! bounded; a payload cut short (a sampler keeps the first 256 bytes, a
//! snaplen cuts the frame) is identified from what is there. Strings in the
//! result hold no control characters, so they can go into logs and alerts as
//! they are: each is at most [`MAX_TEXT`] bytes, except a DNS query name,
//! which is at most 255 bytes on the wire and longer only by its escapes
//! (see [`dns`]). Random bytes (encrypted or compressed data, mid-stream
//! segments) are almost never identified: the plausibility test feeds 400 000
//! random payloads and 1 is (a SOCKS5 method selection, two bytes `05 00`).
//!
//! Cost, per call (criterion, `cargo bench -p nbad-sensor --bench identify`,
//! the bench profile's fat-LTO release build, on this project's shared
//! 2-core development machine, so take ±10 %):
//!
//! | payload | ns/call |
//! |---|---|
//! | random 512 bytes over TCP (matches nothing) | 8.9 |
//! | random 512 bytes over UDP (matches nothing) | 11.2 |
//! | SMB2 NEGOTIATE | 28 |
//! | DNS query (name and type decoded) | 122 |
//! | HTTP GET with Host and User-Agent | 252 |
//! | TLS ClientHello, whole, with SNI and JA4 (two SHA-256) | 1 420 |
//! | the five above in turn (mix) | 1 795 for five |
//!
//! A payload that matches nothing is rejected within a few byte compares and
//! allocates nothing; only a match allocates (its strings, a ClientHello's
//! lists). A QUIC client Initial is decrypted (HKDF, AES), which costs a few
//! microseconds; it is a flow's first packet.
//!
//! [`l4_payload`] finds that payload in a captured frame.

pub mod amqp;
pub mod banner;
mod ber;
pub mod bittorrent;
pub mod dhcp;
mod dispatch;
pub mod dns;
pub mod encrypted;
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
pub mod quic_initial;
pub mod rdp;
pub mod redis;
pub mod registry;
pub mod server_flight;
pub mod shell;
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

pub use model::{App, DnsInfo, Protocol, Role, ShellSide, SocksTarget, StartLine, Text};
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
/// `dispatch`); each answers only when the bytes fit it well, and the first
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
