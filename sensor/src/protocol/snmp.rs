//! SNMP (RFC 1157, 3416, 3412): the message's BER frame.
//!
//! Read with `super::ber`: a SEQUENCE covering the bytes, a version
//! INTEGER 0 (v1), 1 (v2c) or 3 (v3); for v1 and v2c a community OCTET
//! STRING of at most [`MAX_COMMUNITY`] bytes and a PDU tag 0xa0–0xa8
//! (GetRequest ... Report); for v3 a msgGlobalData SEQUENCE starting with a
//! msgID INTEGER. The community's value is never kept, only whether it is
//! non-empty.
//!
//! Role: requests (Get, GetNext, Set, GetBulk) and notifications (Trap,
//! InformRequest, SNMPv2-Trap) are sent by the client of the port they go to
//! (an agent's 161, a manager's 162); Response and Report are the server's.
//! A v3 message's PDU may be encrypted: either.

use super::Protocol;
use super::ber;
use super::model::{App, Role};

/// Longest community accepted.
pub const MAX_COMMUNITY: usize = 255;

/// [`App::Snmp`] for an SNMP message.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let (message, rest) = ber::expect(payload, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (version, after) = ber::expect(message.value, 0x02)?;
    let version = u8::try_from(ber::small_uint(&version)?).ok()?;
    match version {
        0 | 1 => {
            let (community, after) = ber::expect(after, 0x04)?;
            if community.cut || community.len > MAX_COMMUNITY {
                return None;
            }
            let pdu = *after.first()?;
            let role = match pdu {
                0xa0 | 0xa1 | 0xa3 | 0xa4 | 0xa5 | 0xa6 | 0xa7 => Role::Client,
                0xa2 | 0xa8 => Role::Server,
                _ => return None,
            };
            if pdu == 0xa4 && version != 0 {
                return None;
            }
            let community = !community.value.is_empty();
            Some(Protocol::new(App::Snmp { version, community }, role))
        }
        3 => {
            let (global, _) = ber::expect(after, 0x30)?;
            ber::expect(global.value, 0x02)?;
            Some(Protocol::new(App::Snmp { version, community: false }, Role::Either))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2c_get_and_response() {
        // get-request for sysDescr.0 with community "public".
        let get = b"\x30\x29\x02\x01\x01\x04\x06public\xa0\x1c\x02\x04\x12\x34\x56\x78\x02\x01\x00\x02\x01\x00\x30\x0e\x30\x0c\x06\x08\x2b\x06\x01\x02\x01\x01\x01\x00\x05\x00";
        let got = identify(get).expect("SNMP");
        assert_eq!((got.app, got.role), (App::Snmp { version: 1, community: true }, Role::Client));
        let mut response = get.to_vec();
        response[13] = 0xa2;
        assert_eq!(identify(&response).map(|p| p.role), Some(Role::Server));
    }

    #[test]
    fn v3_discovery() {
        let discovery = b"\x30\x11\x02\x01\x03\x30\x0c\x02\x02\x4a\x69\x02\x03\x00\xff\xe3\x04\x01\x04";
        let got = identify(discovery).expect("SNMPv3");
        assert_eq!(got.app, App::Snmp { version: 3, community: false });
    }

    #[test]
    fn other_versions_and_pdus_are_not_snmp() {
        assert_eq!(identify(b"\x30\x0c\x02\x01\x02\x04\x06public\xa0\x00"), None, "version 2");
        assert_eq!(identify(b"\x30\x0c\x02\x01\x01\x04\x06public\xa9\x00"), None, "PDU 0xa9");
        assert_eq!(identify(b"\x30\x0c\x02\x01\x01\x04\x06public\xa4\x00"), None, "v1 trap in v2c");
        assert_eq!(identify(b"\x30\x0c\x02\x01\x01\x04\x06public\xa0\x00\x00"), None, "trailing byte");
    }
}
