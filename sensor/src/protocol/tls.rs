//! TLS: a record header, and the hello inside it: for a ClientHello its
//! server name (SNI), ALPN list, supported versions, cipher count and JA4
//! fingerprint; for a ServerHello the version and cipher suite chosen.
//!
//! tls-parser's record and handshake parsers take a message only when all of
//! it is there (`parse_tls_plaintext` wants the whole record, and
//! `parse_tls_message_handshake` the whole handshake message), but a sampled
//! payload is often cut: a browser's ClientHello is 500–2000 bytes and we may
//! hold 256. So the two fixed-size headers are read with the crate where it can
//! ([`parse_tls_record_header`]) and by hand where it cannot (the 4-byte
//! handshake header), and the crate then parses the bytes we have:
//!
//! 1. Record header (5 bytes, tls-parser): content type 20–23, version 3.0 to
//!    3.4, length 1 to 2^14 + 2048. Anything else is not TLS.
//! 2. The record's fragment is the bytes after the header, cut at the record
//!    length or at the end of the payload, whichever comes first.
//! 3. A handshake fragment starting with type 1 is a ClientHello. Its body
//!    (after the 4-byte header, again cut at the message length or the end) goes
//!    to tls-parser's [`parse_tls_handshake_client_hello`]. That parser accepts
//!    a body whose extension block is cut (it leaves the block unparsed); the
//!    extensions present whole are then read one at a time with
//!    [`parse_tls_extension_unknown`] (type and length-checked data, no content
//!    parsing, so a quirk in one extension cannot hide the others), and the
//!    contents wanted with tls-parser's per-extension content parsers.
//! 4. Type 2 is a ServerHello ([`parse_tls_handshake_server_hello`]); its
//!    supported_versions extension, when present, gives the version chosen
//!    (TLS 1.3 keeps 3.3 in the legacy field).
//!
//! The JA4 fingerprint ([`super::ja4`]) is computed only from a whole
//! ClientHello (every extension read); a cut one has `ja4: None` and the
//! fields it could read. A ClientHello bigger than one TCP segment (Chrome's
//! with a post-quantum key share is about 1.8 KB) is cut in the first payload,
//! so it has no JA4 here.
//!
//! Role: a ClientHello (or ClientKeyExchange) is the client's; a ServerHello
//! and the handshake messages only a server sends (Certificate, ServerKeyExchange,
//! CertificateRequest, ServerHelloDone, NewSessionTicket) the server's; other
//! records (application data, alerts, change cipher spec) either side's.
//!
//! Not handled: SSLv2 (and SSLv2-compatible) hellos, a ClientHello whose
//! handshake header is split across records, DTLS, and ECH (the outer SNI,
//! the public name, is what is reported). [`super::server_flight`](mod@super::server_flight) reads a
//! server's first flight (ServerHello and certificate) from a longer buffer.

use tls_parser::{
    SNIType, TlsExtension, TlsExtensionType, TlsRecordType, parse_tls_extension_alpn_content,
    parse_tls_extension_signature_algorithms_content, parse_tls_extension_sni_content,
    parse_tls_extension_unknown, parse_tls_handshake_client_hello, parse_tls_handshake_server_hello,
    parse_tls_record_header,
};

use super::ja4::{self, Ja4Input};
use super::model::{App, Role, Text};
use super::text::{ascii_token, be16, printable_text};
use super::{MAX_TEXT, Protocol};

/// Largest record length TLS 1.2 allows (2^14 plaintext + 2048 expansion).
pub const MAX_RECORD_LEN: u16 = (1 << 14) + 2048;
/// ALPN values kept at most.
pub const MAX_ALPN: usize = 8;
/// Supported versions kept at most.
pub const MAX_VERSIONS: usize = 16;

/// Handshake message types.
pub(super) const CLIENT_HELLO: u8 = 1;
pub(super) const SERVER_HELLO: u8 = 2;
/// Extension types.
const SERVER_NAME: u16 = 0x0000;
const SIGNATURE_ALGORITHMS: u16 = 0x000d;
const ALPN: u16 = 0x0010;
const SUPPORTED_VERSIONS: u16 = 0x002b;
/// Handshake record content type.
const HANDSHAKE: u8 = 22;

/// What a TLS record said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The record header's content type (20 change cipher spec, 21 alert, 22
    /// handshake, 23 application data).
    pub content_type: u8,
    /// The record header's version (0x0301 for most hellos, 0x0303 after).
    pub record_version: u16,
    /// The message the record starts.
    pub message: TlsMessage,
}

/// The message at the start of a TLS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMessage {
    /// A ClientHello (possibly cut).
    ClientHello(ClientHello),
    /// A ServerHello.
    ServerHello(ServerHello),
    /// Another handshake message; its type.
    Handshake(u8),
    /// A record that is not a handshake (or whose handshake header is cut).
    Other,
}

/// What a ClientHello offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The legacy version field (0x0303 for TLS 1.2 and 1.3).
    pub version: u16,
    /// The server name (`host_name` type), when the SNI extension lies whole
    /// within the bytes and the name is printable ASCII.
    pub sni: Option<Text>,
    /// The ALPN protocols in the order offered (at most [`MAX_ALPN`]), each
    /// printable (other bytes as `?`).
    pub alpn: Vec<Text>,
    /// The supported_versions extension's list, GREASE included, as offered
    /// (at most [`MAX_VERSIONS`]).
    pub supported_versions: Vec<u16>,
    /// How many cipher suites were offered (GREASE included).
    pub cipher_suites: u16,
    /// The JA4 fingerprint, when the whole ClientHello was there.
    pub ja4: Option<Text>,
}

/// What a ServerHello chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHello {
    /// The legacy version field.
    pub legacy_version: u16,
    /// The version chosen: the supported_versions extension's (TLS 1.3) or the legacy field.
    pub version: u16,
    /// The cipher suite chosen.
    pub cipher_suite: u16,
}

/// `Some(Protocol)` with [`App::Tls`] when `payload` starts with a plausible TLS record.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let (rest, header) = parse_tls_record_header(payload).ok()?;
    let plausible_type = matches!(
        header.record_type,
        TlsRecordType::ChangeCipherSpec
            | TlsRecordType::Alert
            | TlsRecordType::Handshake
            | TlsRecordType::ApplicationData
    );
    let [major, minor] = header.version.0.to_be_bytes();
    if !plausible_type || major != 3 || minor > 4 || header.len == 0 || header.len > MAX_RECORD_LEN {
        return None;
    }
    let fragment = rest.get(..usize::from(header.len)).unwrap_or(rest);
    let content_type = u8::from(header.record_type);
    let message = if content_type == HANDSHAKE { handshake(fragment) } else { TlsMessage::Other };
    let role = match &message {
        TlsMessage::ClientHello(_) | TlsMessage::Handshake(16) => Role::Client,
        TlsMessage::ServerHello(_) | TlsMessage::Handshake(4 | 11 | 12 | 13 | 14) => Role::Server,
        _ => Role::Either,
    };
    let info = TlsInfo { content_type, record_version: header.version.0, message };
    Some(Protocol::new(App::Tls(Box::new(info)), role))
}

/// The handshake message at the start of a record's `fragment`.
fn handshake(fragment: &[u8]) -> TlsMessage {
    let Some((&kind, _)) = fragment.split_first() else { return TlsMessage::Other };
    let message = match kind {
        CLIENT_HELLO => client_hello(fragment, ja4::Transport::Tcp).map(TlsMessage::ClientHello),
        SERVER_HELLO => server_hello(fragment).map(TlsMessage::ServerHello),
        _ => None,
    };
    message.unwrap_or(TlsMessage::Handshake(kind))
}

/// The body of the handshake message at the start of `message` (type and
/// 3-byte length first), cut at its length or the end, and whether it is whole.
pub(super) fn handshake_body(message: &[u8]) -> Option<(&[u8], bool)> {
    let header: &[u8; 4] = message.first_chunk()?;
    let len = usize::try_from(u32::from_be_bytes([0, header[1], header[2], header[3]])).ok()?;
    let body = &message[4..];
    Some(match body.get(..len) {
        Some(whole) => (whole, true),
        None => (body, false),
    })
}

/// A ClientHello handshake message (type, length, body; possibly cut).
pub(super) fn client_hello(message: &[u8], transport: ja4::Transport) -> Option<ClientHello> {
    let (body, whole) = handshake_body(message)?;
    let (after, hello) = parse_tls_handshake_client_hello(body).ok()?;
    let (extensions, all_extensions) = match hello.ext {
        Some(block) => (block, whole),
        // The block's length field was read but its bytes run past the end:
        // take the extensions that are whole.
        None => (after.get(2..).unwrap_or(&[]), false),
    };
    let ciphers: Vec<u16> = hello.ciphers.iter().map(|c| c.0).collect();
    let mut out = ClientHello {
        version: hello.version.0,
        sni: None,
        alpn: Vec::new(),
        supported_versions: Vec::new(),
        cipher_suites: u16::try_from(ciphers.len()).unwrap_or(u16::MAX),
        ja4: None,
    };
    let mut types = Vec::new();
    let mut sni_present = false;
    let mut first_alpn: Option<Vec<u8>> = None;
    let mut signature_algorithms = Vec::new();
    let mut input = extensions;
    // Each extension takes at least 4 bytes, so this ends within len / 4 rounds.
    while let Ok((next, extension)) = parse_tls_extension_unknown(input) {
        input = next;
        let TlsExtension::Unknown(TlsExtensionType(kind), data) = extension else { continue };
        types.push(kind);
        match kind {
            SERVER_NAME => {
                sni_present = true;
                out.sni = server_name(data);
            }
            ALPN => {
                if let Ok((_, TlsExtension::ALPN(names))) = parse_tls_extension_alpn_content(data) {
                    first_alpn = names.first().map(|name| name.to_vec());
                    out.alpn = names.iter().take(MAX_ALPN).map(|name| printable_text(name)).collect();
                }
            }
            SUPPORTED_VERSIONS => out.supported_versions = version_list(data),
            SIGNATURE_ALGORITHMS => {
                if let Ok((_, TlsExtension::SignatureAlgorithms(algs))) =
                    parse_tls_extension_signature_algorithms_content(data)
                {
                    signature_algorithms = algs;
                }
            }
            _ => {}
        }
    }
    // Whole: every extension was read and nothing is left over.
    if all_extensions && input.is_empty() {
        let input = Ja4Input {
            transport,
            legacy_version: out.version,
            supported_versions: &out.supported_versions,
            sni: sni_present,
            ciphers: &ciphers,
            extensions: &types,
            first_alpn: first_alpn.as_deref(),
            signature_algorithms: &signature_algorithms,
        };
        out.ja4 = Some(ja4::fingerprint(&input).into());
    }
    Some(out)
}

/// A ServerHello handshake message (type, length, body).
pub(super) fn server_hello(message: &[u8]) -> Option<ServerHello> {
    let (body, _) = handshake_body(message)?;
    let (_, hello) = parse_tls_handshake_server_hello(body).ok()?;
    let mut version = hello.version.0;
    let mut input = hello.ext.unwrap_or(&[]);
    while let Ok((next, extension)) = parse_tls_extension_unknown(input) {
        input = next;
        if let TlsExtension::Unknown(TlsExtensionType(SUPPORTED_VERSIONS), data) = extension
            && let Some(chosen) = be16(data, 0)
            && data.len() == 2
        {
            version = chosen;
        }
    }
    Some(ServerHello { legacy_version: hello.version.0, version, cipher_suite: hello.cipher.0 })
}

/// A ClientHello's supported_versions content: a one-byte length, then versions.
fn version_list(data: &[u8]) -> Vec<u16> {
    let Some((&len, list)) = data.split_first() else { return Vec::new() };
    let list = list.get(..usize::from(len)).unwrap_or(list);
    list.chunks_exact(2).take(MAX_VERSIONS).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).collect()
}

/// The first `host_name` entry of an SNI extension's data.
fn server_name(data: &[u8]) -> Option<Text> {
    let (_, TlsExtension::SNI(names)) = parse_tls_extension_sni_content(data).ok()? else {
        return None;
    };
    let (_, name) = names.into_iter().find(|(kind, _)| *kind == SNIType::HostName)?;
    ascii_token(name, MAX_TEXT)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record header, a ClientHello header and body, with `extensions` as its
    /// extension block (the lengths are computed, the contents are minimal).
    pub(crate) fn client_hello_record(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(0); // no session id
        body.extend_from_slice(&[0x00, 0x04, 0x0a, 0x0a, 0x13, 0x01]); // GREASE and one cipher suite
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        body.extend_from_slice(&u16::try_from(extensions.len()).expect("short").to_be_bytes());
        body.extend_from_slice(extensions);
        let mut hs = vec![CLIENT_HELLO, 0];
        hs.extend_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
        hs.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&u16::try_from(hs.len()).expect("short").to_be_bytes());
        record.extend_from_slice(&hs);
        record
    }

    /// An SNI extension naming `host`.
    fn sni_extension(host: &[u8]) -> Vec<u8> {
        let name_len = u16::try_from(host.len()).expect("short");
        let mut ext = vec![0x00, 0x00];
        ext.extend_from_slice(&(name_len + 5).to_be_bytes());
        ext.extend_from_slice(&(name_len + 3).to_be_bytes());
        ext.push(0); // host_name
        ext.extend_from_slice(&name_len.to_be_bytes());
        ext.extend_from_slice(host);
        ext
    }

    fn hello_of(payload: &[u8]) -> (ClientHello, Role) {
        let found = identify(payload).expect("TLS");
        let role = found.role;
        match found.app {
            App::Tls(info) => match info.message {
                TlsMessage::ClientHello(hello) => (hello, role),
                other => panic!("not a ClientHello: {other:?}"),
            },
            other => panic!("not TLS: {other:?}"),
        }
    }

    #[test]
    fn client_hello_gives_sni_alpn_versions_and_ja4() {
        let mut exts = vec![0x0a, 0x0a, 0x00, 0x00]; // GREASE, empty
        exts.extend_from_slice(&[0x00, 0x17, 0x00, 0x00]); // extended_master_secret
        exts.extend_from_slice(&sni_extension(b"example.org"));
        exts.extend_from_slice(&[0x00, 0x10, 0x00, 0x0e, 0x00, 0x0c, 2, b'h', b'2', 8]);
        exts.extend_from_slice(b"http/1.1");
        exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x7a, 0x7a, 0x03, 0x04]);
        let (hello, role) = hello_of(&client_hello_record(&exts));
        assert_eq!(role, Role::Client);
        assert_eq!(hello.sni.as_deref(), Some("example.org"));
        assert_eq!(hello.alpn, vec![Text::from("h2"), Text::from("http/1.1")]);
        assert_eq!(hello.supported_versions, vec![0x7a7a, 0x0304]);
        assert_eq!(hello.cipher_suites, 2);
        let ja4 = hello.ja4.expect("whole hello");
        assert!(ja4.starts_with("t13d0104h2_"), "{ja4}");
    }

    #[test]
    fn cut_client_hello_has_what_it_could_read_and_no_ja4() {
        let hello = client_hello_record(&sni_extension(b"a-rather-long-host-name.example.org"));
        for cut in 5..hello.len() {
            let found = identify(&hello[..cut]).expect("a cut ClientHello is still TLS");
            let Some(info) = found.tls() else { panic!("cut at {cut}: {found:?}") };
            match &info.message {
                TlsMessage::ClientHello(hello) => {
                    assert_eq!(hello.ja4, None, "cut at {cut}");
                    assert_eq!(hello.sni, None, "cut at {cut}");
                }
                TlsMessage::Handshake(CLIENT_HELLO) | TlsMessage::Other => assert!(cut < 52, "cut at {cut}"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let (whole, _) = hello_of(&hello);
        assert!(whole.ja4.is_some() && whole.sni.is_some());
    }

    #[test]
    fn sni_with_control_characters_is_dropped() {
        let (hello, _) = hello_of(&client_hello_record(&sni_extension(b"evil\n.example")));
        assert_eq!(hello.sni, None);
        assert!(hello.ja4.expect("whole").starts_with("t12d"), "SNI present even if unprintable");
    }

    #[test]
    fn other_records_are_tls_from_either_side() {
        // Application data, TLS 1.2 record version.
        let found = identify(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]).expect("TLS");
        assert_eq!(found.role, Role::Either);
        let info = found.tls().expect("TLS");
        assert_eq!((info.content_type, info.record_version, &info.message), (23, 0x0303, &TlsMessage::Other));
    }

    #[test]
    fn server_hello_gives_the_chosen_version_and_cipher() {
        // A TLS 1.3 ServerHello: legacy 3.3, cipher 0x1301, supported_versions 3.4.
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x22; 32]);
        body.push(0);
        body.extend_from_slice(&[0x13, 0x01, 0x00]);
        let exts = [0x00, 0x2b, 0x00, 0x02, 0x03, 0x04];
        body.extend_from_slice(&u16::try_from(exts.len()).expect("short").to_be_bytes());
        body.extend_from_slice(&exts);
        let mut record = vec![0x16, 0x03, 0x03, 0x00, u8::try_from(body.len() + 4).expect("short")];
        record.extend_from_slice(&[SERVER_HELLO, 0, 0, u8::try_from(body.len()).expect("short")]);
        record.extend_from_slice(&body);
        let found = identify(&record).expect("TLS");
        assert_eq!(found.role, Role::Server);
        let hello = ServerHello { legacy_version: 0x0303, version: 0x0304, cipher_suite: 0x1301 };
        assert_eq!(found.tls().map(|i| &i.message), Some(&TlsMessage::ServerHello(hello)));
    }

    #[test]
    fn implausible_record_headers_are_not_tls() {
        assert_eq!(identify(&[0x16, 0x03, 0x01]), None, "header cut short");
        assert_eq!(identify(&[0x16, 0x02, 0x00, 0x00, 0x10]), None, "SSLv2 version");
        assert_eq!(identify(&[0x16, 0x03, 0x05, 0x00, 0x10]), None, "unknown minor version");
        assert_eq!(identify(&[0x19, 0x03, 0x01, 0x00, 0x10]), None, "content type 25");
        assert_eq!(identify(&[0x16, 0x03, 0x01, 0x00, 0x00]), None, "empty record");
        assert_eq!(identify(&[0x16, 0x03, 0x01, 0x48, 0x01]), None, "record too long");
    }
}
