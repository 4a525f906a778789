//! `icmp_tunnel`: data carried in ICMP echo payloads.
//!
//! Ordinary ping sends one fixed payload size (56 bytes on Linux, 32 on
//! Windows) about once a second. A tunnel (ptunnel, icmpsh, SSH over ICMP)
//! sends whatever the carried session needs: many sizes, large payloads, and
//! sustained volume. Evaluated when a bucket closes, per host and peer:
//!
//! - **varying payloads**: at least `min_packets` echo packets with at least
//!   `min_distinct_sizes` distinct payload sizes;
//! - **large payloads**: at least `min_packets` echo packets whose mean payload
//!   exceeds `max_normal_payload` bytes;
//! - **volume**: at least `max_bytes` of echo payload in the bucket.

use serde_json::json;

use super::host::HostState;
use super::{BucketCtx, Candidate, strength};
use crate::alert::Detector;

const DESCRIPTION: &str = "ICMP echo traffic with varying, large or sustained payloads, unlike ping: data carried in ICMP (a tunnel).";

/// The strongest ICMP-tunnel finding of the host's bucket, if any.
pub fn evaluate(host: &HostState, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.icmp_tunnel;
    if !s.enabled {
        return None;
    }
    let mut best: Option<(f64, &'static str, f64, f64, std::net::IpAddr)> = None;
    let mut peers: Vec<_> = host.bucket.icmp.iter().collect();
    peers.sort_by(|a, b| a.0.cmp(b.0));
    for (peer, acc) in &peers {
        let mut consider = |score: f64, rule, observed: f64, threshold: f64| {
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, rule, observed, threshold, **peer));
            }
        };
        let sizes = acc.sizes.len() as u64;
        let mean = acc.bytes as f64 / acc.packets.max(1) as f64;
        if acc.packets >= s.min_packets && sizes >= s.min_distinct_sizes {
            let t = s.min_distinct_sizes as f64;
            consider(strength(sizes as f64, t), "varying_payloads", sizes as f64, t);
        }
        if acc.packets >= s.min_packets && mean > s.max_normal_payload as f64 {
            let t = s.max_normal_payload as f64;
            consider(strength(mean, t), "large_payloads", mean, t);
        }
        if acc.bytes >= s.max_bytes {
            let t = s.max_bytes as f64;
            consider(strength(acc.bytes as f64, t), "volume", acc.bytes as f64, t);
        }
    }
    let (score, rule, observed, threshold, peer) = best?;
    let acc = host.bucket.icmp.get(&peer)?;
    let metric = match rule {
        "varying_payloads" => "distinct_payload_sizes",
        "large_payloads" => "mean_payload_bytes",
        _ => "payload_bytes",
    };
    let mut cand = Candidate::new(Detector::IcmpTunnel, DESCRIPTION, ctx, metric, observed, threshold);
    cand.peer = Some(peer);
    cand.transport = Some(if peer.is_ipv4() { "icmp" } else { "ipv6-icmp" });
    cand.strength = score;
    cand.confidence = 0.8;
    if let Some(f) = acc.flow {
        cand.flow = Some(f);
        cand.evidence.community_ids.push(f.community_id());
    }
    let mean = acc.bytes as f64 / acc.packets.max(1) as f64;
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(rule));
    d.insert("echo_packets".into(), json!(acc.packets));
    d.insert("payload_bytes".into(), json!(acc.bytes));
    d.insert("distinct_sizes".into(), json!(acc.sizes.len()));
    d.insert("max_payload".into(), json!(acc.max));
    d.insert("mean_payload".into(), json!(mean.round()));
    cand.message = format!(
        "{} exchanged {} ICMP echo packets with {} in {} s: {} distinct payload sizes, mean {:.0} B, max {} B (rule {})",
        ctx.host,
        acc.packets,
        peer,
        ctx.bucket_s(),
        acc.sizes.len(),
        mean,
        acc.max,
        rule
    );
    Some(cand)
}
