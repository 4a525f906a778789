//! Bursts inside a flow: a payload after at least [`MIN_GAP_MS`] of silence in its direction
//! starts a burst. An implant that keeps one connection open and calls home inside it (HTTP
//! keep-alive, one QUIC connection, a raw TCP session) shows its period only here, not in
//! connection starts; `beaconing` scores these burst times like connection starts.
//!
//! A direct-mapped table of [`SLOTS`] entries (flow-hash tag of the direction, time of its last
//! payload in ms): 1 MiB, one cache line touched per payload packet, nothing allocated. A
//! collision forgets the older direction (its next burst then is not reported: bursts are
//! reported only while a direction keeps its slot). The first payload of a direction starts no
//! burst: connection starts are counted elsewhere.
//!
//! A payload that answers the other direction (sent within [`ANSWER_MS`] of the other
//! direction's last payload) starts no burst either: it is the client's half of a keep-alive
//! the server drives (chat and voice peers ping their clients), not a call home. An implant
//! speaks first; its server's last words are the previous answer, one period ago.

/// Slots of the table (a power of two).
pub const SLOTS: usize = 1 << 16;
/// Silence that makes the next payload a new burst.
pub const MIN_GAP_MS: u32 = 1_000;
/// A payload this soon after the other direction's answers it.
pub const ANSWER_MS: u32 = 1_000;

/// One direction's last payload.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    tag: u32,
    last_ms: u32,
}

/// The table.
#[derive(Debug)]
pub struct Bursts {
    slots: Vec<Slot>,
    /// Bursts reported.
    pub reported: u64,
    /// Bursts not reported because they answered the other direction.
    pub answers: u64,
}

impl Default for Bursts {
    fn default() -> Self {
        Self::new()
    }
}

impl Bursts {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self { slots: vec![Slot::default(); SLOTS], reported: 0, answers: 0 }
    }

    /// A payload of the direction (`hash`, `from_lo`) at `ts_ns`: whether it starts a burst.
    #[inline]
    pub fn payload(&mut self, hash: u64, from_lo: bool, ts_ns: u64) -> bool {
        let (index, tag) = place(hash, from_lo);
        // Milliseconds wrap after 49 days; a gap across the wrap reads as a burst at worst.
        let now_ms = (ts_ns / 1_000_000) as u32;
        let slot = &mut self.slots[index];
        if slot.tag != tag {
            *slot = Slot { tag, last_ms: now_ms };
            return false;
        }
        let gap = now_ms.wrapping_sub(slot.last_ms);
        slot.last_ms = now_ms;
        if !(MIN_GAP_MS..u32::MAX / 2).contains(&gap) {
            return false;
        }
        let (other_index, other_tag) = place(hash, !from_lo);
        let other = self.slots[other_index];
        if other.tag == other_tag && now_ms.wrapping_sub(other.last_ms) < ANSWER_MS {
            self.answers += 1;
            return false;
        }
        self.reported += 1;
        true
    }
}

/// Slot index and tag of a direction. Tags are never 0, so an empty slot never matches.
#[inline]
fn place(hash: u64, from_lo: bool) -> (usize, u32) {
    let h = hash ^ u64::from(from_lo).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 32) as usize & (SLOTS - 1), (h as u32) | 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_payload_after_a_second_of_silence_starts_a_burst() {
        let mut b = Bursts::new();
        assert!(!b.payload(9, true, 1_000 * MS), "the first payload starts none");
        assert!(!b.payload(9, true, 1_200 * MS));
        assert!(!b.payload(9, true, 2_100 * MS), "0.9 s of silence");
        assert!(b.payload(9, true, 3_200 * MS));
        assert!(!b.payload(9, false, 9_000 * MS), "the other direction is its own");
        assert_eq!(b.reported, 1);
    }

    #[test]
    fn an_answer_to_the_other_direction_starts_no_burst() {
        let mut b = Bursts::new();
        assert!(!b.payload(9, true, 1_000 * MS));
        assert!(!b.payload(9, false, 1_100 * MS));
        // The server pings after 45 s of silence, the client answers 0.2 s later.
        assert!(b.payload(9, false, 46_000 * MS), "the server's ping is its direction's burst");
        assert!(!b.payload(9, true, 46_200 * MS), "the client's pong answers the server's ping");
        assert_eq!(b.answers, 1);
        // The client speaks first 45 s later: a call home.
        assert!(b.payload(9, true, 91_000 * MS));
    }
}
