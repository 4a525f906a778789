//! QUIC: the long header of a client's or server's first packets.
//!
//! A long header (RFC 8999 5.1, RFC 9000 17.2) starts with the form and fixed
//! bits set (`0b11xx_xxxx`), then a 32-bit version, then the destination and
//! source connection ids, each after a length byte. Only those invariant,
//! unencrypted fields are read, by hand (five bytes and two lengths need no
//! crate; QUIC parsers in crates come with a whole endpoint). A packet is QUIC
//! when its version is one this module knows ([`known_version`]) and both
//! connection-id lengths are at most 20, as versions 1 and 2 require.
//!
//! The payload of an Initial is encrypted with keys derived from its
//! destination connection id; the ClientHello (and its SNI) inside is not
//! decrypted here.
//!
//! A version negotiation packet (version 0, sent by a server) is QUIC when
//! its connection ids are as above and its list of versions, a multiple of
//! four bytes, names at least one known version.
//!
//! A client's Initial packet is then decrypted ([`super::quic_initial`]) for
//! its ClientHello: SNI, ALPN and the JA4 fingerprint (`q`).
//!
//! Role: an Initial whose ClientHello was read and a 0-RTT packet are the
//! client's, a Retry or version negotiation the server's; other Initial and
//! Handshake packets are sent by both ends (either).
//!
//! Google QUIC (`Q0xx`, Chrome's QUIC before the IETF version) is recognised
//! from a client's first packets by [`identify_google`]: its public header's
//! flags say "version present, 8-byte connection id", and the version after the
//! connection id reads `Q0` and two digits (`Q039`, `Q043`). From `Q046` on,
//! Google QUIC uses the long header above with a `Q0xx` version, also known.
//!
//! Not handled: short-header packets (the rest of a connection; they carry no
//! version), greased or private versions, and the fixed bit cleared by RFC 9287
//! greasing.

use super::Protocol;
use super::model::{App, Role};

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// Longest connection id in versions 1 and 2.
const MAX_CID_LEN: u8 = 20;
/// Form bit (long header) and fixed bit.
const LONG_HEADER: u8 = 0b1100_0000;

/// Whether `version` is QUIC v1, v2, an IETF draft (`0xff00_00xx`, drafts 1 to 34) or Google
/// QUIC (`Q0` and two digits).
pub fn known_version(version: u32) -> bool {
    matches!(version, VERSION_1 | VERSION_2 | 0xff00_0001..=0xff00_0022)
        || google_version(version.to_be_bytes())
}

fn google_version(v: [u8; 4]) -> bool {
    v[0] == b'Q' && v[1] == b'0' && v[2].is_ascii_digit() && v[3].is_ascii_digit()
}

/// Public-header flags of Google QUIC: version present, 8-byte connection id.
const GOOGLE_VERSION_AND_CID: u8 = 0x09;

/// [`App::Quic`] (version as its four ASCII bytes) for a Google QUIC client packet with the
/// public header of versions up to `Q043`.
pub(super) fn identify_google(payload: &[u8]) -> Option<Protocol> {
    let (&flags, rest) = payload.split_first()?;
    // Bit 7 is unused (0) before Q044; bit 1 is a public reset, never sent with a version.
    if flags & 0x80 != 0 || flags & 0x02 != 0 || flags & GOOGLE_VERSION_AND_CID != GOOGLE_VERSION_AND_CID {
        return None;
    }
    let version = *rest.get(8..12)?.first_chunk::<4>()?;
    google_version(version)
        .then(|| Protocol::new(App::Quic { version: u32::from_be_bytes(version), hello: None }, Role::Client))
}

/// [`App::Quic`] for a UDP payload that starts with a QUIC long header.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let (&first, rest) = payload.split_first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let (version, rest) = rest.split_first_chunk::<4>()?;
    let version = u32::from_be_bytes(*version);
    if version != 0 && (first & LONG_HEADER != LONG_HEADER || !known_version(version)) {
        return None;
    }
    let (&dcid_len, rest) = rest.split_first()?;
    if dcid_len > MAX_CID_LEN {
        return None;
    }
    let scid_len = *rest.get(usize::from(dcid_len))?;
    if scid_len > MAX_CID_LEN {
        return None;
    }
    if version == 0 {
        let versions = rest.get(usize::from(dcid_len) + 1 + usize::from(scid_len)..)?;
        let listed = !versions.is_empty()
            && versions.len() % 4 == 0
            && versions.chunks_exact(4).any(|v| known_version(u32::from_be_bytes([v[0], v[1], v[2], v[3]])));
        return listed.then_some(Protocol::new(App::Quic { version, hello: None }, Role::Server));
    }
    // Long packet types: v1 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry; v2 rotates them by one.
    let kind = (first >> 4) & 0x03;
    let kind = if version == VERSION_2 { (kind + 3) % 4 } else { kind };
    let hello = if kind == 0 { super::quic_initial::client_hello_of(payload).map(Box::new) } else { None };
    let role = match kind {
        _ if hello.is_some() => Role::Client,
        1 => Role::Client,
        3 => Role::Server,
        _ => Role::Either,
    };
    Some(Protocol::new(App::Quic { version, hello }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long header: Initial type, `version`, an 8-byte DCID, an empty SCID.
    fn long_header(version: u32) -> Vec<u8> {
        let mut p = vec![0xc3];
        p.extend_from_slice(&version.to_be_bytes());
        p.push(8);
        p.extend_from_slice(&[0xaa; 8]);
        p.push(0);
        p.extend_from_slice(&[0x00, 0x41, 0x00]); // token length, packet length...
        p
    }

    #[test]
    fn google_quic_client_packets_are_quic() {
        // Flags 0x0d: version, 8-byte connection id, 1-byte packet number; then the id, `Q039`.
        let mut p = vec![0x0d];
        p.extend_from_slice(&[0x5c; 8]);
        p.extend_from_slice(b"Q039");
        p.extend_from_slice(&[0x01, 0x23, 0x45]);
        let got = identify_google(&p).expect("gQUIC");
        assert_eq!(
            (got.app, got.role),
            (App::Quic { version: u32::from_be_bytes(*b"Q039"), hello: None }, Role::Client)
        );
        p[9] = b'X';
        assert_eq!(identify_google(&p), None, "not a Q0 version");
        assert_eq!(identify_google(&[0x0d; 11]), None, "cut");
        assert_eq!(identify_google(&[0x0c; 20]), None, "no version flag");
    }

    #[test]
    fn known_versions_are_quic() {
        for version in [VERSION_1, VERSION_2, 0xff00_001d] {
            let got = identify(&long_header(version)).map(|p| p.app);
            assert_eq!(got, Some(App::Quic { version, hello: None }), "{version:#x}");
        }
    }

    #[test]
    fn other_versions_and_headers_are_not() {
        assert_eq!(identify(&long_header(0)), None, "version negotiation without versions");
        assert_eq!(identify(&long_header(0x1a2a_3a4a)), None, "greased version");
        assert!(identify(&long_header(0x5130_3436)).is_some(), "gQUIC Q046 has the long header");
        assert_eq!(identify(&long_header(0x5130_3441)), None, "Q0 and a non-digit");
        let mut short = long_header(VERSION_1);
        short[0] = 0x43;
        assert_eq!(identify(&short), None, "short header");
        let mut wide = long_header(VERSION_1);
        wide.resize(64, 0);
        wide[5] = 21;
        assert_eq!(identify(&wide), None, "destination connection id over 20 bytes");
        let mut wide = long_header(VERSION_1);
        wide[14] = 21;
        wide.resize(64, 0);
        assert_eq!(identify(&wide), None, "source connection id over 20 bytes");
        assert_eq!(identify(&long_header(VERSION_1)[..14]), None, "cut before the SCID length");
    }

    #[test]
    fn version_negotiation_lists_a_known_version() {
        let mut vn = vec![0x80, 0, 0, 0, 0, 4, 1, 2, 3, 4, 0];
        vn.extend_from_slice(&[0x0a, 0x1a, 0x2a, 0x3a, 0, 0, 0, 1]);
        assert_eq!(identify(&vn), Some(Protocol::new(App::Quic { version: 0, hello: None }, Role::Server)));
        vn.truncate(vn.len() - 4);
        assert_eq!(identify(&vn), None, "only a greased version");
    }

    #[test]
    fn zero_rtt_is_the_client_and_retry_the_server() {
        let mut p = long_header(VERSION_1);
        p[0] = 0xd0;
        assert_eq!(identify(&p).map(|q| q.role), Some(Role::Client));
        p[0] = 0xf0;
        assert_eq!(identify(&p).map(|q| q.role), Some(Role::Server));
        let mut p = long_header(VERSION_2);
        p[0] = 0xc0; // v2 Retry
        assert_eq!(identify(&p).map(|q| q.role), Some(Role::Server));
    }
}
