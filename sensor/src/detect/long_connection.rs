//! `long_connection`: sessions that last longer than the thresholds.
//!
//! A flow longer than the active timeout is reported in several records; the
//! first (an interim record that is not a continuation) gives its start, each
//! later one its duration so far. A flow that reaches `min_duration_s` alerts
//! once, while it still runs; the score grows towards `high_duration_s`. At
//! most `max_tracked` long flows are followed (new ones are not, beyond that,
//! and a counter says so).

use serde_json::json;

use super::host::{FlowRef, Map};
use super::{Candidate, PointCtx, transport_name};
use crate::alert::Detector;
use crate::flow::FlowRecord;
use nbad_common::FlowKey;

const DESCRIPTION: &str =
    "A session has lasted longer than the configured threshold (persistent access or a tunnel).";

#[derive(Debug, Clone, Copy)]
struct Tracked {
    start_ns: u64,
    alerted: bool,
}

/// The long flows being followed.
#[derive(Debug, Default)]
pub struct LongFlows {
    flows: Map<FlowKey, Tracked>,
    /// Flows not followed because the table was full.
    pub dropped: u64,
}

impl LongFlows {
    /// Accounts one record; returns a finding when the flow just crossed the
    /// threshold. `host` is the inside endpoint (`None`: neither is inside).
    pub fn record(&mut self, r: &FlowRecord, ctx: &PointCtx<'_>) -> Option<Candidate> {
        let s = &ctx.settings.long_connection;
        let interim = r.reason.is_interim();
        if !r.continued {
            if interim {
                if self.flows.len() < usize::try_from(s.max_tracked).unwrap_or(usize::MAX) {
                    self.flows.insert(r.key, Tracked { start_ns: r.start_ns, alerted: false });
                } else {
                    self.dropped += 1;
                }
            }
            return None;
        }
        let t = self.flows.get_mut(&r.key)?;
        let duration_ns = r.end_ns.saturating_sub(t.start_ns);
        let start_ns = t.start_ns;
        let fire = !t.alerted
            && s.enabled
            && duration_ns >= u64::try_from(s.min_duration_s).unwrap_or(u64::MAX) * 1_000_000_000;
        if fire {
            t.alerted = true;
        }
        if !interim {
            self.flows.remove(&r.key);
        }
        if !fire {
            return None;
        }
        let host = ctx.host?;
        let (client, server) = (r.client_endpoint(), r.server_endpoint());
        let peer = if client.0 == host { server } else { client };
        let flow = FlowRef { a: client, b: server, proto: r.key.proto };
        let min = s.min_duration_s as f64;
        let high = s.high_duration_s as f64;
        let secs = duration_ns as f64 / 1e9;
        let mut cand =
            Candidate::point(Detector::LongConnection, DESCRIPTION, ctx, host, "duration_s", secs, min);
        cand.evidence.window_start_ns = start_ns;
        cand.peer = Some(peer.0);
        cand.port = Some(server.1);
        cand.transport = transport_name(r.key.proto);
        cand.flow = Some(flow);
        cand.strength = if high > min { ((secs - min) / (high - min)).clamp(0.0, 1.0) } else { 1.0 };
        cand.confidence = 0.5;
        cand.evidence.community_ids.push(flow.community_id());
        cand.evidence.details.insert("duration_s".into(), json!(secs.round()));
        cand.message = format!(
            "{} has held a {} session with {}:{} for {:.1} h",
            host,
            transport_name(r.key.proto).unwrap_or("ip"),
            server.0,
            server.1,
            secs / 3600.0
        );
        Some(cand)
    }
}
