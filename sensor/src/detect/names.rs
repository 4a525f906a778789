//! What the network's DNS said about addresses: the registered domain an address was last
//! given as an answer for, and when.
//!
//! Filled from the A and AAAA answers of every DNS response the sensor sees (see
//! [`crate::observe`]); read by the rules that ask whether a peer has a name and whether the
//! host knew it before: exfiltration's novelty of a peer's domain, TLS to an address that no
//! DNS answer named. Bounded: at [`MAX_ADDRS`] addresses the older half is forgotten, so a
//! flood of answers costs a sort now and then, never memory.

use std::net::IpAddr;
use std::sync::Arc;

use super::host::Map;

/// Addresses remembered at most.
pub const MAX_ADDRS: usize = 65_536;

/// One address's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The registered domain (public-suffix list) of the name the answer was for.
    pub domain: Arc<str>,
    /// The full name asked for.
    pub name: Arc<str>,
    /// When the answer was seen, ns since the epoch.
    pub at_ns: u64,
}

/// Addresses with the names DNS gave them.
#[derive(Debug, Default)]
pub struct NameCache {
    by_addr: Map<IpAddr, Named>,
    /// Answers taken.
    pub answers: u64,
    /// Times the older half was forgotten.
    pub evictions: u64,
}

impl NameCache {
    /// Notes that `name` (under `domain`) resolved to `addr` at `at_ns`.
    pub fn answer(&mut self, addr: IpAddr, name: &Arc<str>, domain: &Arc<str>, at_ns: u64) {
        self.answers += 1;
        if self.by_addr.len() >= MAX_ADDRS && !self.by_addr.contains_key(&addr) {
            let mut ages: Vec<u64> = self.by_addr.values().map(|n| n.at_ns).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.by_addr.retain(|_, n| n.at_ns > cut);
            self.evictions += 1;
        }
        self.by_addr.insert(addr, Named { domain: Arc::clone(domain), name: Arc::clone(name), at_ns });
    }

    /// The name `addr` was last given for, if any.
    #[must_use]
    pub fn get(&self, addr: IpAddr) -> Option<&Named> {
        self.by_addr.get(&addr)
    }

    /// Addresses held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_answer_and_forgets_the_older_half_when_full() {
        let mut c = NameCache::default();
        let (name, domain): (Arc<str>, Arc<str>) = ("www.example.com".into(), "example.com".into());
        for i in 0..MAX_ADDRS as u32 {
            c.answer(IpAddr::from(i.to_be_bytes()), &name, &domain, u64::from(i));
        }
        assert_eq!(c.len(), MAX_ADDRS);
        c.answer(IpAddr::from([255, 0, 0, 1]), &name, &domain, 1 << 40);
        assert!(c.len() <= MAX_ADDRS / 2 + 1, "{}", c.len());
        assert!(c.get(IpAddr::from([255, 0, 0, 1])).is_some());
        assert!(c.get(IpAddr::from([0, 0, 0, 1])).is_none(), "an old one is gone");
        assert_eq!(c.evictions, 1);
    }
}
