//! Which flows a poll reads: the kernel's active-flow reports, sorted by epoch, and when to
//! walk the whole flow map instead.
//!
//! The program writes an [`ActiveRecord`] for a flow on its first packet per CPU in each epoch
//! (`NBAD_ACTIVE`); userspace bumps the epoch in `NBAD_CONFIG` at the end of every poll. A poll
//! reads from `NBAD_FLOWS` only the flows reported in epochs that closed at an *earlier* poll:
//! a packet whose program run read epoch `e` may still be updating its counters while userspace
//! bumps `e`, but not a whole poll interval later. A flow's packets therefore reach userspace one
//! to two poll intervals after they arrived; the last poll ([`Plan::Final`]) reads every reported
//! flow at once, since nothing after it would.
//!
//! Reports are not the only way to learn about changes: when the program counted a lost report
//! (ring full) the next two polls walk the whole map (the second catches what was in flight
//! during the first), as does a poll when userspace remembers more flows than it should
//! (`known_limit`, flows the kernel's LRU evicted without telling anyone), and one poll in
//! [`FULL_WALK_EVERY`] as a backstop.
//!
//! Invariant: every key reported in a closed epoch is handed out by exactly one later [`plan`]
//! (or made moot by a walk, which reads every flow).
//!
//! [`plan`]: ActiveSet::plan

use std::collections::HashSet;

use foldhash::fast::RandomState;
use nbad_common::{ActiveRecord, FlowKey};

/// A set of flow keys. foldhash rather than std's SipHash: keys are hashed once per report and
/// once per read, and SipHash was the poller's largest single cost; the per-process random seed
/// keeps bucket placement unpredictable to someone crafting packets.
pub(super) type KeySet = HashSet<FlowKey, RandomState>;

/// Polls between two backstop walks of the whole flow map (about 3.5 minutes at the fastest
/// poll interval, 100 ms; 17 at the default of 1 s).
pub(super) const FULL_WALK_EVERY: u64 = 2_048;

/// Walks owed after the program lost reports: one now, one to catch what was in flight.
const WALKS_AFTER_LOST_REPORTS: u8 = 2;

/// What a poll reads.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// These flows, reported in closed epochs.
    Keys(KeySet),
    /// The whole flow map.
    Walk,
}

/// The epoch and the reported flows not read yet.
#[derive(Debug)]
pub(super) struct ActiveSet {
    epoch: u32,
    /// Reported in the current epoch: read at the poll after the one that closes it.
    open: KeySet,
    /// Reported in closed epochs: read at the next poll.
    closed: KeySet,
    /// The program's `active_full` counter when last seen.
    lost_seen: u64,
    walks_owed: u8,
    polls: u64,
}

impl ActiveSet {
    /// The epoch the program starts in.
    pub(super) const FIRST_EPOCH: u32 = 1;

    pub(super) fn new() -> Self {
        Self {
            epoch: Self::FIRST_EPOCH,
            open: KeySet::default(),
            closed: KeySet::default(),
            lost_seen: 0,
            walks_owed: 0,
            polls: 0,
        }
    }

    /// Files one record from the ring. A record of any other epoch than the current one
    /// (including a value torn by a concurrent config write) belongs to a closed epoch.
    pub(super) fn record(&mut self, record: &ActiveRecord) {
        if record.epoch == self.epoch {
            self.open.insert(record.key);
        } else {
            self.closed.insert(record.key);
        }
    }

    /// Polls planned so far.
    pub(super) fn polls(&self) -> u64 {
        self.polls
    }

    /// Whether `key` has a report not yet read.
    pub(super) fn pending(&self, key: &FlowKey) -> bool {
        self.open.contains(key) || self.closed.contains(key)
    }

    /// Decides what this poll reads. `lost_reports` is the program's `active_full` counter;
    /// `too_many_known` says userspace's memory of flows outgrew its bound; `last` is the poll
    /// at shutdown, which also reads the flows of the open epoch.
    pub(super) fn plan(&mut self, lost_reports: u64, too_many_known: bool, last: bool) -> Plan {
        self.polls += 1;
        if lost_reports != self.lost_seen {
            self.lost_seen = lost_reports;
            self.walks_owed = WALKS_AFTER_LOST_REPORTS;
        }
        if last {
            self.closed.extend(self.open.drain());
        }
        let backstop = self.polls.is_multiple_of(FULL_WALK_EVERY);
        if self.walks_owed > 0 || too_many_known || backstop {
            self.walks_owed = self.walks_owed.saturating_sub(1);
            // The walk reads every flow after these epochs closed, so it reads these too.
            self.closed.clear();
            return Plan::Walk;
        }
        Plan::Keys(std::mem::take(&mut self.closed))
    }

    /// Hands back a read set, emptied, so its allocation serves the next poll.
    pub(super) fn recycle(&mut self, mut keys: KeySet) {
        keys.clear();
        if self.closed.is_empty() {
            self.closed = keys;
        }
    }

    /// Closes the current epoch; returns the next one (never 0, the mark of a new entry).
    pub(super) fn close_epoch(&mut self) -> u32 {
        if self.closed.is_empty() {
            std::mem::swap(&mut self.closed, &mut self.open);
        } else {
            self.closed.extend(self.open.drain());
        }
        self.epoch = self.epoch.wrapping_add(1).max(Self::FIRST_EPOCH);
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey { port_lo: port, ..FlowKey::default() }
    }

    fn keys(plan: Plan) -> Vec<u16> {
        let Plan::Keys(set) = plan else { panic!("expected keys, got a walk") };
        let mut ports: Vec<u16> = set.iter().map(|k| k.port_lo).collect();
        ports.sort_unstable();
        ports
    }

    #[test]
    fn a_flow_reported_in_an_epoch_is_read_one_poll_after_that_epoch_closes() {
        let mut set = ActiveSet::new();
        set.record(&ActiveRecord { key: key(1), epoch: 1 });
        assert_eq!(keys(set.plan(0, false, false)), Vec::<u16>::new(), "epoch 1 is still open");
        assert_eq!(set.close_epoch(), 2);
        // A late record of epoch 1 (drained after the bump) joins it.
        set.record(&ActiveRecord { key: key(2), epoch: 1 });
        set.record(&ActiveRecord { key: key(3), epoch: 2 });
        assert!(set.pending(&key(1)) && set.pending(&key(3)));
        assert_eq!(keys(set.plan(0, false, false)), vec![1, 2]);
        set.close_epoch();
        assert_eq!(keys(set.plan(0, false, false)), vec![3]);
        assert!(!set.pending(&key(3)));
    }

    #[test]
    fn the_last_poll_reads_the_open_epoch_too() {
        let mut set = ActiveSet::new();
        set.record(&ActiveRecord { key: key(1), epoch: 1 });
        assert_eq!(keys(set.plan(0, false, true)), vec![1]);
    }

    #[test]
    fn lost_reports_make_the_next_two_polls_walk_the_map() {
        let mut set = ActiveSet::new();
        set.record(&ActiveRecord { key: key(1), epoch: 7 });
        assert_eq!(set.plan(3, false, false), Plan::Walk);
        assert!(!set.pending(&key(1)), "the walk read it");
        set.close_epoch();
        assert_eq!(set.plan(3, false, false), Plan::Walk);
        set.close_epoch();
        assert_eq!(keys(set.plan(3, false, false)), Vec::<u16>::new(), "no new losses, no walk");
        assert_eq!(set.plan(0, true, false), Plan::Walk, "too many known flows");
    }

    #[test]
    fn the_epoch_skips_zero_when_it_wraps() {
        let mut set = ActiveSet::new();
        set.epoch = u32::MAX;
        assert_eq!(set.close_epoch(), ActiveSet::FIRST_EPOCH);
    }
}
