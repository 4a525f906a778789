//! TLS: a record header, and for a ClientHello its server name (SNI).
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
//!    parsing, so a quirk in another extension cannot hide the SNI), and the SNI
//!    content with [`parse_tls_extension_sni_content`].
//!
//! So a cut ClientHello is still TLS with `client_hello: true`, and gives its
//! SNI when the whole SNI extension lies within the bytes. Not handled: SSLv2
//! (and SSLv2-compatible) hellos, a ClientHello whose handshake header is split
//! across records, DTLS, SNI beyond the bytes inspected (Chrome shuffles its
//! extensions, so its SNI is sometimes past a 256-byte cut), and ECH (the outer
//! SNI, the public name, is what is reported).

use tls_parser::{
    SNIType, TlsExtension, TlsExtensionType, TlsRecordType, parse_tls_extension_sni_content,
    parse_tls_extension_unknown, parse_tls_handshake_client_hello, parse_tls_record_header,
};

use super::{MAX_TEXT, Protocol, ascii_token};

/// Largest record length TLS 1.2 allows (2^14 plaintext + 2048 expansion).
const MAX_RECORD_LEN: u16 = (1 << 14) + 2048;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Extension type of server_name (RFC 6066).
const SERVER_NAME: u16 = 0;

/// `Some(Protocol::Tls)` when `payload` starts with a plausible TLS record.
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
    let client_hello =
        header.record_type == TlsRecordType::Handshake && fragment.first() == Some(&CLIENT_HELLO);
    let sni = if client_hello { client_hello_sni(fragment) } else { None };
    Some(Protocol::Tls { sni, client_hello })
}

/// The SNI of a ClientHello handshake message (possibly cut) in `fragment`.
fn client_hello_sni(fragment: &[u8]) -> Option<String> {
    // Handshake header: type (1), length (3), read by hand because tls-parser's
    // `parse_tls_message_handshake` refuses a message that is not all there.
    let header: &[u8; 4] = fragment.first_chunk()?;
    let len = u32::from_be_bytes([0, header[1], header[2], header[3]]);
    let body = &fragment[4..];
    let body = body.get(..usize::try_from(len).ok()?).unwrap_or(body);
    let (after, hello) = parse_tls_handshake_client_hello(body).ok()?;
    let extensions = match hello.ext {
        Some(block) => block,
        // The block's length field was read but its bytes run past the end:
        // take the extensions that are whole.
        None => after.get(2..)?,
    };
    let mut input = extensions;
    // Each extension takes at least 4 bytes, so this ends within len / 4 rounds.
    while let Ok((next, extension)) = parse_tls_extension_unknown(input) {
        if let TlsExtension::Unknown(TlsExtensionType(SERVER_NAME), data) = extension {
            return server_name(data);
        }
        input = next;
    }
    None
}

/// The first `host_name` entry of an SNI extension's data.
fn server_name(data: &[u8]) -> Option<String> {
    let (_, TlsExtension::SNI(names)) = parse_tls_extension_sni_content(data).ok()? else {
        return None;
    };
    let (_, name) = names.into_iter().find(|(kind, _)| *kind == SNIType::HostName)?;
    ascii_token(name, MAX_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record header, a ClientHello header and body, with `extensions` as its
    /// extension block (the lengths are computed, the contents are minimal).
    fn client_hello(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(0); // no session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one cipher suite
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

    #[test]
    fn finds_sni_after_other_extensions() {
        let mut exts = vec![0x0a, 0x0a, 0x00, 0x00]; // GREASE, empty
        exts.extend_from_slice(&[0x00, 0x17, 0x00, 0x00]); // extended_master_secret
        exts.extend_from_slice(&sni_extension(b"example.org"));
        let got = identify(&client_hello(&exts));
        assert_eq!(got, Some(Protocol::Tls { sni: Some("example.org".into()), client_hello: true }));
    }

    #[test]
    fn sni_cut_by_the_end_of_the_payload_is_not_reported() {
        let hello = client_hello(&sni_extension(b"a-rather-long-host-name.example.org"));
        for cut in 5..=hello.len() {
            let got = identify(&hello[..cut]).expect("a cut ClientHello is still TLS");
            let whole = cut == hello.len();
            match got {
                Protocol::Tls { sni, client_hello } => {
                    assert_eq!(client_hello, cut > 5, "cut at {cut}");
                    assert_eq!(sni.is_some(), whole, "cut at {cut}");
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn sni_with_control_characters_is_dropped() {
        let got = identify(&client_hello(&sni_extension(b"evil\n.example")));
        assert_eq!(got, Some(Protocol::Tls { sni: None, client_hello: true }));
    }

    #[test]
    fn other_records_are_tls_without_client_hello() {
        // Application data, TLS 1.2 record version.
        let got = identify(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]);
        assert_eq!(got, Some(Protocol::Tls { sni: None, client_hello: false }));
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
