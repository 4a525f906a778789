//! NetBIOS over TCP/IP (RFC 1002): the name service (UDP 137) and the
//! session service's request and responses (TCP 139).
//!
//! Matched by hand. The name service uses DNS's header, so it is asked
//! before [`super::dns`]: a message is NetBIOS when its opcode is a NetBIOS
//! one (0 query, 5 registration, 6 release, 7 WACK, 8 or 9 refresh), it has
//! one question or one answer and nothing else but up to one additional
//! record, and the first name is a NetBIOS name: length 32, then 32 letters
//! `A` to `P` (the half-byte encoding). The session service's SESSION
//! REQUEST (0x81) carries two such names; a POSITIVE SESSION RESPONSE (0x82)
//! is the four bytes `82 00 00 00`; a NEGATIVE SESSION RESPONSE (0x83) one
//! error code 0x80–0x8f.
//!
//! Role: a name query or registration and a session request are the
//! client's; a name response and session responses the server's.

use super::Protocol;
use super::model::{App, Role};
use super::text::be16;

/// Length byte and size of an encoded NetBIOS name.
const NAME_LEN: u8 = 32;

/// Whether `bytes` starts with an encoded NetBIOS name (length 32, `A`–`P`).
fn encoded_name(bytes: &[u8]) -> bool {
    bytes.first() == Some(&NAME_LEN)
        && bytes.get(1..=usize::from(NAME_LEN)).is_some_and(|n| n.iter().all(|b| (b'A'..=b'P').contains(b)))
}

/// [`App::Netbios`] for a name-service datagram.
pub(super) fn identify_udp(payload: &[u8]) -> Option<Protocol> {
    let flags = be16(payload, 2)?;
    let opcode = (flags >> 11) & 0x0f;
    let response = flags & 0x8000 != 0;
    let counts = [be16(payload, 4)?, be16(payload, 6)?, be16(payload, 8)?, be16(payload, 10)?];
    let plausible = matches!(opcode, 0 | 5..=9)
        && flags & 0x0040 == 0
        && matches!(counts, [1, 0, 0, 0 | 1] | [0, 1, 0, 0 | 1])
        && encoded_name(payload.get(12..)?);
    let role = if response { Role::Server } else { Role::Client };
    plausible.then_some(Protocol::new(App::Netbios, role))
}

/// [`App::Netbios`] for a session-service request or response.
pub(super) fn identify_tcp(payload: &[u8]) -> Option<Protocol> {
    let [kind, flags, hi, lo, rest @ ..] = payload else { return None };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if *flags != 0 {
        return None;
    }
    match kind {
        0x81 => {
            let plausible = len >= 68 && rest.len() <= len && encoded_name(rest);
            plausible.then_some(Protocol::new(App::Netbios, Role::Client))
        }
        0x82 => (len == 0 && rest.is_empty()).then_some(Protocol::new(App::Netbios, Role::Server)),
        0x83 => matches!(rest, [0x80..=0x8f]).then_some(Protocol::new(App::Netbios, Role::Server)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `WORKGROUP<1d>` in the half-byte encoding.
    const NAME: &[u8; 32] = b"FHEPFCELEHFCEPFFFACACACACACACABN";

    #[test]
    fn name_query_and_registration() {
        let mut query = vec![0x80, 0x94, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 32];
        query.extend_from_slice(NAME);
        query.extend_from_slice(&[0, 0, 0x20, 0, 1]);
        assert_eq!(identify_udp(&query), Some(Protocol::new(App::Netbios, Role::Client)));
        let mut registration = query.clone();
        registration[2] = 0x29; // opcode 5, RD
        registration[11] = 1; // one additional record
        assert_eq!(identify_udp(&registration), Some(Protocol::new(App::Netbios, Role::Client)));
        let mut dns_like = query.clone();
        dns_like[13] = b'Z';
        assert_eq!(identify_udp(&dns_like), None, "not the half-byte encoding");
    }

    #[test]
    fn session_request_and_responses() {
        let mut request = vec![0x81, 0, 0, 68, 32];
        request.extend_from_slice(NAME);
        request.push(0);
        request.push(32);
        request.extend_from_slice(NAME);
        request.push(0);
        assert_eq!(identify_tcp(&request), Some(Protocol::new(App::Netbios, Role::Client)));
        assert_eq!(identify_tcp(&[0x82, 0, 0, 0]), Some(Protocol::new(App::Netbios, Role::Server)));
        assert_eq!(identify_tcp(&[0x83, 0, 0, 1, 0x82]), Some(Protocol::new(App::Netbios, Role::Server)));
        assert_eq!(identify_tcp(&[0x82, 0, 0, 0, 1]), None);
    }
}
