//! How much a name (a DNS label, an SNI) looks like encoded data or machine-made randomness,
//! for `dns_tunnel`, `dga` and `suspicious_tls`.
//!
//! Plain Shannon entropy is a poor judge of short labels: a 16-character hex string cannot
//! reach more than 4 bits per character, a word of 16 letters easily reaches 3.5. So a label is
//! first put in the smallest alphabet that holds it (hex, base32, base36, base64 with `-` and
//! `_`), and its entropy is taken *relative* to what that alphabet allows for its length: the
//! share of the maximum entropy of a random string of the same length over that alphabet. Real
//! words and hostnames ("mail", "login-eu", "cdn77") sit low; hex digests, base32 and base64
//! payloads sit near 1. Vowel scarcity and digit–letter mixing are added as structure hints.

/// The smallest alphabet a label's characters fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// 0-9 a-f.
    Hex,
    /// a-z 2-7 (RFC 4648 base32, case-insensitive as DNS is).
    Base32,
    /// a-z 0-9.
    Base36,
    /// a-z 0-9 `-` `_` (DNS labels carry base64 lowercased or with URL-safe symbols).
    Base64,
    /// Anything else (a dot, a space, a byte outside printable ASCII...).
    Other,
}

impl Alphabet {
    /// Characters in the alphabet.
    #[must_use]
    pub fn size(self) -> f64 {
        match self {
            Self::Hex => 16.0,
            Self::Base32 => 32.0,
            Self::Base36 => 36.0,
            Self::Base64 | Self::Other => 64.0,
        }
    }

    /// The name written into evidence.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Base32 => "base32",
            Self::Base36 => "base36",
            Self::Base64 => "base64",
            Self::Other => "other",
        }
    }
}

/// The alphabet of `label` (case-insensitive).
#[must_use]
pub fn alphabet(label: &str) -> Alphabet {
    let b = label.as_bytes();
    let lower = |c: u8| c.to_ascii_lowercase();
    if b.iter().all(|&c| lower(c).is_ascii_hexdigit()) {
        Alphabet::Hex
    } else if b.iter().all(|&c| lower(c).is_ascii_lowercase() || (b'2'..=b'7').contains(&c)) {
        Alphabet::Base32
    } else if b.iter().all(|&c| c.is_ascii_alphanumeric()) {
        Alphabet::Base36
    } else if b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        Alphabet::Base64
    } else {
        Alphabet::Other
    }
}

pub use super::host::entropy;

/// The entropy a random string of `len` characters over `alphabet` has on average, about:
/// `log2(alphabet)` for long strings, less for short ones (they cannot use every character).
fn expected_max(len: usize, alphabet: Alphabet) -> f64 {
    let k = alphabet.size();
    let n = len as f64;
    // The expected number of distinct characters, spread evenly: an upper estimate.
    let distinct = k * (1.0 - (1.0 - 1.0 / k).powf(n));
    distinct.max(1.0).log2().min(k.log2())
}

/// How random `label` looks, 0 (a word) to 1 (a digest or an encoded payload): its entropy
/// relative to a random string of its length and alphabet.
#[must_use]
pub fn relative_entropy(label: &str) -> f64 {
    if label.len() < 2 {
        return 0.0;
    }
    let a = alphabet(label);
    (entropy(label) / expected_max(label.len(), a)).clamp(0.0, 1.0)
}

/// Vowels (a e i o u y) per letter of `label`; 1 when it has no letter.
#[must_use]
pub fn vowel_share(label: &str) -> f64 {
    let letters: Vec<u8> =
        label.bytes().filter(u8::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect();
    if letters.is_empty() {
        return 1.0;
    }
    letters.iter().filter(|c| b"aeiouy".contains(c)).count() as f64 / letters.len() as f64
}

/// Whether `label` mixes digits and letters (not only at its end, as `web01` does).
#[must_use]
pub fn mixes_digits(label: &str) -> bool {
    let trimmed = label.trim_end_matches(|c: char| c.is_ascii_digit());
    trimmed.bytes().any(|c| c.is_ascii_digit()) && trimmed.bytes().any(|c| c.is_ascii_alphabetic())
}

/// Whether a label of at least `min_len` characters looks machine-made: near-random relative
/// entropy, with scarce vowels or digits mixed into letters. Hex labels of 16 or more count
/// whatever their vowels (digests).
#[must_use]
pub fn looks_random(label: &str, min_len: usize) -> bool {
    if label.len() < min_len {
        return false;
    }
    let rel = relative_entropy(label);
    match alphabet(label) {
        Alphabet::Hex if label.len() >= 16 => rel >= 0.8,
        Alphabet::Other => false,
        _ => rel >= 0.85 && (vowel_share(label) < 0.3 || mixes_digits(label)),
    }
}

/// Whether `name` is an IPv4 or IPv6 address written out (optionally in brackets).
#[must_use]
pub fn is_ip_literal(name: &str) -> bool {
    name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabets_are_the_smallest_that_fit() {
        assert_eq!(alphabet("3f9a0c"), Alphabet::Hex);
        assert_eq!(alphabet("mzxw6ytboi"), Alphabet::Base32);
        assert_eq!(alphabet("cdn77x9"), Alphabet::Base36);
        assert_eq!(alphabet("a-b_c9"), Alphabet::Base64);
        assert_eq!(alphabet("a.b"), Alphabet::Other);
    }

    #[test]
    fn encoded_labels_look_random_and_words_do_not() {
        // dnscat2's hex (34 characters), iodine's base32, a Tor SNI, base64.
        for label in [
            "546b03f50000000000a6023ed4df19e4d0",
            "mzxw6ytboi2dkmrtgqzdknbzgq3tmmbq",
            "4qfbe4upxp2g",
            "q8zr3xp0lm9tfvb2wk7yh1",
        ] {
            assert!(looks_random(label, 8), "{label}: {}", relative_entropy(label));
        }
        for label in
            ["mail", "login-europe", "connectivity", "googleusercontent", "skypedataprdcolneu04", "www"]
        {
            assert!(!looks_random(label, 8), "{label}: {}", relative_entropy(label));
        }
    }

    #[test]
    fn ip_literals_are_recognised() {
        assert!(is_ip_literal("203.0.113.9"));
        assert!(is_ip_literal("[2001:db8::1]"));
        assert!(!is_ip_literal("example.com"));
    }
}
