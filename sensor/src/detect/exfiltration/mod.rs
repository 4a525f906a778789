//! `exfiltration`: a host sends far more to the outside than it usually does.
//!
//! Evaluated when a bucket closes, from the flow records accounted in it
//! (interim records of long flows included, so an upload is reported while it
//! still runs). Three rules, the strongest wins:
//!
//! 1. **bucket**: outbound bytes in the bucket ≥ `min_bytes` and above the
//!    baseline band (`sigma` standard deviations on the log scale) — active
//!    baselines only;
//! 2. **hour**: outbound bytes over the sliding hour ≥ `hour_min_bytes` and
//!    above the band of the hourly baseline — active baselines only;
//! 3. **dominant upload**: one peer took ≥ `peer_share` of the bucket's
//!    outbound bytes, at least `peer_min_bytes` (`learning_min_bytes` while the
//!    host learns), with an upload/download ratio ≥ `upload_ratio`; with an
//!    active baseline the bucket must also be above the band.
//!
//! The absolute floors keep a host that usually sends 1 kB from alerting at
//! 10 kB; the band keeps a backup server that sends gigabytes every night from
//! alerting at all.

use serde_json::json;

use super::baseline::Metric;
use super::host::HostState;
use super::{BucketCtx, Candidate, strength, transport_name};
use crate::alert::{Detector, LearningState};

const DESCRIPTION: &str =
    "A host sent far more data to the outside than its baseline and the absolute floors allow.";

/// A rule's result: score, rule, observed, threshold, band, baseline mean.
type Finding = (f64, &'static str, f64, f64, Option<[f64; 2]>, Option<f64>);

/// The strongest exfiltration finding of the host's bucket, if any.
pub fn evaluate(host: &HostState, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.exfiltration;
    if !s.enabled {
        return None;
    }
    let b = &host.bucket;
    let active = ctx.state == LearningState::Active;
    let base = host.baseline.metric(Metric::BytesOut);
    let band = base.band(ctx.settings.sigma);
    let above_band = b.bytes_out as f64 > band[1];
    let mut best: Option<Finding> = None;
    let mut consider = |score: f64, rule: &'static str, observed: f64, threshold: f64, band, mean| {
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, rule, observed, threshold, band, mean));
        }
    };
    if active && b.bytes_out >= s.min_bytes && above_band {
        let threshold = band[1].max(s.min_bytes as f64);
        consider(
            strength(b.bytes_out as f64, threshold),
            "bucket",
            b.bytes_out as f64,
            threshold,
            Some(band),
            Some(base.typical()),
        );
    }
    let hour = host.hour_out();
    let hour_base = host.baseline.metric(Metric::BytesOutHour);
    let hour_band = hour_base.band(ctx.settings.sigma);
    if active && hour >= s.hour_min_bytes && hour as f64 > hour_band[1] && b.bytes_out > 0 {
        let threshold = hour_band[1].max(s.hour_min_bytes as f64);
        consider(
            strength(hour as f64, threshold),
            "hour",
            hour as f64,
            threshold,
            Some(hour_band),
            Some(hour_base.typical()),
        );
    }
    // The dominant peer of the bucket.
    let top = b
        .peers
        .iter()
        .max_by(|x, y| x.1.bytes_out.cmp(&y.1.bytes_out).then_with(|| y.0.cmp(x.0)))
        .map(|(ip, acc)| (*ip, acc));
    if let Some((_, acc)) = top {
        let floor = if active { s.peer_min_bytes } else { s.learning_min_bytes };
        let share = acc.bytes_out as f64 / b.bytes_out.max(1) as f64;
        let ratio = acc.bytes_out as f64 / acc.bytes_in.max(1) as f64;
        if acc.bytes_out >= floor
            && share >= s.peer_share
            && ratio >= s.upload_ratio
            && (!active || above_band)
        {
            let threshold = if active { band[1].max(floor as f64) } else { floor as f64 };
            let (band, mean) = if active { (Some(band), Some(base.typical())) } else { (None, None) };
            consider(
                strength(acc.bytes_out as f64, threshold),
                "dominant_upload",
                acc.bytes_out as f64,
                threshold,
                band,
                mean,
            );
        }
    }
    let (score, rule, observed, threshold, band, mean) = best?;
    let (peer, acc) = top?;
    let flows: Vec<String> = acc.flows.iter().map(|f| f.community_id()).collect();
    let metric = match rule {
        "hour" => "bytes_out_hour",
        "dominant_upload" => "bytes_out_peer",
        _ => "bytes_out_bucket",
    };
    let mut cand = Candidate::new(Detector::Exfiltration, DESCRIPTION, ctx, metric, observed, threshold);
    cand.peer = Some(peer);
    cand.port = acc.port;
    cand.transport = transport_name(acc.proto);
    cand.flow = (acc.flows.len() == 1).then(|| acc.flows[0]);
    cand.strength = score;
    cand.confidence = if rule == "dominant_upload" { 0.85 } else { 0.75 };
    cand.evidence.baseline_mean = mean;
    cand.evidence.baseline_band = band;
    cand.evidence.community_ids = flows;
    cand.evidence.details.insert("rule".into(), json!(rule));
    cand.evidence.details.insert("bytes_out_bucket".into(), json!(b.bytes_out));
    cand.evidence.details.insert("bytes_out_hour".into(), json!(hour));
    cand.evidence.details.insert("bytes_to_peer".into(), json!(acc.bytes_out));
    cand.evidence.details.insert("bytes_from_peer".into(), json!(acc.bytes_in));
    cand.evidence.details.insert("peers".into(), json!(b.peers.len()));
    cand.evidence.details.insert(
        "bytes_out_by_transport".into(),
        json!({ "tcp": b.out_by_transport[0], "udp": b.out_by_transport[1], "other": b.out_by_transport[2] }),
    );
    cand.evidence.details.insert(
        "bytes_out_by_port_class".into(),
        json!({
            "well_known": b.out_by_port_class[0],
            "registered": b.out_by_port_class[1],
            "dynamic": b.out_by_port_class[2],
        }),
    );
    cand.message = format!(
        "{} sent {} to the outside in {} s ({} to {}{}), rule {}",
        ctx.host,
        human_bytes(b.bytes_out),
        ctx.bucket_s(),
        human_bytes(acc.bytes_out),
        peer,
        acc.port.map(|p| format!(":{p}")).unwrap_or_default(),
        rule
    );
    Some(cand)
}

/// `n` bytes as "1.5 MB".
#[must_use]
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}
