//! DHCP abuse, two rules of the `flood` detector: a flood of DHCP messages
//! from one client, and address-pool starvation by many made-up clients.
//!
//! Built from the observer's DHCP client messages (every BOOTREQUEST from an
//! Ethernet client to port 67, [`crate::observe::ObsKind::DhcpRequest`]), not
//! from flow records: a starvation tool repeats one 5-tuple
//! (`0.0.0.0:68 → 255.255.255.255:67`) thousands of times, which is one flow.
//!
//! | rule | fires when | floor, and why |
//! |---|---|---|
//! | `dhcp_flood` | one client hardware address (`chaddr`) sent ≥ `dhcp_min_messages` client messages within `dhcp_window_s` | 60 in 60 s. A client that gets no answer retransmits with RFC 2131's backoff (4, 8, 16, 32, 64 s): about 5 messages a minute; a whole lease cycle is 2–4 messages. Floods made to exhaust a server's pool or its CPU send hundreds to thousands a second (10 000 DISCOVERs in one timestamp, 250 INFORMs in 5 s in the corpus). |
//! | `dhcp_starvation` | ≥ `dhcp_min_clients` distinct client hardware addresses sent a DISCOVER within `dhcp_window_s`, not through a relay | 200 in 60 s, or `baseline_factor` × the learned peak once it has `min_learning_buckets` buckets. Starvation tools make up a new address for each DISCOVER (one lease each); renewals are REQUESTs and do not count, so a large network's steady churn stays far below. A relay agent forwards many real clients' DISCOVERs legitimately (a whole building at 9 am), so relayed messages (`giaddr` set) are left out. |
//!
//! The host at fault is the address the messages came from most often —
//! usually `0.0.0.0`, which is what a client without a lease sends from —
//! and the evidence names the client hardware addresses, so that the analyst
//! can find the port on the switch.
//!
//! **Windows.** Each client and the network-wide count of DISCOVERing
//! clients keep a tumbling window of `dhcp_window_s`, started by the first
//! message after the previous one ran out; a bucket reports the highest count
//! any window reached in it.
//!
//! **Bounds.** At most [`MAX_CLIENTS`] clients followed (the rest counted in
//! `dhcp_clients_dropped`); the network-wide window remembers at most
//! [`MAX_ASKERS`] addresses and reports a full one as at least that many.

use std::net::IpAddr;

use serde_json::json;

use super::DESCRIPTION;
use super::sketch::Top;
use crate::alert::{Detector, LearningState};
use crate::detect::host::Map;
use crate::detect::{BucketCtx, Candidate, strength};
use crate::protocol::dhcp::ClientMessage;

/// Clients (hardware addresses) followed at most.
pub const MAX_CLIENTS: usize = 16_384;
/// Distinct DISCOVERing clients remembered per window.
pub const MAX_ASKERS: usize = 4_096;
/// Client hardware addresses named in the evidence.
const SAMPLE: usize = 16;
const DISCOVER: u8 = 1;

/// `dhcp_window_s` in nanoseconds.
fn window_ns(s: &super::Settings) -> u64 {
    u64::try_from(s.dhcp_window_s).unwrap_or(60).saturating_mul(1_000_000_000)
}

/// A hardware address as people write it.
fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The name of a DHCP message type (`bootp` for a message without one).
fn type_name(t: Option<u8>) -> &'static str {
    match t {
        None => "bootp",
        Some(1) => "discover",
        Some(2) => "offer",
        Some(3) => "request",
        Some(4) => "decline",
        Some(5) => "ack",
        Some(6) => "nak",
        Some(7) => "release",
        Some(8) => "inform",
        Some(_) => "other",
    }
}

/// A tumbling window's count, and the highest count it reached in this bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Tumbling {
    start_ns: u64,
    count: u64,
    peak: u64,
    peak_start_ns: u64,
    peak_end_ns: u64,
}

impl Tumbling {
    /// Starts a new window when the current one ran out; whether it did.
    fn roll(&mut self, ts_ns: u64, window_ns: u64) -> bool {
        let fresh = self.count == 0 || ts_ns.saturating_sub(self.start_ns) > window_ns;
        if fresh {
            self.start_ns = ts_ns;
            self.count = 0;
        }
        fresh
    }

    fn add(&mut self, ts_ns: u64) {
        self.count += 1;
        if self.count > self.peak {
            self.peak = self.count;
            self.peak_start_ns = self.start_ns;
            self.peak_end_ns = ts_ns;
        }
    }

    fn span_s(&self) -> f64 {
        (self.peak_end_ns.saturating_sub(self.peak_start_ns) as f64 / 1e6).round() / 1e3
    }
}

/// One client hardware address.
#[derive(Debug, Clone, Default)]
struct Client {
    window: Tumbling,
    /// The current window: messages by type, the addresses they came from, relayed ones.
    types: Top<Option<u8>, 4>,
    sources: Top<IpAddr, 4>,
    relayed: u64,
    last_ns: u64,
    /// The host an alert named, while the client stays followed: a flood
    /// from ever-changing addresses stays one host's episode.
    alerted: Option<IpAddr>,
}

/// The network-wide window of DISCOVERing clients.
#[derive(Debug, Clone, Default)]
struct Askers {
    window: Tumbling,
    members: Map<[u8; 6], ()>,
    /// This bucket: a sample of the peak window's clients, the addresses they
    /// came from, how many had the locally administered bit (made-up or
    /// privacy addresses), and whether the window filled.
    sample: Vec<[u8; 6]>,
    sources: Top<IpAddr, 4>,
    added: u64,
    local: u64,
    saturated: bool,
}

/// A learned peak: an exponentially weighted mean of each bucket's.
#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    mean: f64,
    buckets: u32,
}

/// The DHCP rules' state.
#[derive(Debug, Default)]
pub struct Dhcp {
    clients: Map<[u8; 6], Client>,
    askers: Askers,
    base: Baseline,
    /// Messages of clients not followed (table full).
    pub dropped: u64,
}

impl Dhcp {
    /// Accounts one client message from `src`.
    pub fn message(&mut self, src: IpAddr, m: &ClientMessage, ts_ns: u64, s: &super::Settings) {
        let window_ns = window_ns(s);
        if m.message_type == Some(DISCOVER) && !m.relayed {
            let a = &mut self.askers;
            if a.window.roll(ts_ns, window_ns) {
                a.members.clear();
            }
            if !a.members.contains_key(&m.client) {
                if a.members.len() < MAX_ASKERS {
                    a.members.insert(m.client, ());
                    a.window.add(ts_ns);
                    a.added += 1;
                    a.local += u64::from(m.client[0] & 0x02 != 0);
                    if a.sample.len() < SAMPLE {
                        a.sample.push(m.client);
                    }
                } else {
                    a.saturated = true;
                }
            }
            a.sources.add(src, 1);
        }
        if !self.clients.contains_key(&m.client) && self.clients.len() >= MAX_CLIENTS {
            self.dropped += 1;
            return;
        }
        let c = self.clients.entry(m.client).or_default();
        if c.window.roll(ts_ns, window_ns) {
            c.types = Top::default();
            c.sources = Top::default();
            c.relayed = 0;
        }
        c.window.add(ts_ns);
        c.types.add(m.message_type, 1);
        c.sources.add(src, 1);
        c.relayed += u64::from(m.relayed);
        c.last_ns = ts_ns;
    }

    /// Closes the bucket: judges every client (in address order) and the
    /// network-wide window, learns the quiet buckets' peaks, forgets clients
    /// whose window ran out.
    pub fn close(
        &mut self,
        ctx: &BucketCtx<'_>,
        state_of: &dyn Fn(IpAddr) -> LearningState,
    ) -> Vec<Candidate> {
        let s = &ctx.settings.flood;
        let mut found = Vec::new();
        let mut macs: Vec<[u8; 6]> = self
            .clients
            .iter()
            .filter(|(_, c)| c.window.peak >= s.dhcp_min_messages)
            .map(|(m, _)| *m)
            .collect();
        macs.sort_unstable();
        for m in macs {
            let Some(c) = self.clients.get_mut(&m) else { continue };
            let Some(host) = c.alerted.or_else(|| c.sources.first().map(|s| s.0)) else { continue };
            c.alerted = Some(host);
            let mut bc = *ctx;
            bc.host = host;
            bc.state = state_of(host);
            found.push(flood_finding(m, c, &bc));
        }
        let a = &self.askers;
        let learned = (self.base.buckets >= ctx.settings.min_learning_buckets).then_some(self.base.mean);
        let threshold = (s.dhcp_min_clients as f64).max(learned.map_or(0.0, |b| s.baseline_factor * b));
        let peak = a.window.peak as f64;
        let fired = peak >= threshold;
        if fired && let Some((host, _)) = a.sources.first() {
            let mut bc = *ctx;
            bc.host = host;
            bc.state = state_of(host);
            found.push(starvation_finding(a, threshold, learned, &bc));
        }
        if a.window.peak > 0 {
            let weight = if fired { ctx.settings.alert_weight } else { 1.0 };
            let b = &mut self.base;
            b.buckets = b.buckets.saturating_add(1);
            let w = crate::detect::baseline::learn_weight(b.buckets, ctx.settings.baseline_alpha, weight);
            b.mean += w * (peak - b.mean);
        }
        self.roll(ctx.end_ns, s);
        found
    }

    /// Starts the next bucket.
    fn roll(&mut self, now_ns: u64, s: &super::Settings) {
        let window_ns = window_ns(s);
        self.clients.retain(|_, c| {
            c.window.peak = 0;
            now_ns.saturating_sub(c.last_ns) <= window_ns
        });
        let a = &mut self.askers;
        a.window.peak = 0;
        a.sample.clear();
        a.sources = Top::default();
        a.added = 0;
        a.local = 0;
        a.saturated = false;
        if now_ns.saturating_sub(a.window.start_ns) > window_ns {
            a.members.clear();
            a.window.count = 0;
        }
    }
}

fn types_json(types: &Top<Option<u8>, 4>) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> =
        types.sorted().into_iter().map(|(t, n)| (type_name(t).to_owned(), json!(n))).collect();
    serde_json::Value::Object(map)
}

fn sources_json(sources: &Top<IpAddr, 4>) -> Vec<String> {
    sources.sorted().iter().map(|(ip, _)| ip.to_string()).collect()
}

fn flood_finding(client: [u8; 6], c: &Client, ctx: &BucketCtx<'_>) -> Candidate {
    let s = &ctx.settings.flood;
    let mut cand = Candidate::new(
        Detector::Flood,
        DESCRIPTION,
        ctx,
        "dhcp_messages_in_window",
        c.window.peak as f64,
        s.dhcp_min_messages as f64,
    );
    cand.strength = strength(c.window.peak as f64, s.dhcp_min_messages as f64);
    // No client stack sends this many: a tool, or a device stuck in a loop.
    cand.confidence = 0.8;
    cand.transport = Some("udp");
    cand.port = Some(67);
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("dhcp_flood"));
    d.insert("client_mac".into(), json!(mac(client)));
    d.insert("window_s".into(), json!(s.dhcp_window_s));
    d.insert("peak_span_s".into(), json!(c.window.span_s()));
    d.insert("messages".into(), json!(c.window.count));
    d.insert("message_types".into(), types_json(&c.types));
    d.insert("sources".into(), json!(sources_json(&c.sources)));
    d.insert("relayed".into(), json!(c.relayed));
    let types: Vec<String> =
        c.types.sorted().into_iter().map(|(t, n)| format!("{n} {}", type_name(t))).collect();
    cand.message = format!(
        "DHCP client {} (from {}) sent {} DHCP messages within {:.1} s ({}): a DHCP flood, which can exhaust the server's address pool",
        mac(client),
        sources_json(&c.sources).join(", "),
        c.window.peak,
        c.window.span_s(),
        types.join(", ")
    );
    cand
}

fn starvation_finding(a: &Askers, threshold: f64, learned: Option<f64>, ctx: &BucketCtx<'_>) -> Candidate {
    let s = &ctx.settings.flood;
    let peak = a.window.peak;
    let mut cand = Candidate::new(
        Detector::Flood,
        DESCRIPTION,
        ctx,
        "dhcp_discovering_clients_in_window",
        peak as f64,
        threshold,
    );
    cand.strength = strength(peak as f64, threshold);
    cand.confidence = 0.75;
    cand.transport = Some("udp");
    cand.port = Some(67);
    cand.evidence.baseline_mean = learned;
    let local = a.local as f64 / a.added.max(1) as f64;
    let mut sample = a.sample.clone();
    sample.sort_unstable();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("dhcp_starvation"));
    d.insert("window_s".into(), json!(s.dhcp_window_s));
    d.insert("peak_span_s".into(), json!(a.window.span_s()));
    d.insert("distinct_clients".into(), json!(peak));
    d.insert("distinct_clients_saturated".into(), json!(a.saturated));
    d.insert("client_macs".into(), json!(sample.into_iter().map(mac).collect::<Vec<_>>()));
    d.insert("locally_administered_ratio".into(), json!((local * 1000.0).round() / 1000.0));
    d.insert("sources".into(), json!(sources_json(&a.sources)));
    let sat = if a.saturated { "≥ " } else { "" };
    cand.message = format!(
        "{sat}{peak} different DHCP clients asked for an address within {:.1} s (threshold {threshold:.0}), most from {}: DHCP starvation, made-up clients taking every lease",
        a.window.span_s(),
        ctx.host
    );
    cand
}
