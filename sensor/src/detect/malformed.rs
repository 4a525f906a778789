//! `malformed_traffic`: a host sends malformed or evasive packets at a rate
//! above its baseline.
//!
//! Counted per sender: frames the decoder refused (truncated or bogus headers,
//! bad extension chains, broken tunnels) whose IP source was readable, and TCP
//! packets with flag combinations no stack sends (NULL, XMAS, SYN+FIN,
//! SYN+RST), which scanners and evasion tools craft. Evaluated when a bucket
//! closes: at least `min_packets` and above the baseline band for an active
//! host; at least `learning_min_packets` for a host still learning.

use serde_json::json;

use super::baseline::Metric;
use super::host::HostState;
use super::{BucketCtx, Candidate, strength};
use crate::alert::{Detector, LearningState};

const DESCRIPTION: &str =
    "A host sends malformed or evasive packets (bogus headers, impossible TCP flags) above its baseline.";

/// A malformed-traffic finding of the host's bucket, if any.
pub fn evaluate(host: &HostState, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.malformed_traffic;
    if !s.enabled {
        return None;
    }
    let n = host.bucket.malformed_total();
    let base = host.baseline.metric(Metric::Malformed);
    let band = base.band(ctx.settings.sigma);
    let threshold = if ctx.state == LearningState::Active {
        if n < s.min_packets || n as f64 <= band[1] {
            return None;
        }
        band[1].max(s.min_packets as f64)
    } else {
        if n < s.learning_min_packets {
            return None;
        }
        s.learning_min_packets as f64
    };
    let mut cand = Candidate::new(
        Detector::MalformedTraffic,
        DESCRIPTION,
        ctx,
        "malformed_packets",
        n as f64,
        threshold,
    );
    cand.strength = strength(n as f64, threshold);
    cand.confidence = 0.6;
    if ctx.state == LearningState::Active {
        cand.evidence.baseline_mean = Some(base.typical());
        cand.evidence.baseline_band = Some(band);
    }
    cand.evidence.details.insert("by_reason".into(), json!(host.bucket.malformed));
    let reasons: Vec<String> = host.bucket.malformed.iter().map(|(r, c)| format!("{r} {c}")).collect();
    cand.message = format!(
        "{} sent {n} malformed or evasive packets in {} s ({})",
        ctx.host,
        ctx.bucket_s(),
        reasons.join(", ")
    );
    Some(cand)
}
