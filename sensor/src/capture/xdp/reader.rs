//! Reading the program's maps: flow deltas, samples and outcome counters.
//!
//! The kernel keeps cumulative per-CPU counters per flow. [`Reader::poll_flows`] walks
//! `NBAD_FLOWS`, sums each flow over the CPUs (packets and bytes add, first/last take the
//! earliest/latest stamp, flags OR) and subtracts what it returned last time, which it
//! remembers per flow. That memory is rebuilt from every walk, so it never holds more flows
//! than the kernel map. A flow whose totals went *down* was evicted and re-created by the
//! kernel between two polls; its whole new total is the delta.
//!
//! The walk runs while the program updates the map: a flow can be half-updated (one CPU's
//! packet counted, its bytes not yet), which the next poll corrects; an evicted key can make
//! the kernel restart the walk, so duplicates are skipped and the walk is bounded at twice the
//! map's capacity.

use std::collections::HashMap;

use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use nbad_common::{
    COUNTERS_MAP_NAME, FLOWS_MAP_NAME, FlowCounters, FlowKey, SAMPLES_MAP_NAME, SampleHeader, SampleReason,
    SampleRecord, XDP_COUNTER_NAMES, XDP_COUNTER_SLOTS, XdpCounter,
};

use super::XdpSettings;
use super::error::XdpError;
use super::loader::KernelClock;

/// What one flow gained since the previous poll. Index 0 ([`nbad_common::DIR_FROM_LO`]) is the
/// direction sent by the key's lower endpoint, 1 the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowDelta {
    /// The canonical flow key.
    pub key: FlowKey,
    /// New packets per direction.
    pub packets: [u64; 2],
    /// New IP-layer bytes per direction.
    pub bytes: [u64; 2],
    /// TCP flags seen per direction since the flow entered the kernel map (cumulative OR).
    pub tcp_flags: [u8; 2],
    /// First packet per direction since the flow entered the kernel map, ns since the Unix
    /// epoch; 0 when that direction has none.
    pub first_ns: [u64; 2],
    /// Latest packet per direction, ns since the Unix epoch; 0 when none.
    pub last_ns: [u64; 2],
}

/// One sampled packet, borrowed from the ring buffer for the duration of the callback.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The header as the program wrote it (`ts_ns` in kernel monotonic time).
    pub header: SampleHeader,
    /// Why it was sampled (`None` for a value this sensor does not know).
    pub reason: Option<SampleReason>,
    /// When the program saw it, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The frame's first `header.cap_len` bytes, from the Ethernet header on.
    pub data: &'a [u8],
}

/// The program's outcome counters summed over the CPUs, one per [`XdpCounter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpCounters([u64; XDP_COUNTER_SLOTS as usize]);

impl XdpCounters {
    /// One counter's value.
    #[must_use]
    pub fn get(&self, counter: XdpCounter) -> u64 {
        self.0[counter as usize]
    }

    /// `(name, value)` for every counter, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        XDP_COUNTER_NAMES.iter().copied().zip(self.0.iter().copied())
    }
}

/// Cumulative totals of one flow, summed over the CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    packets: [u64; 2],
    bytes: [u64; 2],
    tcp_flags: [u8; 2],
    first_ns: [u64; 2],
    last_ns: [u64; 2],
}

impl Totals {
    fn sum<'a>(per_cpu: impl IntoIterator<Item = &'a [u8; FlowCounters::LEN]>) -> Self {
        let mut t = Self::default();
        for bytes in per_cpu {
            let c = FlowCounters::from_bytes(bytes);
            for d in 0..2 {
                t.packets[d] += c.packets[d];
                t.bytes[d] += c.bytes[d];
                t.tcp_flags[d] |= c.tcp_flags[d];
                if c.first_ns[d] != 0 && (t.first_ns[d] == 0 || c.first_ns[d] < t.first_ns[d]) {
                    t.first_ns[d] = c.first_ns[d];
                }
                t.last_ns[d] = t.last_ns[d].max(c.last_ns[d]);
            }
        }
        t
    }

    /// What `self` adds to `before`; all of `self` when the flow was re-created in between.
    fn since(&self, before: Option<&Self>) -> [[u64; 2]; 2] {
        let base = match before {
            Some(b) if (0..2).all(|d| self.packets[d] >= b.packets[d] && self.bytes[d] >= b.bytes[d]) => *b,
            _ => Self::default(),
        };
        [
            [self.packets[0] - base.packets[0], self.packets[1] - base.packets[1]],
            [self.bytes[0] - base.bytes[0], self.bytes[1] - base.bytes[1]],
        ]
    }

    fn delta(&self, key: FlowKey, before: Option<&Self>, clock: &KernelClock) -> Option<FlowDelta> {
        let [packets, bytes] = self.since(before);
        (packets != [0, 0]).then(|| FlowDelta {
            key,
            packets,
            bytes,
            tcp_flags: self.tcp_flags,
            first_ns: self.first_ns.map(|t| clock.to_wall_ns(t)),
            last_ns: self.last_ns.map(|t| clock.to_wall_ns(t)),
        })
    }
}

type FlowMap = PerCpuHashMap<MapData, [u8; FlowKey::LEN], [u8; FlowCounters::LEN]>;

/// Owns the maps userspace reads and the per-flow totals of the previous poll.
pub(super) struct Reader {
    flows: FlowMap,
    counters: PerCpuArray<MapData, u64>,
    ring: RingBuf<MapData>,
    previous: HashMap<FlowKey, Totals>,
    walk_limit: usize,
    drain_limit: usize,
}

impl Reader {
    /// Takes the maps out of the loaded object.
    pub(super) fn new(ebpf: &mut Ebpf, settings: &XdpSettings) -> Result<Self, XdpError> {
        let mut take = |name: &'static str| {
            ebpf.take_map(name).ok_or(XdpError::Object { name, detail: "not in the object".to_owned() })
        };
        let wrong = |name: &'static str| {
            move |e: aya::maps::MapError| XdpError::Object { name, detail: e.to_string() }
        };
        let flows = FlowMap::try_from(take(FLOWS_MAP_NAME)?).map_err(wrong(FLOWS_MAP_NAME))?;
        let counters = PerCpuArray::try_from(take(COUNTERS_MAP_NAME)?).map_err(wrong(COUNTERS_MAP_NAME))?;
        let ring = RingBuf::try_from(take(SAMPLES_MAP_NAME)?).map_err(wrong(SAMPLES_MAP_NAME))?;
        // The ring holds at most this many records (aya may round its size up; the drain
        // simply stops earlier then, and the next call takes the rest).
        let record = size_of::<SampleRecord>() + 8;
        Ok(Self {
            flows,
            counters,
            ring,
            previous: HashMap::new(),
            walk_limit: 2 * settings.flow_map_entries as usize,
            drain_limit: settings.sample_ring_bytes as usize / record + 1,
        })
    }

    /// Deltas since the previous poll. Flows without new packets whose last
    /// packet (wall clock) is before `prune_before_ns` are removed from the
    /// kernel map, so that flows userspace has long expired do not linger
    /// there until the LRU pushes them out.
    pub(super) fn poll_flows(
        &mut self,
        clock: &KernelClock,
        prune_before_ns: Option<u64>,
    ) -> Result<Vec<FlowDelta>, XdpError> {
        let mut current: HashMap<FlowKey, Totals> = HashMap::with_capacity(self.previous.len());
        let mut deltas = Vec::new();
        let mut stale = Vec::new();
        for entry in self.flows.iter().take(self.walk_limit) {
            let (key, per_cpu) = entry.map_err(|source| XdpError::Map {
                map: FLOWS_MAP_NAME,
                action: "reading flows",
                source,
            })?;
            let key = FlowKey::from_bytes(&key);
            if current.contains_key(&key) {
                continue;
            }
            let totals = Totals::sum(per_cpu.iter());
            match totals.delta(key, self.previous.get(&key), clock) {
                Some(delta) => deltas.push(delta),
                None if prune_before_ns
                    .is_some_and(|t| clock.to_wall_ns(totals.last_ns[0].max(totals.last_ns[1])) < t) =>
                {
                    stale.push(key);
                    continue;
                }
                None => {}
            }
            current.insert(key, totals);
        }
        for key in stale {
            match self.flows.remove(&key.to_bytes()) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(source) => {
                    return Err(XdpError::Map { map: FLOWS_MAP_NAME, action: "removing a flow", source });
                }
            }
        }
        self.previous = current;
        Ok(deltas)
    }

    pub(super) fn forget(
        &mut self,
        key: &FlowKey,
        clock: &KernelClock,
    ) -> Result<Option<FlowDelta>, XdpError> {
        let bytes = key.to_bytes();
        let last = match self.flows.get(&bytes, 0) {
            Ok(per_cpu) => Some(Totals::sum(per_cpu.iter())),
            Err(aya::maps::MapError::KeyNotFound) => None,
            Err(source) => {
                return Err(XdpError::Map { map: FLOWS_MAP_NAME, action: "reading a flow", source });
            }
        };
        match self.flows.remove(&bytes) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                return Err(XdpError::Map { map: FLOWS_MAP_NAME, action: "removing a flow", source });
            }
        }
        let before = self.previous.remove(key);
        Ok(last.and_then(|t| t.delta(*key, before.as_ref(), clock)))
    }

    pub(super) fn samples(&mut self, clock: &KernelClock, mut f: impl FnMut(Sample<'_>)) -> usize {
        let mut handed = 0;
        for _ in 0..self.drain_limit {
            let Some(item) = self.ring.next() else { break };
            // Every record is a whole `SampleRecord`; a shorter one would be a kernel/userspace
            // mismatch, which the object tests rule out, so it is skipped rather than trusted.
            let Some(header) = SampleHeader::from_bytes(&item) else { continue };
            let data = &item[SampleHeader::LEN..];
            let data = &data[..data.len().min(header.cap_len as usize)];
            f(Sample {
                header,
                reason: SampleReason::from_u8(header.reason),
                ts_ns: clock.to_wall_ns(header.ts_ns),
                data,
            });
            handed += 1;
        }
        handed
    }

    pub(super) fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut out = XdpCounters::default();
        for (slot, value) in out.0.iter_mut().enumerate() {
            let index = u32::try_from(slot).unwrap_or(u32::MAX);
            let per_cpu = self.counters.get(&index, 0).map_err(|source| XdpError::Map {
                map: COUNTERS_MAP_NAME,
                action: "reading counters",
                source,
            })?;
            *value = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(packets: [u64; 2], bytes: [u64; 2], first: [u64; 2], last: [u64; 2], flags: [u8; 2]) -> [u8; 72] {
        FlowCounters { packets, bytes, first_ns: first, last_ns: last, tcp_flags: flags, pad: [0; 6] }
            .to_bytes()
    }

    #[test]
    fn per_cpu_counters_sum_and_stamps_take_the_extremes() {
        let a = cpu([2, 0], [200, 0], [50, 0], [60, 0], [0x02, 0]);
        let b = cpu([1, 3], [100, 300], [40, 70], [45, 90], [0x10, 0x12]);
        let t = Totals::sum([&a, &b]);
        assert_eq!(t.packets, [3, 3]);
        assert_eq!(t.bytes, [300, 300]);
        assert_eq!(t.first_ns, [40, 70]);
        assert_eq!(t.last_ns, [60, 90]);
        assert_eq!(t.tcp_flags, [0x12, 0x12]);
    }

    #[test]
    fn delta_is_what_was_added_since_the_previous_poll() {
        let clock = KernelClock { offset_ns: 1_000, uncertainty_ns: 0 };
        let before = Totals { packets: [1, 0], bytes: [100, 0], ..Totals::default() };
        let now = Totals {
            packets: [3, 1],
            bytes: [300, 60],
            first_ns: [5, 7],
            last_ns: [9, 7],
            ..Totals::default()
        };
        let d = now.delta(FlowKey::default(), Some(&before), &clock).expect("new packets");
        assert_eq!((d.packets, d.bytes), ([2, 1], [200, 60]));
        assert_eq!((d.first_ns, d.last_ns), ([1_005, 1_007], [1_009, 1_007]));
        assert!(now.delta(FlowKey::default(), Some(&now), &clock).is_none(), "no news, no delta");
    }

    #[test]
    fn a_flow_recreated_between_polls_reports_its_whole_new_total() {
        let clock = KernelClock { offset_ns: 0, uncertainty_ns: 0 };
        let before = Totals { packets: [10, 0], bytes: [1_000, 0], ..Totals::default() };
        let now = Totals { packets: [2, 0], bytes: [200, 0], ..Totals::default() };
        let d = now.delta(FlowKey::default(), Some(&before), &clock).expect("new packets");
        assert_eq!((d.packets, d.bytes), ([2, 0], [200, 0]));
    }
}
