//! AMQP: the protocol header a client opens with (`AMQP` and four version
//! bytes: 0-9-1, 0-8, 1.0 and its TLS and SASL variants) and a 0-9-1 server's
//! Connection.Start.
//!
//! Matched by hand: the header is eight bytes; Connection.Start is a method
//! frame (type 1) on channel 0 with class 10, method 10 and version 0-9.
//!
//! Role: the header is the client's (a server that refuses the version
//! echoes its own, which is rare), Connection.Start the server's.

use super::Protocol;
use super::model::{App, Role};

/// Protocol headers: 0-9-1, 0-8 (as RabbitMQ reads it), 1.0 plain, TLS and SASL.
const HEADERS: [[u8; 4]; 5] = [[0, 0, 9, 1], [1, 1, 0, 8], [0, 1, 0, 0], [2, 1, 0, 0], [3, 1, 0, 0]];

/// [`App::Amqp`] for a protocol header or a Connection.Start.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    if let Some(version) = payload.strip_prefix(b"AMQP") {
        let known = version.first_chunk::<4>().is_some_and(|v| HEADERS.contains(v));
        return (known && version.len() == 4).then_some(Protocol::new(App::Amqp, Role::Client));
    }
    // Frame type 1, channel 0, a size, class 10 method 10, version 0-9.
    let start = payload.len() >= 13 && payload[..3] == [1, 0, 0] && payload[7..13] == [0, 10, 0, 10, 0, 9];
    start.then_some(Protocol::new(App::Amqp, Role::Server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_connection_start() {
        assert_eq!(identify(b"AMQP\x00\x00\x09\x01"), Some(Protocol::new(App::Amqp, Role::Client)));
        assert_eq!(identify(b"AMQP\x03\x01\x00\x00"), Some(Protocol::new(App::Amqp, Role::Client)));
        let start = b"\x01\x00\x00\x00\x00\x01\xf4\x00\x0a\x00\x0a\x00\x09\x00\x00\x01";
        assert_eq!(identify(start), Some(Protocol::new(App::Amqp, Role::Server)));
        assert_eq!(identify(b"AMQP\x00\x00\x09\x09"), None);
        assert_eq!(identify(b"AMQP is a protocol"), None);
    }
}
