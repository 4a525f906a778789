//! SIP (RFC 3261) and RTSP (RFC 2326, 7826): HTTP-like start lines with
//! their own versions, matched by hand.
//!
//! - A request line is `METHOD target VERSION`: the method 1 to
//!   [`MAX_METHOD`] capital letters (and `_`), the target a run of printable
//!   characters, the version `SIP/2.0`, `RTSP/1.0` or `RTSP/2.0`, then the line
//!   end. When the bytes end inside the request line, the target's scheme
//!   decides: `sip:`, `sips:` or `tel:` for SIP, `rtsp://`, `rtsps://` or
//!   `rtspu://` for RTSP.
//! - A status line is the version, a space, a status from 100 to 699 and a space.
//!
//! httparse refuses these versions, so [`super::http`] does not take them;
//! they are asked first all the same, as an RTSP `OPTIONS` or SIP `OPTIONS`
//! cut before its version would read as an HTTP request.
//!
//! Role: a request is the client's, a response the server's.

use super::Protocol;
use super::model::{App, Role, StartLine};
use super::text::{ascii_token, first_line};

/// Longest method accepted (`SET_PARAMETER` has 13 characters).
pub const MAX_METHOD: usize = 16;
/// Longest start line read.
const MAX_LINE: usize = 2048;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Sip,
    Rtsp,
}

fn family_of_version(version: &[u8]) -> Option<Family> {
    match version {
        b"SIP/2.0" => Some(Family::Sip),
        b"RTSP/1.0" | b"RTSP/2.0" => Some(Family::Rtsp),
        _ => None,
    }
}

fn family_of_target(target: &[u8]) -> Option<Family> {
    let starts = |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
    if starts(b"sip:") || starts(b"sips:") || starts(b"tel:") {
        Some(Family::Sip)
    } else if starts(b"rtsp://") || starts(b"rtsps://") || starts(b"rtspu://") {
        Some(Family::Rtsp)
    } else {
        None
    }
}

fn app(family: Family, line: StartLine) -> App {
    match family {
        Family::Sip => App::Sip(line),
        Family::Rtsp => App::Rtsp(line),
    }
}

/// [`App::Sip`] or [`App::Rtsp`] for a request or status line.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let first = payload.first()?;
    if (*first == b'S' || *first == b'R')
        && let Some(found) = status(payload)
    {
        return Some(found);
    }
    request(payload)
}

fn status(payload: &[u8]) -> Option<Protocol> {
    let space = payload.iter().take(9).position(|&b| b == b' ')?;
    let family = family_of_version(&payload[..space])?;
    let code = payload.get(space + 1..space + 5)?;
    let digits = code[..3].iter().all(u8::is_ascii_digit) && code[3] == b' ';
    let status = code[..3].iter().fold(0u16, |acc, &d| acc * 10 + u16::from(d.wrapping_sub(b'0')));
    if !digits || !(100..=699).contains(&status) {
        return None;
    }
    Some(Protocol::new(app(family, StartLine { method: None, status: Some(status) }), Role::Server))
}

fn request(payload: &[u8]) -> Option<Protocol> {
    let line = first_line(payload, MAX_LINE);
    let method_len = line.iter().take(MAX_METHOD + 1).position(|&b| b == b' ')?;
    let method = &line[..method_len];
    if method.is_empty() || !method.iter().all(|b| b.is_ascii_uppercase() || *b == b'_') {
        return None;
    }
    let rest = &line[method_len + 1..];
    let target_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let target = &rest[..target_len];
    if target.is_empty() || !target.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let ended = line.len() < payload.len();
    let family = match rest.get(target_len + 1..) {
        Some(version) if ended => family_of_version(version)?,
        // The bytes end inside the line: the target's scheme decides.
        _ if !ended => family_of_target(target)?,
        _ => return None,
    };
    let line = StartLine { method: ascii_token(method, MAX_METHOD), status: None };
    Some(Protocol::new(app(family, line), Role::Client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip_request(method: &str) -> Option<Protocol> {
        Some(Protocol::new(App::Sip(StartLine { method: Some(method.into()), status: None }), Role::Client))
    }

    #[test]
    fn sip_requests_and_responses() {
        assert_eq!(
            identify(b"INVITE sip:bob@example.org SIP/2.0\r\nVia: SIP/2.0/UDP pc33\r\n"),
            sip_request("INVITE")
        );
        assert_eq!(identify(b"OPTIONS sip:100@10.0.0.1 SIP/2.0\r\n"), sip_request("OPTIONS"));
        assert_eq!(identify(b"REGISTER sip:example.org;transport=udp"), sip_request("REGISTER"), "cut");
        let ok = Protocol::new(App::Sip(StartLine { method: None, status: Some(200) }), Role::Server);
        assert_eq!(identify(b"SIP/2.0 200 OK\r\n"), Some(ok));
    }

    #[test]
    fn rtsp_requests_and_responses() {
        let got = identify(b"DESCRIBE rtsp://cam.example/stream1 RTSP/1.0\r\nCSeq: 2\r\n").expect("RTSP");
        assert_eq!((got.name(), got.role), ("rtsp", Role::Client));
        let got = identify(b"RTSP/1.0 401 Unauthorized\r\n").expect("RTSP");
        assert_eq!((got.name(), got.role), ("rtsp", Role::Server));
        let got = identify(b"OPTIONS rtsp://10.0.0.5:554/").expect("cut RTSP");
        assert_eq!(got.name(), "rtsp");
    }

    #[test]
    fn http_and_text_are_neither() {
        assert_eq!(identify(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(identify(b"OPTIONS * HTTP/1.1\r\n"), None);
        assert_eq!(identify(b"SIP/2.0 99 Weird\r\n"), None);
        assert_eq!(identify(b"THE END\r\n"), None);
        assert_eq!(identify(b"GET /cut/url"), None, "cut HTTP: its scheme is not SIP's or RTSP's");
    }
}
