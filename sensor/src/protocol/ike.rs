//! IKE (ISAKMP): the 28-byte header of IKEv1 (RFC 2408) and IKEv2 (RFC
//! 7296) messages, on UDP 500 or after the four-byte non-ESP marker of NAT
//! traversal (UDP 4500, RFC 3948).
//!
//! Matched by hand: a non-zero initiator SPI; version 1.0 (0x10) or 2.0
//! (0x20); an exchange type of that version (IKEv1: 2 identity protection, 4
//! aggressive, 5 informational, 32 quick mode, 33 new group; IKEv2: 34 to 37
//! and 43); a next-payload type that version defines; the length field at
//! least 28, at most 65 535 and equal to the bytes (or more when cut). An
//! opening exchange (IKEv1 main or aggressive mode, IKEv2 IKE_SA_INIT) has
//! message id 0, and its request a zero responder SPI.
//!
//! Role: IKEv2's response flag says it; IKEv1's first message (responder SPI
//! zero) is the initiator's (client); other IKEv1 messages either side's.

use super::Protocol;
use super::model::{App, Role};
use super::text::be32;

const HEADER_LEN: usize = 28;
const V1_EXCHANGES: [u8; 5] = [2, 4, 5, 32, 33];
const V2_EXCHANGES: [u8; 5] = [34, 35, 36, 37, 43];
const IKE_SA_INIT: u8 = 34;

/// [`App::Ike`] for an IKE message, with or without a non-ESP marker.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    match payload.strip_prefix(&[0, 0, 0, 0]) {
        Some(rest) => header(rest, true),
        None => header(payload, false),
    }
}

fn header(message: &[u8], nat_t: bool) -> Option<Protocol> {
    let h = message.get(..HEADER_LEN)?;
    let (initiator_spi, responder_spi) = (&h[..8], &h[8..16]);
    let (next, version, exchange, flags) = (h[16], h[17], h[18], h[19]);
    let message_id = be32(h, 20)?;
    let len = usize::try_from(be32(h, 24)?).ok()?;
    let responder_zero = responder_spi.iter().all(|&b| b == 0);
    if initiator_spi.iter().all(|&b| b == 0) || !(HEADER_LEN..=65_535).contains(&len) || message.len() > len {
        return None;
    }
    let (major, role) = match version {
        0x10 => {
            let opening = matches!(exchange, 2 | 4);
            let plausible = V1_EXCHANGES.contains(&exchange)
                && matches!(next, 1..=13 | 20 | 21 | 130..=132)
                && flags & 0xf8 == 0
                && (!opening || message_id == 0);
            if !plausible {
                return None;
            }
            (1, if opening && responder_zero { Role::Client } else { Role::Either })
        }
        0x20 => {
            let response = flags & 0x20 != 0;
            let plausible = V2_EXCHANGES.contains(&exchange)
                && matches!(next, 0 | 33..=48 | 53)
                && flags & 0xc7 == 0
                && (exchange != IKE_SA_INIT || (message_id == 0 && (response || responder_zero)));
            if !plausible {
                return None;
            }
            (2, if response { Role::Server } else { Role::Client })
        }
        _ => return None,
    };
    Some(Protocol::new(App::Ike { version: major, exchange, nat_t }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IKEv2 IKE_SA_INIT request header with an SA payload next, `len` bytes in all.
    fn sa_init(len: usize) -> Vec<u8> {
        let mut m = vec![0x8b, 0x2d, 0x13, 0x6e, 0x02, 0x99, 0x41, 0x0c];
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0]);
        m.extend_from_slice(&u32::try_from(len).expect("short").to_be_bytes());
        m.resize(len, 0x22);
        m
    }

    #[test]
    fn ikev2_sa_init_plain_and_behind_nat() {
        let expected = Protocol::new(App::Ike { version: 2, exchange: 34, nat_t: false }, Role::Client);
        assert_eq!(identify(&sa_init(300)), Some(expected));
        let mut marked = vec![0, 0, 0, 0];
        marked.extend_from_slice(&sa_init(300));
        assert_eq!(
            identify(&marked).map(|p| p.app),
            Some(App::Ike { version: 2, exchange: 34, nat_t: true })
        );
        assert!(identify(&sa_init(300)[..256]).is_some(), "cut by a sampler");
    }

    #[test]
    fn ikev1_main_mode() {
        let mut m = sa_init(120);
        m[16..20].copy_from_slice(&[1, 0x10, 2, 0]);
        let got = identify(&m).expect("IKEv1");
        assert_eq!((got.app, got.role), (App::Ike { version: 1, exchange: 2, nat_t: false }, Role::Client));
    }

    #[test]
    fn implausible_headers_are_not_ike() {
        let mut m = sa_init(300);
        m[17] = 0x30;
        assert_eq!(identify(&m), None, "version 3");
        let mut m = sa_init(300);
        m[27] = 0x10;
        assert_eq!(identify(&m), None, "length below the bytes");
        let mut m = sa_init(300);
        m[..8].fill(0);
        assert_eq!(identify(&m), None, "zero initiator SPI");
        let mut m = sa_init(300);
        m[18] = 99;
        assert_eq!(identify(&m), None, "exchange 99");
    }
}
