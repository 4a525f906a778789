//! Whether an unidentified first payload looks fully encrypted: no protocol framing at all, only
//! bytes indistinguishable from random, as Shadowsocks, VMess, obfs4 and other
//! circumvention or tunnelling protocols send from their first byte on.
//!
//! The test is the one Wu et al. measured the Great Firewall of China applying to the first
//! data packet of TCP connections ("How the Great Firewall of China Detects and Blocks Fully
//! Encrypted Traffic", USENIX Security 2023). A payload is exempt, i.e. *not* fully
//! encrypted, when:
//!
//! 1. its average number of set bits per byte is at most 3.4 or at least 4.6 (random bytes
//!    average 4 with little spread over tens of bytes);
//! 2. its first six bytes are printable ASCII;
//! 3. more than half of its bytes are printable ASCII;
//! 4. it holds a run of more than 20 printable ASCII bytes;
//! 5. it is a protocol the identifier knows (the caller asks only about unknown payloads).
//!
//! Below [`MIN_LEN`] bytes the bit count says too little, so shorter payloads are never judged
//! encrypted. Plain binary protocols (length-prefixed records with zero padding, counters)
//! fail rule 1; text protocols fail rules 2 to 4.

/// Shortest payload judged.
pub const MIN_LEN: usize = 32;

fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// Whether `payload` looks fully encrypted (see the module docs).
#[must_use]
pub fn looks_fully_encrypted(payload: &[u8]) -> bool {
    if payload.len() < MIN_LEN {
        return false;
    }
    let bits: u32 = payload.iter().map(|b| b.count_ones()).sum();
    let per_byte = f64::from(bits) / payload.len() as f64;
    if per_byte <= 3.4 || per_byte >= 4.6 {
        return false;
    }
    if payload.iter().take(6).all(|b| printable(*b)) {
        return false;
    }
    let shown = payload.iter().filter(|b| printable(**b)).count();
    if shown * 2 > payload.len() {
        return false;
    }
    let mut run = 0usize;
    for b in payload {
        run = if printable(*b) { run + 1 } else { 0 };
        if run > 20 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from a fixed xorshift sequence: what a stream cipher's output looks like.
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_look_fully_encrypted() {
        for seed in 1..20 {
            assert!(looks_fully_encrypted(&random(200, seed * 7919)), "seed {seed}");
        }
    }

    #[test]
    fn text_binary_framing_and_short_payloads_do_not() {
        assert!(!looks_fully_encrypted(b"GET / HTTP/1.1\r\nHost: example.org\r\nUser-Agent: x\r\n\r\n"));
        assert!(!looks_fully_encrypted(&[0u8; 64]), "zero padding");
        let mut framed = vec![0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00];
        framed.extend(std::iter::repeat_n(0x00, 24));
        framed.extend(random(32, 3));
        assert!(!looks_fully_encrypted(&framed), "a length-prefixed record with padding");
        assert!(!looks_fully_encrypted(&random(31, 5)), "too short to judge");
        let mut text_start = b"HELLO!".to_vec();
        text_start.extend(random(100, 9));
        assert!(!looks_fully_encrypted(&text_start), "six printable bytes first");
    }
}
