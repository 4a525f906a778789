//! Tunnel headers the decoder looks through: GRE (RFC 2784/2890, including
//! transparent Ethernet bridging and ERSPAN type II/III) and VXLAN (RFC 7348).
//! Each returns the inner frame or packet; the caller decodes it as if it had
//! been captured directly, so flows are keyed on the inner 5-tuple.

use crate::decode::Malformed;

/// What a tunnel carries.
#[derive(Debug, Clone, Copy)]
pub enum Inner<'a> {
    /// An IP packet (IPv4 or IPv6).
    Ip(&'a [u8]),
    /// An Ethernet frame.
    Ethernet(&'a [u8]),
    /// A payload the decoder does not follow (PPTP's enhanced GRE, MPLS, ...):
    /// the outer packet is accounted as a GRE flow.
    Opaque,
}

const GRE_CHECKSUM: u8 = 0x80;
const GRE_KEY: u8 = 0x20;
const GRE_SEQUENCE: u8 = 0x10;

/// Parses a GRE header and returns what it carries.
pub fn gre(payload: &[u8]) -> Result<Inner<'_>, Malformed> {
    let header = payload.get(..4).ok_or(Malformed::BadTunnel)?;
    let flags = header[0];
    let version = header[1] & 0x07;
    if version != 0 {
        return Ok(Inner::Opaque);
    }
    let proto = u16::from_be_bytes([header[2], header[3]]);
    let mut len = 4;
    for bit in [GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE] {
        if flags & bit != 0 {
            len += 4;
        }
    }
    let inner = payload.get(len..).ok_or(Malformed::BadTunnel)?;
    Ok(match proto {
        0x0800 | 0x86dd => Inner::Ip(inner),
        0x6558 => Inner::Ethernet(inner),
        // ERSPAN type II: an 8-byte header, then the mirrored frame.
        0x88be => Inner::Ethernet(inner.get(8..).ok_or(Malformed::BadTunnel)?),
        // ERSPAN type III: a 12-byte header, plus 8 bytes of platform
        // sub-header when its O bit is set.
        0x22eb => {
            let header = inner.get(..12).ok_or(Malformed::BadTunnel)?;
            let skip = if header[11] & 0x01 != 0 { 20 } else { 12 };
            Inner::Ethernet(inner.get(skip..).ok_or(Malformed::BadTunnel)?)
        }
        _ => Inner::Opaque,
    })
}

/// Parses a VXLAN header (the UDP payload) and returns the inner frame.
/// A header without the I flag (valid VNI) is not VXLAN: the datagram is then
/// accounted as the plain UDP flow it is.
pub fn vxlan(payload: &[u8]) -> Result<Inner<'_>, Malformed> {
    let header = payload.get(..8).ok_or(Malformed::BadTunnel)?;
    if header[0] & 0x08 == 0 {
        return Ok(Inner::Opaque);
    }
    Ok(Inner::Ethernet(&payload[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_with_key_and_sequence_skips_both_fields() {
        let mut pkt = vec![GRE_KEY | GRE_SEQUENCE, 0, 0x08, 0x00];
        pkt.extend_from_slice(&[0; 8]);
        pkt.extend_from_slice(&[0x45, 0]);
        match gre(&pkt) {
            Ok(Inner::Ip(inner)) => assert_eq!(inner, &[0x45, 0]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn truncated_gre_is_malformed_not_a_panic() {
        assert_eq!(gre(&[GRE_CHECKSUM, 0, 0x08, 0x00, 1]).err(), Some(Malformed::BadTunnel));
        assert_eq!(gre(&[0]).err(), Some(Malformed::BadTunnel));
    }

    #[test]
    fn vxlan_without_vni_flag_is_not_decapsulated() {
        assert!(matches!(vxlan(&[0; 16]), Ok(Inner::Opaque)));
        assert!(matches!(vxlan(&[0x08, 0, 0, 0, 0, 0, 1, 0, 0xaa]), Ok(Inner::Ethernet([0xaa]))));
    }
}
