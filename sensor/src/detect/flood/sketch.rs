//! Fixed-size counters for the flood detector: a flood brings tens of
//! thousands of sources a second, so what counts them must not grow with
//! them.
//!
//! - [`SecondBits`]: distinct sources within one second, by linear counting
//!   over a 512-bit map (64 bytes; within a few per cent up to about a
//!   thousand sources (3 % standard error at a hundred), saturating near 3 200, which it then reports as a
//!   lower bound);
//! - [`Hll`]: distinct sources over a bucket, a HyperLogLog of 256 one-byte
//!   registers (about 6.5 % standard error, any count);
//! - [`Top`]: the heaviest few keys (ports, sources), space-saving: a new key
//!   takes the lightest slot's place and count.
//!
//! Hashes use a fixed seed, so counts (and alerts) are the same on every run.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;

const SEED: u64 = 0x6e62_6164_666c_6f6f;

/// The 64-bit hash every sketch here uses: foldhash, then MurmurHash3's
/// finalizer, so that every bit (the registers' index is the top eight) is
/// spread even for addresses that differ in a few low bits.
#[must_use]
pub fn hash<T: Hash>(v: &T) -> u64 {
    let mut h = FixedState::with_seed(SEED).hash_one(v);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Distinct values in one second, by linear counting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondBits([u64; 8]);

impl SecondBits {
    const BITS: f64 = 512.0;

    /// Adds a value by its hash.
    pub fn add(&mut self, h: u64) {
        let bit = (h & 511) as usize;
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    /// The estimated count, and whether the map is saturated (the count is then a lower bound).
    #[must_use]
    pub fn estimate(&self) -> (f64, bool) {
        let set: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        let zeros = Self::BITS - f64::from(set);
        if zeros < 1.0 {
            return (Self::BITS * Self::BITS.ln(), true);
        }
        (-Self::BITS * (zeros / Self::BITS).ln(), false)
    }
}

/// Distinct values over a longer span: HyperLogLog, 256 registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hll([u8; 256]);

impl Default for Hll {
    fn default() -> Self {
        Self([0; 256])
    }
}

impl Hll {
    /// Adds a value by its hash.
    pub fn add(&mut self, h: u64) {
        let idx = (h >> 56) as usize;
        let rest = h << 8;
        let rank = u8::try_from(rest.leading_zeros().min(56) + 1).unwrap_or(57);
        if let Some(r) = self.0.get_mut(idx) {
            *r = (*r).max(rank);
        }
    }

    /// The estimated count (small counts by linear counting over the registers).
    #[must_use]
    pub fn estimate(&self) -> f64 {
        let m = self.0.len() as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.0.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.0.iter().filter(|r| **r == 0).count();
        if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw }
    }
}

/// The heaviest `N` keys, space-saving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top<K, const N: usize> {
    slots: [Option<(K, u64)>; N],
}

impl<K: Copy + Eq, const N: usize> Default for Top<K, N> {
    fn default() -> Self {
        Self { slots: [None; N] }
    }
}

impl<K: Copy + Eq + Ord, const N: usize> Top<K, N> {
    /// Adds `n` to `key`'s count.
    pub fn add(&mut self, key: K, n: u64) {
        let mut free = None;
        let mut lightest = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            match slot {
                Some((k, c)) if *k == key => {
                    *c += n;
                    return;
                }
                Some(_) => {}
                None => {
                    free.get_or_insert(i);
                }
            }
        }
        if let Some(i) = free {
            self.slots[i] = Some((key, n));
            return;
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.map_or(0, |s| s.1) < self.slots[lightest].map_or(0, |s| s.1) {
                lightest = i;
            }
        }
        let base = self.slots[lightest].map_or(0, |s| s.1);
        self.slots[lightest] = Some((key, base + n));
    }

    /// The keys, heaviest first (ties by key).
    #[must_use]
    pub fn sorted(&self) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = self.slots.iter().flatten().copied().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// The heaviest key.
    #[must_use]
    pub fn first(&self) -> Option<(K, u64)> {
        self.sorted().first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_bits_count_a_hundred_sources_within_ten_per_cent() {
        let mut b = SecondBits::default();
        for i in 0..100u32 {
            b.add(hash(&i));
            b.add(hash(&i));
        }
        let (n, saturated) = b.estimate();
        assert!(!saturated);
        assert!((90.0..=110.0).contains(&n), "{n}");
    }

    #[test]
    fn second_bits_saturate_into_a_lower_bound() {
        let mut b = SecondBits::default();
        for i in 0..50_000u32 {
            b.add(hash(&i));
        }
        let (n, saturated) = b.estimate();
        assert!(saturated && n > 3_000.0, "{n}");
    }

    #[test]
    fn hll_counts_thirty_seven_thousand_sources_within_twenty_per_cent() {
        let mut h = Hll::default();
        for i in 0..37_623u32 {
            h.add(hash(&i));
        }
        let n = h.estimate();
        assert!((30_000.0..=45_000.0).contains(&n), "{n}");
        let mut small = Hll::default();
        for i in 0..10u32 {
            small.add(hash(&i));
        }
        assert!((9.0..=11.0).contains(&small.estimate()), "{}", small.estimate());
    }

    #[test]
    fn top_keeps_the_heaviest_keys() {
        let mut t: Top<u16, 2> = Top::default();
        t.add(25_565, 100);
        t.add(80, 1);
        t.add(443, 2);
        t.add(25_565, 1);
        assert_eq!(t.first(), Some((25_565, 101)));
        assert_eq!(t.sorted().len(), 2);
    }
}
