//! XMPP (RFC 6120): the stream header that opens each direction, matched by
//! hand: `<stream:stream` at the start, or after an XML declaration (`<?xml`
//! ... `?>`) within the first [`SCAN`] bytes.
//!
//! Role: both ends send a stream header (either).

use super::Protocol;
use super::model::{App, Role};

/// Bytes searched for the stream element after an XML declaration.
pub const SCAN: usize = 256;
const STREAM: &[u8] = b"<stream:stream";

/// [`App::Xmpp`] for a stream header.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let found = if payload.starts_with(b"<?xml") {
        let scan = &payload[..payload.len().min(SCAN)];
        scan.windows(2).position(|w| w == b"?>").is_some_and(|end| {
            let rest = scan[end + 2..].trim_ascii_start();
            rest.starts_with(STREAM)
        })
    } else {
        payload.starts_with(STREAM)
    };
    found.then_some(Protocol::new(App::Xmpp, Role::Either))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_headers() {
        let client =
            b"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' version='1.0'>";
        assert_eq!(identify(client), Some(Protocol::new(App::Xmpp, Role::Either)));
        assert_eq!(
            identify(b"<stream:stream from='example.com' id='x'>"),
            Some(Protocol::new(App::Xmpp, Role::Either))
        );
        assert_eq!(identify(b"<?xml version=\"1.0\"?>\n<html>"), None);
    }
}
