//! How common each JA4 client fingerprint is in this network: how many ClientHellos carried it
//! and from how many inside hosts. A fingerprint used by one or two hosts, in a network where
//! the sensor has seen many hellos, is rare: a client unlike the browsers and libraries the
//! organisation runs (a custom implant, a tunnelling tool).
//!
//! Bounded: [`MAX_FINGERPRINTS`] fingerprints; when full the least used half is forgotten (the
//! rare ones go first, so a flood of random fingerprints cannot push out the common ones).
//! Hosts are counted up to [`HOSTS_KEPT`] per fingerprint.

use std::net::IpAddr;
use std::sync::Arc;

use super::host::Map;

/// Fingerprints remembered.
pub const MAX_FINGERPRINTS: usize = 8_192;
/// Distinct hosts remembered per fingerprint.
pub const HOSTS_KEPT: usize = 8;
/// Hellos the census must have seen before it calls anything rare.
pub const WARM_HELLOS: u64 = 500;
/// A fingerprint used by fewer hosts than this is rare...
pub const RARE_HOSTS: usize = 3;
/// ...while it has carried fewer hellos than this: a client one host has used all along is
/// that host's own application, not a stranger.
pub const RARE_HELLOS: u64 = 50;

#[derive(Debug, Clone, Default)]
struct Entry {
    hellos: u64,
    hosts: Vec<IpAddr>,
}

/// The census.
#[derive(Debug, Default)]
pub struct Ja4Census {
    by_ja4: Map<Arc<str>, Entry>,
    /// ClientHellos counted.
    pub hellos: u64,
    /// Times the least used half was forgotten.
    pub evictions: u64,
}

/// How common a fingerprint was when a hello carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prevalence {
    /// Hellos with it before this one.
    pub hellos: u64,
    /// Inside hosts that used it (this one included), up to [`HOSTS_KEPT`].
    pub hosts: usize,
    /// Rare: the census is warm, fewer than [`RARE_HOSTS`] hosts used it and it carried fewer
    /// than [`RARE_HELLOS`] hellos before.
    pub rare: bool,
}

impl Ja4Census {
    /// Counts a hello with `ja4` from `host`; returns how common the fingerprint is.
    pub fn count(&mut self, ja4: &str, host: IpAddr) -> Prevalence {
        self.hellos += 1;
        if self.by_ja4.len() >= MAX_FINGERPRINTS && !self.by_ja4.contains_key(ja4) {
            let mut uses: Vec<u64> = self.by_ja4.values().map(|e| e.hellos).collect();
            uses.sort_unstable();
            let cut = uses[uses.len() / 2];
            self.by_ja4.retain(|_, e| e.hellos > cut);
            self.evictions += 1;
        }
        let e = match self.by_ja4.get_mut(ja4) {
            Some(e) => e,
            None => self.by_ja4.entry(Arc::from(ja4)).or_default(),
        };
        let before = e.hellos;
        e.hellos += 1;
        if e.hosts.len() < HOSTS_KEPT && !e.hosts.contains(&host) {
            e.hosts.push(host);
        }
        let hosts = e.hosts.len();
        Prevalence {
            hellos: before,
            hosts,
            rare: self.hellos > WARM_HELLOS && hosts < RARE_HOSTS && before < RARE_HELLOS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_of_one_host_is_rare_once_the_census_is_warm() {
        let mut c = Ja4Census::default();
        let common = "t13d1516h2_8daaf6152771_e5627efa2ab1";
        for i in 0..600u32 {
            c.count(common, IpAddr::from((i % 50).to_be_bytes()));
        }
        let odd = c.count("t12d0304h1_aaaaaaaaaaaa_bbbbbbbbbbbb", IpAddr::from([10, 0, 0, 9]));
        assert!(odd.rare, "{odd:?}");
        let usual = c.count(common, IpAddr::from([10, 0, 0, 9]));
        assert!(!usual.rare && usual.hosts == HOSTS_KEPT, "{usual:?}");
    }

    #[test]
    fn a_fingerprint_one_host_has_used_all_along_is_not_rare() {
        let mut c = Ja4Census::default();
        for i in 0..600u32 {
            c.count("t13d1516h2_8daaf6152771_e5627efa2ab1", IpAddr::from((i % 50).to_be_bytes()));
        }
        let own = "t13d0912h2_aaaaaaaaaaaa_bbbbbbbbbbbb";
        let host = IpAddr::from([10, 0, 0, 7]);
        let first = c.count(own, host);
        let later = (0..RARE_HELLOS).map(|_| c.count(own, host)).last().expect("present");
        assert!(first.rare && !later.rare, "{first:?} {later:?}");
    }

    #[test]
    fn nothing_is_rare_before_the_census_is_warm() {
        let mut c = Ja4Census::default();
        assert!(!c.count("t13d0000h2_000000000000_000000000000", IpAddr::from([10, 0, 0, 1])).rare);
    }
}
