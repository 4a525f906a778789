//! TFTP (RFC 1350, 2347): the packets that open a transfer.
//!
//! Matched by hand: RRQ and WRQ (opcode 1, 2) are a file name of 1 to 255
//! printable characters and a mode `netascii`, `octet` or `mail` (any case),
//! each NUL-ended, then option pairs; nothing else may follow. A transfer's
//! other first packets are taken only in their opening form, as their
//! headers alone are too short to tell from random bytes: DATA (3) with
//! block 1 and at most 65 464 bytes, ACK (4) of block 0 (four bytes), ERROR
//! (5) with a code 0–8 and a NUL-ended printable message, OACK (6) with
//! NUL-ended printable option pairs.
//!
//! Role: requests are the client's; ACK 0, OACK the server's; DATA and
//! ERROR either side's (in a write the client sends DATA).

use super::Protocol;
use super::model::{App, Role};
use super::text::{be16, c_string};

/// Longest file name or option accepted.
const MAX_NAME: usize = 255;
/// Options read at most.
const MAX_OPTIONS: usize = 16;

/// [`App::Tftp`] for a request or an opening reply.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let opcode = be16(payload, 0)?;
    let role = match opcode {
        1 | 2 => request(payload).then_some(Role::Client)?,
        3 => (be16(payload, 2)? == 1 && payload.len() <= 4 + 65_464).then_some(Role::Either)?,
        4 => (payload.len() == 4 && be16(payload, 2)? == 0).then_some(Role::Server)?,
        5 => {
            let (message, end) = c_string(payload, 4, MAX_NAME)?;
            let plausible = be16(payload, 2)? <= 8 && end == payload.len() && printable(message);
            plausible.then_some(Role::Either)?
        }
        6 => (payload.len() > 2 && strings(payload, 2)?).then_some(Role::Server)?,
        _ => return None,
    };
    Some(Protocol::new(App::Tftp { opcode }, role))
}

fn printable(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| (0x20..0x7f).contains(&b))
}

fn request(payload: &[u8]) -> bool {
    let Some((name, after)) = c_string(payload, 2, MAX_NAME) else { return false };
    let Some((mode, after)) = c_string(payload, after, 8) else { return false };
    let mode_ok = [&b"netascii"[..], b"octet", b"mail"].iter().any(|m| mode.eq_ignore_ascii_case(m));
    !name.is_empty() && printable(name) && mode_ok && strings(payload, after) == Some(true)
}

/// Whether `payload` from `at` on is whole NUL-ended printable strings (option pairs).
fn strings(payload: &[u8], mut at: usize) -> Option<bool> {
    for _ in 0..MAX_OPTIONS * 2 {
        if at == payload.len() {
            return Some(true);
        }
        let (text, end) = c_string(payload, at, MAX_NAME)?;
        if text.is_empty() || !printable(text) {
            return Some(false);
        }
        at = end;
    }
    Some(at == payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tftp(opcode: u16, role: Role) -> Option<Protocol> {
        Some(Protocol::new(App::Tftp { opcode }, role))
    }

    #[test]
    fn requests_with_and_without_options() {
        assert_eq!(identify(b"\x00\x01pxelinux.0\x00octet\x00"), tftp(1, Role::Client));
        assert_eq!(identify(b"\x00\x02config.txt\x00NETASCII\x00blksize\x001428\x00"), tftp(2, Role::Client));
        assert_eq!(identify(b"\x00\x01file\x00binary\x00"), None, "unknown mode");
        assert_eq!(identify(b"\x00\x01file\x00octet\x00\xff"), None, "junk after the mode");
    }

    #[test]
    fn opening_replies() {
        assert_eq!(identify(b"\x00\x03\x00\x01hello"), tftp(3, Role::Either));
        assert_eq!(identify(b"\x00\x04\x00\x00"), tftp(4, Role::Server));
        assert_eq!(identify(b"\x00\x05\x00\x01File not found\x00"), tftp(5, Role::Either));
        assert_eq!(identify(b"\x00\x06blksize\x001428\x00"), tftp(6, Role::Server));
        assert_eq!(identify(b"\x00\x03\x00\x07hello"), None, "DATA of a later block");
        assert_eq!(identify(b"\x00\x04\x00\x05"), None, "ACK of a later block");
    }
}
