//! One shard's flow table.
//!
//! Flows live in a slab (`Vec<FlowEntry>`, freed slots reused) and are found
//! through a `hashbrown::HashTable` of slab indices keyed by the canonical
//! [`FlowKey`]'s hash. Expiry runs on a lazy one-second [`Wheel`]. Memory per
//! tracked flow is the 96-byte entry plus a few bytes of index and wheel.
//!
//! A flow's counters cover one segment: the whole flow, or — for a flow that
//! outlives the active timeout — the stretch since its last interim record.
//! The interim record is emitted by the first packet after the active
//! timeout, so records carry deltas whose sums are the flow's totals. A
//! segment that has moved at least [`TIMER_INTERIM_BYTES`] is also reported by
//! the timer wheel when its active timeout passes, packets or not: an upload
//! that sends its bytes and then sits idle on an open connection (SMB, a
//! kept-alive HTTP session) is reported within the active timeout, not at the
//! idle timeout minutes later, so detection sees its volume in time. Such a
//! flow may then end with a record that carries no packets: it says how and
//! when the flow ended. Every other record carries packets.
//!
//! Time is a parameter: it is taken from packet timestamps (and from the
//! dispatcher's ticks), never read from a clock here.
//!
//! When full: a new flow arriving at a table holding `max_flows` flows puts
//! the table into emergency mode — from then on every flow is judged with the
//! shorter emergency idle timeout — and evicts, at once, the 1 % of flows
//! whose timers are due soonest (the ones idle longest relative to their
//! timeout), each emitted as a record with reason `evicted` and counted.
//! Emergency mode ends when the table is back under 90 % of `max_flows`.

use hashbrown::HashTable;

use crate::config::FlowSettings;
use crate::decode::PacketMeta;
use crate::flow::FlowHasher;
use crate::flow::entry::{FlowEntry, TCP, close_reason};
use crate::flow::record::{EndReason, RecordSink};
use crate::flow::wheel::{SLOTS, Wheel};

const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Bytes (both directions) from which a segment is reported by the timer at its active
/// timeout, not only by its next packet. Below it, flows keep their one record. 8 KiB: an
/// upload split over many connections that each stay open (a chat client's file transfers of
/// 13 kB apiece) is counted within the active timeout, not at the idle timeout five minutes
/// later, while the many small kept-alive connections of browsing stay one record each (on
/// the corpus's browsing captures, one more record in about a hundred).
pub const TIMER_INTERIM_BYTES: u32 = 8 * 1024;

/// Timeouts in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Idle timeout of TCP flows.
    pub tcp_idle: u64,
    /// Idle timeout of UDP flows.
    pub udp_idle: u64,
    /// Idle timeout of ICMP and ICMPv6 flows.
    pub icmp_idle: u64,
    /// Idle timeout of other protocols.
    pub other_idle: u64,
    /// Time a TCP flow is kept after FIN from both sides or RST.
    pub tcp_linger: u64,
    /// Interval of interim records for long flows.
    pub active: u64,
    /// Idle timeout of every flow while the table is in emergency mode.
    pub emergency_idle: u64,
}

impl Timeouts {
    /// The timeouts of validated flow settings.
    pub fn from_settings(s: &FlowSettings) -> Self {
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self {
            tcp_idle: ns(s.tcp_idle_timeout),
            udp_idle: ns(s.udp_idle_timeout),
            icmp_idle: ns(s.icmp_idle_timeout),
            other_idle: ns(s.other_idle_timeout),
            tcp_linger: ns(s.tcp_close_linger),
            active: ns(s.active_timeout),
            emergency_idle: ns(s.emergency_idle_timeout),
        }
    }

    fn idle(&self, proto: u8) -> u64 {
        match proto {
            TCP => self.tcp_idle,
            UDP => self.udp_idle,
            ICMP | ICMPV6 => self.icmp_idle,
            _ => self.other_idle,
        }
    }
}

/// Counters of one table, published by its worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Flows created.
    pub created: u64,
    /// Flows tracked now.
    pub active: u64,
    /// Most flows tracked at once.
    pub active_peak: u64,
    /// Records emitted, interim ones included.
    pub records: u64,
    /// Records emitted, by [`EndReason`] (index = discriminant).
    pub ended: [u64; EndReason::ALL.len()],
    /// Times the table entered emergency mode.
    pub emergency_entered: u64,
    /// Flows looked at by the timer wheel (expired, interim or filed again).
    pub timer_checks: u64,
}

/// A bounded flow table for one shard.
#[derive(Debug)]
pub struct FlowTable {
    index: HashTable<u32>,
    slab: Vec<FlowEntry>,
    free: Vec<u32>,
    wheel: Wheel,
    hasher: FlowHasher,
    timeouts: Timeouts,
    max_flows: usize,
    emergency: bool,
    now_ns: u64,
    /// What the table has done so far.
    pub counters: FlowCounters,
}

impl FlowTable {
    /// A table holding at most `max_flows` flows.
    pub fn new(timeouts: Timeouts, max_flows: usize, hasher: FlowHasher) -> Self {
        Self {
            index: HashTable::new(),
            slab: Vec::new(),
            free: Vec::new(),
            wheel: Wheel::new(),
            hasher,
            timeouts,
            max_flows: max_flows.max(1),
            emergency: false,
            now_ns: 0,
            counters: FlowCounters::default(),
        }
    }

    /// Flows tracked now.
    pub fn len(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table is in emergency mode.
    pub fn in_emergency(&self) -> bool {
        self.emergency
    }

    /// Accounts one packet (its `hash` must be set), expiring what its
    /// timestamp makes due. Emitted records are appended to `out`.
    pub fn observe(&mut self, m: &PacketMeta, out: &mut impl RecordSink) {
        debug_assert_eq!(
            m.hash,
            self.hasher.hash(&m.key),
            "PacketMeta.hash must come from this table's hasher"
        );
        self.advance(m.ts_ns, out);
        let slab = &self.slab;
        let found = self.index.find(m.hash, |&i| slab[i as usize].key == m.key).copied();
        let (idx, new_flow) = match found {
            Some(idx) if self.slab[idx as usize].is_reuse(m) => {
                let old = self.slab[idx as usize];
                self.emit(&old, close_reason(&old), out);
                self.slab[idx as usize] = FlowEntry::new(m);
                self.counters.created += 1;
                (idx, true)
            }
            Some(idx) => (idx, false),
            None => (self.insert(m, out), true),
        };
        let entry = self.slab[idx as usize];
        if !new_flow && (entry.would_overflow(m) || self.segment_is_over(&entry, m.ts_ns)) {
            // The segment has run for the active timeout (or a counter is
            // full): report it with an interim record, and let this packet
            // start the next segment.
            self.emit(&entry, EndReason::ActiveTimeout, out);
            self.slab[idx as usize].reset_segment(m.ts_ns);
        }
        let before = self.slab[idx as usize].segment_bytes();
        let started_closing = self.slab[idx as usize].update(m);
        // A segment that has just become big enough is filed again under its active deadline.
        let became_big =
            before < TIMER_INTERIM_BYTES && self.slab[idx as usize].segment_bytes() >= TIMER_INTERIM_BYTES;
        if new_flow || started_closing || became_big {
            self.schedule(idx);
        }
    }

    /// Moves the clock to `now_ns` (never backwards) and expires every flow
    /// whose deadline has passed.
    pub fn advance(&mut self, now_ns: u64, out: &mut impl RecordSink) {
        if now_ns <= self.now_ns && self.now_ns != 0 {
            return;
        }
        self.now_ns = now_ns;
        let now_sec = now_ns / 1_000_000_000;
        self.wheel.start_if_needed(now_sec);
        if now_sec <= self.wheel.current_sec {
            return;
        }
        if now_sec - self.wheel.current_sec > SLOTS {
            // The clock jumped past the whole wheel (a gap in the capture):
            // look at every flow once.
            self.wheel.current_sec = now_sec;
            self.sweep_all(out);
            return;
        }
        while self.wheel.current_sec < now_sec {
            let second = self.wheel.current_sec;
            let mut entries = self.wheel.take(second);
            // Flows filed again while this slot is processed go to later
            // seconds, never back into the slot being emptied.
            self.wheel.current_sec += 1;
            for &idx in &entries {
                self.expire_or_refile(idx, Some(second), out);
            }
            entries.clear();
            self.wheel.restore(second, entries);
        }
    }

    /// Emits every flow with `reason` (end of capture, shutdown) and empties
    /// the table. Flows are emitted in slab order, which depends only on the
    /// order flows were created.
    pub fn drain(&mut self, reason: EndReason, out: &mut impl RecordSink) {
        for i in 0..self.slab.len() {
            let entry = self.slab[i];
            if entry.live() {
                self.emit(&entry, reason, out);
            }
        }
        self.slab.clear();
        self.free.clear();
        self.index.clear();
        self.wheel = Wheel::new();
        self.counters.active = 0;
    }

    fn insert(&mut self, m: &PacketMeta, out: &mut impl RecordSink) -> u32 {
        if self.len() >= self.max_flows {
            self.make_room(out);
        }
        let entry = FlowEntry::new(m);
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slab[idx as usize] = entry;
                idx
            }
            None => {
                self.slab.push(entry);
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index.insert_unique(m.hash, idx, |&i| hasher.hash(&slab[i as usize].key));
        self.counters.created += 1;
        self.counters.active = self.len() as u64;
        self.counters.active_peak = self.counters.active_peak.max(self.counters.active);
        idx
    }

    /// When a flow ends unless more packets arrive.
    fn idle_end(&self, e: &FlowEntry) -> u64 {
        e.last_ns().saturating_add(self.idle_of(e).0)
    }

    /// The idle time after which a flow ends, and why it would end.
    fn idle_of(&self, e: &FlowEntry) -> (u64, EndReason) {
        let t = &self.timeouts;
        if e.closing() {
            (t.tcp_linger, close_reason(e))
        } else if self.emergency {
            (t.emergency_idle.min(t.idle(e.key.proto)), EndReason::IdleTimeout)
        } else {
            (t.idle(e.key.proto), EndReason::IdleTimeout)
        }
    }

    /// When a flow ends unless more packets arrive, and why; or, for a big segment, when the
    /// timer reports it (reason [`EndReason::ActiveTimeout`]) if that comes first.
    fn deadline(&self, e: &FlowEntry) -> (u64, EndReason) {
        let t = &self.timeouts;
        let (idle, reason) = self.idle_of(e);
        let end = e.last_ns().saturating_add(idle);
        let report = e.seg_start.saturating_add(t.active);
        if !e.closing() && e.segment_bytes() >= TIMER_INTERIM_BYTES && report < end {
            return (report, EndReason::ActiveTimeout);
        }
        (end, reason)
    }

    /// Whether a packet at `ts_ns` falls after the active timeout of the
    /// flow's current segment. Interim records are emitted then, by the
    /// packet that proves the flow is still going: a flow that falls silent
    /// before its active timeout ends with one record, never with an interim
    /// record followed by an empty one.
    fn segment_is_over(&self, e: &FlowEntry, ts_ns: u64) -> bool {
        e.has_packets() && !e.closing() && ts_ns >= e.seg_start.saturating_add(self.timeouts.active)
    }

    fn schedule(&mut self, idx: u32) {
        let (deadline, _) = self.deadline(&self.slab[idx as usize]);
        let second = self.wheel.file_second(deadline);
        self.slab[idx as usize].filed = second as u32;
        self.wheel.file(idx, second);
    }

    /// Looks at a flow found in the wheel: ends it if its deadline has
    /// passed, else files it again (packets arrived since it was filed).
    /// `second` is the slot's second; entries filed under another second are
    /// stale. `None` marks a sweep of the whole wheel, in which a flow is
    /// looked at once (its `filed` was set to `u32::MAX`).
    fn expire_or_refile(&mut self, idx: u32, second: Option<u64>, out: &mut impl RecordSink) {
        let entry = self.slab[idx as usize];
        let expected = second.map_or(u32::MAX, |s| s as u32);
        if !entry.live() || entry.filed != expected {
            return;
        }
        self.counters.timer_checks += 1;
        let (end_at, reason) = self.deadline(&entry);
        if end_at > self.now_ns {
            self.schedule(idx);
        } else if reason.is_interim() {
            // A big segment at its active timeout: report it, keep the flow. The next
            // segment starts at the last packet, so the idle timeout still counts from it.
            self.emit(&entry, reason, out);
            self.slab[idx as usize].reset_segment(entry.last_ns());
            self.schedule(idx);
        } else {
            self.emit(&entry, reason, out);
            self.remove(idx);
        }
    }

    /// Files every flow again (a clock jump past the wheel's span, or the
    /// switch to emergency timeouts), expiring what is due.
    fn sweep_all(&mut self, out: &mut impl RecordSink) {
        let all = self.wheel.drain_all();
        for &idx in &all {
            self.slab[idx as usize].filed = u32::MAX;
        }
        for idx in all {
            self.expire_or_refile(idx, None, out);
        }
    }

    fn remove(&mut self, idx: u32) {
        let entry = &mut self.slab[idx as usize];
        entry.state = 0;
        let hash = self.hasher.hash(&entry.key);
        if let Ok(found) = self.index.find_entry(hash, |&i| i == idx) {
            found.remove();
        }
        self.free.push(idx);
        self.counters.active = self.len() as u64;
        if self.emergency && self.len() * 10 < self.max_flows * 9 {
            self.emergency = false;
        }
    }

    /// Emergency mode, then eviction of the flows due soonest.
    fn make_room(&mut self, out: &mut impl RecordSink) {
        if !self.emergency {
            self.emergency = true;
            self.counters.emergency_entered += 1;
            // Judge every flow by the emergency timeout from now on: file
            // them all again under their shortened deadlines, which also
            // orders the wheel by how long each flow has been idle.
            self.sweep_all(out);
            if self.len() < self.max_flows {
                return;
            }
        }
        let target = (self.max_flows / 100).max(1);
        let mut evicted = 0;
        let start = self.wheel.current_sec;
        for second in start..start + SLOTS {
            let mut entries = self.wheel.take(second);
            // Within one second of deadlines, flows nobody answered (a SYN flood's half-open
            // flows, unanswered UDP) go before established ones: a flood's flows fill the same
            // seconds as the connections it would push out.
            let order = entries.iter().map(|&i| (false, i)).chain(entries.iter().map(|&i| (true, i)));
            for (answered, idx) in order {
                if evicted >= target {
                    break;
                }
                let entry = self.slab[idx as usize];
                if !entry.live() || u64::from(entry.filed) != second || entry.answered() != answered {
                    continue;
                }
                if self.deadline(&entry).0 / 1_000_000_000 > second {
                    // Active since it was filed: not among the idlest. File
                    // it under its real deadline; the walk may meet it again.
                    self.schedule(idx);
                } else if self.idle_end(&entry) / 1_000_000_000 > second {
                    // Filed for its timer report, not for idleness: a busy flow stays.
                } else {
                    self.emit(&entry, EndReason::Evicted, out);
                    self.remove(idx);
                    evicted += 1;
                }
            }
            let slab = &self.slab;
            entries.retain(|&i| slab[i as usize].live() && u64::from(slab[i as usize].filed) == second);
            self.wheel.restore(second, entries);
            if evicted >= target {
                break;
            }
        }
    }

    fn emit(&mut self, entry: &FlowEntry, reason: EndReason, out: &mut impl RecordSink) {
        // An empty segment is reported only as the end of a flow whose last segment the
        // timer reported (it tells how and when the flow ended).
        if !entry.has_packets() && (reason.is_interim() || entry.segments == 0) {
            return;
        }
        out.emit(entry.record(reason));
        self.counters.records += 1;
        self.counters.ended[reason as usize] += 1;
    }
}

#[cfg(test)]
mod tests;
