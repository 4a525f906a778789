//! What identification returns: [`Protocol`], the application protocol a
//! payload carries ([`App`], with what its bytes told cheaply) and the
//! [`Role`] of the endpoint that sent it.
//!
//! The value is cheap to move (40 bytes): the large metadata of TLS and HTTP
//! is boxed, the other variants hold a few integers or one short string.
//! Every string in it is at most [`super::MAX_TEXT`] bytes of printable ASCII
//! (spaces allowed only where the field says so), so it can go into logs and
//! alerts as it is.

use super::http::HttpInfo;
use super::tls::{ClientHello, TlsInfo};

/// A bounded, printable string taken from the wire.
pub type Text = Box<str>;

/// Which endpoint of the flow sent the payload, as its bytes tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The payload is a request, hello or command: its receiver is the service.
    Client,
    /// The payload is a greeting, response or reply: its sender is the service.
    Server,
    /// Either endpoint may send these bytes (a symmetric protocol such as an
    /// SSH banner or a BitTorrent handshake), or the bytes do not say which.
    Either,
}

/// The application protocol of a payload and its sender's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// The protocol, with what was read from it.
    pub app: App,
    /// The sender's role.
    pub role: Role,
}

impl Protocol {
    /// Nothing was identified.
    pub const UNKNOWN: Self = Self { app: App::Unknown, role: Role::Either };

    /// A protocol sent by an endpoint in `role`.
    #[must_use]
    pub const fn new(app: App, role: Role) -> Self {
        Self { app, role }
    }

    /// The protocol's stable lowercase short name (see [`App::name`]).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.app.name()
    }

    /// The sender's role.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// Whether nothing was identified.
    #[must_use]
    pub const fn is_unknown(&self) -> bool {
        matches!(self.app, App::Unknown)
    }

    /// The TLS metadata, when the payload is TLS.
    #[must_use]
    pub fn tls(&self) -> Option<&TlsInfo> {
        if let App::Tls(info) = &self.app { Some(info) } else { None }
    }

    /// The HTTP metadata, when the payload is HTTP/1.x.
    #[must_use]
    pub fn http(&self) -> Option<&HttpInfo> {
        if let App::Http(info) = &self.app { Some(info) } else { None }
    }
}

/// A DNS message's header facts and first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsInfo {
    /// True for a query (QR clear), false for a response.
    pub query: bool,
    /// The opcode: 0 QUERY, 1 IQUERY, 2 STATUS, 4 NOTIFY, 5 UPDATE, 6 DSO.
    pub opcode: u8,
    /// The response code (the low four bits; 0 in queries).
    pub rcode: u8,
    /// The first question's (for UPDATE, the zone's) name in presentation
    /// form without the final dot (the root is `.`); `None` when the message
    /// has no question or the bytes end inside it. See [`super::dns`] for
    /// escapes.
    pub qname: Option<Text>,
    /// The first question's type (1 = A, 28 = AAAA, 6 = SOA for an UPDATE's zone, ...).
    pub qtype: Option<u16>,
}

/// A SIP or RTSP start line: a request's method or a response's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartLine {
    /// The request method (`INVITE`, `REGISTER`, `DESCRIBE`, ...); `None` for a response.
    pub method: Option<Text>,
    /// The response status (100–699); `None` for a request.
    pub status: Option<u16>,
}

/// Where a SOCKS client asks to be connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksTarget {
    /// An IPv4 or IPv6 address in text form, or a domain name (SOCKS4a, SOCKS5).
    pub host: Text,
    /// The port.
    pub port: u16,
}

/// The application protocol a payload carries, with what its first bytes
/// tell cheaply. Each variant's doc names the file that identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// Nothing known.
    Unknown,
    /// A TLS record ([`super::tls`]).
    Tls(Box<TlsInfo>),
    /// An HTTP/1.x request or response ([`super::http`]).
    Http(Box<HttpInfo>),
    /// The HTTP/2 prior-knowledge connection preface ([`super::http`]).
    Http2,
    /// A QUIC long-header packet ([`super::quic`]).
    Quic {
        /// The version field (1, 0x6b33_43cf for v2, 0xff00_00xx for drafts, 0
        /// for version negotiation).
        version: u32,
        /// The ClientHello of a client's Initial (v1 and v2), decrypted
        /// ([`super::quic_initial`]): its SNI, ALPN and `q` JA4.
        hello: Option<Box<ClientHello>>,
    },
    /// A DNS message ([`super::dns`]).
    Dns(DnsInfo),
    /// An SSH identification line ([`super::banner`]).
    Ssh {
        /// The line without its CR LF, control characters shown as `?`.
        banner: Text,
    },
    /// An SMTP greeting or first client command ([`super::banner`]).
    Smtp,
    /// An FTP greeting or first client command ([`super::banner`]).
    Ftp,
    /// A POP3 greeting or client command ([`super::mailbox`]).
    Pop3,
    /// An IMAP greeting or tagged client command ([`super::mailbox`]).
    Imap,
    /// Telnet option negotiation ([`super::telnet`]).
    Telnet,
    /// A MySQL handshake ([`super::mysql`]).
    Mysql {
        /// The server's version string, from its greeting.
        server_version: Option<Text>,
    },
    /// A PostgreSQL startup, SSL request or server reply ([`super::postgres`]).
    Postgresql,
    /// An MS SQL Server TDS pre-login ([`super::mssql`]).
    Mssql,
    /// A Redis command or reply ([`super::redis`]).
    Redis,
    /// A MongoDB wire-protocol message ([`super::mongodb`]).
    Mongodb {
        /// The header's opCode (2013 OP_MSG, 2004 OP_QUERY, 1 OP_REPLY, 2012 OP_COMPRESSED).
        op_code: u32,
    },
    /// An LDAP message, over TCP or UDP (CLDAP) ([`super::ldap`]).
    Ldap {
        /// The protocolOp's application tag number (0 bindRequest, 3
        /// searchRequest, 4 searchResEntry, 23 extendedRequest, ...).
        operation: u8,
    },
    /// A Kerberos message, over UDP or TCP ([`super::kerberos`]).
    Kerberos {
        /// The message type (10 AS-REQ, 11 AS-REP, 12 TGS-REQ, 13 TGS-REP, 30 KRB-ERROR).
        msg_type: u8,
        /// The realm, when it lies within the bytes and is printable.
        realm: Option<Text>,
    },
    /// An SMB message after its NetBIOS session header ([`super::smb`]).
    Smb {
        /// 1 (`\xffSMB`), 2 (`\xfeSMB`, SMB 2 and 3) or 3 (`\xfdSMB`, an SMB 3 transform: encrypted).
        version: u8,
        /// The command (0 for an encrypted transform).
        command: u16,
        /// The dialect a NEGOTIATE response chose (0x0202, 0x0210, 0x0300, 0x0302, 0x0311).
        dialect: Option<u16>,
    },
    /// NetBIOS name service or a session request/response ([`super::netbios`]).
    Netbios,
    /// An RDP connection request or confirm (TPKT and X.224) ([`super::rdp`]).
    Rdp,
    /// A SOCKS4 or SOCKS4a request or reply ([`super::socks`]).
    Socks4 {
        /// The requested destination.
        target: Option<Box<SocksTarget>>,
    },
    /// A SOCKS5 greeting, request or reply ([`super::socks`]).
    Socks5 {
        /// The requested destination (a request only).
        target: Option<Box<SocksTarget>>,
    },
    /// IRC client registration or a server line ([`super::irc`]).
    Irc {
        /// Whether the client payload carries a `NICK` command.
        nick: bool,
    },
    /// A SIP request or response ([`super::sip_rtsp`]).
    Sip(StartLine),
    /// An RTSP request or response ([`super::sip_rtsp`]).
    Rtsp(StartLine),
    /// An MQTT CONNECT or CONNACK ([`super::mqtt`]).
    Mqtt {
        /// The protocol level (3 for MQIsdp 3.1, 4 for 3.1.1, 5); 0 for a CONNACK.
        level: u8,
    },
    /// An AMQP protocol header or Connection.Start ([`super::amqp`]).
    Amqp,
    /// An NTP packet ([`super::ntp`]).
    Ntp {
        /// The version (1–4).
        version: u8,
        /// The mode (1 symmetric active, 2 symmetric passive, 3 client, 4 server, 5 broadcast).
        mode: u8,
    },
    /// An SNMP message ([`super::snmp`]).
    Snmp {
        /// The message version field: 0 (v1), 1 (v2c) or 3 (v3).
        version: u8,
        /// Whether a non-empty community string is present (its value is not kept).
        community: bool,
    },
    /// A TFTP packet ([`super::tftp`]).
    Tftp {
        /// The opcode (1 RRQ, 2 WRQ, 3 DATA, 4 ACK, 5 ERROR, 6 OACK).
        opcode: u16,
    },
    /// A DHCP (BOOTP) message ([`super::dhcp`]).
    Dhcp {
        /// The DHCP message type option (1 DISCOVER, 2 OFFER, 3 REQUEST, 5 ACK, ...).
        message_type: Option<u8>,
    },
    /// A syslog message ([`super::syslog`]).
    Syslog {
        /// The PRI value (facility × 8 + severity).
        pri: u8,
    },
    /// An OpenVPN control-channel reset ([`super::openvpn`]).
    Openvpn {
        /// The opcode (1, 2, 7, 8 or 10: a hard reset).
        opcode: u8,
    },
    /// A WireGuard message ([`super::wireguard`]).
    Wireguard {
        /// 1 handshake initiation, 2 response, 3 cookie reply, 4 transport data.
        message_type: u8,
    },
    /// An IKE (ISAKMP) message, possibly after a NAT-T non-ESP marker ([`super::ike`]).
    Ike {
        /// The major version: 1 or 2.
        version: u8,
        /// The exchange type (2 main mode, 4 aggressive, 34 IKE_SA_INIT, ...).
        exchange: u8,
        /// Whether a four-byte non-ESP marker (UDP 4500) came first.
        nat_t: bool,
    },
    /// A BitTorrent peer handshake or DHT message ([`super::bittorrent`]).
    Bittorrent {
        /// True for a DHT (bencoded, UDP) message.
        dht: bool,
    },
    /// A VNC (RFB) protocol version line ([`super::vnc`]).
    Vnc,
    /// A STUN message ([`super::stun`]).
    Stun {
        /// The message type's method (1 = Binding).
        method: u16,
    },
    /// An XMPP stream header ([`super::xmpp`]).
    Xmpp,
    /// A command shell on a bare connection: its banner, prompt or output, or an operator's
    /// command line ([`super::shell`]).
    Shell {
        /// What was seen.
        side: ShellSide,
    },
}

/// What showed a command shell ([`App::Shell`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellSide {
    /// A console banner (`Microsoft Windows [Version ...]`, `Windows PowerShell`).
    Banner,
    /// A bare prompt (`C:\...>`, `sh-5.1$ `, `user@host:~# `).
    Prompt,
    /// The output of `id`.
    Output,
    /// An operator's command line (the other side is the shell).
    Command,
}

impl App {
    /// The protocol's stable lowercase short name, as alerts, records and the
    /// port registry ([`super::registry`]) spell it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Tls(_) => "tls",
            Self::Http(_) => "http",
            Self::Http2 => "http2",
            Self::Quic { .. } => "quic",
            Self::Dns(_) => "dns",
            Self::Ssh { .. } => "ssh",
            Self::Smtp => "smtp",
            Self::Ftp => "ftp",
            Self::Pop3 => "pop3",
            Self::Imap => "imap",
            Self::Telnet => "telnet",
            Self::Mysql { .. } => "mysql",
            Self::Postgresql => "postgresql",
            Self::Mssql => "mssql",
            Self::Redis => "redis",
            Self::Mongodb { .. } => "mongodb",
            Self::Ldap { .. } => "ldap",
            Self::Kerberos { .. } => "kerberos",
            Self::Smb { .. } => "smb",
            Self::Netbios => "netbios",
            Self::Rdp => "rdp",
            Self::Socks4 { .. } => "socks4",
            Self::Socks5 { .. } => "socks5",
            Self::Irc { .. } => "irc",
            Self::Sip(_) => "sip",
            Self::Rtsp(_) => "rtsp",
            Self::Mqtt { .. } => "mqtt",
            Self::Amqp => "amqp",
            Self::Ntp { .. } => "ntp",
            Self::Snmp { .. } => "snmp",
            Self::Tftp { .. } => "tftp",
            Self::Dhcp { .. } => "dhcp",
            Self::Syslog { .. } => "syslog",
            Self::Openvpn { .. } => "openvpn",
            Self::Wireguard { .. } => "wireguard",
            Self::Ike { .. } => "ike",
            Self::Shell { .. } => "shell",
            Self::Bittorrent { .. } => "bittorrent",
            Self::Vnc => "vnc",
            Self::Stun { .. } => "stun",
            Self::Xmpp => "xmpp",
        }
    }
}

/// Every name [`App::name`] gives, `unknown` last.
pub const NAMES: [&str; 42] = [
    "tls",
    "http",
    "http2",
    "quic",
    "dns",
    "ssh",
    "smtp",
    "ftp",
    "pop3",
    "imap",
    "telnet",
    "mysql",
    "postgresql",
    "mssql",
    "redis",
    "mongodb",
    "ldap",
    "kerberos",
    "smb",
    "netbios",
    "rdp",
    "socks4",
    "socks5",
    "irc",
    "sip",
    "rtsp",
    "mqtt",
    "amqp",
    "ntp",
    "snmp",
    "tftp",
    "dhcp",
    "syslog",
    "openvpn",
    "wireguard",
    "ike",
    "shell",
    "bittorrent",
    "vnc",
    "stun",
    "xmpp",
    "unknown",
];
