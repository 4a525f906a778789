//! BitTorrent: the peer wire handshake (BEP 3) and DHT messages (BEP 5).
//!
//! Matched by hand: the handshake starts with the byte 19 and
//! `BitTorrent protocol`; a DHT message is a bencoded dictionary whose keys
//! come in order, so a query starts `d1:ad2:id20:` and a response
//! `d1:rd2:id20:` (or, with the requester's address first, `d2:ip6:`,
//! six bytes, then `1:rd2:id20:`).
//!
//! Role: both peers send the handshake (either); a DHT query is the
//! client's, a response the server's.

use super::Protocol;
use super::model::{App, Role};

const HANDSHAKE: &[u8] = b"\x13BitTorrent protocol";
const DHT_QUERY: &[u8] = b"d1:ad2:id20:";
const DHT_RESPONSE: &[u8] = b"d1:rd2:id20:";
const DHT_IP: &[u8] = b"d2:ip6:";
const DHT_RESPONSE_AFTER_IP: &[u8] = b"1:rd2:id20:";

/// [`App::Bittorrent`] for a peer handshake.
pub(super) fn identify_tcp(payload: &[u8]) -> Option<Protocol> {
    payload.starts_with(HANDSHAKE).then_some(Protocol::new(App::Bittorrent { dht: false }, Role::Either))
}

/// [`App::Bittorrent`] for a DHT message (or a handshake over uTP's payload).
pub(super) fn identify_udp(payload: &[u8]) -> Option<Protocol> {
    let dht = Protocol::new(App::Bittorrent { dht: true }, Role::Client);
    if payload.starts_with(DHT_QUERY) {
        return Some(dht);
    }
    let response = payload.starts_with(DHT_RESPONSE)
        || payload
            .strip_prefix(DHT_IP)
            .and_then(|rest| rest.get(6..))
            .is_some_and(|r| r.starts_with(DHT_RESPONSE_AFTER_IP));
    response.then_some(Protocol::new(App::Bittorrent { dht: true }, Role::Server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_dht() {
        let mut hs = HANDSHAKE.to_vec();
        hs.extend_from_slice(&[0; 8]);
        assert_eq!(identify_tcp(&hs), Some(Protocol::new(App::Bittorrent { dht: false }, Role::Either)));
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(identify_udp(ping), Some(Protocol::new(App::Bittorrent { dht: true }, Role::Client)));
        let pong = b"d2:ip6:\x0a\x00\x00\x01\x1a\xe11:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        assert_eq!(identify_udp(pong).map(|p| p.role), Some(Role::Server));
        assert_eq!(identify_udp(b"d1:ad2:id19:"), None);
        assert_eq!(identify_tcp(b"\x13BitTorrent protocoX"), None);
    }
}
