//! MySQL (and MariaDB): the server's handshake (protocol 10) or an early
//! error, and the client's handshake response or SSL request.
//!
//! Every MySQL packet starts with a 3-byte little-endian length and a
//! sequence number, read by hand. The length must match the bytes (or exceed
//! them when the payload is cut):
//!
//! - server greeting: sequence 0, protocol byte 10, a version string of 1 to
//!   [`MAX_VERSION`] printable characters starting with a digit and ended by
//!   NUL, then a 4-byte thread id, 8 bytes of auth data and a zero filler;
//!   the version string is reported;
//! - server error before the handshake (`Host ... is not allowed to connect`):
//!   sequence 0, 0xff, an error code from 1000 to 4999, then text;
//! - client handshake response or SSL request: sequence 1, capability flags
//!   with CLIENT_PROTOCOL_41, then after max-packet-size and charset 23 zero
//!   bytes (which random data almost never has).
//!
//! Role: the greeting and error are the server's, the rest the client's.

use super::Protocol;
use super::model::{App, Role};
use super::text::{c_string, le32, printable_text};

/// Longest server version string accepted.
pub const MAX_VERSION: usize = 64;
/// CLIENT_PROTOCOL_41 capability flag.
const PROTOCOL_41: u32 = 0x0200;

/// [`App::Mysql`] when `payload` starts with a handshake packet.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let header: &[u8; 4] = payload.first_chunk()?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let body = &payload[4..];
    // The packet is the whole payload; a cut one may claim more.
    if len == 0 || body.len() > len {
        return None;
    }
    match header[3] {
        0 => greeting(body, len).or_else(|| early_error(body)),
        1 => client(body),
        _ => None,
    }
}

fn greeting(body: &[u8], len: usize) -> Option<Protocol> {
    if body.first() != Some(&10) || len < 1 + 2 + 4 + 8 + 1 {
        return None;
    }
    let (version, after) = c_string(body, 1, MAX_VERSION)?;
    let plausible = version.first().is_some_and(u8::is_ascii_digit)
        && version.iter().all(u8::is_ascii_graphic)
        && body.get(after + 12).is_none_or(|&filler| filler == 0);
    if !plausible {
        return None;
    }
    let server_version = Some(printable_text(version));
    Some(Protocol::new(App::Mysql { server_version }, Role::Server))
}

fn early_error(body: &[u8]) -> Option<Protocol> {
    let [0xff, lo, hi, text @ ..] = body else { return None };
    let code = u16::from_le_bytes([*lo, *hi]);
    let text = &text[..text.len().min(32)];
    let plausible =
        (1000..5000).contains(&code) && !text.is_empty() && text.iter().all(|&b| (0x20..0x7f).contains(&b));
    plausible.then_some(Protocol::new(App::Mysql { server_version: None }, Role::Server))
}

fn client(body: &[u8]) -> Option<Protocol> {
    let caps = le32(body, 0)?;
    let filler = body.get(9..32)?;
    let plausible = caps & PROTOCOL_41 != 0 && filler.iter().all(|&b| b == 0);
    plausible.then_some(Protocol::new(App::Mysql { server_version: None }, Role::Client))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MySQL 8.0 greeting (the shape of the one in
    /// proto_nonstandard_port's MySQL-on-5432 capture): length 74, sequence 0.
    fn greeting_packet() -> Vec<u8> {
        let mut body = vec![10];
        body.extend_from_slice(b"8.0.36\0");
        body.extend_from_slice(&[0x0d, 0, 0, 0]); // thread id
        body.extend_from_slice(b"abcdefgh\0"); // auth data part 1, filler
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0x02, 0x00, 0xff, 0xdf, 0x15]);
        body.extend_from_slice(&[0; 10]);
        body.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
        let mut p = u32::try_from(body.len()).expect("short").to_le_bytes().to_vec();
        p[3] = 0;
        p.extend_from_slice(&body);
        p
    }

    #[test]
    fn server_greeting_gives_its_version() {
        let got = identify(&greeting_packet()).expect("MySQL");
        assert_eq!(got.role, Role::Server);
        assert_eq!(got.app, App::Mysql { server_version: Some("8.0.36".into()) });
        assert!(identify(&greeting_packet()[..30]).is_some(), "cut after the filler");
    }

    #[test]
    fn client_handshake_response_and_ssl_request() {
        let mut ssl = vec![32, 0, 0, 1];
        ssl.extend_from_slice(&[0x85, 0xae, 0xff, 0x19, 0, 0, 0, 1, 0x2d]);
        ssl.extend_from_slice(&[0; 23]);
        let got = identify(&ssl).expect("MySQL");
        assert_eq!((got.role, got.name()), (Role::Client, "mysql"));
        ssl[20] = 1;
        assert_eq!(identify(&ssl), None, "filler not zero");
    }

    #[test]
    fn early_error_is_the_server() {
        let mut err = vec![0, 0, 0, 0, 0xff, 0x6a, 0x04];
        err.extend_from_slice(b"Host '10.0.0.9' is not allowed to connect to this MySQL server");
        err[0] = u8::try_from(err.len() - 4).expect("short");
        assert_eq!(identify(&err).map(|p| p.role), Some(Role::Server));
    }

    #[test]
    fn near_misses_are_not_mysql() {
        let mut p = greeting_packet();
        p[4] = 9;
        assert_eq!(identify(&p), None, "protocol 9");
        let mut p = greeting_packet();
        p[5] = b'x';
        assert_eq!(identify(&p), None, "version not starting with a digit");
        let mut p = greeting_packet();
        p.extend_from_slice(b"trailing");
        assert_eq!(identify(&p), None, "length does not match");
    }
}
