//! MongoDB: the wire protocol's 16-byte message header and the start of
//! the message it frames.
//!
//! Matched by hand (little-endian int32s): messageLength from 21 to
//! [`MAX_MESSAGE`] and covering the bytes, requestID, responseTo, opCode, and
//! then per opCode:
//!
//! - OP_MSG (2013): flagBits with only the defined bits (0, 1, 16), a section
//!   of kind 0 or 1; kind 0 is a BSON document whose length fits the message;
//! - OP_QUERY (2004): flags, then a collection name of printable characters
//!   with a dot (`admin.$cmd`), NUL-ended, then a BSON document length;
//! - OP_REPLY (1): responseFlags with only bits 0–3, and a reply count that is small;
//! - OP_COMPRESSED (2012): an original opCode of 2013 or 2004, a compressor 0–3.
//!
//! Role: a message with responseTo 0 (and not OP_REPLY) is the client's
//! request; one answering a request is the server's.

use super::Protocol;
use super::model::{App, Role};
use super::text::{c_string, le32};

/// Largest message accepted (the server's default maximum, 48 MB).
pub const MAX_MESSAGE: u32 = 48_000_000;
const OP_REPLY: u32 = 1;
const OP_QUERY: u32 = 2004;
const OP_COMPRESSED: u32 = 2012;
const OP_MSG: u32 = 2013;

/// [`App::Mongodb`] for a wire-protocol message.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let len = le32(payload, 0)?;
    let response_to = le32(payload, 8)?;
    let op_code = le32(payload, 12)?;
    if !(21..=MAX_MESSAGE).contains(&len) || usize::try_from(len).ok()? < payload.len() {
        return None;
    }
    let body = &payload[16..];
    let plausible = match op_code {
        OP_MSG => {
            let flags = le32(body, 0)?;
            let kind = *body.get(4)?;
            let doc = le32(body, 5);
            flags & !0x0001_0003 == 0
                && (kind == 1 || (kind == 0 && doc.is_some_and(|d| d >= 5 && d <= len - 21)))
        }
        OP_QUERY => {
            let (name, after) = c_string(body, 4, 128)?;
            let doc = le32(body, after + 8)?;
            name.contains(&b'.') && name.iter().all(u8::is_ascii_graphic) && doc >= 5 && doc < len
        }
        OP_REPLY => le32(body, 0)? & !0x0f == 0 && le32(body, 16)? < 100_000 && response_to != 0,
        OP_COMPRESSED => matches!(le32(body, 0)?, OP_MSG | OP_QUERY) && *body.get(8)? <= 3,
        _ => false,
    };
    if !plausible {
        return None;
    }
    let role = if response_to == 0 && op_code != OP_REPLY { Role::Client } else { Role::Server };
    Some(Protocol::new(App::Mongodb { op_code }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OP_MSG `{hello: 1, $db: "admin"}` as a driver sends it first.
    fn hello() -> Vec<u8> {
        let mut doc = vec![0, 0, 0, 0, 0x10];
        doc.extend_from_slice(b"hello\0");
        doc.extend_from_slice(&1i32.to_le_bytes());
        doc.push(0x02);
        doc.extend_from_slice(b"$db\0");
        doc.extend_from_slice(&6i32.to_le_bytes());
        doc.extend_from_slice(b"admin\0");
        doc.push(0);
        let doc_len = u32::try_from(doc.len()).expect("short");
        doc[..4].copy_from_slice(&doc_len.to_le_bytes());
        let mut m = Vec::new();
        m.extend_from_slice(&(21 + doc_len).to_le_bytes());
        m.extend_from_slice(&7u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&OP_MSG.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0);
        m.extend_from_slice(&doc);
        m
    }

    #[test]
    fn op_msg_request_and_reply() {
        let m = hello();
        assert_eq!(identify(&m), Some(Protocol::new(App::Mongodb { op_code: OP_MSG }, Role::Client)));
        let mut reply = m.clone();
        reply[8..12].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(identify(&reply).map(|p| p.role), Some(Role::Server));
    }

    #[test]
    fn op_query_on_admin_cmd() {
        let mut m = vec![0; 16];
        m[12..16].copy_from_slice(&OP_QUERY.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(b"admin.$cmd\0");
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&[5, 0, 0, 0, 0]);
        let len = u32::try_from(m.len()).expect("short");
        m[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(identify(&m).map(|p| p.app), Some(App::Mongodb { op_code: OP_QUERY }));
    }

    #[test]
    fn near_misses_are_not_mongodb() {
        let mut m = hello();
        m[16] = 0x04;
        assert_eq!(identify(&m), None, "undefined flag bit");
        let mut m = hello();
        m[12] = 0xd4;
        assert_eq!(identify(&m), None, "opCode 2004 with an OP_MSG body");
        let mut m = hello();
        m[0] = 10;
        assert_eq!(identify(&m), None, "length shorter than the bytes");
    }
}
