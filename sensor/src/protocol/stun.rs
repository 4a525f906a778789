//! STUN (RFC 8489, also TURN's and ICE's framing): the 20-byte header with
//! its magic cookie.
//!
//! Matched by hand: the top two bits of the type clear, the length covering
//! the bytes after the header (or more when cut; not always a multiple of 4:
//! Microsoft's TURN, in the corpus's Teams capture, does not pad), the
//! magic cookie 0x2112A442, and a method from 1 (Binding) to 0x0c (TURN's
//! ConnectionAttempt).
//!
//! Role: a request is the client's, a success or error response the
//! server's, an indication either side's.

use super::Protocol;
use super::model::{App, Role};
use super::text::{be16, be32};

const MAGIC_COOKIE: u32 = 0x2112_a442;
const HEADER_LEN: usize = 20;

/// [`App::Stun`] for a STUN message.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let kind = be16(payload, 0)?;
    let len = usize::from(be16(payload, 2)?);
    if kind & 0xc000 != 0 || be32(payload, 4)? != MAGIC_COOKIE {
        return None;
    }
    let body = payload.get(HEADER_LEN..)?;
    if body.len() > len {
        return None;
    }
    // The class is bits 4 and 8; the method the other twelve.
    let class = ((kind >> 7) & 0x2) | ((kind >> 4) & 0x1);
    let method = (kind & 0x000f) | ((kind >> 1) & 0x0070) | ((kind >> 2) & 0x0f80);
    if !(1..=0x0c).contains(&method) {
        return None;
    }
    let role = match class {
        0 => Role::Client,
        1 => Role::Either,
        _ => Role::Server,
    };
    Some(Protocol::new(App::Stun { method }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_request_and_response() {
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&[7; 12]);
        assert_eq!(identify(&request), Some(Protocol::new(App::Stun { method: 1 }, Role::Client)));
        let mut response = vec![0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
        response.extend_from_slice(&[7; 12]);
        response.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0x5e, 0x12, 0xa4, 0x43]);
        assert_eq!(identify(&response), Some(Protocol::new(App::Stun { method: 1 }, Role::Server)));
        response[3] = 0x04;
        assert_eq!(identify(&response), None, "length below the bytes");
        request[4] = 0;
        assert_eq!(identify(&request), None, "no magic cookie");
    }
}
