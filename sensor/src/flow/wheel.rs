//! A lazy timer wheel with one-second slots.
//!
//! Each flow is filed under the second of its next deadline. When a slot's
//! second has passed, the table looks at each flow filed there: it is either
//! due (and expires) or its deadline moved on (more packets arrived) and it
//! is filed again. A flow remembers the second it is filed under, so entries
//! left behind by rescheduling or by a freed-and-reused slab slot are
//! recognised as stale and dropped. Deadlines further away than the wheel's
//! span are filed at its far end and re-filed when reached.

/// Seconds the wheel spans; a power of two.
pub const SLOTS: u64 = 512;

/// The wheel's slots of slab indices.
#[derive(Debug)]
pub struct Wheel {
    slots: Vec<Vec<u32>>,
    /// The earliest second not yet processed.
    pub current_sec: u64,
    started: bool,
}

impl Wheel {
    /// An empty wheel.
    pub fn new() -> Self {
        Self { slots: (0..SLOTS).map(|_| Vec::new()).collect(), current_sec: 0, started: false }
    }

    /// Starts the clock at the first packet's second.
    pub fn start_if_needed(&mut self, now_sec: u64) {
        if !self.started {
            self.started = true;
            self.current_sec = now_sec;
        }
    }

    /// The second a deadline is filed under, kept within the wheel's span.
    pub fn file_second(&self, deadline_ns: u64) -> u64 {
        (deadline_ns / 1_000_000_000).clamp(self.current_sec, self.current_sec + SLOTS - 1)
    }

    /// Files `idx` under `second` (as returned by [`Self::file_second`]).
    pub fn file(&mut self, idx: u32, second: u64) {
        self.slots[(second % SLOTS) as usize].push(idx);
    }

    /// Takes the entries of `second`'s slot, leaving an empty vector that
    /// keeps its capacity when handed back with [`Self::restore`].
    pub fn take(&mut self, second: u64) -> Vec<u32> {
        std::mem::take(&mut self.slots[(second % SLOTS) as usize])
    }

    /// Hands a slot's vector back (cleared or holding entries to keep).
    pub fn restore(&mut self, second: u64, mut entries: Vec<u32>) {
        let slot = &mut self.slots[(second % SLOTS) as usize];
        if slot.is_empty() {
            std::mem::swap(slot, &mut entries);
        } else {
            // Entries were filed into this slot meanwhile: keep both.
            slot.extend_from_slice(&entries);
        }
    }

    /// Takes every entry from every slot (used when the clock jumps further
    /// than the wheel spans, and for eviction order it is not needed).
    pub fn drain_all(&mut self) -> Vec<u32> {
        let mut all = Vec::new();
        for slot in &mut self.slots {
            all.append(slot);
        }
        all
    }
}
