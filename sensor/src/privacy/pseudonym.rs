//! Pseudonyms for inside addresses, alert ids and Community IDs.
//!
//! - An address inside `sensor.home_networks` keeps the bits of the widest home network that
//!   holds it and gets the rest from Crypto-PAn ([`super::cryptopan`]): the pseudonym is
//!   still inside that network (so it never equals a real outside address, and an output's
//!   reader still tells inside from outside), two inside addresses that share a prefix still
//!   share exactly that prefix (subnets stay subnets), and the map is one-to-one. Outside
//!   addresses are left as they are: they are the evidence about the other side that the SOC
//!   acts on, and they say nothing about who inside did what once the inside side is hidden.
//! - Alert and incident ids are hashes of the real host and peer (enumerable over a home
//!   network), so they are replaced by a keyed hash (HMAC-SHA-256 under a key derived from
//!   the Crypto-PAn key): the same id gets the same pseudonym everywhere (an alert's `event.id`
//!   and an incident's `related` list still match), and nobody without the key can tie it
//!   back to an address.
//! - Community IDs are recomputed from the pseudonymised tuple in flow records (the record's
//!   addresses are pseudonymised before any output encodes it). Alerts carry Community IDs
//!   computed by the detectors from the real tuple; [`Pseudonyms::note_flow`] remembers, for
//!   every flow the analysis stage passes on, the real ID and the pseudonymised one, and an
//!   alert's IDs are translated through that; an ID that is not remembered any more is left
//!   out (counted), never written as it was.
//!
//! Bounded: [`CACHE_ENTRIES`] addresses and 2 × [`COMMUNITY_IDS`] Community IDs; when a cache
//! fills it is emptied (addresses) or its older generation dropped (Community IDs).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ring::hmac;

use super::cryptopan::CryptoPan;
use crate::flow::community_id::community_id_v1;

/// Addresses whose pseudonyms are cached (each costs 32 or 128 AES blocks to compute).
pub const CACHE_ENTRIES: usize = 1 << 16;
/// Community IDs remembered per generation.
pub const COMMUNITY_IDS: usize = 1 << 17;

/// What pseudonymisation did, for the statistics (`detection.privacy` in the stats JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PseudonymCounters {
    /// Pseudonyms computed (cache misses).
    pub computed: u64,
    /// Times the address cache was full and emptied.
    pub cache_resets: u64,
    /// Community IDs in alerts that were no longer remembered and were left out.
    pub community_ids_dropped: u64,
}

/// The keyed maps of one sensor.
pub struct Pseudonyms {
    pan: CryptoPan,
    ids: hmac::Key,
    /// The widest home networks (none inside another), so that every inside address has
    /// exactly one network whose bits it keeps.
    home: Vec<IpNet>,
    cache: HashMap<IpAddr, IpAddr>,
    cids: [HashMap<String, String>; 2],
    /// Counters so far.
    pub counters: PseudonymCounters,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonyms").field("home", &self.home).field("counters", &self.counters).finish()
    }
}

impl Pseudonyms {
    /// Pseudonyms under `key` for the inside addresses of `home_networks`.
    #[must_use]
    pub fn new(key: &[u8; 32], home_networks: &[IpNet]) -> Self {
        let derived = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"nbad-sensor id pseudonyms\0".as_slice(), key].concat(),
        );
        let home = home_networks
            .iter()
            .filter(|n| {
                !home_networks.iter().any(|w| w != *n && w.prefix_len() < n.prefix_len() && w.contains(*n))
            })
            .copied()
            .collect();
        Self {
            pan: CryptoPan::new(key),
            ids: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            home,
            cache: HashMap::new(),
            cids: [HashMap::new(), HashMap::new()],
            counters: PseudonymCounters::default(),
        }
    }

    /// Whether `ip` is inside (and so gets a pseudonym).
    #[must_use]
    pub fn is_inside(&self, ip: IpAddr) -> bool {
        self.home.iter().any(|n| n.contains(&ip))
    }

    /// The pseudonym of `ip`: itself when outside.
    pub fn addr(&mut self, ip: IpAddr) -> IpAddr {
        let Some(net) = self.home.iter().find(|n| n.contains(&ip)).copied() else { return ip };
        if let Some(p) = self.cache.get(&ip) {
            return *p;
        }
        let p = match (ip, net) {
            (IpAddr::V4(a), IpNet::V4(n)) => {
                let keep = u32::from(n.netmask());
                let x = u32::from(a);
                IpAddr::V4(Ipv4Addr::from((x & keep) | (self.pan.anonymize_v4(x) & !keep)))
            }
            (IpAddr::V6(a), IpNet::V6(n)) => {
                let keep = u128::from(n.netmask());
                let x = u128::from(a);
                IpAddr::V6(Ipv6Addr::from((x & keep) | (self.pan.anonymize_v6(x) & !keep)))
            }
            // `contains` never matches across families.
            _ => ip,
        };
        if self.cache.len() >= CACHE_ENTRIES {
            self.cache.clear();
            self.counters.cache_resets += 1;
        }
        self.cache.insert(ip, p);
        self.counters.computed += 1;
        p
    }

    /// The pseudonym of an alert or incident id: what precedes its last `-` is kept
    /// (`inc-`), the rest becomes as many hex digits of a keyed hash.
    #[must_use]
    pub fn id(&self, id: &str) -> String {
        let (prefix, rest) = id.rsplit_once('-').map_or(("", id), |(p, r)| (p, r));
        let tag = hmac::sign(&self.ids, id.as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let n = rest.len().clamp(8, hex.len());
        if prefix.is_empty() { hex[..n].to_owned() } else { format!("{prefix}-{}", &hex[..n]) }
    }

    /// Remembers the real and the pseudonymised Community ID of a flow (client, server,
    /// transport), for [`Self::community_id`].
    pub fn note_flow(&mut self, client: (IpAddr, u16), server: (IpAddr, u16), proto: u8) {
        let real = community_id_v1(0, client.0, client.1, server.0, server.1, proto);
        if self.cids[0].contains_key(&real) {
            return;
        }
        let (pc, ps) = (self.addr(client.0), self.addr(server.0));
        // Between two outside hosts the ID is its own pseudonym.
        let pseudo = if (pc, ps) == (client.0, server.0) {
            real.clone()
        } else {
            community_id_v1(0, pc, client.1, ps, server.1, proto)
        };
        if self.cids[0].len() >= COMMUNITY_IDS {
            self.cids[1] = std::mem::take(&mut self.cids[0]);
        }
        self.cids[0].insert(real, pseudo);
    }

    /// The pseudonymised Community ID of the flow whose real one is `real`; `None` (counted)
    /// when that flow is not remembered any more.
    pub fn community_id(&mut self, real: &str) -> Option<String> {
        if let Some(p) = self.cids.iter().find_map(|m| m.get(real)) {
            return Some(p.clone());
        }
        self.counters.community_ids_dropped += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [42; 32];

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("test CIDR")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn inside_addresses_stay_in_their_home_network_and_outside_ones_are_untouched() {
        let mut p = Pseudonyms::new(&KEY, &nets(&["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"]));
        for s in ["10.1.2.3", "192.168.7.9", "fd00:1:2::5"] {
            let a = ip(s);
            let pa = p.addr(a);
            assert_ne!(pa, a, "{s} gets a pseudonym");
            assert!(p.is_inside(pa), "{s} → {pa} stays inside");
        }
        for s in ["198.51.100.7", "8.8.8.8", "2001:db8::1"] {
            assert_eq!(p.addr(ip(s)), ip(s), "{s} is outside");
        }
    }

    #[test]
    fn inside_subnets_stay_subnets() {
        let mut p = Pseudonyms::new(&KEY, &nets(&["10.0.0.0/8"]));
        let (a, b, c) = (p.addr(ip("10.1.2.3")), p.addr(ip("10.1.2.200")), p.addr(ip("10.9.0.1")));
        let net24 = |x: IpAddr| IpNet::new(x, 24).expect("/24").trunc();
        assert_eq!(net24(a), net24(b), "one /24 maps to one /24");
        assert_ne!(net24(a), net24(c));
        assert_eq!(p.addr(ip("10.1.2.3")), a, "the same address gets the same pseudonym");
    }

    #[test]
    fn a_nested_home_network_keeps_only_the_outer_prefix() {
        let mut outer = Pseudonyms::new(&KEY, &nets(&["10.0.0.0/8"]));
        let mut both = Pseudonyms::new(&KEY, &nets(&["10.0.0.0/8", "10.1.0.0/16"]));
        assert_eq!(outer.addr(ip("10.1.2.3")), both.addr(ip("10.1.2.3")));
    }

    #[test]
    fn ids_get_keyed_pseudonyms_of_the_same_shape() {
        let p = Pseudonyms::new(&KEY, &nets(&["10.0.0.0/8"]));
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(p.id(id), p.id(id));
        assert_eq!(p.id(id).len(), 32);
        assert_ne!(p.id(id), id);
        let inc = p.id("inc-0011223344556677");
        assert!(inc.starts_with("inc-") && inc.len() == 20, "{inc}");
        assert_ne!(Pseudonyms::new(&[1; 32], &nets(&["10.0.0.0/8"])).id(id), p.id(id));
    }

    #[test]
    fn community_ids_are_translated_to_those_of_the_pseudonymised_flow() {
        let mut p = Pseudonyms::new(&KEY, &nets(&["10.0.0.0/8"]));
        let (c, s) = ((ip("10.0.0.5"), 40_000), (ip("203.0.113.9"), 443));
        p.note_flow(c, s, 6);
        let real = community_id_v1(0, c.0, c.1, s.0, s.1, 6);
        let want = community_id_v1(0, p.addr(c.0), c.1, s.0, s.1, 6);
        assert_eq!(p.community_id(&real), Some(want));
        assert_eq!(p.community_id("1:unknown"), None);
        assert_eq!(p.counters.community_ids_dropped, 1);
    }
}
