//! A flow's cumulative totals summed over the CPUs, and the delta since the totals a poll last
//! returned for it.
//!
//! A flow whose totals went *down*, or whose first packet in a direction moved later, was
//! evicted and re-created by the kernel in between; its whole new total is the delta.

use nbad_common::{FlowCounters, FlowKey};

use super::loader::KernelClock;
use super::reader::FlowDelta;

/// Cumulative totals of one flow, summed over the CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    packets: [u64; 2],
    bytes: [u64; 2],
    tcp_flags: [u8; 2],
    first_ns: [u64; 2],
    last_ns: [u64; 2],
}

impl Totals {
    /// Totals the collector already summed over the CPUs.
    pub(super) fn from_counters(c: &FlowCounters) -> Self {
        Self {
            packets: c.packets,
            bytes: c.bytes,
            tcp_flags: c.tcp_flags,
            first_ns: c.first_ns,
            last_ns: c.last_ns,
        }
    }

    pub(super) fn sum<'a>(per_cpu: impl IntoIterator<Item = &'a [u8; FlowCounters::LEN]>) -> Self {
        let mut t = FlowCounters::ZERO;
        for bytes in per_cpu {
            t.accumulate(&FlowCounters::from_bytes(bytes));
        }
        Self::from_counters(&t)
    }

    /// Whether these totals can have grown from `before`. A re-created flow has less, or
    /// started a direction later than `before` had seen it start (a first stamp moves only
    /// earlier while an entry lives: a slower CPU's packet).
    fn continues(&self, before: &Self) -> bool {
        (0..2).all(|d| {
            self.packets[d] >= before.packets[d]
                && self.bytes[d] >= before.bytes[d]
                && (before.first_ns[d] == 0 || self.first_ns[d] <= before.first_ns[d])
        })
    }

    /// What `self` adds to `before`; all of `self` when the flow was re-created in between.
    fn since(&self, before: Option<&Self>) -> [[u64; 2]; 2] {
        let base = match before {
            Some(b) if self.continues(b) => *b,
            _ => Self::default(),
        };
        [
            [self.packets[0] - base.packets[0], self.packets[1] - base.packets[1]],
            [self.bytes[0] - base.bytes[0], self.bytes[1] - base.bytes[1]],
        ]
    }

    /// The latest packet in either direction, wall clock.
    pub(super) fn last_wall_ns(&self, clock: &KernelClock) -> u64 {
        clock.to_wall_ns(self.last_ns[0].max(self.last_ns[1]))
    }

    pub(super) fn delta(
        &self,
        key: FlowKey,
        before: Option<&Self>,
        clock: &KernelClock,
    ) -> Option<FlowDelta> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(packets: [u64; 2], bytes: [u64; 2], first: [u64; 2], last: [u64; 2], flags: [u8; 2]) -> [u8; 72] {
        FlowCounters {
            packets,
            bytes,
            first_ns: first,
            last_ns: last,
            tcp_flags: flags,
            pad: [0; 2],
            marked_epoch: 3,
        }
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

    #[test]
    fn a_flow_recreated_and_grown_past_its_old_total_is_told_by_its_later_first_packet() {
        let clock = KernelClock { offset_ns: 0, uncertainty_ns: 0 };
        let before = Totals { packets: [2, 0], bytes: [200, 0], first_ns: [10, 0], ..Totals::default() };
        let now = Totals { packets: [5, 0], bytes: [500, 0], first_ns: [90, 0], ..Totals::default() };
        let d = now.delta(FlowKey::default(), Some(&before), &clock).expect("new packets");
        assert_eq!((d.packets, d.bytes), ([5, 0], [500, 0]), "the whole new total");
        let slower_cpu = Totals { first_ns: [8, 0], ..now };
        let d = slower_cpu.delta(FlowKey::default(), Some(&before), &clock).expect("new packets");
        assert_eq!(d.packets, [3, 0], "an earlier first stamp is another CPU, not a new flow");
    }
}
