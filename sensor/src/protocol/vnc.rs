//! VNC: the RFB protocol version line (RFC 6143 7.1.1), `RFB xxx.yyy\n`
//! with three digits each, twelve bytes in all. Matched by hand.
//!
//! Role: the server sends it first and the client answers with its own, so
//! the bytes do not tell (either).

use super::Protocol;
use super::model::{App, Role};

/// [`App::Vnc`] for an RFB version line.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let [b'R', b'F', b'B', b' ', a, b, c, b'.', d, e, f, b'\n'] = *payload else { return None };
    let digits = [a, b, c, d, e, f].iter().all(u8::is_ascii_digit);
    digits.then_some(Protocol::new(App::Vnc, Role::Either))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        assert_eq!(identify(b"RFB 003.008\n"), Some(Protocol::new(App::Vnc, Role::Either)));
        assert_eq!(identify(b"RFB 003.008\nmore"), None);
        assert_eq!(identify(b"RFB 3.8\n"), None);
    }
}
