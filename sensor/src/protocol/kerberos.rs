//! Kerberos 5 (RFC 4120): AS-REQ, AS-REP, TGS-REQ, TGS-REP and KRB-ERROR,
//! over UDP and over TCP (after a 4-byte length).
//!
//! Read with `super::ber`: an application tag 10, 11, 12, 13 or 30 whose
//! length covers the bytes, a SEQUENCE inside, then its first two fields:
//! `pvno` (context tag 1 in a request, 0 otherwise) holding INTEGER 5, and
//! `msg-type` (the next context tag) holding the application tag's number.
//! The realm is read where it is cheap: a request's `req-body` realm
//! (field 2), a reply's `crealm` (field 3) and an error's `realm` (field 9),
//! when whole and printable.
//!
//! Role: requests are the client's, replies and errors the server's (the KDC's).

use super::Protocol;
use super::ber::{self, Tlv};
use super::model::{App, Role, Text};
use super::text::{ascii_token, be32};

const AS_REQ: u8 = 10;
const AS_REP: u8 = 11;
const TGS_REQ: u8 = 12;
const TGS_REP: u8 = 13;
const KRB_ERROR: u8 = 30;
/// Fields read at most when looking for the realm.
const MAX_FIELDS: usize = 12;

/// [`App::Kerberos`] for a message in a UDP datagram.
pub(super) fn identify_udp(payload: &[u8]) -> Option<Protocol> {
    message(payload)
}

/// [`App::Kerberos`] for a message after its TCP record length.
pub(super) fn identify_tcp(payload: &[u8]) -> Option<Protocol> {
    let len = usize::try_from(be32(payload, 0)?).ok()?;
    let rest = &payload[4..];
    if len > 1 << 20 || rest.len() > len {
        return None;
    }
    message(rest)
}

fn message(payload: &[u8]) -> Option<Protocol> {
    let (outer, rest) = ber::read(payload)?;
    let msg_type = outer.tag.checked_sub(0x60)?;
    if !matches!(msg_type, AS_REQ | AS_REP | TGS_REQ | TGS_REP | KRB_ERROR) || !rest.is_empty() {
        return None;
    }
    let (sequence, _) = ber::expect(outer.value, 0x30)?;
    let request = matches!(msg_type, AS_REQ | TGS_REQ);
    let first_field = if request { 0xa1 } else { 0xa0 };
    let (pvno, after) = ber::expect(sequence.value, first_field)?;
    let (type_field, after) = ber::expect(after, first_field + 1)?;
    let pvno_ok = ber::read(pvno.value).and_then(|(v, _)| ber::small_uint(&v)) == Some(5);
    let type_ok =
        ber::read(type_field.value).and_then(|(v, _)| ber::small_uint(&v)) == Some(u32::from(msg_type));
    if !pvno_ok || !type_ok {
        return None;
    }
    let realm = match msg_type {
        AS_REQ | TGS_REQ => field(after, 0xa4).and_then(|body| ber::read(body.value)).and_then(|(seq, _)| {
            (seq.tag == 0x30).then_some(seq.value).and_then(|fields| field(fields, 0xa2)).and_then(realm)
        }),
        AS_REP | TGS_REP => field(after, 0xa3).and_then(realm),
        _ => field(after, 0xa9).and_then(realm),
    };
    let role = if request { Role::Client } else { Role::Server };
    Some(Protocol::new(App::Kerberos { msg_type, realm }, role))
}

/// The field tagged `tag` among the fields at the start of `fields`.
fn field(mut fields: &[u8], tag: u8) -> Option<Tlv<'_>> {
    for _ in 0..MAX_FIELDS {
        let (tlv, rest) = ber::read(fields)?;
        if tlv.tag == tag {
            return Some(tlv);
        }
        if tlv.cut {
            return None;
        }
        fields = rest;
    }
    None
}

/// A realm: a context field holding a whole, printable GeneralString.
fn realm(wrapper: Tlv<'_>) -> Option<Text> {
    let (name, _) = ber::expect(wrapper.value, 0x1b)?;
    if name.cut {
        return None;
    }
    ascii_token(name.value, super::MAX_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AS-REQ for krbtgt in EXAMPLE.ORG (minimal req-body: kdc-options, realm).
    fn as_req() -> Vec<u8> {
        let realm = b"\xa2\x0d\x1b\x0bEXAMPLE.ORG";
        let options = b"\xa0\x07\x03\x05\x00\x50\x80\x00\x00";
        let mut body = vec![0x30, u8::try_from(options.len() + realm.len()).expect("short")];
        body.extend_from_slice(options);
        body.extend_from_slice(realm);
        let mut fields = b"\xa1\x03\x02\x01\x05\xa2\x03\x02\x01\x0a".to_vec();
        fields.push(0xa4);
        fields.push(u8::try_from(body.len()).expect("short"));
        fields.extend_from_slice(&body);
        let mut seq = vec![0x30, u8::try_from(fields.len()).expect("short")];
        seq.extend_from_slice(&fields);
        let mut msg = vec![0x6a, u8::try_from(seq.len()).expect("short")];
        msg.extend_from_slice(&seq);
        msg
    }

    #[test]
    fn as_req_over_udp_and_tcp_gives_its_realm() {
        let expected =
            Protocol::new(App::Kerberos { msg_type: 10, realm: Some("EXAMPLE.ORG".into()) }, Role::Client);
        assert_eq!(identify_udp(&as_req()), Some(expected.clone()));
        let mut framed = u32::try_from(as_req().len()).expect("short").to_be_bytes().to_vec();
        framed.extend_from_slice(&as_req());
        assert_eq!(identify_tcp(&framed), Some(expected));
        assert_eq!(identify_tcp(&as_req()), None, "no record length");
    }

    #[test]
    fn krb_error_is_the_kdc() {
        let fields = b"\xa0\x03\x02\x01\x05\xa1\x03\x02\x01\x1e\xa4\x11\x18\x0f20240101000000Z\xa5\x03\x02\x01\x00\xa6\x03\x02\x01\x19\xa9\x0d\x1b\x0bEXAMPLE.ORG";
        let mut seq = vec![0x30, u8::try_from(fields.len()).expect("short")];
        seq.extend_from_slice(fields);
        let mut msg = vec![0x7e, u8::try_from(seq.len()).expect("short")];
        msg.extend_from_slice(&seq);
        let got = identify_udp(&msg).expect("KRB-ERROR");
        assert_eq!(got.role, Role::Server);
        assert_eq!(got.app, App::Kerberos { msg_type: 30, realm: Some("EXAMPLE.ORG".into()) });
    }

    #[test]
    fn mismatched_type_or_version_is_not_kerberos() {
        let mut m = as_req();
        m[13] = 0x0c; // msg-type 12 inside an AS-REQ tag
        assert_eq!(identify_udp(&m), None);
        let mut m = as_req();
        m[8] = 4; // pvno 4
        assert_eq!(identify_udp(&m), None);
    }
}
