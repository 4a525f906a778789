//! Per-flow TCP sequence tracking for "ACKs for unseen data".
//!
//! For each flow direction the tracker keeps the end of the highest segment seen (sequence
//! number + payload length, SYN and FIN counting one each). When the other side acknowledges
//! beyond that point, the sensor missed bytes the receiver got: one unseen-ACK event, and the
//! mark moves up to the ACK so one gap counts once. The first time a direction is heard of
//! (mid-stream, after a table reset) its mark is set from the ACK and nothing is counted.
//!
//! Cost, on the capture thread (libpcap path only): the tracker follows one flow in
//! [`SAMPLE_ONE_IN`], chosen by flow hash, so the loss ratio is estimated on a sample of the
//! flows (a ratio, unlike a count, needs no census), and the other packets cost one compare;
//! for a sampled flow, one TCP header read and one hash-table lookup per TCP packet; no
//! allocation once the table has grown. The table holds at most [`MAX_TRACKED_FLOWS`] sampled
//! flows (about 65 k flows' worth of traffic), about 0.3 MiB (a 44-byte key and 20 bytes of
//! state per entry, plus hashbrown's control bytes and load factor); when a new flow finds it
//! full it is emptied (`table_resets`), which loses no more than the next ACK of each flow.

use std::collections::HashMap;

use etherparse::{IpNumber, LaxIpSlice};
use nbad_common::FlowKey;

use super::CaptureLossCounters;
use crate::capture::LinkType;
use crate::decode::PacketMeta;
use crate::decode::link::{self, L3, Vlans};
use crate::decode::tcp_flags::{ACK as TCP_ACK, FIN as TCP_FIN, RST as TCP_RST, SYN as TCP_SYN};

/// One flow in this many is followed (by flow hash); see [`AckTracker::samples`].
pub const SAMPLE_ONE_IN: u64 = 16;

/// Flows tracked at once; see the module docs for the memory this takes.
pub const MAX_TRACKED_FLOWS: usize = 4_096;

/// The fields of one TCP segment that sequence tracking reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful when `flags` has ACK).
    pub ack: u32,
    /// TCP flags.
    pub flags: u8,
    /// Payload bytes, from the IP header's length (not the captured length).
    pub payload_len: u32,
}

impl TcpSegment {
    /// Reads the segment of an outer (untunnelled) TCP packet; `None` for anything else or a
    /// header that is cut or inconsistent. Never panics.
    #[must_use]
    pub fn parse(link: LinkType, frame: &[u8]) -> Option<Self> {
        let mut vlans = Vlans::default();
        let L3::Ip(bytes) = link::strip(link, frame, &mut vlans).ok()? else { return None };
        let (ip, ext_err) = LaxIpSlice::from_slice(bytes).ok()?;
        let payload = ip.payload();
        if ext_err.is_some() || payload.ip_number != IpNumber::TCP || payload.fragmented {
            return None;
        }
        // The IP header's own length, so a snaplen cut does not read as a short segment.
        let l4_len = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                usize::from(h.total_len()).checked_sub(h.slice().len())?
            }
            LaxIpSlice::Ipv6(v6) => {
                let declared = usize::from(v6.header().payload_length());
                let ext = v6.extensions().slice().len();
                declared.checked_sub(ext)?
            }
        };
        let tcp = payload.payload;
        let header = tcp.get(..20)?;
        let word =
            |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let header_len = usize::from(header[12] >> 4) * 4;
        if header_len < 20 {
            return None;
        }
        let payload_len = u32::try_from(l4_len.checked_sub(header_len)?).ok()?;
        Some(Self { seq: word(4), ack: word(8), flags: header[13], payload_len })
    }
}

/// One direction's highest sequence end seen.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    known: bool,
    next_seq: u32,
    last_ack: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Data sent by the key's lower endpoint.
    lo: Side,
    /// Data sent by the key's higher endpoint.
    hi: Side,
}

/// `a` is after `b` in sequence space (RFC 1982 serial arithmetic).
fn after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// The bounded per-flow sequence table of the capture thread.
#[derive(Debug)]
pub struct AckTracker {
    flows: HashMap<FlowKey, Entry, foldhash::fast::RandomState>,
    /// What it has counted.
    pub counters: CaptureLossCounters,
}

impl Default for AckTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl AckTracker {
    /// An empty tracker.
    #[must_use]
    pub fn new() -> Self {
        Self { flows: HashMap::default(), counters: CaptureLossCounters::default() }
    }

    /// Whether the flow with this hash is one the tracker follows.
    #[inline]
    #[must_use]
    pub fn samples(flow_hash: u64) -> bool {
        (flow_hash >> 20).is_multiple_of(SAMPLE_ONE_IN)
    }

    /// Accounts one decoded packet of a sampled flow (see [`AckTracker::samples`]); `frame` is
    /// the captured frame it came from. Packets that are not outer TCP are ignored.
    pub fn observe(&mut self, meta: &PacketMeta, link: LinkType, frame: &[u8]) {
        if meta.key.proto != 6 {
            return;
        }
        if let Some(seg) = TcpSegment::parse(link, frame) {
            self.observe_segment(&meta.key, meta.from_lo, seg);
        }
    }

    /// Accounts one segment of flow `key`, sent by the key's lower endpoint when `from_lo`.
    pub fn observe_segment(&mut self, key: &FlowKey, from_lo: bool, seg: TcpSegment) {
        if self.flows.len() >= MAX_TRACKED_FLOWS && !self.flows.contains_key(key) {
            self.flows.clear();
            self.counters.table_resets += 1;
        }
        let entry = self.flows.entry(*key).or_default();
        let (sender, receiver) =
            if from_lo { (&mut entry.lo, &mut entry.hi) } else { (&mut entry.hi, &mut entry.lo) };

        let seg_len =
            seg.payload_len + u32::from(seg.flags & TCP_SYN != 0) + u32::from(seg.flags & TCP_FIN != 0);
        if seg_len > 0 {
            let end = seg.seq.wrapping_add(seg_len);
            if !sender.known {
                // Nothing of this direction was acknowledged before its first segment seen.
                *sender = Side { known: true, next_seq: end, last_ack: seg.seq };
            } else if after(end, sender.next_seq) {
                sender.next_seq = end;
            }
        }

        if seg.flags & TCP_ACK != 0 && seg.flags & TCP_RST == 0 {
            if !receiver.known {
                // First word of this direction: what was acknowledged before is not ours to judge.
                *receiver = Side { known: true, next_seq: seg.ack, last_ack: seg.ack };
            } else if after(seg.ack, receiver.last_ack) {
                receiver.last_ack = seg.ack;
                self.counters.ack_events += 1;
                if after(seg.ack, receiver.next_seq) {
                    self.counters.unseen_ack_events += 1;
                    receiver.next_seq = seg.ack;
                }
            }
        }
        self.counters.tracked_flows = self.flows.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: bool = true;
    const B: bool = false;

    fn seg(seq: u32, ack: u32, flags: u8, payload_len: u32) -> TcpSegment {
        TcpSegment { seq, ack, flags, payload_len }
    }

    fn handshake(t: &mut AckTracker, key: &FlowKey) {
        t.observe_segment(key, A, seg(1000, 0, TCP_SYN, 0));
        t.observe_segment(key, B, seg(5000, 1001, TCP_SYN | TCP_ACK, 0));
        t.observe_segment(key, A, seg(1001, 5001, TCP_ACK, 0));
    }

    #[test]
    fn acks_for_data_the_sensor_saw_count_no_loss() {
        let (mut t, key) = (AckTracker::new(), FlowKey::default());
        handshake(&mut t, &key);
        for i in 0..10 {
            t.observe_segment(&key, A, seg(1001 + i * 100, 5001, TCP_ACK, 100));
            t.observe_segment(&key, B, seg(5001, 1001 + (i + 1) * 100, TCP_ACK, 0));
        }
        // The SYN-ACK and the handshake's last ACK, then one per data segment.
        assert_eq!(t.counters.ack_events, 12);
        assert_eq!(t.counters.unseen_ack_events, 0);
    }

    #[test]
    fn an_ack_beyond_the_data_seen_counts_one_unseen_event_per_gap() {
        let (mut t, key) = (AckTracker::new(), FlowKey::default());
        handshake(&mut t, &key);
        t.observe_segment(&key, A, seg(1001, 5001, TCP_ACK, 100));
        // The segment 1101..1201 was never seen; the receiver acknowledges it.
        t.observe_segment(&key, B, seg(5001, 1201, TCP_ACK, 0));
        // A duplicate of that ACK is not a second gap.
        t.observe_segment(&key, B, seg(5001, 1201, TCP_ACK, 0));
        assert_eq!((t.counters.ack_events, t.counters.unseen_ack_events), (3, 1));
    }

    #[test]
    fn a_flow_joined_mid_stream_sets_its_mark_from_the_first_ack() {
        let (mut t, key) = (AckTracker::new(), FlowKey::default());
        t.observe_segment(&key, B, seg(9000, 777_777, TCP_ACK, 0));
        assert_eq!(t.counters.unseen_ack_events, 0);
        t.observe_segment(&key, A, seg(777_777, 9000, TCP_ACK, 50));
        t.observe_segment(&key, B, seg(9000, 777_827, TCP_ACK, 0));
        assert_eq!((t.counters.ack_events, t.counters.unseen_ack_events), (1, 0));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (mut t, key) = (AckTracker::new(), FlowKey::default());
        t.observe_segment(&key, A, seg(u32::MAX - 10, 1, TCP_ACK, 0));
        t.observe_segment(&key, B, seg(1, u32::MAX - 10, TCP_ACK, 0));
        t.observe_segment(&key, A, seg(u32::MAX - 10, 1, TCP_ACK, 100));
        t.observe_segment(&key, B, seg(1, 89, TCP_ACK, 0));
        assert_eq!((t.counters.ack_events, t.counters.unseen_ack_events), (1, 0));
    }

    #[test]
    fn a_full_table_is_emptied_and_counted() {
        let mut t = AckTracker::new();
        for i in 0..=MAX_TRACKED_FLOWS {
            let key =
                FlowKey { port_lo: (i % 65_536) as u16, port_hi: (i / 65_536) as u16, ..FlowKey::default() };
            t.observe_segment(&key, A, seg(1, 1, TCP_SYN, 0));
        }
        assert_eq!(t.counters.table_resets, 1);
        assert_eq!(t.counters.tracked_flows, 1);
    }

    #[test]
    fn parses_a_tcp_segment_and_ignores_everything_else() {
        // Ethernet + IPv4 (total length 40 + 5 payload bytes) + TCP (seq 7, ack 9, ACK|PSH).
        let mut frame = vec![0u8; 14];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 45, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let tcp = [0, 80, 0x9c, 0x40, 0, 0, 0, 7, 0, 0, 0, 9, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0];
        ip.extend_from_slice(&tcp);
        ip.extend_from_slice(b"hello");
        frame.extend_from_slice(&ip);
        let s = TcpSegment::parse(LinkType::Ethernet, &frame).expect("a TCP segment");
        assert_eq!(s, TcpSegment { seq: 7, ack: 9, flags: 0x18, payload_len: 5 });
        // Cut inside the TCP header, and every shorter prefix: no segment, no panic.
        for len in 0..frame.len() - 5 {
            assert_eq!(TcpSegment::parse(LinkType::Ethernet, &frame[..len]), None, "prefix {len}");
        }
    }
}
