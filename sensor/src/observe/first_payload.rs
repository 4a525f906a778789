//! Which payload is the first of its flow direction, and whether the direction was seen from
//! its start.
//!
//! A two-way set-associative table of flow-hash tags ([`SLOTS`] × 8 bytes, both ways of a set
//! in one cache line), one tag per flow direction, each in one of two states:
//!
//! - **pending**: the direction's opening was seen (a TCP SYN, or the SYN-ACK for the server's
//!   direction) and its first payload is still to come;
//! - **done**: its first payload has been seen, or the direction was first met in mid-stream.
//!
//! A TCP payload is identified only when its direction is pending: a flow whose start the
//! capture missed (a sensor started mid-session, a SYN lost) is never judged from a segment in
//! its middle, which would read as "something other than the port's protocol". UDP has no
//! opening: a direction's first datagram is its first payload. A collision evicts the older tag
//! of a set: a pending direction evicted before its first payload is then treated as
//! mid-stream (not identified); a done one may be identified again (a second observation of
//! the same flow, harmless). No per-flow state is ever freed.
//!
//! A first payload too short to tell anything (a stager's four-byte length before the stage, a
//! lone byte) can have the direction's next payload identified as well, once ([`FirstPayloads::again`]).

/// Slots of the table (a power of two): 2 MiB, two-way.
pub const SLOTS: usize = 1 << 18;

const VALID: u64 = 1 << 63;
const PENDING: u64 = 1 << 62;
/// The direction had its second look.
const AGAIN: u64 = 1 << 61;
/// The direction's next payload is the body of the request its first payload began.
const BODY: u64 = 1 << 60;
const TAG_MASK: u64 = !(VALID | PENDING | AGAIN | BODY);

/// What to do with a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// The first payload of a direction seen from its start: identify it.
    Identify,
    /// Not a first payload, or one of a direction met in mid-stream.
    Skip,
    /// The payload after a request's headers: its body ([`FirstPayloads::expect_body`]).
    Body,
}

/// The table.
#[derive(Debug)]
pub struct FirstPayloads {
    slots: Vec<u64>,
}

impl Default for FirstPayloads {
    fn default() -> Self {
        Self::new()
    }
}

impl FirstPayloads {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self { slots: vec![0; SLOTS] }
    }

    /// The set (its first slot) and the tag of a flow direction.
    #[inline]
    fn place(hash: u64, from_lo: bool) -> (usize, u64) {
        let dir = u64::from(from_lo);
        // The set depends on the direction too, so a flow's two directions do not evict each
        // other.
        let set = ((hash ^ dir.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 40) as usize & (SLOTS - 1) & !1;
        (set, ((hash & !1) | dir) & TAG_MASK)
    }

    /// The way of `set` holding `tag`, if any.
    #[inline]
    fn find(&self, set: usize, tag: u64) -> Option<usize> {
        (set..set + 2).find(|&i| self.slots[i] & VALID != 0 && self.slots[i] & TAG_MASK == tag)
    }

    /// Puts `tag` with `state` first in `set`, moving the older way out.
    #[inline]
    fn insert(&mut self, set: usize, tag: u64, state: u64) {
        self.slots[set + 1] = self.slots[set];
        self.slots[set] = tag | VALID | state;
    }

    /// A TCP opening (SYN from the client, SYN-ACK from the server) in the direction of
    /// `from_lo`: that direction's first payload is now awaited.
    #[inline]
    pub fn opening(&mut self, hash: u64, from_lo: bool) {
        let (set, tag) = Self::place(hash, from_lo);
        match self.find(set, tag) {
            Some(i) => self.slots[i] = tag | VALID | PENDING,
            None => self.insert(set, tag, PENDING),
        }
    }

    /// A payload in the direction of `from_lo`; `tcp` says whether an opening was required.
    /// The direction's first payload told nothing: identify its next payload too, unless it
    /// already had this second look.
    pub fn again(&mut self, hash: u64, from_lo: bool) {
        let (set, tag) = Self::place(hash, from_lo);
        if let Some(i) = self.find(set, tag)
            && self.slots[i] & AGAIN == 0
        {
            self.slots[i] |= PENDING | AGAIN;
        }
    }

    /// The direction's first payload was a request's headers alone: its next payload is the
    /// body.
    pub fn expect_body(&mut self, hash: u64, from_lo: bool) {
        let (set, tag) = Self::place(hash, from_lo);
        if let Some(i) = self.find(set, tag) {
            self.slots[i] |= BODY;
        }
    }

    #[inline]
    pub fn payload(&mut self, hash: u64, from_lo: bool, tcp: bool) -> First {
        let (set, tag) = Self::place(hash, from_lo);
        match self.find(set, tag) {
            Some(i) if self.slots[i] & PENDING != 0 => {
                self.slots[i] &= !PENDING;
                First::Identify
            }
            Some(i) if self.slots[i] & BODY != 0 => {
                self.slots[i] &= !BODY;
                First::Body
            }
            Some(_) => First::Skip,
            None => {
                self.insert(set, tag, 0);
                if tcp { First::Skip } else { First::Identify }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_direction_is_identified_once_after_its_opening_and_never_from_mid_stream() {
        let mut t = FirstPayloads::new();
        t.opening(42, true);
        assert_eq!(t.payload(42, true, true), First::Identify);
        assert_eq!(t.payload(42, true, true), First::Skip);
        // The other direction never had its SYN-ACK seen: mid-stream.
        assert_eq!(t.payload(42, false, true), First::Skip);
        assert_eq!(t.payload(42, false, true), First::Skip);
    }

    #[test]
    fn a_direction_gets_one_second_look_and_no_more() {
        let mut t = FirstPayloads::new();
        t.opening(42, false);
        assert_eq!(t.payload(42, false, true), First::Identify);
        t.again(42, false);
        assert_eq!(t.payload(42, false, true), First::Identify, "the payload after a length prefix");
        t.again(42, false);
        assert_eq!(t.payload(42, false, true), First::Skip, "one second look only");
        t.again(7, true);
        assert_eq!(t.payload(7, true, true), First::Skip, "a direction never seen opening gets none");
    }

    #[test]
    fn the_payload_after_headers_alone_is_the_body_once() {
        let mut t = FirstPayloads::new();
        t.opening(5, true);
        assert_eq!(t.payload(5, true, true), First::Identify);
        t.expect_body(5, true);
        assert_eq!(t.payload(5, true, true), First::Body);
        assert_eq!(t.payload(5, true, true), First::Skip);
    }

    #[test]
    fn a_udp_direction_is_identified_at_its_first_datagram() {
        let mut t = FirstPayloads::new();
        assert_eq!(t.payload(7, false, false), First::Identify);
        assert_eq!(t.payload(7, false, false), First::Skip);
        assert_eq!(t.payload(7, true, false), First::Identify);
    }
}
