//! "Has this host talked to that before?" for any number of peers and domains, in fixed memory.
//!
//! A [`Seen`] set is two Bloom filters of [`BITS`] bits with [`HASHES`] probes each: the
//! current generation and the previous one. A key is known when either holds it; new keys go
//! into the current one, and when it has taken [`GENERATION`] keys it becomes the previous one
//! and a fresh current one starts. So what a host has not touched for about two generations is
//! forgotten (it is new again), memory stays at 1 KiB per set whatever the host does, and at
//! [`GENERATION`] keys per filter the false-positive rate ("known" for a key never seen) stays
//! near 1 %: a novelty rule then and again treats a new peer as a known one, never the reverse.
//!
//! Saved with the baseline as two base64 strings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bits per generation.
pub const BITS: usize = 4_096;
/// Probes per key.
pub const HASHES: u32 = 4;
/// Keys a generation takes before it is retired (about 1 % false positives at this fill).
pub const GENERATION: u32 = 400;

const WORDS: usize = BITS / 64;

/// A two-generation Bloom filter of 64-bit keys (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    current: Box<[u64; WORDS]>,
    previous: Box<[u64; WORDS]>,
    /// Keys added to the current generation.
    added: u32,
}

impl Default for Seen {
    fn default() -> Self {
        Self { current: Box::new([0; WORDS]), previous: Box::new([0; WORDS]), added: 0 }
    }
}

/// The probe positions of `key`: double hashing over a 64-bit mix of it.
fn probes(key: u64) -> impl Iterator<Item = usize> {
    let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (key >> 29);
    let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..u64::from(HASHES)).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % BITS as u64) as usize)
}

fn holds(bits: &[u64; WORDS], key: u64) -> bool {
    probes(key).all(|p| bits[p / 64] & (1 << (p % 64)) != 0)
}

impl Seen {
    /// Whether `key` was added (in either generation).
    #[must_use]
    pub fn contains(&self, key: u64) -> bool {
        holds(&self.current, key) || holds(&self.previous, key)
    }

    /// Adds `key`; returns whether it was known already. A known key found only in the
    /// previous generation is added to the current one, so what is in use is never forgotten.
    pub fn insert(&mut self, key: u64) -> bool {
        if holds(&self.current, key) {
            return true;
        }
        let known = holds(&self.previous, key);
        if self.added >= GENERATION {
            self.previous = std::mem::replace(&mut self.current, Box::new([0; WORDS]));
            self.added = 0;
        }
        for p in probes(key) {
            self.current[p / 64] |= 1 << (p % 64);
        }
        self.added += 1;
        known
    }

    /// Whether nothing was ever added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.current.iter().chain(self.previous.iter()).all(|w| *w == 0)
    }
}

/// The saved form: both generations as base64 of their little-endian words.
#[derive(Serialize, Deserialize)]
struct Saved {
    current: String,
    previous: String,
    added: u32,
}

fn encode(bits: &[u64; WORDS]) -> String {
    let bytes: Vec<u8> = bits.iter().flat_map(|w| w.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

fn decode(text: &str) -> Option<Box<[u64; WORDS]>> {
    let bytes = STANDARD.decode(text).ok()?;
    if bytes.len() != WORDS * 8 {
        return None;
    }
    let mut bits = Box::new([0u64; WORDS]);
    for (w, chunk) in bits.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *w = u64::from_le_bytes(word);
    }
    Some(bits)
}

impl Serialize for Seen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Saved { current: encode(&self.current), previous: encode(&self.previous), added: self.added }
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let saved = Saved::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!("a seen-set generation is not {} bytes of base64", WORDS * 8))
        };
        Ok(Self {
            current: decode(&saved.current).ok_or_else(bad)?,
            previous: decode(&saved.previous).ok_or_else(bad)?,
            added: saved.added.min(GENERATION),
        })
    }
}

/// A 64-bit key for an address.
#[must_use]
pub fn addr_key(a: std::net::IpAddr) -> u64 {
    use std::hash::BuildHasher as _;
    foldhash::fast::FixedState::default().hash_one(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_remembered_across_one_generation_change_and_forgotten_after_two() {
        let mut s = Seen::default();
        assert!(!s.insert(7));
        assert!(s.insert(7));
        for k in 1_000..(1_000 + u64::from(GENERATION)) {
            s.insert(k);
        }
        assert!(s.contains(7), "still in the previous generation");
        for k in 10_000..(10_000 + 2 * u64::from(GENERATION) + 1) {
            s.insert(k);
        }
        assert!(!s.contains(7), "two generations later it is forgotten");
    }

    #[test]
    fn false_positives_stay_near_one_percent_at_a_full_generation() {
        let mut s = Seen::default();
        for k in 0..u64::from(GENERATION) {
            s.insert(k.wrapping_mul(0x1234_5678_9abc_def1));
        }
        let fp = (1_000_000..1_100_000u64).filter(|k| s.contains(*k)).count();
        assert!(fp < 3_000, "{fp} false positives in 100 000");
    }

    #[test]
    fn saves_and_loads_as_json() {
        let mut s = Seen::default();
        s.insert(42);
        let text = serde_json::to_string(&s).expect("serialise");
        let back: Seen = serde_json::from_str(&text).expect("deserialise");
        assert_eq!(back, s);
        assert!(back.contains(42));
        assert!(
            serde_json::from_str::<Seen>("{\"current\":\"AA==\",\"previous\":\"\",\"added\":0}").is_err()
        );
    }
}
