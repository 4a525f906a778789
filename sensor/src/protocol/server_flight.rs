//! A TLS server's first flight: the ServerHello and, for TLS 1.2 and
//! earlier, the leaf certificate of its Certificate message.
//!
//! [`server_flight`] takes the first bytes of the server's direction of a TLS
//! connection (several records, possibly cut anywhere) and walks its records:
//! handshake records' fragments are joined (a handshake message may span
//! records, and a record may hold several messages) until a record of
//! another type, the end of the bytes or [`FLIGHT_LIMIT`] bytes. Then the
//! handshake messages are read in order: the ServerHello (as
//! `super::tls::server_hello` reads it) and the Certificate message, whose
//! first entry is parsed with x509-parser when it is whole in the buffer.
//!
//! From TLS 1.3 on the certificate is encrypted (it follows the ServerHello
//! inside application-data records), so a 1.3 flight gives its ServerHello
//! only.
//!
//! The certificate's subject and issuer are their RFC 4514 text as
//! x509-parser writes it, with anything outside printable ASCII shown as `?`
//! and cut at [`MAX_TEXT`] bytes. `self_signed` is true when the subject and
//! the issuer are the same name (compared as DER) and, where the certificate
//! carries both, its authority key identifier is its subject key identifier;
//! `signature_verified` then says whether the signature checks out with the
//! certificate's own public key (`None` when x509-parser cannot check the
//! algorithm, or the certificate is not self-signed).
//!
//! This is not meant for the capture thread's per-packet path: it allocates
//! the joined handshake bytes and the parsed certificate.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::MAX_TEXT;
use super::model::Text;
use super::text::printable_text;
use super::tls::{self, ServerHello};

/// Bytes of a server flight read at most.
pub const FLIGHT_LIMIT: usize = 64 * 1024;

/// Handshake record content type and message types.
const HANDSHAKE: u8 = 22;
const CERTIFICATE: u8 = 11;

/// What a server's first flight told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFlight {
    /// The ServerHello, when it was whole and well-formed.
    pub hello: Option<ServerHello>,
    /// The leaf certificate, when the Certificate message's first entry was
    /// whole and parsed (TLS 1.2 and earlier).
    pub certificate: Option<LeafCertificate>,
}

/// The facts of a leaf certificate that the rules use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafCertificate {
    /// The subject as RFC 4514 text (`CN=example.org, O=...`), bounded and printable.
    pub subject: Text,
    /// The issuer, likewise.
    pub issuer: Text,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject and issuer are the same name and the key identifiers, when
    /// present, agree.
    pub self_signed: bool,
    /// For a self-signed certificate: whether its signature verifies with its
    /// own key (`None` when not self-signed or the algorithm is not supported).
    pub signature_verified: Option<bool>,
}

/// The ServerHello and leaf certificate in the first bytes of a TLS server's
/// direction; `None` when the bytes do not start with a TLS handshake record.
#[must_use]
pub fn server_flight(bytes: &[u8]) -> Option<ServerFlight> {
    let bytes = bytes.get(..FLIGHT_LIMIT).unwrap_or(bytes);
    if bytes.first() != Some(&HANDSHAKE) {
        return None;
    }
    let handshake = join_handshake_records(bytes);
    if handshake.is_empty() {
        return None;
    }
    let mut flight = ServerFlight { hello: None, certificate: None };
    let mut rest = &handshake[..];
    // Each message takes at least its 4-byte header, so this ends.
    while let Some((&kind, _)) = rest.split_first() {
        let Some((body, whole)) = tls::handshake_body(rest) else { break };
        match kind {
            tls::SERVER_HELLO if whole => flight.hello = tls::server_hello(rest),
            CERTIFICATE => {
                flight.certificate = leaf(body);
                break;
            }
            _ => {}
        }
        if !whole {
            break;
        }
        rest = &rest[4 + body.len()..];
    }
    Some(flight)
}

/// The fragments of the handshake records at the start of `bytes`, joined.
fn join_handshake_records(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(header) = bytes.first_chunk::<5>() {
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let plausible = header[0] == HANDSHAKE
            && header[1] == 3
            && header[2] <= 4
            && len > 0
            && len <= usize::from(tls::MAX_RECORD_LEN);
        if !plausible {
            break;
        }
        let fragment = &bytes[5..];
        match fragment.get(..len) {
            Some(whole) => {
                out.extend_from_slice(whole);
                bytes = &fragment[len..];
            }
            None => {
                out.extend_from_slice(fragment);
                break;
            }
        }
    }
    out
}

/// The first certificate of a Certificate message's body, parsed.
fn leaf(body: &[u8]) -> Option<LeafCertificate> {
    // certificate_list<0..2^24-1>, each entry ASN.1Cert<1..2^24-1>.
    let list = body.get(3..)?;
    let len = list.first_chunk::<3>().map(|l| u32::from_be_bytes([0, l[0], l[1], l[2]]))?;
    let der = list.get(3..)?.get(..usize::try_from(len).ok()?)?;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(describe(&cert))
}

/// The facts kept of a parsed certificate.
fn describe(cert: &X509Certificate<'_>) -> LeafCertificate {
    let same_name = cert.subject().as_raw() == cert.issuer().as_raw();
    let mut authority_key = None;
    let mut subject_key = None;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key = aki.key_identifier.as_ref().map(|k| k.0);
            }
            ParsedExtension::SubjectKeyIdentifier(ski) => subject_key = Some(ski.0),
            _ => {}
        }
    }
    let keys_agree = match (authority_key, subject_key) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    };
    let self_signed = same_name && keys_agree;
    let signature_verified = if self_signed {
        match cert.verify_signature(None) {
            Ok(()) => Some(true),
            Err(x509_parser::error::X509Error::SignatureUnsupportedAlgorithm) => None,
            Err(_) => Some(false),
        }
    } else {
        None
    };
    LeafCertificate {
        subject: name_text(&cert.subject().to_string()),
        issuer: name_text(&cert.issuer().to_string()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        self_signed,
        signature_verified,
    }
}

/// A distinguished name's text, printable and at most [`MAX_TEXT`] bytes.
fn name_text(name: &str) -> Text {
    let text = printable_text(name.as_bytes());
    debug_assert!(text.len() <= MAX_TEXT);
    text
}

#[cfg(test)]
mod tests;
