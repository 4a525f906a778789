//! Per-host state: the baseline, the accumulators of the bucket in progress,
//! and the sliding hour of outbound bytes.
//!
//! Accumulators are bounded: every set stops growing at its cap (the count
//! beyond it is still exact where it is a plain counter), so a host that
//! talks to a million peers costs at most a few hundred kilobytes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use foldhash::fast::FixedState;

use super::baseline::{HostBaseline, Metric};
use super::exfiltration::peers::PeerUploads;
use super::fanout::InsideAcc;
use crate::flow::community_id::community_id_v1;

/// A hash map with a fixed seed: iteration order depends only on what was
/// inserted, which keeps alerts deterministic.
pub type Map<K, V> = HashMap<K, V, FixedState>;
/// A hash set with a fixed seed.
pub type Set<T> = HashSet<T, FixedState>;

/// Peers tracked per host per bucket.
pub const MAX_PEERS: usize = 4_096;
/// Destination ports tracked per host per bucket.
pub const MAX_PORTS: usize = 4_096;
/// Distinct DNS names tracked per host per bucket.
pub const MAX_NAMES: usize = 8_192;
/// Registered domains tracked per host per bucket.
pub const MAX_DOMAINS: usize = 1_024;
/// Flow references kept per peer for evidence.
pub const MAX_FLOW_REFS: usize = 4;
/// Example names kept per domain for evidence.
pub const MAX_EXAMPLES: usize = 3;

/// Enough of a flow to compute its Community ID when an alert needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowRef {
    /// Client address and port.
    pub a: (IpAddr, u16),
    /// Server address and port.
    pub b: (IpAddr, u16),
    /// IANA transport number.
    pub proto: u8,
}

impl FlowRef {
    /// The flow's Community ID v1 (seed 0).
    #[must_use]
    pub fn community_id(&self) -> String {
        community_id_v1(0, self.a.0, self.a.1, self.b.0, self.b.1, self.proto)
    }
}

/// What a host exchanged with one outside peer in the bucket.
#[derive(Debug, Clone, Default)]
pub struct PeerAcc {
    /// Bytes the host sent to the peer.
    pub bytes_out: u64,
    /// Bytes the host received from the peer.
    pub bytes_in: u64,
    /// Of `bytes_out`, those sent in flows that looked like uploads (see
    /// [`super::exfiltration`]'s upload ratios): a call's or a download's bytes are not.
    pub upload_out: u64,
    /// The peer's main port (the server port of the largest upload).
    pub port: Option<u16>,
    /// The transport of that flow.
    pub proto: u8,
    /// Some of the flows.
    pub flows: Vec<FlowRef>,
    /// The host had not seen this peer before (it entered the host's seen-set in this bucket).
    pub new_addr: bool,
}

/// DNS queries under one registered domain in the bucket.
#[derive(Debug, Clone, Default)]
pub struct DomainAcc {
    /// Queries.
    pub queries: u64,
    /// Distinct names (hashes).
    pub names: Set<u64>,
    /// Sum of the lengths of the part left of the registered domain.
    pub sub_len_sum: u64,
    /// Queries with a long, high-entropy label.
    pub long_queries: u64,
    /// Queries of TXT, NULL, CNAME, ANY or a private type.
    pub unusual_qtypes: u64,
    /// TXT or NULL answers of `large_answer_bytes` or more received.
    pub large_answers: u64,
    /// Queries of NULL or a private type.
    pub null_queries: u64,
    /// Sum of the entropies of the longest label left of the registered domain.
    pub sub_entropy_sum: f64,
    /// Query types seen, with counts.
    pub qtypes: BTreeMap<u16, u64>,
    /// A few names, for the evidence.
    pub examples: Vec<String>,
    /// The resolver asked most recently, and the flow.
    pub flow: Option<FlowRef>,
}

/// ICMP echo traffic between the host and one peer in the bucket.
#[derive(Debug, Clone, Default)]
pub struct IcmpAcc {
    /// Echo requests and replies.
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Distinct payload sizes (at most 256 kept).
    pub sizes: Set<u16>,
    /// Largest payload.
    pub max: u16,
    /// The flow, for the evidence.
    pub flow: Option<FlowRef>,
}

/// What a host's bucket refused for room (see [`HostBucket::capped`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketCaps {
    /// Peers.
    pub peers: u64,
    /// Destination ports.
    pub ports: u64,
    /// DNS names.
    pub dns_names: u64,
    /// Registered domains.
    pub dns_domains: u64,
}

/// Everything a host did in the bucket in progress.
#[derive(Debug, Clone, Default)]
pub struct HostBucket {
    /// Anything at all was seen for the host in this bucket.
    pub active: bool,
    /// Bytes and packets to and from outside peers.
    pub bytes_out: u64,
    /// Bytes received from outside peers.
    pub bytes_in: u64,
    /// Packets sent to outside peers.
    pub packets_out: u64,
    /// Packets received from outside peers.
    pub packets_in: u64,
    /// Bytes to outside peers by transport: TCP, UDP, other.
    pub out_by_transport: [u64; 3],
    /// Bytes to outside services by port class: well-known, registered, dynamic.
    pub out_by_port_class: [u64; 3],
    /// Bytes of DNS query names the host asked of a resolver inside (counted in `bytes_out`:
    /// data can leave in names through any resolver).
    pub dns_name_bytes: u64,
    /// Per outside peer.
    pub peers: Map<IpAddr, PeerAcc>,
    /// Destination ports of connections the host opened.
    pub dst_ports: Set<u16>,
    /// Outside peers never seen before.
    pub new_peers: u64,
    /// Connections the host opened.
    pub connections: u64,
    /// Of those, failed ones.
    pub failed: u64,
    /// DNS queries sent.
    pub dns_queries: u64,
    /// Distinct names (hashes).
    pub dns_names: Set<u64>,
    /// Sum of the query names' lengths.
    pub dns_len_sum: u64,
    /// Sum of the leftmost labels' entropies.
    pub dns_entropy_sum: f64,
    /// DNS messages over TCP sent or received.
    pub dns_tcp_messages: u64,
    /// Per registered domain.
    pub domains: Map<String, DomainAcc>,
    /// Entries refused this bucket because a table was full: peers ([`MAX_PEERS`]),
    /// ports ([`MAX_PORTS`]), DNS names ([`MAX_NAMES`], the host's and its domains'), domains
    /// ([`MAX_DOMAINS`]). The engine adds them to its counters when the bucket closes.
    pub capped: BucketCaps,
    /// Echo traffic per peer.
    pub icmp: Map<IpAddr, IcmpAcc>,
    /// Echo payload bytes in total.
    pub icmp_bytes: u64,
    /// Malformed or evasive packets sent, by reason.
    pub malformed: BTreeMap<&'static str, u64>,
    /// What it did with other inside hosts, and the clients it answered.
    pub inside: InsideAcc,
}

impl HostBucket {
    /// Malformed and evasive packets in total.
    #[must_use]
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    /// This bucket's value of every baseline metric, `hour_out` being the
    /// sliding hour's outbound bytes.
    #[must_use]
    pub fn values(&self, hour_out: u64) -> [f64; Metric::COUNT] {
        let q = self.dns_queries.max(1) as f64;
        let mut v = [0.0; Metric::COUNT];
        for m in Metric::ALL {
            v[m as usize] = match m {
                Metric::BytesOut => self.bytes_out as f64,
                Metric::BytesIn => self.bytes_in as f64,
                Metric::PacketsOut => self.packets_out as f64,
                Metric::PacketsIn => self.packets_in as f64,
                Metric::Peers => self.peers.len() as f64,
                Metric::DstPorts => self.dst_ports.len() as f64,
                Metric::NewPeers => self.new_peers as f64,
                Metric::DnsQueries => self.dns_queries as f64,
                Metric::DnsUniqueNames => self.dns_names.len() as f64,
                Metric::DnsNameLength => self.dns_len_sum as f64 / q,
                Metric::DnsEntropy => self.dns_entropy_sum / q,
                Metric::IcmpBytes => self.icmp_bytes as f64,
                Metric::Connections => self.connections as f64,
                Metric::FailedConnections => self.failed as f64,
                Metric::Malformed => self.malformed_total() as f64,
                Metric::BytesOutHour => hour_out as f64,
                Metric::BytesOutTcp => self.out_by_transport[0] as f64,
                Metric::BytesOutUdp => self.out_by_transport[1] as f64,
                Metric::BytesOutOther => self.out_by_transport[2] as f64,
                Metric::BytesOutWellKnown => self.out_by_port_class[0] as f64,
                Metric::BytesOutRegistered => self.out_by_port_class[1] as f64,
                Metric::BytesOutDynamic => self.out_by_port_class[2] as f64,
            };
        }
        v
    }
}

/// A host known to the engine.
#[derive(Debug, Clone)]
pub struct HostState {
    /// The learned baseline.
    pub baseline: HostBaseline,
    /// The bucket in progress.
    pub bucket: HostBucket,
    /// Outbound bytes of the last buckets (an hour's worth).
    pub hour: VecDeque<u64>,
    /// What the host sent each outside peer it uploads to, over sliding windows.
    pub uploads: PeerUploads,
    /// Its new administrative pairs of the last minutes (`lateral_movement`).
    pub admin_recent: super::lateral::Recent,
    /// Its DCE-RPC endpoint-mapper contacts of the last minute (`lateral_movement`).
    pub rpc: super::lateral::RpcFollow,
}

impl HostState {
    /// A host first seen at `now_ns`, with `baseline` if one was saved.
    #[must_use]
    pub fn new(baseline: HostBaseline) -> Self {
        Self {
            baseline,
            bucket: HostBucket::default(),
            hour: VecDeque::new(),
            uploads: PeerUploads::default(),
            admin_recent: super::lateral::Recent::default(),
            rpc: super::lateral::RpcFollow::default(),
        }
    }

    /// Outbound bytes over the sliding hour, the bucket in progress included.
    #[must_use]
    pub fn hour_out(&self) -> u64 {
        self.hour.iter().sum::<u64>() + self.bucket.bytes_out
    }

    /// Ends the bucket: remembers its outbound bytes for the sliding hour
    /// (`hour_buckets` long) and clears the accumulators, keeping their memory.
    pub fn roll(&mut self, hour_buckets: usize) {
        self.hour.push_back(self.bucket.bytes_out);
        while self.hour.len() >= hour_buckets.max(1) {
            self.hour.pop_front();
        }
        let b = &mut self.bucket;
        b.active = false;
        b.bytes_out = 0;
        b.bytes_in = 0;
        b.packets_out = 0;
        b.packets_in = 0;
        b.out_by_transport = [0; 3];
        b.out_by_port_class = [0; 3];
        b.dns_name_bytes = 0;
        b.peers.clear();
        b.dst_ports.clear();
        b.new_peers = 0;
        b.connections = 0;
        b.failed = 0;
        b.dns_queries = 0;
        b.dns_names.clear();
        b.dns_len_sum = 0;
        b.dns_entropy_sum = 0.0;
        b.dns_tcp_messages = 0;
        b.domains.clear();
        b.capped = BucketCaps::default();
        b.icmp.clear();
        b.icmp_bytes = 0;
        b.malformed.clear();
        b.inside.clear();
    }
}

/// Shannon entropy of `s` in bits per character (case-insensitive).
#[must_use]
pub fn entropy(s: &str) -> f64 {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b.to_ascii_lowercase())] += 1;
    }
    let n = bytes.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum()
}

/// A 64-bit hash of `s`, case-insensitive (DNS names).
#[must_use]
pub fn name_hash(s: &str) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = FixedState::default().build_hasher();
    for b in s.bytes() {
        h.write_u8(b.to_ascii_lowercase());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_random_labels_is_high_and_of_words_low() {
        assert!(entropy("aaaa") < 0.01);
        assert!(entropy("mail") < 2.1);
        assert!(entropy("0123456789abcdef0123456789abcdef") > 3.9);
    }

    #[test]
    fn name_hash_ignores_case() {
        assert_eq!(name_hash("WWW.Example.com"), name_hash("www.example.com"));
    }
}
