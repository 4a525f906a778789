//! PostgreSQL: a client's StartupMessage, SSLRequest, GSSENCRequest or
//! CancelRequest, and a server's first reply.
//!
//! Matched by hand against the frontend/backend protocol 3.0 framing:
//!
//! - client messages have no type byte: a 4-byte length equal to the bytes
//!   (or more when cut), then a 4-byte code: protocol 3.0 (196608) followed by
//!   `name\0value\0` pairs, the first name a known parameter (`user`,
//!   `database`, ...); or the request codes 80877103 (SSL), 80877104 (GSS
//!   encryption), 80877102 (cancel, 16 bytes);
//! - server replies: `R` (authentication request, length 8 to 2048, an
//!   authentication code 0, 2, 3, 5, 6, 7, 8, 9, 10, 11 or 12), `E` (an error:
//!   a length, then fields whose first type is `S`, `V`, `C` or `M` and whose
//!   text is printable), or `S` (ParameterStatus: `name\0value\0`,
//!   printable, filling its length). The one-byte answers to an SSLRequest
//!   (`S` accepted, `N` refused) are not taken: a one-byte payload says
//!   nothing (keep-alives and keystrokes are one byte too).
//!
//! Role: the client's messages and the server's replies as above.

use super::Protocol;
use super::model::{App, Role};
use super::text::be32;

/// Protocol version 3.0 in a StartupMessage.
const PROTOCOL_3: u32 = 196_608;
/// Request codes.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Parameters a StartupMessage may name first.
const PARAMETERS: [&[u8]; 7] =
    [b"user", b"database", b"application_name", b"client_encoding", b"options", b"replication", b"DateStyle"];
/// Authentication request codes.
const AUTH_CODES: [u32; 11] = [0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12];

/// [`App::Postgresql`] for a client's first message or a server's first reply.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    match payload.first()? {
        0 => client(payload),
        b'R' | b'E' | b'S' => server(payload),
        _ => None,
    }
}

fn client(payload: &[u8]) -> Option<Protocol> {
    let len = usize::try_from(be32(payload, 0)?).ok()?;
    let code = be32(payload, 4)?;
    if len < 8 || payload.len() > len || len > 10_000 {
        return None;
    }
    let plausible = match code {
        SSL_REQUEST | GSSENC_REQUEST => len == 8,
        CANCEL_REQUEST => len == 16,
        PROTOCOL_3 => {
            let params = &payload[8..];
            PARAMETERS.iter().any(|p| params.starts_with(p) && params.get(p.len()) == Some(&0))
        }
        _ => false,
    };
    plausible.then_some(Protocol::new(App::Postgresql, Role::Client))
}

fn server(payload: &[u8]) -> Option<Protocol> {
    let len = usize::try_from(be32(payload, 1)?).ok()?;
    if !(8..=2048).contains(&len) {
        return None;
    }
    let plausible = match payload[0] {
        b'R' => be32(payload, 5).is_some_and(|code| AUTH_CODES.contains(&code)),
        b'E' => {
            let fields = &payload[5..payload.len().min(len + 1)];
            let text_end = fields.iter().skip(1).position(|&b| b == 0).map_or(fields.len(), |end| end + 1);
            matches!(fields.first(), Some(b'S' | b'V' | b'C' | b'M'))
                && text_end > 1
                && fields[1..text_end].iter().all(|&b| (0x20..0x7f).contains(&b))
        }
        b'S' => {
            // ParameterStatus: `name\0value\0`, both printable, filling the length.
            let body = &payload[5..payload.len().min(len + 1)];
            let printable = |s: &[u8]| s.iter().all(|&b| (0x20..0x7f).contains(&b));
            let mut parts = body.split(|&b| b == 0);
            let (name, value) = (parts.next().unwrap_or(&[]), parts.next().unwrap_or(&[]));
            len == 4 + name.len() + value.len() + 2 && !name.is_empty() && printable(name) && printable(value)
        }
        _ => false,
    };
    plausible.then_some(Protocol::new(App::Postgresql, Role::Server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(role: Role) -> Option<Protocol> {
        Some(Protocol::new(App::Postgresql, role))
    }

    #[test]
    fn startup_message_and_requests() {
        // As psql sends it (proto_nonstandard_port/zeek__psql-15432.pcap has one).
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0postgres\0database\0postgres\0application_name\0psql\0\0");
        startup[3] = u8::try_from(startup.len()).expect("short");
        assert_eq!(identify(&startup), pg(Role::Client));
        assert_eq!(identify(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), pg(Role::Client), "SSLRequest");
        assert_eq!(identify(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]), pg(Role::Client), "GSSENCRequest");
        assert_eq!(identify(&[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f]), None, "wrong length");
        startup[8] = b'x';
        assert_eq!(identify(&startup), None, "unknown first parameter");
    }

    #[test]
    fn server_replies() {
        assert_eq!(identify(b"S"), None, "SSL accepted: one byte is too weak alone");
        let status = b"S\x00\x00\x00\x18server_version\x0016.2\x00";
        assert_eq!(identify(status), pg(Role::Server), "ParameterStatus");
        // AuthenticationMD5Password with its salt.
        assert_eq!(identify(&[b'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4]), pg(Role::Server));
        assert_eq!(identify(&[b'R', 0, 0, 0, 12, 0, 0, 0, 4, 1, 2, 3, 4]), None, "code 4");
        let mut err = vec![b'E', 0, 0, 0, 0];
        err.extend_from_slice(b"SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0\0");
        err[4] = u8::try_from(err.len() - 1).expect("short");
        assert_eq!(identify(&err), pg(Role::Server));
    }
}
