//! DHCP (RFC 2131) and BOOTP: the fixed BOOTP header and the magic cookie.
//!
//! Matched by hand: op 1 (request) or 2 (reply); a hardware type 1 to 32
//! and address length 1 to 16 (Ethernet: 1 and 6); hops at most 16; the
//! magic cookie 0x63825363 at offset 236; then options up to the end option,
//! of which the message type (53) is reported.
//!
//! Role: a BOOTREQUEST is the client's, a BOOTREPLY the server's.

use super::Protocol;
use super::model::{App, Role};

/// Offset of the magic cookie.
const COOKIE_AT: usize = 236;
const COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
/// Options read at most.
const MAX_OPTIONS: usize = 64;
const MESSAGE_TYPE: u8 = 53;

/// [`App::Dhcp`] for a DHCP or BOOTP message.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let [op, htype, hlen, hops, ..] = *payload else { return None };
    let plausible = matches!(op, 1 | 2)
        && (1..=32).contains(&htype)
        && (1..=16).contains(&hlen)
        && hops <= 16
        && payload.get(COOKIE_AT..COOKIE_AT + 4) == Some(&COOKIE[..]);
    if !plausible {
        return None;
    }
    let role = if op == 1 { Role::Client } else { Role::Server };
    Some(Protocol::new(App::Dhcp { message_type: message_type(&payload[COOKIE_AT + 4..]) }, role))
}

/// The message type option among `options`.
fn message_type(mut options: &[u8]) -> Option<u8> {
    for _ in 0..MAX_OPTIONS {
        match *options {
            [0, ref rest @ ..] => options = rest,
            [MESSAGE_TYPE, 1, kind, ..] => return Some(kind),
            [255, ..] | [] => return None,
            [_, len, ref rest @ ..] => options = rest.get(usize::from(len)..)?,
            [_] => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discover() -> Vec<u8> {
        let mut p = vec![1, 1, 6, 0, 0x39, 0x03, 0xf3, 0x26];
        p.resize(28, 0);
        p.extend_from_slice(&[0x00, 0x0c, 0x29, 0xab, 0xcd, 0xef]);
        p.resize(COOKIE_AT, 0);
        p.extend_from_slice(&COOKIE);
        p.extend_from_slice(&[MESSAGE_TYPE, 1, 1, 55, 3, 1, 3, 6, 255]);
        p
    }

    #[test]
    fn discover_and_offer() {
        assert_eq!(
            identify(&discover()),
            Some(Protocol::new(App::Dhcp { message_type: Some(1) }, Role::Client))
        );
        let mut offer = discover();
        offer[0] = 2;
        offer[COOKIE_AT + 6] = 2;
        assert_eq!(identify(&offer), Some(Protocol::new(App::Dhcp { message_type: Some(2) }, Role::Server)));
    }

    #[test]
    fn no_cookie_no_dhcp() {
        let mut p = discover();
        p[COOKIE_AT] = 0;
        assert_eq!(identify(&p), None);
        assert_eq!(identify(&discover()[..200]), None, "cut before the cookie");
    }
}
