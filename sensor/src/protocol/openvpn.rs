//! OpenVPN: the control channel's hard-reset packets that open a session,
//! over UDP and over TCP (after a 2-byte length).
//!
//! Matched by hand. The first byte is the opcode (high five bits) and key
//! id (low three, 0 for a reset): P_CONTROL_HARD_RESET_CLIENT_V1 (1),
//! _SERVER_V1 (2), _CLIENT_V2 (7), _SERVER_V2 (8) or _CLIENT_V3 (10). Then
//! an 8-byte session id. What follows depends on the configuration, and one
//! of its three layouts must fit:
//!
//! - plain: an ACK count (0 for the client; 1 to 8 for the server, with the
//!   acknowledged ids and the peer's session id) and a message packet id of 0;
//! - `tls-auth`: an HMAC of 16, 20, 32, 48 or 64 bytes, then the replay
//!   packet id 1 and a time after 2008, then the plain layout;
//! - `tls-crypt`: the replay packet id 1 and a time after 2008 right after
//!   the session id, then a 32-byte tag and encrypted bytes.
//!
//! Role: a client reset is the client's, a server reset the server's.

use super::Protocol;
use super::model::{App, Role};
use super::text::be32;

/// Earliest plausible packet time (2008-01-01), seconds since the epoch.
const MIN_TIME: u32 = 1_199_145_600;
/// HMAC sizes of `tls-auth` digests (MD5, SHA-1, SHA-256, SHA-384, SHA-512).
const HMAC_SIZES: [usize; 5] = [16, 20, 32, 48, 64];
/// Session id size.
const SESSION_ID: usize = 8;

/// [`App::Openvpn`] for a hard reset in a UDP datagram.
pub(super) fn identify_udp(payload: &[u8]) -> Option<Protocol> {
    let &first = payload.first()?;
    let opcode = first >> 3;
    let role = match (opcode, first & 0x07) {
        (1 | 7 | 10, 0) => Role::Client,
        (2 | 8, 0) => Role::Server,
        _ => return None,
    };
    let after_sid = payload.get(1 + SESSION_ID..)?;
    if payload[1..=SESSION_ID].iter().all(|&b| b == 0) {
        return None;
    }
    let server = role == Role::Server;
    let fits = plain(after_sid, server)
        || HMAC_SIZES
            .iter()
            .any(|&h| after_sid.get(h..).is_some_and(|rest| replay(rest).is_some_and(|r| plain(r, server))))
        || replay(after_sid).is_some_and(|rest| rest.len() >= 32);
    fits.then_some(Protocol::new(App::Openvpn { opcode }, role))
}

/// [`App::Openvpn`] for a hard reset after its TCP packet length.
pub(super) fn identify_tcp(payload: &[u8]) -> Option<Protocol> {
    let (len, rest) = payload.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() != len {
        return None;
    }
    identify_udp(rest)
}

/// The bytes after a replay packet id of 1 and a plausible time.
fn replay(bytes: &[u8]) -> Option<&[u8]> {
    (be32(bytes, 0)? == 1 && be32(bytes, 4)? >= MIN_TIME).then(|| &bytes[8..])
}

/// Whether `bytes` start with an ACK array and a message packet id of 0.
fn plain(bytes: &[u8], server: bool) -> bool {
    let Some((&acks, rest)) = bytes.split_first() else { return false };
    let acks = usize::from(acks);
    if server != (acks > 0) || acks > 8 {
        return false;
    }
    let skip = if acks > 0 { acks * 4 + SESSION_ID } else { 0 };
    rest.get(skip..).is_some_and(|r| r.len() >= 4 && be32(r, 0) == Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_client_and_server_resets() {
        let client = b"\x38\x6d\x1e\x4b\x0f\x8a\x77\x20\x01\x00\x00\x00\x00\x00";
        assert_eq!(identify_udp(client), Some(Protocol::new(App::Openvpn { opcode: 7 }, Role::Client)));
        let server = b"\x40\x11\x22\x33\x44\x55\x66\x77\x88\x01\x00\x00\x00\x00\x6d\x1e\x4b\x0f\x8a\x77\x20\x01\x00\x00\x00\x00";
        assert_eq!(identify_udp(server), Some(Protocol::new(App::Openvpn { opcode: 8 }, Role::Server)));
        let mut framed = vec![0, u8::try_from(client.len()).expect("short")];
        framed.extend_from_slice(client);
        assert_eq!(identify_tcp(&framed).map(|p| p.role), Some(Role::Client));
    }

    #[test]
    fn tls_auth_client_reset() {
        let mut p = vec![0x38, 1, 2, 3, 4, 5, 6, 7, 8];
        p.extend_from_slice(&[0xab; 20]); // HMAC-SHA1
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0]);
        assert_eq!(identify_udp(&p).map(|p| p.role), Some(Role::Client));
    }

    #[test]
    fn other_opcodes_and_junk_are_not_openvpn() {
        assert_eq!(
            identify_udp(b"\x39\x6d\x1e\x4b\x0f\x8a\x77\x20\x01\x00\x00\x00\x00\x00"),
            None,
            "key id 1"
        );
        assert_eq!(
            identify_udp(b"\x20\x6d\x1e\x4b\x0f\x8a\x77\x20\x01\x00\x00\x00\x00\x00"),
            None,
            "P_CONTROL_V1"
        );
        assert_eq!(
            identify_udp(b"\x38\x6d\x1e\x4b\x0f\x8a\x77\x20\x01\x05\x00\x00\x00\x00"),
            None,
            "client with ACKs"
        );
    }
}
