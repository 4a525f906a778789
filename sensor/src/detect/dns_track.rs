//! DNS evidence that outlives a bucket: per inside host, what it asked under each registered
//! domain within the last `dns_tunnel.window_s` (10 min), and which random-looking domains it
//! was told do not exist within `dga.window_s`.
//!
//! A tunnel that sends one query a second, or a short burst of a dozen encoded names, never
//! fills a one-minute bucket's floors; here its names accumulate across buckets until they
//! expire from the window:
//!
//! - **encoded_subdomains** (`dns_tunnel`): at least `min_encoded_names` (10) distinct names
//!   under one registered domain whose part left of the domain looks like encoded data (a label
//!   of 12 characters or more that [`super::name_score::looks_random`] judges machine-made, or
//!   a left part of 32 or more that does as a whole: hex, base32, base64), and they are at
//!   least `min_encoded_share` (half) of the domain's distinct names. A dnscat2 session of 12
//!   hex names in 11 s fires at its tenth; a tunnel at one query a second within its first
//!   bucket; a CDN whose hostnames carry a hash among ordinary names does not (its share is low).
//! - **odd_characters** (`dns_tunnel`): a query name on a unicast resolver with bytes outside
//!   letters, digits, `-`, `_` and `.` (`=`, `+`, `/`, `*`, spaces, 8-bit bytes: base64 or raw
//!   data, iodine's encoding) and a left part of 20 characters or more. One query is enough;
//!   ordinary lookups never carry them (multicast names, which may, are not unicast).
//! - **dga** ([`super::dga`]): at least `dga.min_domains` (8) distinct registered domains whose
//!   own label looks random were answered NXDOMAIN to the host within `dga.window_s`: malware
//!   trying generated rendezvous names. One tunnel domain with many names is the other rule's.
//!
//! Bounded: [`MAX_HOSTS`] hosts (the least recently active go), [`MAX_DOMAINS`] domains per
//! host, [`MAX_NAMES`] names per domain and NXDOMAIN domains per host (the oldest go).

use std::collections::VecDeque;
use std::net::IpAddr;

use super::host::{FlowRef, Map, name_hash};
use super::name_score::{alphabet, looks_random};

/// Hosts tracked at most.
pub const MAX_HOSTS: usize = 65_536;
/// Registered domains tracked per host at most.
pub const MAX_DOMAINS: usize = 256;
/// Names remembered per domain, and NXDOMAIN domains per host, at most.
pub const MAX_NAMES: usize = 256;
/// Examples kept per domain.
const MAX_EXAMPLES: usize = 3;

/// One distinct name asked.
#[derive(Debug, Clone, Copy)]
struct Name {
    ts_ns: u64,
    hash: u64,
    encoded: bool,
}

/// What a host asked under one registered domain.
#[derive(Debug, Clone, Default)]
pub struct DomainTrack {
    names: VecDeque<Name>,
    /// Query types seen (type, count), in order of first sight.
    pub qtypes: Vec<(u16, u64)>,
    /// Queries, repeats included.
    pub queries: u64,
    /// The last flow that carried a query.
    pub flow: Option<FlowRef>,
    /// A few names, for the evidence.
    pub examples: Vec<String>,
    /// A name with odd characters was asked.
    pub odd: Option<String>,
    /// The alphabet of the encoded labels seen last.
    pub alphabet: Option<&'static str>,
    last_ns: u64,
    fresh: bool,
}

impl DomainTrack {
    /// Distinct names within the window, and those that look encoded.
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        let encoded = self.names.iter().filter(|n| n.encoded).count();
        (self.names.len() as u64, encoded as u64)
    }

    /// When the first name still in the window was asked.
    #[must_use]
    pub fn first_ns(&self) -> Option<u64> {
        self.names.front().map(|n| n.ts_ns)
    }
}

/// What one host asked.
#[derive(Debug, Clone, Default)]
pub struct HostDns {
    /// Per registered domain.
    pub domains: Map<String, DomainTrack>,
    /// Random-looking registered domains answered NXDOMAIN: (time, hash, domain).
    nx: VecDeque<(u64, u64, String)>,
    nx_fresh: bool,
    last_ns: u64,
}

impl HostDns {
    /// Distinct random-looking NXDOMAIN domains within the window, with a few of them.
    #[must_use]
    pub fn nx_domains(&self) -> (u64, Vec<&str>) {
        (self.nx.len() as u64, self.nx.iter().rev().take(MAX_EXAMPLES * 2).map(|e| e.2.as_str()).collect())
    }
}

/// Every host's tracks.
#[derive(Debug, Default)]
pub struct DnsTracks {
    hosts: Map<IpAddr, HostDns>,
    /// Hosts, domains and names forgotten for room.
    pub dropped: u64,
}

/// Whether the part of a name left of its registered domain looks like encoded data.
#[must_use]
pub fn encoded(sub: &str) -> bool {
    let labels = || sub.split('.').filter(|l| !l.is_empty());
    if labels().any(|l| looks_random(l, 12)) {
        return true;
    }
    let joined: String = labels().collect();
    joined.len() >= 32 && looks_random(&joined, 32)
}

/// Whether `name` carries a byte no hostname has (outside letters, digits, `-`, `_`, `.`).
#[must_use]
pub fn odd_characters(name: &str) -> bool {
    name.bytes().any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

impl DnsTracks {
    fn host(&mut self, host: IpAddr, ts_ns: u64) -> &mut HostDns {
        if !self.hosts.contains_key(&host) && self.hosts.len() >= MAX_HOSTS {
            let mut times: Vec<u64> = self.hosts.values().map(|h| h.last_ns).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.hosts.retain(|_, h| h.last_ns > cut);
            self.dropped += 1;
        }
        let h = self.hosts.entry(host).or_default();
        h.last_ns = ts_ns;
        h
    }

    /// A query by `host` for `name` (`domain` is its registered domain, `sub` the part left of
    /// it) of type `qtype`, carried by `flow`.
    #[expect(clippy::too_many_arguments, reason = "one query's facts, passed as they are")]
    pub fn query(
        &mut self,
        host: IpAddr,
        name: &str,
        domain: &str,
        sub: &str,
        qtype: Option<u16>,
        flow: FlowRef,
        ts_ns: u64,
        window_ns: u64,
    ) {
        let mut dropped = 0;
        let h = self.host(host, ts_ns);
        if !h.domains.contains_key(domain) && h.domains.len() >= MAX_DOMAINS {
            let oldest = h.domains.iter().min_by_key(|(_, d)| d.last_ns).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                h.domains.remove(&k);
            }
            dropped = 1;
        }
        let d = h.domains.entry(domain.to_owned()).or_default();
        d.last_ns = ts_ns;
        d.queries += 1;
        d.flow = Some(flow);
        if let Some(t) = qtype {
            if let Some((_, n)) = d.qtypes.iter_mut().find(|(q, _)| *q == t) {
                *n += 1;
            } else if d.qtypes.len() < 16 {
                d.qtypes.push((t, 1));
            }
        }
        while d.names.front().is_some_and(|n| ts_ns.saturating_sub(n.ts_ns) > window_ns) {
            d.names.pop_front();
        }
        if d.odd.is_none() && sub.len() >= 20 && odd_characters(name) {
            d.odd = Some(name.to_owned());
            d.fresh = true;
        }
        let hash = name_hash(name);
        if d.names.iter().any(|n| n.hash == hash) {
            return;
        }
        if d.names.len() >= MAX_NAMES {
            d.names.pop_front();
        }
        let enc = encoded(sub);
        if enc {
            let longest = sub.split('.').max_by_key(|l| l.len()).unwrap_or(sub);
            d.alphabet = Some(alphabet(longest).name());
        }
        d.names.push_back(Name { ts_ns, hash, encoded: enc });
        d.fresh = true;
        if d.examples.len() < MAX_EXAMPLES && !d.examples.iter().any(|e| e == name) {
            d.examples.push(name.to_owned());
        }
        self.dropped += dropped;
    }

    /// An NXDOMAIN answer to `host` for a name under `domain`; counted when the domain's own
    /// label looks random.
    pub fn nxdomain(&mut self, host: IpAddr, domain: &str, ts_ns: u64, window_ns: u64) {
        let own = domain.split('.').next().unwrap_or(domain);
        if !looks_random(own, 7) {
            return;
        }
        let h = self.host(host, ts_ns);
        while h.nx.front().is_some_and(|e| ts_ns.saturating_sub(e.0) > window_ns) {
            h.nx.pop_front();
        }
        let hash = name_hash(domain);
        if h.nx.iter().any(|e| e.1 == hash) {
            return;
        }
        if h.nx.len() >= MAX_NAMES {
            h.nx.pop_front();
        }
        h.nx.push_back((ts_ns, hash, domain.to_owned()));
        h.nx_fresh = true;
    }

    /// The host's tracks, if it asked anything.
    #[must_use]
    pub fn get(&self, host: &IpAddr) -> Option<&HostDns> {
        self.hosts.get(host)
    }

    /// Hosts with something new since the last look, marked as looked at.
    pub fn take_fresh(&mut self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (ip, h) in &mut self.hosts {
            let mut fresh = std::mem::take(&mut h.nx_fresh);
            for d in h.domains.values_mut() {
                fresh |= std::mem::take(&mut d.fresh);
            }
            if fresh {
                out.push(*ip);
            }
        }
        out.sort();
        out
    }

    /// Forgets what left the window by `now_ns` (domains with no name left go).
    pub fn expire(&mut self, now_ns: u64, window_ns: u64, nx_window_ns: u64) {
        self.hosts.retain(|_, h| {
            h.domains.retain(|_, d| {
                while d.names.front().is_some_and(|n| now_ns.saturating_sub(n.ts_ns) > window_ns) {
                    d.names.pop_front();
                }
                now_ns.saturating_sub(d.last_ns) <= window_ns
            });
            while h.nx.front().is_some_and(|e| now_ns.saturating_sub(e.0) > nx_window_ns) {
                h.nx.pop_front();
            }
            !h.domains.is_empty() || !h.nx.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn flow() -> FlowRef {
        FlowRef { a: (IpAddr::from([10, 0, 0, 5]), 5353), b: (IpAddr::from([10, 0, 0, 1]), 53), proto: 17 }
    }

    #[test]
    fn encoded_left_parts_are_told_from_hostnames() {
        assert!(encoded("546b03f50000000000a6023ed4df.19e4d098dc8c618f8d81cfeb02"));
        assert!(encoded("mzxw6ytboi2dkmrtgqzdknbzgq3tmmbq"));
        assert!(!encoded("www"));
        assert!(!encoded("login.eu-west-1"));
        assert!(!encoded("mail.corp"));
    }

    #[test]
    fn names_accumulate_across_buckets_within_the_window_and_expire_after_it() {
        let mut t = DnsTracks::default();
        let host = IpAddr::from([10, 0, 0, 5]);
        let window = 600 * S;
        for i in 0..12u64 {
            let sub = format!(
                "{:016x}{:016x}",
                (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                (i + 7).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            );
            let name = format!("{sub}.tunnel.example");
            t.query(host, &name, "tunnel.example", &sub, Some(16), flow(), i * 60 * S, window);
        }
        let d = &t.get(&host).expect("tracked").domains["tunnel.example"];
        assert_eq!(d.counts(), (11, 11), "one a minute for 12 minutes: 11 still within 10 minutes");
        t.expire(30 * 60 * S, window, window);
        assert!(t.get(&host).is_none());
    }

    #[test]
    fn random_nxdomains_count_once_each_and_words_not_at_all() {
        let mut t = DnsTracks::default();
        let host = IpAddr::from([10, 0, 0, 5]);
        for d in ["xkqzvbwpt.com", "xkqzvbwpt.com", "qwrtzpsdfg.net", "example.com", "facebook.com"] {
            t.nxdomain(host, d, S, 600 * S);
        }
        assert_eq!(t.get(&host).expect("tracked").nx_domains().0, 2);
    }

    #[test]
    fn odd_characters_are_bytes_no_hostname_has() {
        assert!(odd_characters("H4sICN03*2QAA3Rlc3QudHh0AAvJyCxWAKJE=.test.txt"));
        assert!(!odd_characters("_ldap._tcp.dc._msdcs.corp.example"));
    }
}
