//! Identifies the protocol of one payload, or reads a TLS server flight.
//! The first byte picks what the rest is (`byte % 4`): 0 a TCP payload, 1 a
//! UDP payload, 2 an Ethernet frame whose TCP or UDP payload `l4_payload`
//! finds, 3 the first bytes of a TLS server's direction for `server_flight`.
//!
//! Identification must never panic, must give the same answer twice, must
//! not panic on the payload cut to 256 bytes either (as a sampler cuts it),
//! and what it returns must keep the module's promises: a known name; every
//! string printable ASCII within `MAX_TEXT` bytes (tokens without spaces);
//! each protocol only over the transports it runs on; the role each
//! message type implies (a ClientHello or a request is the client's, a
//! ServerHello or a response the server's); a JA4 of the published shape.
//! A server flight's certificate strings are bounded and printable too.

use crate::capture::LinkType;
use crate::protocol::http::HttpInfo;
use crate::protocol::model::NAMES;
use crate::protocol::tls::TlsMessage;
use crate::protocol::{self, App, MAX_TEXT, Protocol, Role, Transport, quic};

/// What a sampler keeps of a payload.
const SAMPLE: usize = 256;

/// 1 to `MAX_TEXT` printable ASCII characters, spaces allowed or not.
fn text(what: &str, value: &str, spaces: bool) {
    assert!(!value.is_empty() && value.len() <= MAX_TEXT, "{what}: length {}: {value:?}", value.len());
    let ok = |b: u8| b.is_ascii_graphic() || (spaces && b == b' ');
    assert!(value.bytes().all(ok), "{what}: not printable: {value:?}");
}

fn maybe(what: &str, value: Option<&str>, spaces: bool) {
    if let Some(v) = value {
        text(what, v, spaces);
    }
}

/// `t13d1516h2_8daaf6152771_e5627efa2ab1`: 36 characters in three parts.
fn ja4_shape(ja4: &str) {
    let parts: Vec<&str> = ja4.split('_').collect();
    assert_eq!(parts.len(), 3, "ja4 {ja4:?}");
    assert_eq!(parts[0].len(), 10, "ja4 {ja4:?}");
    assert!(matches!(&parts[0][..1], "t" | "q"), "ja4 {ja4:?}");
    assert!(parts[1..].iter().all(|p| p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit())), "{ja4:?}");
}

fn check(found: &Protocol, transport: Transport) {
    let tcp = transport == Transport::Tcp;
    let name = found.name();
    assert!(NAMES.contains(&name), "name {name}");
    let tcp_only = [
        "tls",
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
        "smb",
        "rdp",
        "socks4",
        "socks5",
        "irc",
        "mqtt",
        "amqp",
        "vnc",
        "xmpp",
        "http2",
    ];
    let udp_only = ["quic", "ntp", "snmp", "tftp", "dhcp", "wireguard", "ike", "stun"];
    assert!(!tcp_only.contains(&name) || tcp, "{name} over UDP");
    assert!(!udp_only.contains(&name) || !tcp, "{name} over TCP");
    match &found.app {
        App::Unknown => assert_eq!(found.role, Role::Either),
        App::Tls(info) => match &info.message {
            TlsMessage::ClientHello(hello) => {
                assert_eq!(found.role, Role::Client);
                maybe("sni", hello.sni.as_deref(), false);
                assert!(hello.alpn.len() <= protocol::tls::MAX_ALPN);
                assert!(hello.supported_versions.len() <= protocol::tls::MAX_VERSIONS);
                for alpn in &hello.alpn {
                    assert!(
                        alpn.len() <= MAX_TEXT && alpn.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
                    );
                }
                if let Some(ja4) = &hello.ja4 {
                    ja4_shape(ja4);
                }
            }
            TlsMessage::ServerHello(_) => assert_eq!(found.role, Role::Server),
            _ => {}
        },
        App::Http(info) => match &**info {
            HttpInfo::Request(r) => {
                assert_eq!(found.role, Role::Client);
                assert!(r.method.len() <= protocol::http::MAX_METHOD);
                text("method", &r.method, false);
                maybe("host", r.host.as_deref(), false);
                maybe("user-agent", r.user_agent.as_deref(), true);
                maybe("content-type", r.content_type.as_deref(), true);
                maybe("connect", r.connect_target.as_deref(), false);
                assert!(r.connect_target.is_none() || &*r.method == "CONNECT");
            }
            HttpInfo::Response(r) => {
                assert_eq!(found.role, Role::Server);
                assert!((100..=599).contains(&r.status), "status {}", r.status);
                maybe("server", r.server.as_deref(), true);
            }
        },
        App::Http2 => assert_eq!(found.role, Role::Client),
        App::Quic { version, hello } => {
            assert!(*version == 0 || quic::known_version(*version), "{version:#x}");
            if let Some(hello) = hello {
                assert_eq!(found.role, Role::Client);
                maybe("quic sni", hello.sni.as_deref(), false);
                if let Some(ja4) = &hello.ja4 {
                    ja4_shape(ja4);
                    assert!(ja4.starts_with('q'), "{ja4}");
                }
            }
        }
        App::Dns(d) => {
            assert_eq!(d.qname.is_some(), d.qtype.is_some(), "name and type come together");
            if let Some(name) = &d.qname {
                assert!(!name.is_empty() && !name.chars().any(char::is_control), "qname {name:?}");
            }
            assert!(matches!(d.opcode, 0 | 1 | 2 | 4 | 5 | 6), "opcode {}", d.opcode);
            let role = if d.opcode == 6 {
                Role::Either
            } else if d.query {
                Role::Client
            } else {
                Role::Server
            };
            assert_eq!(found.role, role);
        }
        App::Ssh { banner } => {
            assert!(banner.starts_with("SSH-"));
            text("banner", banner, true);
        }
        App::Mysql { server_version } => maybe("mysql version", server_version.as_deref(), true),
        App::Kerberos { msg_type, realm } => {
            assert!(matches!(msg_type, 10..=13 | 30));
            assert_eq!(found.role, if matches!(msg_type, 10 | 12) { Role::Client } else { Role::Server });
            maybe("realm", realm.as_deref(), false);
        }
        App::Socks4 { target } | App::Socks5 { target } => {
            if let Some(t) = target {
                assert_eq!(found.role, Role::Client);
                text("socks host", &t.host, false);
            }
        }
        App::Sip(line) | App::Rtsp(line) => {
            assert_ne!(line.method.is_some(), line.status.is_some(), "a request or a response");
            maybe("method", line.method.as_deref(), false);
            assert!(line.status.is_none_or(|s| (100..=699).contains(&s)));
        }
        App::Ntp { version, mode } => assert!((1..=4).contains(version) && (1..=5).contains(mode)),
        App::Snmp { version, .. } => assert!(matches!(version, 0 | 1 | 3)),
        App::Syslog { pri } => assert!(*pri <= 191),
        App::Wireguard { message_type } => assert!((1..=4).contains(message_type)),
        App::Ike { version, .. } => assert!(matches!(version, 1 | 2)),
        App::Smb { version, .. } => assert!((1..=3).contains(version)),
        App::Bittorrent { dht } => assert_eq!(*dht, !tcp),
        _ => {}
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (transport, payload) = match selector % 4 {
        0 => (Transport::Tcp, rest),
        1 => (Transport::Udp, rest),
        2 => {
            let Some((transport, payload)) = protocol::l4_payload(LinkType::Ethernet, rest) else {
                return;
            };
            let (frame, found) = (rest.as_ptr_range(), payload.as_ptr_range());
            assert!(frame.start <= found.start && found.end <= frame.end, "payload outside the frame");
            (transport, payload)
        }
        _ => {
            if let Some(flight) = protocol::server_flight(rest) {
                if let Some(cert) = &flight.certificate {
                    for (what, name) in [("subject", &cert.subject), ("issuer", &cert.issuer)] {
                        assert!(name.len() <= MAX_TEXT, "{what}: length {}", name.len());
                        assert!(name.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{what}: {name:?}");
                    }
                    assert!(cert.signature_verified.is_none() || cert.self_signed);
                }
                assert_eq!(Some(flight), protocol::server_flight(rest), "not deterministic");
            }
            return;
        }
    };
    let found = protocol::identify(transport, payload);
    check(&found, transport);
    // The fully-encrypted test of unknown payloads: total, and never true below its minimum.
    if protocol::encrypted::looks_fully_encrypted(payload) {
        assert!(payload.len() >= protocol::encrypted::MIN_LEN);
    }
    // A DHCP client message the flood detector counts is a DHCP request to the identifier too.
    if transport == Transport::Udp
        && let Some(m) =
            protocol::dhcp::client_message(&payload[..payload.len().min(protocol::INSPECT_LIMIT)])
    {
        assert_eq!(found.role, Role::Client, "dhcp client message {m:?}");
        assert_eq!(found.app, App::Dhcp { message_type: m.message_type });
    }
    assert_eq!(found, protocol::identify(transport, payload), "not deterministic");
    let sampled = protocol::identify(transport, &payload[..payload.len().min(SAMPLE)]);
    check(&sampled, transport);
    if payload.len() <= SAMPLE {
        assert_eq!(found, sampled);
    }
}
