//! `scan`: one source probing many hosts on a port (horizontal) or many ports
//! on a host (vertical), most of the probes failing.
//!
//! Built from flow records, one attempt per connection the source opened (the
//! first record of a flow; the source must have sent at least one packet, so
//! reflected SYN-ACKs aimed at a victim do not make the victim a scanner). An
//! attempt failed when a TCP handshake did not complete (no SYN-ACK, or a
//! reset before it completed), or when a UDP or ICMP flow got no answer.
//! Evaluated when a bucket closes, per source (inside or outside; at most
//! `max_sources` per bucket): at least `min_hosts` hosts on one port or
//! `min_ports` ports on one host, with at least `min_failed_ratio` of those
//! attempts failed. A port or host is followed from its first failed attempt
//! (a client whose connections succeed costs no memory here), so the ratio
//! counts the attempts from then on.

use std::net::IpAddr;

use serde_json::json;

use super::host::{FlowRef, Map, Set};
use super::{BucketCtx, Candidate, strength, transport_name};
use crate::alert::Detector;

const DESCRIPTION: &str =
    "One source probed many hosts on one port or many ports on one host, most probes failing (a scan).";

/// Targets remembered per port or per host.
const MAX_TARGETS: usize = 4_096;
/// Ports or hosts tracked per source per bucket.
const MAX_KEYS: usize = 4_096;

/// Attempts on one port (or one host).
#[derive(Debug, Clone)]
struct Spread<T> {
    targets: Set<T>,
    attempts: u64,
    failed: u64,
    example: Option<FlowRef>,
}

impl<T> Default for Spread<T> {
    fn default() -> Self {
        Self { targets: Set::default(), attempts: 0, failed: 0, example: None }
    }
}

impl<T: std::hash::Hash + Eq> Spread<T> {
    fn add(&mut self, target: T, failed: bool, flow: FlowRef) {
        if self.targets.len() < MAX_TARGETS {
            self.targets.insert(target);
        }
        self.attempts += 1;
        self.failed += u64::from(failed);
        if self.example.is_none() {
            self.example = Some(flow);
        }
    }
}

/// One source's attempts in the bucket.
#[derive(Debug, Clone, Default)]
pub struct ScanAcc {
    by_port: Map<(u16, u8), Spread<IpAddr>>,
    by_host: Map<IpAddr, Spread<u16>>,
}

impl ScanAcc {
    /// Accounts one connection attempt. A port or host is followed from its
    /// first failed attempt on: a client whose connections all succeed costs
    /// two lookups per connection and no memory (the failed ratio then
    /// counts the successes after the first failure).
    pub fn attempt(&mut self, flow: FlowRef, failed: bool) {
        let (dst, port) = flow.b;
        if let Some(sp) = self.by_port.get_mut(&(port, flow.proto)) {
            sp.add(dst, failed, flow);
        } else if failed && self.by_port.len() < MAX_KEYS {
            self.by_port.entry((port, flow.proto)).or_default().add(dst, failed, flow);
        }
        if let Some(sp) = self.by_host.get_mut(&dst) {
            sp.add(port, failed, flow);
        } else if failed && self.by_host.len() < MAX_KEYS {
            self.by_host.entry(dst).or_default().add(port, failed, flow);
        }
    }
}

/// The strongest scan finding of `source`'s bucket, if any.
pub fn evaluate(source: IpAddr, acc: &ScanAcc, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.scan;
    let horizontal = acc
        .by_port
        .iter()
        .max_by(|a, b| a.1.targets.len().cmp(&b.1.targets.len()).then_with(|| b.0.cmp(a.0)));
    let vertical = acc
        .by_host
        .iter()
        .max_by(|a, b| a.1.targets.len().cmp(&b.1.targets.len()).then_with(|| b.0.cmp(a.0)));
    let judge = |count: u64, min: u64, failed: u64, attempts: u64| -> Option<f64> {
        let ratio = failed as f64 / attempts.max(1) as f64;
        let hit = count >= min && ratio >= s.min_failed_ratio;
        hit.then(|| strength(count as f64, min as f64) * (0.5 + 0.5 * ratio))
    };
    let h = horizontal.and_then(|((port, proto), sp)| {
        judge(sp.targets.len() as u64, s.min_hosts, sp.failed, sp.attempts)
            .map(|score| (score, *port, *proto, sp))
    });
    let v = vertical.and_then(|(host, sp)| {
        judge(sp.targets.len() as u64, s.min_ports, sp.failed, sp.attempts).map(|score| (score, *host, sp))
    });
    let use_h = match (&h, &v) {
        (Some(a), Some(b)) => a.0 >= b.0,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => return None,
    };
    let mut ctx = *ctx;
    ctx.host = source;
    let mut cand;
    if use_h {
        let (score, port, proto, sp) = h?;
        let n = sp.targets.len();
        cand =
            Candidate::new(Detector::Scan, DESCRIPTION, &ctx, "distinct_hosts", n as f64, s.min_hosts as f64);
        cand.strength = score;
        cand.port = Some(port);
        cand.transport = transport_name(proto);
        let mut sample: Vec<String> = sp.targets.iter().map(ToString::to_string).collect();
        sample.sort();
        sample.truncate(10);
        let d = &mut cand.evidence.details;
        d.insert("kind".into(), json!("horizontal"));
        d.insert("attempts".into(), json!(sp.attempts));
        d.insert("failed".into(), json!(sp.failed));
        d.insert("failed_ratio".into(), json!(ratio(sp.failed, sp.attempts)));
        d.insert("targets_sample".into(), json!(sample));
        if let Some(f) = sp.example {
            cand.evidence.community_ids.push(f.community_id());
        }
        cand.message = format!(
            "{source} probed {n} hosts on port {port}/{} in {} s, {:.0} % failed (horizontal scan)",
            transport_name(proto).unwrap_or("ip"),
            ctx.bucket_s(),
            ratio(sp.failed, sp.attempts) * 100.0
        );
    } else {
        let (score, target, sp) = v?;
        let n = sp.targets.len();
        cand =
            Candidate::new(Detector::Scan, DESCRIPTION, &ctx, "distinct_ports", n as f64, s.min_ports as f64);
        cand.strength = score;
        cand.peer = Some(target);
        let mut sample: Vec<u16> = sp.targets.iter().copied().collect();
        sample.sort_unstable();
        sample.truncate(20);
        let d = &mut cand.evidence.details;
        d.insert("kind".into(), json!("vertical"));
        d.insert("attempts".into(), json!(sp.attempts));
        d.insert("failed".into(), json!(sp.failed));
        d.insert("failed_ratio".into(), json!(ratio(sp.failed, sp.attempts)));
        d.insert("ports_sample".into(), json!(sample));
        if let Some(f) = sp.example {
            cand.evidence.community_ids.push(f.community_id());
        }
        cand.message = format!(
            "{source} probed {n} ports on {target} in {} s, {:.0} % failed (vertical scan)",
            ctx.bucket_s(),
            ratio(sp.failed, sp.attempts) * 100.0
        );
    }
    cand.confidence = 0.8;
    Some(cand)
}

fn ratio(failed: u64, attempts: u64) -> f64 {
    (failed as f64 / attempts.max(1) as f64 * 1000.0).round() / 1000.0
}
