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
//! Not handled: short-header packets (the rest of a connection; they carry no
//! version), version negotiation (version 0), greased or private versions,
//! Google QUIC (`Q0xx`), and the fixed bit cleared by RFC 9287 greasing.

use super::Protocol;

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// Longest connection id in versions 1 and 2.
const MAX_CID_LEN: u8 = 20;
/// Form bit (long header) and fixed bit.
const LONG_HEADER: u8 = 0b1100_0000;

/// Whether `version` is QUIC v1, v2 or an IETF draft (`0xff00_00xx`, drafts 1 to 34).
pub fn known_version(version: u32) -> bool {
    matches!(version, VERSION_1 | VERSION_2 | 0xff00_0001..=0xff00_0022)
}

/// `Some(Protocol::Quic)` for a UDP payload that starts with a QUIC long header.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let (&first, rest) = payload.split_first()?;
    if first & LONG_HEADER != LONG_HEADER {
        return None;
    }
    let (version, rest) = rest.split_first_chunk::<4>()?;
    let version = u32::from_be_bytes(*version);
    if !known_version(version) {
        return None;
    }
    let (&dcid_len, rest) = rest.split_first()?;
    if dcid_len > MAX_CID_LEN {
        return None;
    }
    let scid_len = *rest.get(usize::from(dcid_len))?;
    (scid_len <= MAX_CID_LEN).then_some(Protocol::Quic { version })
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
    fn known_versions_are_quic() {
        for version in [VERSION_1, VERSION_2, 0xff00_001d] {
            assert_eq!(identify(&long_header(version)), Some(Protocol::Quic { version }), "{version:#x}");
        }
    }

    #[test]
    fn other_versions_and_headers_are_not() {
        assert_eq!(identify(&long_header(0)), None, "version negotiation");
        assert_eq!(identify(&long_header(0x1a2a_3a4a)), None, "greased version");
        assert_eq!(identify(&long_header(0x5130_3436)), None, "gQUIC Q046");
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
}
