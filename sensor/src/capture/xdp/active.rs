//! The poll epoch, and when a poll walks the whole flow map instead of running the collector.
//!
//! The program adds a flow to the active set of the current epoch (`NBAD_ACTIVE_0`/`_1`, by
//! parity) on its first packet per CPU in each epoch; the epoch lives in `NBAD_CONFIG`. A poll
//! closes the epoch, waits a moment for program runs that read it just before to finish their
//! updates, and runs the collector program (`nbad_collect`), which reads in the kernel the set of
//! the epoch just closed and hands the totals over through the `NBAD_READS` ring buffer.
//!
//! A poll walks the whole flow map instead when the program counted marks it could not store
//! (`active_full`; the next poll walks too, for what was in flight during the first walk), when
//! userspace remembers more flows than it should (`too_many_known`: flows the kernel's LRU
//! evicted without telling anyone), and one poll in [`FULL_WALK_EVERY`] as a backstop.

/// Polls between two backstop walks of the whole flow map (about 3.5 minutes at the fastest
/// poll interval, 100 ms; 34 at the default of 1 s).
pub(super) const FULL_WALK_EVERY: u64 = 2_048;

/// Walks owed after lost marks: one now, one to catch what was in flight.
const WALKS_AFTER_LOST_MARKS: u8 = 2;

/// The epoch and the walks owed.
#[derive(Debug)]
pub(super) struct Epochs {
    epoch: u32,
    /// The program's `active_full` counter when last seen.
    lost_seen: u64,
    walks_owed: u8,
    polls: u64,
}

impl Epochs {
    /// The epoch the program starts in.
    pub(super) const FIRST: u32 = 1;

    pub(super) fn new() -> Self {
        Self { epoch: Self::FIRST, lost_seen: 0, walks_owed: 0, polls: 0 }
    }

    /// Polls planned so far.
    pub(super) fn polls(&self) -> u64 {
        self.polls
    }

    /// Whether this poll walks the whole map. `lost_marks` is the program's `active_full`
    /// counter; `too_many_known` says userspace's memory of flows outgrew its bound.
    pub(super) fn walk_now(&mut self, lost_marks: u64, too_many_known: bool) -> bool {
        self.polls += 1;
        if lost_marks != self.lost_seen {
            self.lost_seen = lost_marks;
            self.walks_owed = WALKS_AFTER_LOST_MARKS;
        }
        let backstop = self.polls.is_multiple_of(FULL_WALK_EVERY);
        let walk = self.walks_owed > 0 || too_many_known || backstop;
        self.walks_owed = self.walks_owed.saturating_sub(1);
        walk
    }

    /// Closes the current epoch; returns the next one (never 0, the mark of a new entry).
    pub(super) fn close(&mut self) -> u32 {
        self.epoch = self.epoch.wrapping_add(1).max(Self::FIRST);
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_marks_make_the_next_two_polls_walk_the_map() {
        let mut epochs = Epochs::new();
        assert!(!epochs.walk_now(0, false));
        assert!(epochs.walk_now(3, false));
        assert!(epochs.walk_now(3, false));
        assert!(!epochs.walk_now(3, false), "no new losses, no walk");
        assert!(epochs.walk_now(3, true), "too many known flows");
        assert_eq!(epochs.polls(), 5);
    }

    #[test]
    fn the_epoch_skips_zero_when_it_wraps() {
        let mut epochs = Epochs::new();
        assert_eq!(epochs.close(), 2);
        epochs.epoch = u32::MAX;
        assert_eq!(epochs.close(), Epochs::FIRST);
    }
}
