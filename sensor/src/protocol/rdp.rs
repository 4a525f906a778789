//! RDP's first messages: the X.224 Connection Request and Confirm in a TPKT
//! (MS-RDPBCGR 2.2.1.1 and 2.2.1.2).
//!
//! Matched by hand: TPKT version 3, reserved 0, a length that equals the
//! bytes (or exceeds them when cut); the X.224 length indicator equal to the
//! TPKT length minus 5; the TPDU code 0xE0 (Connection Request) or 0xD0
//! (Connection Confirm) and class 0. TPKT and X.224 also carry other ISO
//! protocols (S7comm on port 102 uses the same Connection Request with TSAP
//! parameters), so what follows the 7-byte X.224 header must be RDP's:
//! nothing, a routing token or cookie (`Cookie: `), or an RDP negotiation
//! request, response or failure (type 1, 2 or 3, length 8).
//!
//! Role: a Connection Request is the client's, a Confirm the server's.

use super::Protocol;
use super::model::{App, Role};
use super::text::{be16, le16};

const CONNECTION_REQUEST: u8 = 0xe0;
const CONNECTION_CONFIRM: u8 = 0xd0;

/// [`App::Rdp`] for an X.224 Connection Request or Confirm carrying RDP.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let len = usize::from(be16(payload, 2)?);
    let (&li, &code) = (payload.get(4)?, payload.get(5)?);
    let header_ok = payload[..2] == [3, 0] && len >= 11 && payload.len() <= len && usize::from(li) + 5 == len;
    let role = match code {
        CONNECTION_REQUEST => Role::Client,
        CONNECTION_CONFIRM => Role::Server,
        _ => return None,
    };
    if !header_ok || payload.get(10).is_some_and(|&class| class != 0) {
        return None;
    }
    let rdp = payload.get(11..).unwrap_or(&[]);
    let negotiation = |b: &[u8]| matches!(b.first(), Some(1..=3)) && le16(b, 2).is_none_or(|l| l == 8);
    let plausible = rdp.is_empty() || rdp.starts_with(b"Cookie: ") || negotiation(rdp);
    plausible.then_some(Protocol::new(App::Rdp, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_request_with_cookie_and_negotiation() {
        let mut cr = vec![3, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0];
        cr.extend_from_slice(b"Cookie: mstshash=admin\r\n");
        cr.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
        let len = u8::try_from(cr.len()).expect("short");
        cr[3] = len;
        cr[4] = len - 5;
        assert_eq!(identify(&cr), Some(Protocol::new(App::Rdp, Role::Client)));
        assert_eq!(identify(&cr[..20]), Some(Protocol::new(App::Rdp, Role::Client)), "cut");
    }

    #[test]
    fn connection_confirm() {
        let cc = [3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0x1f, 8, 0, 2, 0, 0, 0];
        assert_eq!(identify(&cc), Some(Protocol::new(App::Rdp, Role::Server)));
    }

    #[test]
    fn s7comm_connection_request_is_not_rdp() {
        // COTP CR with TSAP parameters (0xc1, 0xc2) and TPDU size (0xc0), as on port 102.
        let cr = [3, 0, 0, 22, 17, 0xe0, 0, 0, 0, 1, 0, 0xc0, 1, 0x0a, 0xc1, 2, 1, 0, 0xc2, 2, 1, 2];
        assert_eq!(identify(&cr), None);
    }
}
