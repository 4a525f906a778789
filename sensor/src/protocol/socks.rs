//! SOCKS proxies: SOCKS4 and 4a requests and replies, SOCKS5 (RFC 1928)
//! greetings, method selections, requests and replies.
//!
//! Matched by hand. Each of these messages is the whole first payload of its
//! direction, so the length must match exactly:
//!
//! - SOCKS4 request: version 4, command 1 (connect) or 2 (bind), port, IPv4
//!   address, a user id of printable characters ended by NUL; for 4a the
//!   address is 0.0.0.x (x ≠ 0) and a NUL-ended domain name follows.
//! - SOCKS4 reply: version 0, status 90–93, port and address (8 bytes).
//! - SOCKS5 greeting: version 5, 1 to 32 methods, each a defined one (0x00–0x09
//!   or private 0x80–0xfe), nothing after them.
//! - SOCKS5 method selection: version 5 and the method chosen: none (0),
//!   username/password (2) or "no acceptable method" (0xff); 2 bytes. (Other
//!   methods are rare and two bytes are too little to take them on trust.)
//! - SOCKS5 request: version 5, command 1–3, reserved 0, an address of type 1
//!   (IPv4), 3 (domain) or 4 (IPv6), and a port. The reply is the same with a
//!   status 0–8 for the command.
//!
//! A request's destination is reported ([`SocksTarget`]). Role: requests and
//! greetings are the client's, replies and method selections the server's.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::model::{App, Role, SocksTarget, Text};
use super::text::{ascii_token, be16, c_string};
use super::{MAX_TEXT, Protocol};

/// Longest SOCKS4 user id accepted.
pub const MAX_USER_ID: usize = 255;
/// Most methods a SOCKS5 greeting offers here.
pub const MAX_METHODS: usize = 32;

/// [`App::Socks4`] or [`App::Socks5`] for a SOCKS message.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    match payload.first()? {
        4 => socks4_request(payload),
        0 => socks4_reply(payload),
        5 => socks5(payload),
        _ => None,
    }
}

fn target(host: Text, port: u16) -> Option<Box<SocksTarget>> {
    Some(Box::new(SocksTarget { host, port }))
}

fn socks4_request(p: &[u8]) -> Option<Protocol> {
    let [4, command @ (1 | 2), ph, pl, a, b, c, d, ..] = *p else { return None };
    let (user, after) = c_string(p, 8, MAX_USER_ID)?;
    if !user.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let port = u16::from_be_bytes([ph, pl]);
    let socks4a = [a, b, c] == [0, 0, 0] && d != 0;
    let (host, end) = if socks4a {
        let (domain, end) = c_string(p, after, MAX_TEXT)?;
        (ascii_token(domain, MAX_TEXT)?, end)
    } else {
        (Ipv4Addr::new(a, b, c, d).to_string().into(), after)
    };
    let _ = command;
    (end == p.len()).then(|| Protocol::new(App::Socks4 { target: target(host, port) }, Role::Client))
}

fn socks4_reply(p: &[u8]) -> Option<Protocol> {
    let plausible = p.len() == 8 && matches!(p[1], 90..=93);
    plausible.then_some(Protocol::new(App::Socks4 { target: None }, Role::Server))
}

fn socks5(p: &[u8]) -> Option<Protocol> {
    let method_ok = |m: &u8| matches!(m, 0x00..=0x09 | 0x80..=0xfe);
    match *p {
        [5, 0x00 | 0x02 | 0xff] => {
            return Some(Protocol::new(App::Socks5 { target: None }, Role::Server));
        }
        [5, n, ref methods @ ..]
            if usize::from(n) == methods.len()
                && (1..=MAX_METHODS).contains(&usize::from(n))
                && methods.iter().all(method_ok) =>
        {
            return Some(Protocol::new(App::Socks5 { target: None }, Role::Client));
        }
        _ => {}
    }
    // A request or reply: version, command or status, reserved 0, address type.
    let [5, code, 0, kind, ..] = *p else { return None };
    let (host, end): (Text, usize) = match kind {
        1 => (Ipv4Addr::from(*p.get(4..8)?.first_chunk::<4>()?).to_string().into(), 8),
        3 => {
            let len = usize::from(*p.get(4)?);
            (ascii_token(p.get(5..5 + len)?, MAX_TEXT)?, 5 + len)
        }
        4 => (Ipv6Addr::from(*p.get(4..20)?.first_chunk::<16>()?).to_string().into(), 20),
        _ => return None,
    };
    let port = be16(p, end)?;
    if end + 2 != p.len() {
        return None;
    }
    // Commands 1–3 and replies 0–8 overlap; a reply's address is the proxy's
    // bound one, so 0 (succeeded) with 0.0.0.0 or a status above 3 is a reply.
    let reply = code == 0 || code > 3;
    if code > 8 {
        return None;
    }
    if reply {
        Some(Protocol::new(App::Socks5 { target: None }, Role::Server))
    } else {
        Some(Protocol::new(App::Socks5 { target: target(host, port) }, Role::Client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(p: Option<Protocol>) -> Option<(String, u16)> {
        match p?.app {
            App::Socks4 { target } | App::Socks5 { target } => target.map(|t| (t.host.to_string(), t.port)),
            _ => None,
        }
    }

    #[test]
    fn socks4_and_4a_requests_give_their_target() {
        let got = identify(b"\x04\x01\x01\xbb\x5d\xb8\xd8\x22root\x00");
        assert_eq!(got.as_ref().map(Protocol::name), Some("socks4"));
        assert_eq!(target_of(got), Some(("93.184.216.34".into(), 443)));
        let got = identify(b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.org\x00");
        assert_eq!(target_of(got), Some(("example.org".into(), 80)));
        assert_eq!(identify(b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.org\x00x"), None, "trailing byte");
        assert_eq!(identify(b"\x04\x01\x00\x50\x01\x02\x03\x04us\x01er\x00"), None, "unprintable user");
    }

    #[test]
    fn socks4_reply() {
        let got = identify(b"\x00\x5a\x00\x00\x00\x00\x00\x00").expect("reply");
        assert_eq!((got.name(), got.role), ("socks4", Role::Server));
        assert_eq!(identify(b"\x00\x5a\x00\x00\x00\x00\x00"), None);
    }

    #[test]
    fn socks5_greeting_selection_request_and_reply() {
        let got = identify(b"\x05\x02\x00\x02").expect("greeting");
        assert_eq!((got.name(), got.role), ("socks5", Role::Client));
        assert_eq!(identify(b"\x05\x00").map(|p| p.role), Some(Role::Server));
        let got = identify(b"\x05\x01\x00\x03\x0bexample.org\x01\xbb");
        assert_eq!(got.as_ref().map(|p| p.role), Some(Role::Client));
        assert_eq!(target_of(got), Some(("example.org".into(), 443)));
        let got = identify(b"\x05\x00\x00\x01\x0a\x00\x00\x01\x9c\x40").expect("reply");
        assert_eq!(got.role, Role::Server);
        assert_eq!(identify(b"\x05\x03\x00\x02"), None, "greeting with a count that does not match");
        assert_eq!(identify(b"\x05\x01\x00\x07\x00\x00"), None, "address type 7");
    }
}
