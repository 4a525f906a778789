//! WireGuard: its four message types, each of a fixed size (or, for data,
//! a multiple of 16), with three reserved zero bytes after the type.
//!
//! Matched by hand: type 1 handshake initiation is 148 bytes, 2 response 92,
//! 3 cookie reply 64, 4 transport data at least 32 bytes and a multiple of 16
//! (16 bytes of header and counter, then padded ciphertext and its tag).
//! A sampled payload cut to 256 bytes keeps these shapes.
//!
//! Role: an initiation is the initiator's (client), a response or cookie
//! reply the responder's (server), data either side's.

use super::Protocol;
use super::model::{App, Role};

/// [`App::Wireguard`] for a WireGuard message.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let [message_type, 0, 0, 0, ..] = *payload else { return None };
    let role = match (message_type, payload.len()) {
        (1, 148) => Role::Client,
        (2, 92) | (3, 64) => Role::Server,
        (4, len) if len >= 32 && len % 16 == 0 => Role::Either,
        _ => return None,
    };
    Some(Protocol::new(App::Wireguard { message_type }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_at_its_size() {
        let message = |kind: u8, len: usize| {
            let mut m = vec![kind, 0, 0, 0];
            m.resize(len, 0x5a);
            identify(&m).map(|p| p.role)
        };
        assert_eq!(message(1, 148), Some(Role::Client));
        assert_eq!(message(2, 92), Some(Role::Server));
        assert_eq!(message(3, 64), Some(Role::Server));
        assert_eq!(message(4, 32), Some(Role::Either));
        assert_eq!(message(4, 1440), Some(Role::Either));
        assert_eq!(message(1, 149), None);
        assert_eq!(message(4, 40), None);
        assert_eq!(message(5, 64), None);
    }
}
