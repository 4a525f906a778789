//! Remembers the ports of first IP fragments so that later fragments of the
//! same datagram can be accounted to their flow.
//!
//! A fixed, direct-mapped table: no allocation after start-up and a bounded
//! footprint whatever the traffic. A later fragment whose first fragment was
//! not seen (lost, out of order, or overwritten by a colliding datagram) is
//! reported as an orphan and counted, never guessed.

/// Identity of one fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragmentId {
    /// Source address (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// IP identification (16 bits for IPv4, 32 for IPv6).
    pub ident: u32,
    /// Transport protocol.
    pub proto: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    id: FragmentId,
    ports: (u16, u16),
    seen_ns: u64,
    used: bool,
}

/// How long a first fragment's ports are remembered.
const FRAGMENT_LIFETIME_NS: u64 = 30_000_000_000;

/// The table of recent first fragments.
#[derive(Debug)]
pub struct FragmentTracker {
    slots: Box<[Slot]>,
    /// First fragments that took the slot of another datagram's first fragment still within
    /// its lifetime (fragments that never complete, or more datagrams in flight than slots).
    pub overwritten: u64,
}

impl FragmentTracker {
    /// A tracker with `capacity` slots (rounded up to a power of two).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        Self { slots: vec![Slot::default(); capacity].into_boxed_slice(), overwritten: 0 }
    }

    fn slot_index(&self, id: &FragmentId) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.src.iter().chain(&id.dst).chain(&id.ident.to_le_bytes()).chain(&[id.proto]) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h as usize) & (self.slots.len() - 1)
    }

    /// Records the ports carried by a first fragment.
    pub fn remember(&mut self, id: FragmentId, ports: (u16, u16), now_ns: u64) {
        let i = self.slot_index(&id);
        let old = &self.slots[i];
        if old.used && old.id != id && now_ns.saturating_sub(old.seen_ns) <= FRAGMENT_LIFETIME_NS {
            self.overwritten += 1;
        }
        self.slots[i] = Slot { id, ports, seen_ns: now_ns, used: true };
    }

    /// The ports of the datagram a later fragment belongs to, if its first
    /// fragment was seen recently.
    pub fn lookup(&self, id: &FragmentId, now_ns: u64) -> Option<(u16, u16)> {
        let slot = &self.slots[self.slot_index(id)];
        (slot.used && slot.id == *id && now_ns.saturating_sub(slot.seen_ns) <= FRAGMENT_LIFETIME_NS)
            .then_some(slot.ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ident: u32) -> FragmentId {
        FragmentId { src: [1; 16], dst: [2; 16], ident, proto: 17 }
    }

    #[test]
    fn later_fragment_finds_the_ports_of_its_first_fragment() {
        let mut t = FragmentTracker::new(64);
        t.remember(id(7), (5353, 53), 1_000);
        assert_eq!(t.lookup(&id(7), 2_000), Some((5353, 53)));
        assert_eq!(t.lookup(&id(8), 2_000), None);
    }

    #[test]
    fn a_full_table_overwrites_and_counts_what_it_forgot() {
        let mut t = FragmentTracker::new(4);
        for n in 0..1_000 {
            t.remember(id(n), (1, 2), 0);
        }
        assert!(t.overwritten >= 996, "{}", t.overwritten);
        assert_eq!(t.lookup(&id(999), 0), Some((1, 2)));
        t.remember(id(999), (1, 2), 1);
        let before = t.overwritten;
        t.remember(id(999), (3, 4), 2);
        assert_eq!(t.overwritten, before, "the same datagram again is no loss");
    }

    #[test]
    fn forgets_first_fragments_after_their_lifetime() {
        let mut t = FragmentTracker::new(64);
        t.remember(id(7), (1, 2), 0);
        assert_eq!(t.lookup(&id(7), FRAGMENT_LIFETIME_NS + 1), None);
    }
}
