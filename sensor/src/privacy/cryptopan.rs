//! Crypto-PAn: prefix-preserving address anonymisation (Xu, Fan, Ammar and Moon, "Prefix-
//! preserving IP address anonymization", ICNP 2002).
//!
//! Keyed with 32 bytes: the first 16 are an AES-128 key, the last 16 are encrypted under it
//! once to give the pad. Bit `i` of an address is flipped or kept according to the first bit
//! of AES over the address's first `i` bits followed by the pad's remaining bits, so two
//! addresses that share their first `k` bits map to two that share exactly their first `k`
//! bits, and the map is a permutation of the address space. IPv6 is the same walk over 128
//! bits with the whole 16-byte block (as the widely used Go and Python implementations do).
//!
//! Cost: one AES block per address bit (32 for IPv4, 128 for IPv6); callers cache results
//! (see [`super::pseudonym`]). Tested against the vectors of the reference implementation's
//! `sample_trace_raw.dat` / `sample_trace_sanitized.dat`.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt as _, KeyInit as _};

/// A keyed Crypto-PAn instance.
pub struct CryptoPan {
    aes: Aes128,
    pad: [u8; 16],
}

impl std::fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or the pad.
        f.write_str("CryptoPan { .. }")
    }
}

impl CryptoPan {
    /// An instance keyed with `key`: AES key, then the pad's plaintext.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        let (aes_key, pad_plain) = key.split_at(16);
        let aes = Aes128::new_from_slice(aes_key).expect("split_at(16) of 32 bytes gives a 16-byte AES key");
        let mut pad = [0u8; 16];
        pad.copy_from_slice(pad_plain);
        let pad = encrypt(&aes, pad);
        Self { aes, pad }
    }

    /// The pseudonym of an IPv4 address (as a big-endian `u32`).
    #[must_use]
    pub fn anonymize_v4(&self, addr: u32) -> u32 {
        u32::try_from(self.walk(u128::from(addr), 32)).expect("a 32-bit walk gives 32 bits")
    }

    /// The pseudonym of an IPv6 address (as a big-endian `u128`).
    #[must_use]
    pub fn anonymize_v6(&self, addr: u128) -> u128 {
        self.walk(addr, 128)
    }

    /// The walk over the top `width` bits (32 or 128) of `orig`.
    fn walk(&self, orig: u128, width: u32) -> u128 {
        let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
        let bytes = (width / 8) as usize;
        let pad_top = self.pad[..bytes].iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        let mut flips = 0u128;
        for pos in 0..width {
            // The first `pos` bits of the address, the rest from the pad.
            let from_orig = all & !(all >> pos);
            let input = (orig & from_orig) | (pad_top & !from_orig & all);
            let mut block = self.pad;
            block[..bytes].copy_from_slice(&input.to_be_bytes()[16 - bytes..]);
            let out = encrypt(&self.aes, block);
            flips |= u128::from(out[0] >> 7) << (width - 1 - pos);
        }
        orig ^ flips
    }
}

fn encrypt(aes: &Aes128, block: [u8; 16]) -> [u8; 16] {
    let mut b = aes::Block::from(block);
    aes.encrypt_block(&mut b);
    b.into()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// The sample key of the Crypto-PAn reference distribution.
    const SAMPLE_KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121, 121,
        101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    /// Address pairs from the reference distribution's `sample_trace_raw.dat` and
    /// `sample_trace_sanitized.dat` (a selection; the whole trace has the same key).
    const REFERENCE_V4: [(&str, &str); 20] = [
        ("128.11.68.132", "135.242.180.132"),
        ("129.118.74.4", "134.136.186.123"),
        ("130.132.252.244", "133.68.164.234"),
        ("141.223.7.43", "141.167.8.160"),
        ("141.233.145.108", "141.129.237.235"),
        ("152.163.225.39", "151.140.114.167"),
        ("156.29.3.236", "147.225.12.42"),
        ("165.247.96.84", "162.9.99.234"),
        ("166.107.77.190", "160.132.178.185"),
        ("192.102.249.13", "252.138.62.131"),
        ("192.215.32.125", "252.43.47.189"),
        ("192.41.57.43", "252.222.221.184"),
        ("195.205.63.100", "255.186.223.5"),
        ("198.51.77.238", "249.18.186.254"),
        ("207.33.151.131", "241.1.233.131"),
        ("216.35.217.178", "235.195.157.81"),
        ("24.0.250.221", "100.15.198.226"),
        ("4.3.88.225", "124.60.155.63"),
        ("64.14.118.196", "0.255.183.58"),
        ("10.185.25.118", "117.161.29.118"),
    ];

    /// IPv6 with the same key, as the Go and Python implementations extend the algorithm.
    const REFERENCE_V6: [(&str, &str); 5] = [
        ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
        ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
        ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
        ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
        ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
    ];

    fn v4(s: &str) -> u32 {
        s.parse::<Ipv4Addr>().expect("a test vector is an IPv4 address").into()
    }

    fn v6(s: &str) -> u128 {
        s.parse::<Ipv6Addr>().expect("a test vector is an IPv6 address").into()
    }

    #[test]
    fn ipv4_matches_the_reference_implementations_sample_trace() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        for (raw, sanitized) in REFERENCE_V4 {
            assert_eq!(Ipv4Addr::from(pan.anonymize_v4(v4(raw))), Ipv4Addr::from(v4(sanitized)), "{raw}");
        }
    }

    #[test]
    fn ipv6_matches_the_published_extension_vectors() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        for (raw, sanitized) in REFERENCE_V6 {
            assert_eq!(Ipv6Addr::from(pan.anonymize_v6(v6(raw))), Ipv6Addr::from(v6(sanitized)), "{raw}");
        }
    }

    #[test]
    fn shared_prefix_length_is_preserved_exactly() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..500 {
            let a = rng.u32(..);
            // A partner sharing exactly `k` leading bits with `a`.
            let k = rng.u32(0..32);
            let below = (1u32 << (31 - k)) - 1;
            let b = a ^ (1u32 << (31 - k)) ^ (rng.u32(..) & below);
            let common = (a ^ b).leading_zeros();
            assert_eq!(common, k);
            let (pa, pb) = (pan.anonymize_v4(a), pan.anonymize_v4(b));
            assert_eq!((pa ^ pb).leading_zeros(), common, "{a:#x} {b:#x}");
        }
        let a = v6("fd00:1:2:3::10");
        let b = v6("fd00:1:2:4::10");
        let (pa, pb) = (pan.anonymize_v6(a), pan.anonymize_v6(b));
        assert_eq!((pa ^ pb).leading_zeros(), (a ^ b).leading_zeros());
    }

    #[test]
    fn another_key_gives_other_pseudonyms() {
        let mut other = SAMPLE_KEY;
        other[0] ^= 1;
        let a = v4("10.185.25.118");
        assert_ne!(CryptoPan::new(&SAMPLE_KEY).anonymize_v4(a), CryptoPan::new(&other).anonymize_v4(a));
    }
}
