//! LDAP (RFC 4511) over TCP and CLDAP over UDP: an LDAPMessage's BER frame.
//!
//! `LDAPMessage ::= SEQUENCE { messageID INTEGER (0..2^31-1), protocolOp
//! CHOICE { [APPLICATION n] ... }, controls [0] OPTIONAL }`, read with
//! `super::ber`: a SEQUENCE (0x30) whose length covers the bytes, a whole
//! messageID of one to four bytes, then a protocolOp whose tag is one of
//! LDAP's (bindRequest 0x60 ... intermediateResponse 0x79, with the
//! primitive unbindRequest 0x42, delRequest 0x4a and abandonRequest 0x50)
//! and fits the SEQUENCE. A bindRequest must start with its version
//! INTEGER 1 to 3; a response (LDAPResult) with its resultCode ENUMERATED;
//! a searchRequest with its baseObject OCTET STRING.
//!
//! Role: requests are the client's, responses and search results the server's.

use super::Protocol;
use super::ber;
use super::model::{App, Role};

const REQUESTS: [u8; 10] = [0, 2, 3, 6, 8, 10, 12, 14, 16, 23];
const RESPONSES: [u8; 11] = [1, 4, 5, 7, 9, 11, 13, 15, 19, 24, 25];
/// Operations whose tag is primitive (their value is not a SEQUENCE).
const PRIMITIVE: [u8; 3] = [2, 10, 16];

/// [`App::Ldap`] for an LDAPMessage.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let (message, rest) = ber::expect(payload, 0x30)?;
    if !rest.is_empty() && !message.cut && rest.first() != Some(&0x30) {
        return None;
    }
    let (id, after_id) = ber::read(message.value)?;
    ber::small_uint(&id).filter(|&id| id < 1 << 31)?;
    let (op, _) = ber::read(after_id)?;
    let number = op.tag & 0x1f;
    let class_ok = if PRIMITIVE.contains(&number) { op.tag & 0xe0 == 0x40 } else { op.tag & 0xe0 == 0x60 };
    let role = if REQUESTS.contains(&number) {
        Role::Client
    } else if RESPONSES.contains(&number) {
        Role::Server
    } else {
        return None;
    };
    if !class_ok || (op.cut && !message.cut) {
        return None;
    }
    let inner_ok = match number {
        0 => ber::read(op.value)
            .is_some_and(|(v, _)| ber::small_uint(&v).is_some_and(|v| (1..=3).contains(&v))),
        3 => ber::read(op.value).is_some_and(|(base, _)| base.tag == 0x04),
        1 | 5 | 7 | 9 | 11 | 13 | 15 | 24 => ber::read(op.value).is_some_and(|(code, _)| code.tag == 0x0a),
        _ => true,
    };
    inner_ok.then_some(Protocol::new(App::Ldap { operation: number }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ldap(operation: u8, role: Role) -> Option<Protocol> {
        Some(Protocol::new(App::Ldap { operation }, role))
    }

    #[test]
    fn bind_request_and_response() {
        // Simple bind as cn=admin,dc=example,dc=org with "secret", message id 1.
        let mut op = vec![0x02, 0x01, 0x03, 0x04, 26];
        op.extend_from_slice(b"cn=admin,dc=example,dc=org");
        op.extend_from_slice(b"\x80\x06secret");
        let mut msg = vec![0x02, 0x01, 0x01, 0x60, u8::try_from(op.len()).expect("short")];
        msg.extend_from_slice(&op);
        let mut full = vec![0x30, u8::try_from(msg.len()).expect("short")];
        full.extend_from_slice(&msg);
        assert_eq!(identify(&full), ldap(0, Role::Client));
        let response = b"\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00";
        assert_eq!(identify(response), ldap(1, Role::Server));
    }

    #[test]
    fn cldap_search_request() {
        // An AD domain controller locator ping: searchRequest with an empty base.
        let search = b"\x30\x25\x02\x01\x01\x63\x20\x04\x00\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00\xa3\x0b\x04\x05NtVer\x04\x02\x06\x00\x30\x00";
        assert_eq!(identify(search), ldap(3, Role::Client));
    }

    #[test]
    fn other_ber_is_not_ldap() {
        // SNMP v2c get-request: a SEQUENCE whose second element is an OCTET STRING.
        assert_eq!(identify(b"\x30\x0c\x02\x01\x01\x04\x06public\xa0\x00"), None);
        // A bindRequest with version 9.
        assert_eq!(identify(b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x09\x04\x00\x80\x00"), None);
        // Application tag 30 is not an LDAP operation.
        assert_eq!(identify(b"\x30\x07\x02\x01\x01\x7e\x02\x0a\x00"), None);
    }
}
