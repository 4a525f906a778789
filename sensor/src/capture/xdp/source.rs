//! The XDP path as a [`PacketSource`]: every poll interval it reads what
//! the kernel program aggregated per flow since the previous poll, turns
//! each direction's delta into one aggregate [`PacketMeta`], and hands them
//! to the same pipeline the libpcap and file paths feed. Samples from the
//! ring buffer are drained every poll, so the ring never stays full, and
//! counted by the protocol their payload carries (`capture.source.samples_*`
//! in the statistics).
//!
//! The kernel sees what arrives on the interface (ingress). On a SPAN or
//! tap port that is all the traffic; on an ordinary interface it is only
//! half of each conversation.

use std::time::{Duration, Instant};

use nbad_common::XdpCounter;

use crate::capture::LinkType;
use crate::capture::xdp::{FlowDelta, XdpCapture};
use crate::capture::{CaptureError, Next, PacketSource, SourceStats};
use crate::clock::wall_ns;
use crate::decode::PacketMeta;
use crate::protocol::{self, App};

/// Longest sleep between two looks at the stop flag and the sample ring (the pipeline reads the
/// samples at every pause): a live tick ([`crate::pipeline::LIVE_TICK`]).
const MAX_NAP: Duration = crate::pipeline::LIVE_TICK;

/// Reads an attached XDP program's flow map into the pipeline.
#[derive(Debug)]
pub struct XdpSource {
    capture: XdpCapture,
    poll_every: Duration,
    next_poll: Instant,
    /// Kernel entries idle for longer than this are removed from the map.
    prune_after: Duration,
    metas: Vec<PacketMeta>,
    samples: u64,
    /// The last poll's sample frames, back to back, and each one's
    /// (time, start, end) in it: no allocation per sample.
    sample_bytes: Vec<u8>,
    sample_index: Vec<(u64, usize, usize)>,
    /// Samples by the protocol their payload carries, in [`SAMPLE_KINDS`] order.
    sampled: [u64; SAMPLE_KINDS.len()],
    polls: u64,
}

/// Statistics names of the sample counts by protocol: the common ones by
/// name, every other identified protocol in `samples_other`; the last counts
/// samples without payload (a bare SYN or ACK) or not TCP/UDP.
const SAMPLE_KINDS: [&str; 10] = [
    "samples_tls",
    "samples_ssh",
    "samples_http",
    "samples_dns",
    "samples_smtp",
    "samples_ftp",
    "samples_quic",
    "samples_unknown",
    "samples_other",
    "samples_no_payload",
];

fn sample_kind(frame: &[u8]) -> usize {
    let Some((transport, payload)) = protocol::l4_payload(LinkType::Ethernet, frame) else {
        return SAMPLE_KINDS.len() - 1;
    };
    if payload.is_empty() {
        return SAMPLE_KINDS.len() - 1;
    }
    match protocol::identify(transport, payload).app {
        App::Tls(_) => 0,
        App::Ssh { .. } => 1,
        App::Http(_) | App::Http2 => 2,
        App::Dns(_) => 3,
        App::Smtp => 4,
        App::Ftp => 5,
        App::Quic { .. } => 6,
        App::Unknown => 7,
        _ => 8,
    }
}

impl XdpSource {
    /// A source over an attached program, polled every `poll_every`.
    /// `prune_after` should exceed the longest idle timeout, so that the
    /// kernel forgets a flow only after the flow table has ended it.
    pub fn new(capture: XdpCapture, poll_every: Duration, prune_after: Duration) -> Self {
        Self {
            capture,
            poll_every,
            next_poll: Instant::now() + poll_every,
            prune_after,
            metas: Vec::new(),
            samples: 0,
            sample_bytes: Vec::new(),
            sample_index: Vec::new(),
            sampled: [0; SAMPLE_KINDS.len()],
            polls: 0,
        }
    }

    /// The attached program.
    pub fn capture(&self) -> &XdpCapture {
        &self.capture
    }

    /// Reads the flows and the samples; `last` at shutdown (see [`XdpCapture::poll_flows_last`]).
    fn poll(&mut self, last: bool) -> Result<(), CaptureError> {
        let deltas = if last {
            self.capture.poll_flows_last()
        } else {
            let now = wall_ns();
            let prune_before =
                now.saturating_sub(u64::try_from(self.prune_after.as_nanos()).unwrap_or(u64::MAX));
            self.capture.poll_flows_pruning(prune_before)
        };
        let deltas = deltas.map_err(|e| CaptureError::Xdp {
            interface: self.capture.interface().to_owned(),
            reason: e.to_string(),
        })?;
        self.polls += 1;
        self.metas.clear();
        for delta in &deltas {
            push_directions(delta, &mut self.metas);
        }
        // In time order, so the pipeline clock moves forward smoothly and a
        // flow's earlier direction creates it (the client, as for packets).
        // Unstable: aggregates with equal first stamps have no order to keep.
        self.metas.sort_unstable_by_key(PacketMeta::first_ns);
        self.read_samples();
        Ok(())
    }

    /// Moves the samples waiting in the ring into the buffer the observer takes them from
    /// (`take_samples`): at every poll and at every pause between polls, so that a first
    /// payload reaches the detectors within a pause ([`MAX_NAP`]), not a poll interval.
    fn read_samples(&mut self) {
        // Each sample's payload is identified and counted by protocol, and
        // kept for the detectors' observer (`take_samples`). The buffer is
        // bounded by one ring's worth per read.
        let (sampled, bytes, index) = (&mut self.sampled, &mut self.sample_bytes, &mut self.sample_index);
        self.samples += self.capture.samples(|s| {
            sampled[sample_kind(s.data)] += 1;
            let start = bytes.len();
            bytes.extend_from_slice(s.data);
            index.push((s.ts_ns, start, bytes.len()));
        }) as u64;
    }
}

/// One aggregate per direction with new packets. Byte counts above what a
/// `PacketMeta` holds are split over several aggregates.
fn push_directions(delta: &FlowDelta, out: &mut Vec<PacketMeta>) {
    for d in 0..2 {
        let (mut packets, mut bytes) = (delta.packets[d], delta.bytes[d]);
        if packets == 0 {
            continue;
        }
        let last = delta.last_ns[d];
        let first = delta.first_ns[d].min(last);
        let span_us = u32::try_from((last - first) / 1_000).unwrap_or(u32::MAX);
        while packets > 0 {
            // Split evenly enough that each piece's bytes fit in a u32.
            let pieces = (bytes / u64::from(u32::MAX)) + 1;
            let take_packets = (packets / pieces).max(1);
            let take_bytes = if take_packets == packets { bytes } else { bytes / pieces };
            out.push(PacketMeta {
                key: delta.key,
                hash: 0,
                ts_ns: last,
                ip_len: u32::try_from(take_bytes).unwrap_or(u32::MAX),
                packets: u32::try_from(take_packets).unwrap_or(u32::MAX),
                span_us,
                from_lo: d == 0,
                tcp_flags: delta.tcp_flags[d],
            });
            packets -= take_packets;
            bytes -= take_bytes.min(bytes);
        }
    }
}

impl PacketSource for XdpSource {
    fn take_samples(&mut self, f: &mut dyn FnMut(u64, &[u8])) {
        for &(ts, start, end) in &self.sample_index {
            if let Some(frame) = self.sample_bytes.get(start..end) {
                f(ts, frame);
            }
        }
        self.sample_index.clear();
        self.sample_bytes.clear();
    }

    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        let now = Instant::now();
        if now < self.next_poll {
            std::thread::sleep((self.next_poll - now).min(MAX_NAP));
            self.read_samples();
            return Ok(Next::Idle);
        }
        self.next_poll = now + self.poll_every;
        self.poll(false)?;
        Ok(if self.metas.is_empty() { Next::Idle } else { Next::Decoded(&self.metas) })
    }

    fn flush(&mut self) -> Result<Next<'_>, CaptureError> {
        self.poll(true)?;
        Ok(if self.metas.is_empty() { Next::End } else { Next::Decoded(&self.metas) })
    }

    fn source_stats(&mut self) -> SourceStats {
        let mut extra: Vec<(&'static str, u64)> = Vec::new();
        if let Ok(counters) = self.capture.counters() {
            extra.extend(counters.iter());
            // Packets the kernel could not aggregate are the XDP path's drops.
            let lost = counters.get(XdpCounter::FlowMapFull);
            extra.push(("flow_map_full", lost));
        }
        extra.push(("samples_read", self.samples));
        extra.extend(SAMPLE_KINDS.iter().copied().zip(self.sampled));
        extra.push(("polls", self.polls));
        extra.extend(self.capture.poll_stats().iter());
        SourceStats { extra, ..SourceStats::default() }
    }

    fn idle_clock_ns(&self) -> Option<u64> {
        Some(wall_ns())
    }
}

#[cfg(test)]
mod tests {
    use nbad_common::FlowKey;

    use super::*;

    #[test]
    fn each_direction_with_packets_becomes_one_aggregate() {
        let delta = FlowDelta {
            key: FlowKey::default(),
            packets: [3, 0],
            bytes: [300, 0],
            tcp_flags: [0x12, 0],
            first_ns: [1_000_000, 0],
            last_ns: [3_000_000, 0],
        };
        let mut out = Vec::new();
        push_directions(&delta, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].packets, out[0].ip_len, out[0].span_us), (3, 300, 2_000));
        assert_eq!(out[0].first_ns(), 1_000_000);
        assert!(out[0].from_lo);
    }

    #[test]
    fn byte_counts_beyond_u32_are_split_without_losing_any() {
        let delta = FlowDelta {
            key: FlowKey::default(),
            packets: [0, 10_000_000],
            bytes: [0, 10 * u64::from(u32::MAX)],
            tcp_flags: [0, 0],
            first_ns: [0, 1],
            last_ns: [0, 2],
        };
        let mut out = Vec::new();
        push_directions(&delta, &mut out);
        assert!(out.len() > 1);
        assert_eq!(out.iter().map(|m| u64::from(m.packets)).sum::<u64>(), 10_000_000);
        assert_eq!(out.iter().map(|m| u64::from(m.ip_len)).sum::<u64>(), 10 * u64::from(u32::MAX));
    }
}
