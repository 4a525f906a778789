//! `flood`: a host flooded (SYN, UDP, ICMP, reflection, backscatter), or a
//! host inside flooding someone or amplifying a reflection attack.
//!
//! Built from flow records, no per-packet work. Each record of a new flow
//! that nobody asked for is *unsolicited*, and names a victim and a sender:
//!
//! | kind | the record | victim |
//! |---|---|---|
//! | `syn` | the client sent SYN and never an ACK, the handshake never completed | server |
//! | `syn_ack` | the first packet was a SYN-ACK, and the client never sent a SYN | client (backscatter) |
//! | `rst` | the client sent a reset without a SYN, the server nothing | server (backscatter) |
//! | `icmp_error` | an ICMP or ICMPv6 error | its receiver (backscatter) |
//! | `reflection` | UDP from an amplifier port (`amplifier_ports`) to another port, unanswered, from outside | server |
//! | `udp` | any other unanswered UDP | server |
//! | `icmp_echo` | echo requests | server |
//! | `other` | any other IP protocol, unanswered | server |
//!
//! A victim inside (`sensor.home_networks`) is flooded (`direction`
//! `inbound`); an outside victim whose senders are inside is flooded *by*
//! them (`outbound`, the host at fault is the heaviest inside sender).
//! Multicast and broadcast victims (an IPv4 address ending in .255 included)
//! are skipped.
//!
//! **Per-second rates.** A victim's unsolicited flows are binned by the second
//! they started in: distinct senders ([`sketch::SecondBits`]), flows and
//! packets per second. The key discriminator is distinct senders in a second:
//! thousands in every flood of the corpus (4 276 in the SNMP reflection, 7 055
//! in the SYN-ACK reflection, 8 921 in the DOMINATE SYN flood's peak second,
//! 23 620 in the spoofed SYN flood's), never more than 15 to one unicast
//! address in any second of the benign captures — and those 15 are all
//! senders, solicited or not. Packet rate alone is useless (a benign loopback
//! load reaches 24 559 packets a second to one address, all answered).
//!
//! | rule | fires when | floor, and why |
//! |---|---|---|
//! | sources | distinct unsolicited senders in one second ≥ the threshold | `min_sources_per_s` = 100: 6× the benign maximum, 40× under the smallest flood of the corpus |
//! | flows | unsolicited flows in one second ≥ the threshold, half of them to one port | `min_flows_per_s` = 1 000: a few senders flooding with varying source ports; a vertical scan spreads over ports and does not pass |
//! | `amplifier` | a host inside answered UDP on an amplifier port with ≥ `min_amplification` times the request bytes, ≥ `min_amplified_bytes` in the bucket | 10× and 10 MB: a resolver's answers are 2–5× its queries; monlist, chargen, memcached, CLDAP and DNS ANY amplify 50× and more |
//!
//! The threshold of the first two is the floor, or `baseline_factor` times
//! the victim's usual peak of the same rate once it has been learned for
//! `min_learning_buckets` buckets (an exponentially weighted mean of each
//! bucket's peak; a bucket that fired is learned at `alert_weight`, as the
//! host baselines are): a busy server seen in one direction only, whose
//! clients all look unanswered, is judged against itself after learning,
//! and a flood cannot teach its own rate quickly. No unanswered ratio is asked for: inbound-only
//! captures show no answers at all. The rule that fires names the alert's
//! `rule` by the dominant kind: `syn_flood`, `backscatter`, `reflection`,
//! `udp_flood`, `icmp_flood`, `ip_flood`.
//!
//! **Episodes.** One finding per victim per bucket; the alert stage
//! suppresses repeats of (victim, flood) within its window unless the score
//! escalates, and every finding carries the episode so far (its start, the
//! buckets it spans, its peak), so an escalated alert updates the first.
//!
//! **Latency.** Records come at the end of a flow: an unanswered SYN's at the
//! TCP idle timeout, a UDP or ICMP flow's at theirs (a flood that fills the
//! flow table brings the emergency idle timeout). Replays see a flood at
//! once; a live sensor, that much later.
//!
//! **Bounds.** At most `max_victims` victims followed per bucket (16 384 by
//! default), each in 1.7 KiB (eight second bins, a 256-register HyperLogLog,
//! short top lists); as many baselines (only of victims that ever had a busy
//! second) and amplifiers. What did not fit is counted. One inside host that
//! opens unanswered connections to hundreds of thousands of peers makes each
//! peer a victim: the cap is what bounds that (`tests/tests/hostile_detectors.rs`:
//! 388 MiB at the former default of 65 536, 150 MiB at this one, the flow
//! table's 300 000 flows included).

pub mod dhcp;
pub mod sketch;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::Check;
use super::host::Map;
use super::{BucketCtx, Candidate, strength, transport_name};
use crate::alert::{Detector, LearningState};
use crate::config::ConfigError;
use crate::decode::tcp_flags;
use crate::flow::FlowRecord;
use crate::flow::record::tcp_state;
use sketch::{Hll, SecondBits, Top};

const DESCRIPTION: &str = "A host received (or sent) unsolicited traffic from many sources or at a high rate \
     within seconds: a flood, a reflection or its backscatter.";

/// Second bins kept per victim per bucket.
const BINS: usize = 8;
/// Bytes of one victim (or amplifier) followed, for the memory budget (`crate::budget`).
pub const VICTIM_BYTES: usize = size_of::<VictimAcc>();
/// Share of a victim's flows that must go to one port for the flows rule.
const PORT_SHARE: f64 = 0.5;
/// A victim's busiest second must reach this (sources or flows) for a baseline to be kept.
const BASELINE_MIN: f64 = 2.0;

/// `[detection.flood]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// Distinct senders of unsolicited flows to one victim in one second, at least.
    pub min_sources_per_s: u64,
    /// Unsolicited flows to one victim in one second, at least (half of them to one port).
    pub min_flows_per_s: u64,
    /// Multiple of the victim's learned peak that a rate must also reach.
    pub baseline_factor: f64,
    /// UDP source ports of services that amplify (chargen, DNS, NTP, SNMP, CLDAP, SSDP, memcached).
    pub amplifier_ports: Vec<i64>,
    /// `amplifier`: response bytes over request bytes, at least.
    pub min_amplification: f64,
    /// `amplifier`: response bytes in a bucket, at least.
    pub min_amplified_bytes: u64,
    /// Victims (and amplifiers) followed per bucket at most.
    pub max_victims: i64,
    /// `dhcp_flood` and `dhcp_starvation`: the window messages are counted in, seconds.
    pub dhcp_window_s: i64,
    /// `dhcp_flood`: client messages from one client hardware address within the window, at least.
    pub dhcp_min_messages: u64,
    /// `dhcp_starvation`: distinct clients sending a DISCOVER (not relayed) within the window, at least.
    pub dhcp_min_clients: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_sources_per_s: 100,
            min_flows_per_s: 1_000,
            baseline_factor: 10.0,
            amplifier_ports: vec![19, 53, 123, 161, 389, 1900, 11211],
            min_amplification: 10.0,
            min_amplified_bytes: 10_000_000,
            max_victims: 16_384,
            dhcp_window_s: 60,
            dhcp_min_messages: 60,
            dhcp_min_clients: 200,
        }
    }
}

impl Settings {
    /// Checks every key against the range documented in `configs/sensor.example.toml`.
    pub(crate) fn validate(&self, c: &Check<'_>) -> Result<(), ConfigError> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        c.int("flood.min_sources_per_s", n(self.min_sources_per_s), 10, 10_000_000, "")?;
        c.int("flood.min_flows_per_s", n(self.min_flows_per_s), 10, 100_000_000, "")?;
        c.float("flood.baseline_factor", self.baseline_factor, 1.0, 1_000.0)?;
        for (i, p) in self.amplifier_ports.iter().enumerate() {
            c.int(&format!("flood.amplifier_ports[{i}]"), *p, 1, 65_535, "")?;
        }
        c.float("flood.min_amplification", self.min_amplification, 1.0, 1e6)?;
        c.int("flood.min_amplified_bytes", n(self.min_amplified_bytes), 1, i64::MAX, "")?;
        c.int("flood.max_victims", self.max_victims, 1, 10_000_000, "")?;
        c.int("flood.dhcp_window_s", self.dhcp_window_s, 1, 3_600, "seconds")?;
        c.int("flood.dhcp_min_messages", n(self.dhcp_min_messages), 10, 10_000_000, "")?;
        c.int("flood.dhcp_min_clients", n(self.dhcp_min_clients), 10, 10_000_000, "")?;
        Ok(())
    }

    fn amplifier(&self, port: u16) -> bool {
        self.amplifier_ports.iter().any(|p| *p == i64::from(port))
    }
}

/// Counters of the flood detector's bounded state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FloodCounters {
    /// Unsolicited flows counted.
    pub unsolicited: u64,
    /// Unsolicited flows of victims not followed (`max_victims` reached).
    pub victims_dropped: u64,
    /// Second bins given up to a busier second (more than eight seconds with unsolicited flows in a bucket).
    pub bins_replaced: u64,
    /// Baselines not kept (`max_victims` reached).
    pub baselines_dropped: u64,
    /// DHCP client messages observed.
    pub dhcp_messages: u64,
    /// DHCP messages of clients not followed ([`dhcp::MAX_CLIENTS`] reached).
    pub dhcp_clients_dropped: u64,
}

/// What kind of unsolicited flow a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(usize)]
pub enum Kind {
    /// SYN without ACK, handshake never completed.
    Syn,
    /// SYN-ACK first, no SYN seen.
    SynAck,
    /// Reset without a SYN, unanswered.
    Rst,
    /// ICMP error.
    IcmpError,
    /// UDP from an amplifier port, unanswered.
    Reflection,
    /// Other unanswered UDP.
    Udp,
    /// ICMP echo requests.
    IcmpEcho,
    /// Another IP protocol, unanswered.
    Other,
}

impl Kind {
    const ALL: [Self; 8] = [
        Self::Syn,
        Self::SynAck,
        Self::Rst,
        Self::IcmpError,
        Self::Reflection,
        Self::Udp,
        Self::IcmpEcho,
        Self::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Syn => "syn",
            Self::SynAck => "syn_ack",
            Self::Rst => "rst",
            Self::IcmpError => "icmp_error",
            Self::Reflection => "reflection",
            Self::Udp => "udp",
            Self::IcmpEcho => "icmp_echo",
            Self::Other => "other",
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Self::Syn => "syn_flood",
            Self::SynAck | Self::Rst | Self::IcmpError => "backscatter",
            Self::Reflection => "reflection",
            Self::Udp => "udp_flood",
            Self::IcmpEcho => "icmp_flood",
            Self::Other => "ip_flood",
        }
    }

    /// Whether the sender's port names the service (reflection, backscatter).
    fn sender_port_matters(self) -> bool {
        matches!(self, Self::SynAck | Self::Rst | Self::Reflection)
    }
}

/// One unsolicited flow: who received it from whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsolicited {
    /// The receiver.
    pub victim: (IpAddr, u16),
    /// The sender.
    pub sender: (IpAddr, u16),
    /// What it was.
    pub kind: Kind,
    /// Packets and bytes the sender sent.
    pub packets: u64,
    /// IP bytes the sender sent.
    pub bytes: u64,
    /// TCP flags the sender sent.
    pub flags: u8,
    /// When it started, ns.
    pub start_ns: u64,
}

/// The unsolicited flow a record describes, if it is one (see the module table).
#[must_use]
pub fn classify(r: &FlowRecord, s: &Settings) -> Option<Unsolicited> {
    if r.continued {
        return None;
    }
    let (c, v) = (r.client, r.server);
    let (client, server) = (r.client_endpoint(), r.server_endpoint());
    let st = r.tcp_state;
    let from_client = |kind| {
        Some(Unsolicited {
            victim: server,
            sender: client,
            kind,
            packets: c.packets,
            bytes: c.bytes,
            flags: c.tcp_flags,
            start_ns: c.first_ns,
        })
    };
    match r.key.proto {
        6 => {
            if c.packets > 0
                && st & tcp_state::SYN != 0
                && st & tcp_state::ESTABLISHED == 0
                && c.tcp_flags & tcp_flags::ACK == 0
            {
                from_client(Kind::Syn)
            } else if c.packets == 0
                && v.packets > 0
                && st & tcp_state::SYN_ACK != 0
                && st & tcp_state::SYN == 0
            {
                Some(Unsolicited {
                    victim: client,
                    sender: server,
                    kind: Kind::SynAck,
                    packets: v.packets,
                    bytes: v.bytes,
                    flags: v.tcp_flags,
                    start_ns: v.first_ns,
                })
            } else if c.packets > 0
                && st & tcp_state::SYN == 0
                && v.packets == 0
                && c.tcp_flags & tcp_flags::RST != 0
            {
                from_client(Kind::Rst)
            } else {
                None
            }
        }
        17 if c.packets > 0 && v.packets == 0 => {
            if s.amplifier(client.1) && !s.amplifier(server.1) {
                from_client(Kind::Reflection)
            } else {
                from_client(Kind::Udp)
            }
        }
        1 | 58 if c.packets > 0 => {
            let icmp_type = client.1;
            if super::scan::is_icmp_error(r.key.proto, icmp_type) {
                from_client(Kind::IcmpError)
            } else if matches!((r.key.proto, icmp_type), (1, 8) | (58, 128)) {
                from_client(Kind::IcmpEcho)
            } else {
                None
            }
        }
        17 | 1 | 58 => None,
        _ if c.packets > 0 && v.packets == 0 => from_client(Kind::Other),
        _ => None,
    }
}

/// One second of a victim's unsolicited flows.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    sec: u64,
    flows: u64,
    packets: u64,
    senders: SecondBits,
}

impl Bin {
    /// Distinct senders (never more than flows: each flow has one), and
    /// whether the count is a lower bound.
    fn senders(&self) -> (f64, bool) {
        let (n, saturated) = self.senders.estimate();
        (n.min(self.flows as f64), saturated)
    }
}

/// One victim's unsolicited flows in the bucket.
#[derive(Debug, Clone, Default)]
struct VictimAcc {
    outbound: bool,
    proto: u8,
    bins: [Bin; BINS],
    senders: Hll,
    flows: u64,
    packets: u64,
    bytes: u64,
    kinds: [u64; 8],
    flags: u8,
    victim_ports: Top<(u8, u16), 8>,
    sender_ports: Top<(u8, u16), 8>,
    top_senders: Top<IpAddr, 4>,
    inside_senders: Top<IpAddr, 4>,
    first_ns: u64,
    last_ns: u64,
}

impl VictimAcc {
    fn add(&mut self, u: &Unsolicited, proto: u8, sender_inside: bool) -> bool {
        let h = sketch::hash(&u.sender.0);
        self.senders.add(h);
        self.flows += 1;
        self.packets += u.packets;
        self.bytes += u.bytes;
        self.kinds[u.kind as usize] += 1;
        self.flags |= u.flags;
        self.proto = proto;
        self.victim_ports.add((proto, u.victim.1), 1);
        self.sender_ports.add((proto, u.sender.1), 1);
        self.top_senders.add(u.sender.0, 1);
        if sender_inside {
            self.inside_senders.add(u.sender.0, 1);
        }
        self.first_ns = if self.first_ns == 0 { u.start_ns } else { self.first_ns.min(u.start_ns) };
        self.last_ns = self.last_ns.max(u.start_ns);
        let sec = u.start_ns / 1_000_000_000;
        let mut replaced = false;
        let slot = match self.bins.iter().position(|b| b.sec == sec && b.flows > 0) {
            Some(i) => i,
            None => match self.bins.iter().position(|b| b.flows == 0) {
                Some(i) => i,
                None => {
                    replaced = true;
                    let i = (0..BINS).min_by_key(|&i| (self.bins[i].flows, self.bins[i].sec)).unwrap_or(0);
                    self.bins[i] = Bin::default();
                    i
                }
            },
        };
        let b = &mut self.bins[slot];
        b.sec = sec;
        b.flows += 1;
        b.packets += u.packets;
        b.senders.add(h);
        replaced
    }

    fn dominant(&self) -> Kind {
        Kind::ALL
            .into_iter()
            .max_by_key(|k| (self.kinds[*k as usize], std::cmp::Reverse(*k)))
            .unwrap_or(Kind::Other)
    }
}

/// A victim's learned usual peaks: exponentially weighted means of each
/// quiet bucket's busiest second (distinct senders, flows).
#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    sources: f64,
    flows: f64,
    buckets: u32,
}

/// A flood in progress on one victim.
#[derive(Debug, Clone, Copy)]
struct Episode {
    start_ns: u64,
    last_end_ns: u64,
    buckets: u32,
    peak_sources: f64,
    peak_flows: u64,
}

/// A host inside answering on an amplifier port, in the bucket.
#[derive(Debug, Clone, Default)]
struct AmpAcc {
    requests: u64,
    request_bytes: u64,
    responses: u64,
    response_bytes: u64,
    flows: u64,
    ports: Top<u16, 4>,
    requesters: Top<IpAddr, 4>,
}

/// The flood detector's state.
#[derive(Debug, Default)]
pub struct Floods {
    victims: Map<IpAddr, VictimAcc>,
    amplifiers: Map<IpAddr, AmpAcc>,
    baselines: Map<IpAddr, Baseline>,
    episodes: Map<IpAddr, Episode>,
    dhcp: dhcp::Dhcp,
    counters: FloodCounters,
}

impl Floods {
    /// The counters.
    #[must_use]
    pub fn counters(&self) -> FloodCounters {
        FloodCounters { dhcp_clients_dropped: self.dhcp.dropped, ..self.counters }
    }

    /// Accounts one DHCP client message from `src`.
    pub fn dhcp(&mut self, src: IpAddr, m: &crate::protocol::dhcp::ClientMessage, ts_ns: u64, s: &Settings) {
        if s.enabled {
            self.counters.dhcp_messages += 1;
            self.dhcp.message(src, m, ts_ns, s);
        }
    }

    /// Accounts one flow record; `is_home` tells inside addresses.
    pub fn record(&mut self, r: &FlowRecord, s: &Settings, is_home: &dyn Fn(IpAddr) -> bool) {
        if !s.enabled {
            return;
        }
        let cap = usize::try_from(s.max_victims).unwrap_or(usize::MAX);
        self.amplifier(r, s, cap, is_home);
        let Some(u) = classify(r, s) else { return };
        let victim = u.victim.0;
        if !unicast(victim) {
            return;
        }
        let (victim_inside, sender_inside) = (is_home(victim), is_home(u.sender.0));
        // Answers of discovery protocols (SSDP, NetBIOS, LLMNR) inside the
        // network come from amplifier ports to a port that asked a multicast
        // group: not a reflection.
        if u.kind == Kind::Reflection && sender_inside {
            return;
        }
        if !victim_inside && !sender_inside {
            return;
        }
        let full = self.victims.len() >= cap;
        let acc = match self.victims.get_mut(&victim) {
            Some(a) => a,
            None if full => {
                self.counters.victims_dropped += 1;
                return;
            }
            None => {
                let acc = self.victims.entry(victim).or_default();
                acc.outbound = !victim_inside;
                acc
            }
        };
        self.counters.unsolicited += 1;
        if acc.add(&u, r.key.proto, sender_inside) {
            self.counters.bins_replaced += 1;
        }
    }

    /// Accounts a UDP answer from a host inside on an amplifier port.
    fn amplifier(&mut self, r: &FlowRecord, s: &Settings, cap: usize, is_home: &dyn Fn(IpAddr) -> bool) {
        let server = r.server_endpoint();
        if r.key.proto != 17 || r.server.bytes == 0 || !s.amplifier(server.1) || !is_home(server.0) {
            return;
        }
        if !self.amplifiers.contains_key(&server.0) && self.amplifiers.len() >= cap {
            self.counters.victims_dropped += 1;
            return;
        }
        let a = self.amplifiers.entry(server.0).or_default();
        a.requests += r.client.packets;
        a.request_bytes += r.client.bytes;
        a.responses += r.server.packets;
        a.response_bytes += r.server.bytes;
        a.flows += 1;
        a.ports.add(server.1, r.server.bytes);
        a.requesters.add(r.client_endpoint().0, r.server.bytes);
    }

    /// Closes the bucket: judges every victim and amplifier (in address
    /// order), learns the quiet ones' peaks, ends finished episodes.
    pub fn close(
        &mut self,
        ctx: &BucketCtx<'_>,
        state_of: &dyn Fn(IpAddr) -> LearningState,
    ) -> Vec<Candidate> {
        let s = &ctx.settings.flood;
        let mut found = self.dhcp.close(ctx, state_of);
        let victims = std::mem::take(&mut self.victims);
        let mut ips: Vec<&IpAddr> = victims.keys().collect();
        ips.sort_unstable();
        let learned_after = ctx.settings.min_learning_buckets;
        let alpha = ctx.settings.baseline_alpha;
        let cap = usize::try_from(s.max_victims).unwrap_or(usize::MAX);
        for ip in ips {
            let Some(acc) = victims.get(ip) else { continue };
            let peak = acc.bins.iter().map(|b| b.senders().0).fold(0.0, f64::max);
            let peak_flows = acc.bins.iter().map(|b| b.flows).max().unwrap_or(0);
            let base = self.baselines.get(ip).copied().filter(|b| b.buckets >= learned_after);
            let src_threshold =
                (s.min_sources_per_s as f64).max(base.map_or(0.0, |b| s.baseline_factor * b.sources));
            let flow_threshold =
                (s.min_flows_per_s as f64).max(base.map_or(0.0, |b| s.baseline_factor * b.flows));
            let port_share = acc.victim_ports.first().map_or(0.0, |p| p.1 as f64 / acc.flows.max(1) as f64);
            let by_sources = peak >= src_threshold;
            let by_flows = peak_flows as f64 >= flow_threshold && port_share >= PORT_SHARE;
            if by_sources || by_flows {
                let mut c = *ctx;
                let episode = self.episode(*ip, acc, peak, peak_flows, ctx, cap);
                let at_fault = if acc.outbound { acc.inside_senders.first().map(|t| t.0) } else { Some(*ip) };
                let Some(host) = at_fault else { continue };
                c.host = host;
                c.state = state_of(host);
                let hit = Hit { by_sources, peak, peak_flows, src_threshold, flow_threshold, base, episode };
                found.push(finding(*ip, acc, &hit, &c));
                // Learned at the guard weight, as every baseline is: a flood
                // cannot teach its own rate quickly, and a host whose usual
                // rate is above the floor still learns it.
                self.learn(*ip, peak, peak_flows, alpha, ctx.settings.alert_weight, cap);
            } else {
                if peak >= BASELINE_MIN || peak_flows as f64 >= BASELINE_MIN {
                    self.learn(*ip, peak, peak_flows, alpha, 1.0, cap);
                }
                self.episodes.remove(ip);
            }
        }
        // Victims with an episode but no unsolicited flow this bucket: over.
        self.episodes.retain(|_, e| e.last_end_ns == ctx.end_ns);
        let amplifiers = std::mem::take(&mut self.amplifiers);
        let mut ips: Vec<&IpAddr> = amplifiers.keys().collect();
        ips.sort_unstable();
        for ip in ips {
            let Some(a) = amplifiers.get(ip) else { continue };
            let factor = a.response_bytes as f64 / a.request_bytes.max(1) as f64;
            if factor >= s.min_amplification && a.response_bytes >= s.min_amplified_bytes {
                let mut c = *ctx;
                c.host = *ip;
                c.state = state_of(*ip);
                found.push(amplifier_finding(*ip, a, factor, &c));
            }
        }
        found
    }

    fn episode(
        &mut self,
        ip: IpAddr,
        acc: &VictimAcc,
        peak: f64,
        flows: u64,
        ctx: &BucketCtx<'_>,
        cap: usize,
    ) -> Episode {
        let fresh = Episode {
            start_ns: acc.first_ns,
            last_end_ns: ctx.end_ns,
            buckets: 1,
            peak_sources: peak,
            peak_flows: flows,
        };
        if !self.episodes.contains_key(&ip) && self.episodes.len() >= cap {
            return fresh;
        }
        let e = self.episodes.entry(ip).or_insert(Episode { buckets: 0, ..fresh });
        e.last_end_ns = ctx.end_ns;
        e.buckets += 1;
        e.peak_sources = e.peak_sources.max(peak);
        e.peak_flows = e.peak_flows.max(flows);
        *e
    }

    fn learn(&mut self, ip: IpAddr, peak: f64, flows: u64, alpha: f64, weight: f64, cap: usize) {
        if !self.baselines.contains_key(&ip) && self.baselines.len() >= cap {
            self.counters.baselines_dropped += 1;
            return;
        }
        let b = self.baselines.entry(ip).or_default();
        b.buckets = b.buckets.saturating_add(1);
        let w = super::baseline::learn_weight(b.buckets, alpha, weight);
        b.sources += w * (peak - b.sources);
        b.flows += w * (flows as f64 - b.flows);
    }
}

/// What made a victim's bucket fire.
#[derive(Debug, Clone, Copy)]
struct Hit {
    by_sources: bool,
    peak: f64,
    peak_flows: u64,
    src_threshold: f64,
    flow_threshold: f64,
    base: Option<Baseline>,
    episode: Episode,
}

/// Whether a victim can be one host: not multicast, not a broadcast (an IPv4
/// address ending in .255 is taken for the broadcast of its /24 or wider:
/// NetBIOS and discovery broadcasts from a whole LAN are not a flood).
fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified() || v4.octets()[3] == 255)
        }
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

fn flag_names(f: u8) -> String {
    let names = [
        (tcp_flags::SYN, "SYN"),
        (tcp_flags::ACK, "ACK"),
        (tcp_flags::RST, "RST"),
        (tcp_flags::FIN, "FIN"),
        (tcp_flags::PSH, "PSH"),
        (tcp_flags::URG, "URG"),
        (0x40, "ECE"),
        (0x80, "CWR"),
    ];
    names.iter().filter(|(bit, _)| f & bit != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

fn port_list(top: &Top<(u8, u16), 8>) -> Vec<serde_json::Value> {
    top.sorted()
        .into_iter()
        .map(|((proto, port), n)| json!({"port": port, "transport": transport_name(proto).unwrap_or("ip"), "flows": n}))
        .collect()
}

fn finding(victim: IpAddr, acc: &VictimAcc, hit: &Hit, ctx: &BucketCtx<'_>) -> Candidate {
    let kind = acc.dominant();
    let (metric, observed, threshold) = if hit.by_sources {
        ("peak_sources_per_s", hit.peak, hit.src_threshold)
    } else {
        ("peak_flows_per_s", hit.peak_flows as f64, hit.flow_threshold)
    };
    let mut cand = Candidate::new(Detector::Flood, DESCRIPTION, ctx, metric, observed.round(), threshold);
    let episode_peak = if hit.by_sources { hit.episode.peak_sources } else { hit.episode.peak_flows as f64 };
    cand.strength = strength(episode_peak, threshold);
    let backscatter = acc.kinds[Kind::SynAck as usize]
        + acc.kinds[Kind::Rst as usize]
        + acc.kinds[Kind::IcmpError as usize];
    cand.confidence = if hit.by_sources { 0.85 } else { 0.75 };
    cand.transport = transport_name(acc.proto);
    let ports = if kind.sender_port_matters() { &acc.sender_ports } else { &acc.victim_ports };
    cand.port = ports.first().map(|((_, p), _)| p).filter(|_| matches!(acc.proto, 6 | 17 | 132));
    if acc.outbound {
        cand.peer = Some(victim);
    } else if let Some((top, n)) = acc.top_senders.first()
        && n * 2 >= acc.flows
    {
        cand.peer = Some(top);
    }
    let senders = acc.senders.estimate().min(acc.flows as f64).round();
    let peak_bin =
        acc.bins.iter().max_by(|a, b| a.senders().0.total_cmp(&b.senders().0).then(a.flows.cmp(&b.flows)));
    let (peak_sec, peak_packets, peak_bin_flows, saturated) =
        peak_bin.map_or((0, 0, 0, false), |b| (b.sec, b.packets, b.flows, b.senders().1));
    let active_s = (acc.last_ns.saturating_sub(acc.first_ns) as f64 / 1e9).max(1.0);
    let kinds: serde_json::Map<String, serde_json::Value> = Kind::ALL
        .iter()
        .filter(|k| acc.kinds[**k as usize] > 0)
        .map(|k| (k.name().to_owned(), json!(acc.kinds[*k as usize])))
        .collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(kind.rule()));
    d.insert("direction".into(), json!(if acc.outbound { "outbound" } else { "inbound" }));
    d.insert("victim".into(), json!(victim.to_string()));
    d.insert("peak_sources_per_s".into(), json!(hit.peak.round()));
    d.insert("peak_sources_saturated".into(), json!(saturated));
    d.insert("peak_second".into(), json!(crate::alert::rfc3339(peak_sec * 1_000_000_000)));
    d.insert("peak_flows_per_s".into(), json!(hit.peak_flows));
    d.insert("peak_packets_per_s".into(), json!(peak_packets));
    d.insert("mean_flows_per_s".into(), json!((acc.flows as f64 / active_s).round()));
    d.insert("mean_packets_per_s".into(), json!((acc.packets as f64 / active_s).round()));
    d.insert("distinct_sources".into(), json!(senders));
    d.insert("flows".into(), json!(acc.flows));
    d.insert("packets".into(), json!(acc.packets));
    d.insert("bytes".into(), json!(acc.bytes));
    d.insert("kinds".into(), serde_json::Value::Object(kinds));
    d.insert("ports".into(), json!(port_list(&acc.victim_ports)));
    d.insert("source_ports".into(), json!(port_list(&acc.sender_ports)));
    if acc.flags != 0 {
        d.insert("tcp_flags".into(), json!(flag_names(acc.flags)));
    }
    d.insert(
        "backscatter".into(),
        json!({"syn_ack": acc.kinds[Kind::SynAck as usize], "rst": acc.kinds[Kind::Rst as usize],
               "icmp_errors": acc.kinds[Kind::IcmpError as usize], "total": backscatter}),
    );
    if kind == Kind::Reflection {
        // Requests are sent with the victim's address from elsewhere: on the
        // victim's link only the answers pass.
        d.insert("amplification".into(), json!("not measurable: no request from the victim seen"));
    }
    if acc.outbound {
        let inside: Vec<String> = acc.inside_senders.sorted().iter().map(|(ip, _)| ip.to_string()).collect();
        d.insert("inside_sources".into(), json!(inside));
    }
    d.insert(
        "episode".into(),
        json!({"start": crate::alert::rfc3339(hit.episode.start_ns), "buckets": hit.episode.buckets,
               "peak_sources_per_s": hit.episode.peak_sources.round(), "peak_flows_per_s": hit.episode.peak_flows}),
    );
    if let Some(b) = hit.base {
        cand.evidence.baseline_mean = Some(if hit.by_sources { b.sources } else { b.flows });
    }
    let what = match kind {
        Kind::Syn => "a SYN flood",
        Kind::SynAck => "SYN-ACK backscatter (reflection of SYNs sent in its name)",
        Kind::Rst => "reset backscatter",
        Kind::IcmpError => "ICMP error backscatter",
        Kind::Reflection => "a UDP reflection flood",
        Kind::Udp => "a UDP flood",
        Kind::IcmpEcho => "an ICMP echo flood",
        Kind::Other => "an IP flood",
    };
    let port = ports.first().map_or(String::new(), |((proto, p), _)| {
        let dir = if kind.sender_port_matters() { "from" } else { "to" };
        format!(" {dir} {p}/{}", transport_name(proto).unwrap_or("ip"))
    });
    let sat = if saturated { "≥ " } else { "" };
    cand.message = if acc.outbound {
        format!(
            "{} sent {what} to {victim}: {} flows in its busiest second, {sat}{:.0} sources, {} flows{port}",
            ctx.host, hit.peak_flows, hit.peak, acc.flows
        )
    } else {
        format!(
            "{victim} received {what}: {sat}{:.0} sources ({peak_bin_flows} flows) in its busiest second (threshold {threshold:.0}), about {senders:.0} sources and {} flows in all{port}",
            hit.peak, acc.flows
        )
    };
    cand
}

fn amplifier_finding(host: IpAddr, a: &AmpAcc, factor: f64, ctx: &BucketCtx<'_>) -> Candidate {
    let s = &ctx.settings.flood;
    let mut cand = Candidate::new(
        Detector::Flood,
        DESCRIPTION,
        ctx,
        "amplification_factor",
        (factor * 10.0).round() / 10.0,
        s.min_amplification,
    );
    cand.strength = strength(a.response_bytes as f64, s.min_amplified_bytes as f64);
    cand.confidence = 0.8;
    cand.transport = Some("udp");
    cand.port = a.ports.first().map(|p| p.0);
    cand.peer = a.requesters.first().map(|r| r.0);
    let requesters: Vec<String> = a.requesters.sorted().iter().map(|(ip, _)| ip.to_string()).collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("amplifier"));
    d.insert("direction".into(), json!("outbound"));
    d.insert("amplification".into(), json!((factor * 10.0).round() / 10.0));
    d.insert("requests".into(), json!(a.requests));
    d.insert("request_bytes".into(), json!(a.request_bytes));
    d.insert("responses".into(), json!(a.responses));
    d.insert("response_bytes".into(), json!(a.response_bytes));
    d.insert("flows".into(), json!(a.flows));
    d.insert("requesters".into(), json!(requesters));
    cand.message = format!(
        "{host} answered {} UDP requests on port {} with {factor:.0}× their bytes ({} B out) in {} s: an amplifier in a reflection attack",
        a.requests,
        cand.port.unwrap_or(0),
        a.response_bytes,
        ctx.bucket_s()
    );
    cand
}
