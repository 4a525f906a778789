//! MS SQL Server: a TDS PRELOGIN message (MS-TDS 2.2.6.5) from the client,
//! or the server's PRELOGIN response.
//!
//! Matched by hand: the 8-byte TDS header (type 0x12 for the client's
//! PRELOGIN, 0x04 for the server's tabular response; status with only the
//! end-of-message and reset bits; a length from 8 to 4096 that covers the
//! bytes; window 0), then the PRELOGIN option table: 5-byte entries (token,
//! offset, length) whose first token is VERSION (0) with a 6-byte value,
//! tokens ascending and known (0 to 8), offsets inside the message, ended by
//! 0xff.
//!
//! Role: type 0x12 is the client's, 0x04 the server's.

use super::Protocol;
use super::model::{App, Role};
use super::text::be16;

const PRELOGIN: u8 = 0x12;
const RESPONSE: u8 = 0x04;
const TERMINATOR: u8 = 0xff;
const HEADER_LEN: usize = 8;
/// Option entries read at most.
const MAX_OPTIONS: usize = 16;

/// [`App::Mssql`] for a PRELOGIN message.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let header: &[u8; HEADER_LEN] = payload.first_chunk()?;
    let role = match header[0] {
        PRELOGIN => Role::Client,
        RESPONSE => Role::Server,
        _ => return None,
    };
    let len = usize::from(be16(payload, 2)?);
    if header[1] & !0x09 != 0 || header[7] != 0 || len <= HEADER_LEN || len > 4096 || payload.len() > len {
        return None;
    }
    let body = &payload[HEADER_LEN..];
    let body_len = len - HEADER_LEN;
    let mut previous = None;
    for (i, entry) in body.chunks(5).take(MAX_OPTIONS).enumerate() {
        let token = entry[0];
        if token == TERMINATOR {
            return (i > 0).then_some(Protocol::new(App::Mssql, role));
        }
        let [_, oh, ol, lh, ll] = entry else { return None };
        let (offset, size) =
            (usize::from(u16::from_be_bytes([*oh, *ol])), usize::from(u16::from_be_bytes([*lh, *ll])));
        let ascending = previous.is_none_or(|p| token > p);
        let first_ok = i > 0 || (token == 0 && size == 6);
        if token > 8 || !ascending || !first_ok || offset + size > body_len {
            return None;
        }
        previous = Some(token);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PRELOGIN as SQL Server clients send it: VERSION, ENCRYPTION, INSTOPT,
    /// THREADID, MARS, then their values.
    fn prelogin(kind: u8) -> Vec<u8> {
        let mut p = vec![kind, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        p.extend_from_slice(&[0x00, 0x00, 0x1a, 0x00, 0x06]);
        p.extend_from_slice(&[0x01, 0x00, 0x20, 0x00, 0x01]);
        p.extend_from_slice(&[0x02, 0x00, 0x21, 0x00, 0x01]);
        p.extend_from_slice(&[0x03, 0x00, 0x22, 0x00, 0x04]);
        p.extend_from_slice(&[0x04, 0x00, 0x26, 0x00, 0x01]);
        p.push(0xff);
        p.extend_from_slice(&[
            0x0f, 0x00, 0x07, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ]);
        let len = u16::try_from(p.len()).expect("short").to_be_bytes();
        p[2..4].copy_from_slice(&len);
        p
    }

    #[test]
    fn prelogin_and_its_response() {
        assert_eq!(identify(&prelogin(PRELOGIN)), Some(Protocol::new(App::Mssql, Role::Client)));
        assert_eq!(identify(&prelogin(RESPONSE)), Some(Protocol::new(App::Mssql, Role::Server)));
    }

    #[test]
    fn near_misses_are_not_tds() {
        let mut p = prelogin(PRELOGIN);
        p[7] = 1;
        assert_eq!(identify(&p), None, "window not zero");
        let mut p = prelogin(PRELOGIN);
        p[8] = 0x01;
        assert_eq!(identify(&p), None, "first option not VERSION");
        let mut p = prelogin(PRELOGIN);
        p[2..4].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(identify(&p), None, "length shorter than the bytes");
        assert_eq!(identify(&prelogin(0x10)), None, "LOGIN7");
    }
}
