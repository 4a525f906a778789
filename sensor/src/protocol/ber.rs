//! A minimal BER reader for the ASN.1-framed protocols (LDAP, SNMP,
//! Kerberos): one tag-length-value header at a time, without allocation.
//!
//! Only what those protocols' first messages use is read: single-byte tags
//! (tag numbers below 31) and definite lengths of up to four length bytes.
//! An indefinite length (0x80), a long-form tag or a length past `u32` is
//! refused, which their encoders never send; a long-form length with leading
//! zero bytes is read (Active Directory's LDAP and CLDAP use `84 00 00 ...`).
//! A value cut by the end of the bytes is returned as far as it goes, with
//! [`Tlv::cut`] set, so a sampled payload can still be read from the front.
//! (asn1-rs, which x509-parser brings in, reads the same headers but builds
//! owned objects and reports a cut value only as an error; the identifiers
//! need neither.)

/// One BER element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tlv<'a> {
    /// The identifier octet (class, constructed bit, tag number).
    pub tag: u8,
    /// The value's bytes that are there.
    pub value: &'a [u8],
    /// The value's length as its header states it.
    pub len: usize,
    /// Whether the bytes end before the value does.
    pub cut: bool,
}

/// The element at the start of `bytes` and the bytes after it (empty when cut).
pub(super) fn read(bytes: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        // BER allows leading zero bytes (Active Directory writes every length
        // as `84 00 00 0x xx`, and some SNMP agents `82 00 xx`); DER does not.
        let digits = rest.get(..count)?;
        let len = digits.iter().fold(0usize, |acc, &d| (acc << 8) | usize::from(d));
        (len, &rest[count..])
    };
    match rest.get(..len) {
        Some(value) => Some((Tlv { tag, value, len, cut: false }, &rest[len..])),
        None => Some((Tlv { tag, value: rest, len, cut: true }, &[])),
    }
}

/// The element at the start of `bytes` when its tag is `tag`.
pub(super) fn expect(bytes: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    let (tlv, rest) = read(bytes)?;
    (tlv.tag == tag).then_some((tlv, rest))
}

/// A whole, non-negative INTEGER of one to four value bytes.
pub(super) fn small_uint(tlv: &Tlv<'_>) -> Option<u32> {
    if tlv.tag != 0x02 || tlv.cut || tlv.value.is_empty() || tlv.value.len() > 5 || tlv.value[0] & 0x80 != 0 {
        return None;
    }
    // A fifth byte is allowed only as the sign-padding zero of a value with its top bit set.
    let value = match tlv.value {
        [0, rest @ ..] if tlv.value.len() == 5 => rest,
        other if other.len() <= 4 => other,
        _ => return None,
    };
    Some(value.iter().fold(0u32, |acc, &d| (acc << 8) | u32::from(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let (tlv, rest) = read(&[0x30, 0x03, 1, 2, 3, 9]).expect("short form");
        assert_eq!((tlv.tag, tlv.value, tlv.cut, rest), (0x30, &[1, 2, 3][..], false, &[9][..]));
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.resize(4 + 256, 7);
        let (tlv, rest) = read(&long).expect("long form");
        assert_eq!((tlv.len, tlv.value.len(), rest.len()), (256, 256, 0));
    }

    #[test]
    fn cut_values_are_returned_as_far_as_they_go() {
        let (tlv, rest) = read(&[0x30, 0x10, 1, 2]).expect("cut");
        assert!(tlv.cut);
        assert_eq!((tlv.value, tlv.len, rest), (&[1, 2][..], 16, &[][..]));
    }

    #[test]
    fn refuses_what_these_protocols_never_send() {
        assert_eq!(read(&[0x30, 0x80, 0, 0]), None, "indefinite length");
        assert_eq!(read(&[0x1f, 0x01, 0]), None, "long-form tag");
        assert_eq!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]), None, "five length bytes");
        let (tlv, _) = read(&[0x30, 0x84, 0, 0, 0, 1, 7]).expect("leading zeros, as AD writes them");
        assert_eq!((tlv.len, tlv.value), (1, &[7][..]));
        assert_eq!(read(&[0x30]), None);
    }

    #[test]
    fn small_integers() {
        let int = |v: &[u8]| small_uint(&Tlv { tag: 2, value: v, len: v.len(), cut: false });
        assert_eq!(int(&[5]), Some(5));
        assert_eq!(int(&[0x01, 0x00]), Some(256));
        assert_eq!(int(&[0x00, 0xff, 0xff, 0xff, 0xff]), Some(u32::MAX));
        assert_eq!(int(&[0x80]), None, "negative");
        assert_eq!(int(&[]), None);
    }
}
