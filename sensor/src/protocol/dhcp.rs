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

/// What a client's message (a BOOTREQUEST on Ethernet) says: the flood
/// detector's DHCP rules count these per client hardware address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientMessage {
    /// The DHCP message type (1 DISCOVER, 3 REQUEST, 8 INFORM...); `None` for BOOTP.
    pub message_type: Option<u8>,
    /// The client hardware address (`chaddr`).
    pub client: [u8; 6],
    /// A relay agent forwarded it (`giaddr` set).
    pub relayed: bool,
}

/// Offsets of `giaddr` and `chaddr` in the BOOTP header.
const GIADDR_AT: usize = 24;
const CHADDR_AT: usize = 28;

/// The client message in `payload`, when it is a DHCP or BOOTP request from an
/// Ethernet client (hardware type 1, address length 6) with the magic cookie.
#[must_use]
pub fn client_message(payload: &[u8]) -> Option<ClientMessage> {
    let [1, 1, 6, hops, ..] = *payload else { return None };
    if hops > 16 || payload.get(COOKIE_AT..COOKIE_AT + 4) != Some(&COOKIE[..]) {
        return None;
    }
    let client: [u8; 6] = payload.get(CHADDR_AT..CHADDR_AT + 6)?.try_into().ok()?;
    let relayed = payload.get(GIADDR_AT..GIADDR_AT + 4).is_some_and(|g| g != [0; 4]);
    Some(ClientMessage { message_type: message_type(&payload[COOKIE_AT + 4..]), client, relayed })
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
    fn client_messages_name_their_hardware_address_and_relay() {
        let m = client_message(&discover()).expect("a discover");
        assert_eq!(m.message_type, Some(1));
        assert_eq!(m.client, [0x00, 0x0c, 0x29, 0xab, 0xcd, 0xef]);
        assert!(!m.relayed);
        let mut relayed = discover();
        relayed[GIADDR_AT..GIADDR_AT + 4].copy_from_slice(&[10, 0, 0, 1]);
        assert!(client_message(&relayed).is_some_and(|m| m.relayed));
        let mut reply = discover();
        reply[0] = 2;
        assert_eq!(client_message(&reply), None, "a server's reply");
        let mut token_ring = discover();
        token_ring[1] = 6;
        assert_eq!(client_message(&token_ring), None, "not Ethernet");
        for cut in 0..discover().len() {
            let _ = client_message(&discover()[..cut]);
        }
    }

    #[test]
    fn no_cookie_no_dhcp() {
        let mut p = discover();
        p[COOKIE_AT] = 0;
        assert_eq!(identify(&p), None);
        assert_eq!(identify(&discover()[..200]), None, "cut before the cookie");
    }
}
