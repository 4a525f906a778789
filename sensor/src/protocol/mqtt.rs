//! MQTT: a client's CONNECT packet (3.1, 3.1.1, 5) and a 3.1.1 CONNACK.
//!
//! Matched by hand: CONNECT is the fixed header byte 0x10, a remaining
//! length (variable-length integer of 1 to 4 bytes) that covers the bytes,
//! the protocol name `MQTT` (level 4 or 5) or `MQIsdp` (level 3) with its
//! 2-byte length, and connect flags whose reserved bit is clear. A CONNACK
//! is `20 02`, a session-present flag of 0 or 1 and a return code 0–5:
//! exactly four bytes.
//!
//! Role: CONNECT is the client's, CONNACK the server's.

use super::Protocol;
use super::model::{App, Role};

/// The remaining length's value and the bytes after it.
fn remaining_length(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// [`App::Mqtt`] for a CONNECT or CONNACK.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    match payload {
        [0x20, 0x02, 0 | 1, 0..=5] => Some(Protocol::new(App::Mqtt { level: 0 }, Role::Server)),
        [0x10, rest @ ..] => {
            let (len, body) = remaining_length(rest)?;
            if body.len() > len || len < 10 {
                return None;
            }
            let (level, flags) = match body {
                [0, 4, b'M', b'Q', b'T', b'T', level @ (4 | 5), flags, ..] => (*level, *flags),
                [0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, flags, ..] => (3, *flags),
                _ => return None,
            };
            (flags & 0x01 == 0).then_some(Protocol::new(App::Mqtt { level }, Role::Client))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_of_each_level() {
        let v311 = b"\x10\x13\x00\x04MQTT\x04\x02\x00\x3c\x00\x07client1";
        assert_eq!(identify(v311), Some(Protocol::new(App::Mqtt { level: 4 }, Role::Client)));
        let v31 = b"\x10\x15\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x07client1";
        assert_eq!(identify(v31), Some(Protocol::new(App::Mqtt { level: 3 }, Role::Client)));
        assert_eq!(identify(b"\x20\x02\x00\x00"), Some(Protocol::new(App::Mqtt { level: 0 }, Role::Server)));
    }

    #[test]
    fn near_misses_are_not_mqtt() {
        assert_eq!(identify(b"\x10\x13\x00\x04MQTT\x04\x03\x00\x3c\x00\x07client1"), None, "reserved flag");
        assert_eq!(identify(b"\x10\x13\x00\x04MQTX\x04\x02\x00\x3c\x00\x07client1"), None);
        assert_eq!(identify(b"\x10\x02\x00\x04MQTT\x04\x02\x00\x3c"), None, "length too short");
        assert_eq!(identify(b"\x20\x02\x00\x09"), None);
    }
}
