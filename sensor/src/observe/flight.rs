//! A TLS server's first flight, joined across segments, for its certificate.
//!
//! For TLS 1.2 and earlier the server's certificate travels in clear right after its
//! ServerHello, over several TCP segments. When a server direction's first payload is a
//! ServerHello of such a version and does not hold the whole leaf certificate, its next
//! segments are appended to a buffer until [`crate::protocol::server_flight`] reads the
//! certificate, the buffer reaches [`MAX_BYTES`], or [`MAX_SEGMENTS`] segments came.
//!
//! Bounded: at most [`MAX_OPEN`] flights are joined at once (a new one is dropped, and counted,
//! when that many are open and none is older than [`MAX_AGE_NS`]). Whether a payload belongs to
//! an open flight is asked of a direct-mapped table of tags first, so the other payloads cost
//! one compare. Segments are taken in capture order: a flight whose segments came out of order
//! does not parse and is given up at its limits.

use crate::detect::host::Map;
use crate::protocol::{self, ServerFlight};

/// Flights joined at once at most.
pub const MAX_OPEN: usize = 256;
/// Bytes joined per flight at most (certificate chains are 2–8 kB).
pub const MAX_BYTES: usize = 16 * 1024;
/// Segments joined per flight at most.
pub const MAX_SEGMENTS: u32 = 12;
/// An open flight older than this may be dropped for a new one.
pub const MAX_AGE_NS: u64 = 10_000_000_000;

const MARKS: usize = 4_096;

#[derive(Debug)]
struct Open {
    buf: Vec<u8>,
    segments: u32,
    since_ns: u64,
}

/// The flights being joined.
#[derive(Debug)]
pub struct Flights {
    marks: Vec<u64>,
    open: Map<u64, Open>,
    /// Flights not joined because too many were open.
    pub dropped: u64,
}

impl Default for Flights {
    fn default() -> Self {
        Self::new()
    }
}

fn key(hash: u64, from_lo: bool) -> u64 {
    (hash ^ u64::from(from_lo).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
}

impl Flights {
    /// No open flight.
    #[must_use]
    pub fn new() -> Self {
        Self { marks: vec![0; MARKS], open: Map::default(), dropped: 0 }
    }

    /// The first server payload of a TLS flow: its flight if it is whole in it (or cannot hold a
    /// certificate), else `None` and the flight is joined from the next segments.
    pub fn first(&mut self, hash: u64, from_lo: bool, payload: &[u8], ts_ns: u64) -> Option<ServerFlight> {
        let flight = protocol::server_flight(payload)?;
        let pre_13 = flight.hello.is_some_and(|h| h.version < 0x0304);
        if flight.certificate.is_some() || !pre_13 {
            return Some(flight);
        }
        if self.open.len() >= MAX_OPEN {
            let old: Vec<u64> = self
                .open
                .iter()
                .filter(|(_, o)| ts_ns.saturating_sub(o.since_ns) > MAX_AGE_NS)
                .map(|(k, _)| *k)
                .collect();
            for k in old {
                self.close(k);
            }
            if self.open.len() >= MAX_OPEN {
                self.dropped += 1;
                return Some(flight);
            }
        }
        let k = key(hash, from_lo);
        self.marks[(k >> 40) as usize % MARKS] = k;
        let buf = payload.get(..MAX_BYTES).unwrap_or(payload).to_vec();
        self.open.insert(k, Open { buf, segments: 1, since_ns: ts_ns });
        None
    }

    /// A later payload of the direction: the flight when it is now complete or given up.
    #[inline]
    pub fn next(&mut self, hash: u64, from_lo: bool, payload: &[u8]) -> Option<ServerFlight> {
        let k = key(hash, from_lo);
        if self.marks[(k >> 40) as usize % MARKS] != k {
            return None;
        }
        let open = self.open.get_mut(&k)?;
        let room = MAX_BYTES.saturating_sub(open.buf.len());
        open.buf.extend_from_slice(payload.get(..room).unwrap_or(payload));
        open.segments += 1;
        let flight = protocol::server_flight(&open.buf);
        let done = flight.as_ref().is_some_and(|f| f.certificate.is_some())
            || open.buf.len() >= MAX_BYTES
            || open.segments >= MAX_SEGMENTS;
        if !done {
            return None;
        }
        self.close(k);
        flight
    }

    fn close(&mut self, k: u64) {
        self.open.remove(&k);
        let mark = &mut self.marks[(k >> 40) as usize % MARKS];
        if *mark == k {
            *mark = 0;
        }
    }
}
