//! Reading the program's maps: flow deltas, samples and outcome counters.
//!
//! The kernel keeps cumulative per-CPU counters per flow. A poll normally runs the collector
//! program (`nbad_collect`, with `BPF_PROG_TEST_RUN`): it sums, in the kernel, the flows marked
//! active since it last read them (packets and bytes add, first/last take the earliest/latest
//! stamp, flags OR) and hands their totals over through the `NBAD_READS` ring buffer, so that a
//! poll costs a few syscalls however many flows it reads. Sometimes a poll walks the whole map
//! instead ([`super::active`]). Either way the poller subtracts what it returned for each flow
//! before, which it remembers in `known` (see [`super::totals`], which also tells a flow the
//! kernel evicted and re-created in between).
//!
//! `known` holds one entry per flow read and not yet forgotten. Flows userspace expired
//! ([`Reader::forget`]) or that sat idle past the prune horizon are removed from it and from the
//! kernel map together (a `known` entry dropped while its kernel entry lives on would count the
//! flow twice). Flows the kernel's LRU evicted linger in `known` until pruned; if it outgrows
//! twice the map, the next poll walks the map and rebuilds it.
//!
//! A walk runs while the program updates the map: a flow can be half-updated (one CPU's packet
//! counted, its bytes not yet), which a later read corrects; an evicted key can make the kernel
//! restart the walk, so duplicates are skipped and the walk is bounded at twice the map's
//! capacity.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use aya::Ebpf;
use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use foldhash::fast::RandomState;
use nbad_common::{
    COLLECT_DONE, COLLECT_PROGRAM_NAME, CONFIG_MAP_NAME, COUNTERS_MAP_NAME, FLOWS_MAP_NAME, FlowCounters,
    FlowKey, READS_BYTES, READS_MAP_NAME, ReadRecord, SAMPLES_MAP_NAME, SampleHeader, SampleReason,
    SampleRecord, XDP_COUNTER_NAMES, XDP_COUNTER_SLOTS, XdpConfig, XdpCounter,
};

use super::XdpSettings;
use super::active::Epochs;
use super::error::XdpError;
use super::loader::KernelClock;
use super::totals::Totals;

/// How long a poll waits between closing an epoch and reading it. A program run that read the
/// epoch just before it closed finishes its update within microseconds (XDP runs with bottom
/// halves off); a much later one is not lost but read late: at the flow's next epoch, by a walk,
/// or when the flow is pruned.
const EPOCH_GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Most collector runs per poll: each fills at most one `NBAD_READS` (32 768 flows), so a poll
/// reads at most about 2 M flows; the rest wait for the next poll, still marked.
const COLLECT_RUNS: usize = 64;

/// Polls between two prunes of idle flows (`known` is scanned in memory; only the flows found
/// idle cost a syscall each).
const PRUNE_EVERY: u64 = 16;

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

/// What the polls have cost so far: the work userspace did, as opposed to the program's
/// [`XdpCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollStats {
    /// Runs of the collector program.
    pub collector_runs: u64,
    /// Flow totals read from the collector.
    pub flows_read: u64,
    /// Walks of the whole `NBAD_FLOWS`.
    pub full_walks: u64,
    /// Entries those walks visited.
    pub walked: u64,
    /// Idle flows removed from `NBAD_FLOWS`.
    pub pruned: u64,
}

impl PollStats {
    /// `(name, value)` for every figure, for the statistics.
    #[must_use]
    pub fn iter(&self) -> [(&'static str, u64); 5] {
        [
            ("poll_collector_runs", self.collector_runs),
            ("poll_flows_read", self.flows_read),
            ("poll_full_walks", self.full_walks),
            ("poll_walked", self.walked),
            ("poll_pruned", self.pruned),
        ]
    }
}

/// Which poll this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PollKind {
    /// A periodic poll; with `Some(t)`, flows idle since before `t` (wall clock) are pruned.
    Interval { prune_before_ns: Option<u64> },
    /// The poll at shutdown (no pruning).
    Last,
}

type FlowMap = PerCpuHashMap<MapData, [u8; FlowKey::LEN], [u8; FlowCounters::LEN]>;

/// Owns the maps userspace reads, the epoch it writes, and the per-flow totals it returned.
pub(super) struct Reader {
    flows: FlowMap,
    counters: PerCpuArray<MapData, u64>,
    ring: RingBuf<MapData>,
    reads: RingBuf<MapData>,
    config_map: Array<MapData, [u8; XdpConfig::LEN]>,
    /// What the program reads from `NBAD_CONFIG`, with the current epoch.
    config: XdpConfig,
    epochs: Epochs,
    known: HashMap<FlowKey, Totals, RandomState>,
    stats: PollStats,
    walk_limit: usize,
    known_limit: usize,
    drain_limit: usize,
    reads_limit: usize,
}

impl Reader {
    /// Takes the maps out of the loaded object (whose config the loader wrote from `settings`).
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
        let reads = RingBuf::try_from(take(READS_MAP_NAME)?).map_err(wrong(READS_MAP_NAME))?;
        let config_map = Array::try_from(take(CONFIG_MAP_NAME)?).map_err(wrong(CONFIG_MAP_NAME))?;
        // A ring holds at most this many records (aya may round its size up; the drain simply
        // stops earlier then, and the next call takes the rest).
        let record = size_of::<SampleRecord>() + 8;
        let entries = settings.flow_map_entries as usize;
        Ok(Self {
            flows,
            counters,
            ring,
            reads,
            config_map,
            config: settings.program_config(),
            epochs: Epochs::new(),
            known: HashMap::default(),
            stats: PollStats::default(),
            walk_limit: 2 * entries,
            known_limit: 2 * entries,
            drain_limit: settings.sample_ring_bytes as usize / record + 1,
            reads_limit: READS_BYTES as usize / (ReadRecord::LEN + 8) + 1,
        })
    }

    /// What the flows read at this poll gained since they were last read; see the module docs
    /// and [`super::active`] for which flows those are. `ebpf` holds the collector program.
    pub(super) fn poll_flows(
        &mut self,
        clock: &KernelClock,
        kind: PollKind,
        ebpf: &Ebpf,
    ) -> Result<Vec<FlowDelta>, XdpError> {
        let lost = self.counter(XdpCounter::ActiveFull)?;
        let too_many_known = self.known.len() > self.known_limit;
        let prune_before_ns = match kind {
            PollKind::Interval { prune_before_ns } => prune_before_ns,
            PollKind::Last => None,
        };
        // Close the epoch, then give the program runs that read it before the bump time to
        // finish their updates; the collector then reads the set of the epoch just closed.
        self.next_epoch()?;
        std::thread::sleep(EPOCH_GRACE);
        let mut deltas = Vec::new();
        if self.epochs.walk_now(lost, too_many_known) {
            self.walk(clock, prune_before_ns, &mut deltas)?;
        } else {
            self.collect(clock, ebpf, &mut deltas)?;
            if let Some(before) = prune_before_ns
                && self.epochs.polls().is_multiple_of(PRUNE_EVERY)
            {
                self.prune(clock, before, &mut deltas)?;
            }
        }
        Ok(deltas)
    }

    /// Closes the current epoch: the program marks flows in the next one from now on.
    fn next_epoch(&mut self) -> Result<(), XdpError> {
        self.config.epoch = self.epochs.close();
        self.config_map.set(0, self.config.to_bytes(), 0).map_err(|source| XdpError::Map {
            map: CONFIG_MAP_NAME,
            action: "writing the next epoch",
            source,
        })
    }

    /// Runs the collector until it has read every flow of the just-closed epoch's active set (or
    /// [`COLLECT_RUNS`] times), draining `NBAD_READS` after each run.
    fn collect(
        &mut self,
        clock: &KernelClock,
        ebpf: &Ebpf,
        deltas: &mut Vec<FlowDelta>,
    ) -> Result<(), XdpError> {
        let program: &Xdp = ebpf
            .program(COLLECT_PROGRAM_NAME)
            .ok_or(XdpError::Object { name: COLLECT_PROGRAM_NAME, detail: "not in the object".to_owned() })?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| XdpError::Object {
                name: COLLECT_PROGRAM_NAME,
                detail: e.to_string(),
            })?;
        // XDP test runs need at least an Ethernet header's worth of frame.
        let frame = [0u8; 64];
        for _ in 0..COLLECT_RUNS {
            let run = program
                .test_run(TestRunOptions { data_in: Some(&frame), ..TestRunOptions::default() })
                .map_err(|source| XdpError::Collect { source })?;
            self.stats.collector_runs += 1;
            self.drain_reads(clock, deltas);
            if run.return_value == COLLECT_DONE {
                break;
            }
        }
        Ok(())
    }

    /// Turns every waiting collector record into a delta, at most one ring's worth.
    fn drain_reads(&mut self, clock: &KernelClock, deltas: &mut Vec<FlowDelta>) {
        for _ in 0..self.reads_limit {
            let Some(item) = self.reads.next() else { break };
            // A shorter record would be a kernel/userspace mismatch (the object tests rule it
            // out); the flow is read again by the next walk.
            let record = ReadRecord::from_bytes(&item);
            drop(item);
            let Some(record) = record else { continue };
            self.stats.flows_read += 1;
            let totals = Totals::from_counters(&record.totals);
            self.update(record.key, totals, clock, deltas);
        }
    }

    /// Records `key`'s new totals, with a delta if it gained packets.
    fn update(&mut self, key: FlowKey, totals: Totals, clock: &KernelClock, deltas: &mut Vec<FlowDelta>) {
        match self.known.entry(key) {
            Entry::Occupied(mut known) => {
                deltas.extend(totals.delta(key, Some(known.get()), clock));
                known.insert(totals);
            }
            Entry::Vacant(slot) => {
                deltas.extend(totals.delta(key, None, clock));
                slot.insert(totals);
            }
        }
    }

    /// Reads every flow in the map and rebuilds `known` from them; flows without news idle
    /// since before `prune_before_ns` are removed instead.
    fn walk(
        &mut self,
        clock: &KernelClock,
        prune_before_ns: Option<u64>,
        deltas: &mut Vec<FlowDelta>,
    ) -> Result<(), XdpError> {
        self.stats.full_walks += 1;
        let mut current = HashMap::with_capacity_and_hasher(self.known.len(), RandomState::default());
        let mut stale = Vec::new();
        for entry in self.flows.iter().take(self.walk_limit) {
            let (key, per_cpu) = entry.map_err(|source| XdpError::Map {
                map: FLOWS_MAP_NAME,
                action: "reading flows",
                source,
            })?;
            self.stats.walked += 1;
            let key = FlowKey::from_bytes(&key);
            if current.contains_key(&key) {
                continue;
            }
            let totals = Totals::sum(per_cpu.iter());
            match totals.delta(key, self.known.get(&key), clock) {
                Some(delta) => deltas.push(delta),
                None if prune_before_ns.is_some_and(|t| totals.last_wall_ns(clock) < t) => {
                    stale.push(key);
                    continue;
                }
                None => {}
            }
            current.insert(key, totals);
        }
        self.known = current;
        self.remove_flows(&stale)
    }

    /// Removes the flows idle since before `before_ns`.
    fn prune(
        &mut self,
        clock: &KernelClock,
        before_ns: u64,
        deltas: &mut Vec<FlowDelta>,
    ) -> Result<(), XdpError> {
        let stale: Vec<FlowKey> = self
            .known
            .iter()
            .filter(|(_, totals)| totals.last_wall_ns(clock) < before_ns)
            .map(|(key, _)| *key)
            .collect();
        // Read once more as they go: a packet whose update landed after its epoch was read
        // (past EPOCH_GRACE) would otherwise be lost with the entry.
        for key in &stale {
            deltas.extend(self.forget(key, clock)?);
            self.stats.pruned += 1;
        }
        Ok(())
    }

    fn remove_flows(&mut self, keys: &[FlowKey]) -> Result<(), XdpError> {
        for key in keys {
            self.remove_flow(key)?;
            self.stats.pruned += 1;
        }
        Ok(())
    }

    /// Removes `key` from `NBAD_FLOWS` (the LRU may have evicted it already). An active set
    /// still holding it reads it as gone and drops it.
    fn remove_flow(&mut self, key: &FlowKey) -> Result<(), XdpError> {
        match self.flows.remove(&key.to_bytes()) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(XdpError::Map { map: FLOWS_MAP_NAME, action: "removing a flow", source }),
        }
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
        self.remove_flow(key)?;
        let before = self.known.remove(key);
        Ok(last.and_then(|t| t.delta(*key, before.as_ref(), clock)))
    }

    pub(super) fn poll_stats(&self) -> PollStats {
        self.stats
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
        for (counter, value) in XdpCounter::ALL.into_iter().zip(out.0.iter_mut()) {
            *value = self.counter(counter)?;
        }
        Ok(out)
    }

    /// One counter, summed over the CPUs.
    fn counter(&self, counter: XdpCounter) -> Result<u64, XdpError> {
        let per_cpu = self.counters.get(&(counter as u32), 0).map_err(|source| XdpError::Map {
            map: COUNTERS_MAP_NAME,
            action: "reading counters",
            source,
        })?;
        Ok(per_cpu.iter().sum())
    }
}
