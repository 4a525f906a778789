//! What one host sent to each outside peer it uploads to, over sliding windows of 10 min,
//! 30 min, 6 h and 24 h, and whether that peer was new to the host.
//!
//! A peer is followed from the first bucket in which the host sent it at least
//! [`TRACK_MIN_BYTES`] (or when already followed): its buckets of the last 30 minutes one by
//! one, older ones summed into 10-minute blocks, nothing older than 24 hours. So a window's
//! volume is exact to the bucket for 10 and 30 minutes and to 10 minutes for 6 and 24 hours.
//! Each host follows at most [`MAX_TRACKED`] peers; a newcomer replaces the peer with the least
//! sent over 24 hours when it sends more. Memory: at most 174 entries of 20 bytes per peer.
//!
//! Not saved with the baseline: after a restart the windows start empty (the peers' novelty is
//! kept, in the baseline's seen-sets).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use crate::detect::host::{FlowRef, Map, PeerAcc};

/// Bytes to a peer in one bucket from which it is followed.
pub const TRACK_MIN_BYTES: u64 = 32 * 1024;
/// Peers followed per host at most.
pub const MAX_TRACKED: usize = 32;
/// Span of single buckets, ns (30 min).
const RECENT_NS: u64 = 1_800_000_000_000;
/// Length of a block, ns (10 min).
const BLOCK_NS: u64 = 600_000_000_000;
/// Longest window, ns (24 h).
const LONGEST_NS: u64 = 86_400_000_000_000;

/// How new a peer was when the host first sent it much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Novelty {
    /// The address had not been seen by the host before.
    pub new_addr: bool,
    /// The registered domain DNS gave for the address, if any.
    pub domain: Option<Arc<str>>,
    /// That domain had been contacted by the host before.
    pub domain_known: bool,
    /// When the host first talked to the address (its first bucket with it), ns.
    pub first_contact_ns: u64,
}

/// How long after the window's span a peer still counts as new: the time an upload may take to
/// get going after the first contact (a login, a handshake, a first small request).
pub const NEW_GRACE_NS: u64 = 1_800_000_000_000;

impl Novelty {
    /// New for the host: an address it never talked to, under no domain it talked to.
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.new_addr && !self.domain_known
    }

    /// New, and first met recently enough that everything sent within a window of `window_s`
    /// ending at `now_ns` went to it while it was new: no longer than the window plus
    /// [`NEW_GRACE_NS`] ago. A peer the host has used for days is not new however it was met.
    #[must_use]
    pub fn is_new_for(&self, now_ns: u64, window_s: u64) -> bool {
        self.is_new()
            && now_ns.saturating_sub(self.first_contact_ns)
                <= window_s.saturating_mul(1_000_000_000).saturating_add(NEW_GRACE_NS)
    }
}

/// Bytes of one bucket or block: uploaded (in flows that looked like uploads), all sent, all
/// received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    /// Sent in flows that looked like uploads.
    pub upload: u64,
    /// Sent in all flows.
    pub out: u64,
    /// Received in all flows.
    pub inn: u64,
}

impl std::ops::AddAssign for Sums {
    fn add_assign(&mut self, o: Self) {
        self.upload += o.upload;
        self.out += o.out;
        self.inn += o.inn;
    }
}

/// One followed peer.
#[derive(Debug, Clone)]
pub struct Track {
    /// (bucket end, sums) of the last 30 min, oldest first.
    recent: VecDeque<(u64, Sums)>,
    /// (block start, sums) of 10-min blocks before that, oldest first; a block holds the
    /// buckets that ended in (start, start + 10 min].
    blocks: VecDeque<(u64, Sums)>,
    /// When it was first followed, ns.
    pub first_ns: u64,
    /// Its novelty then.
    pub novelty: Novelty,
    /// Server port and transport of its largest upload flow.
    pub port: Option<u16>,
    /// IANA transport number of that flow.
    pub proto: u8,
    /// A few of its flows, for the evidence.
    pub flows: Vec<FlowRef>,
    /// Bucket end in which it last got bytes.
    pub last_ns: u64,
    /// The largest upload window seen so far, per window, and the largest while the peer was
    /// new (see [`Novelty::is_new_for`]).
    pub max_windows: [u64; 4],
    /// The same while new.
    pub max_new_windows: [u64; 4],
    /// Some window went over its floor: this peer's volume is never learned as normal.
    pub suspect: bool,
    /// Its maxima were handed to the host's highs (once, after it fell quiet).
    pub learned: bool,
}

impl Track {
    fn new(first_ns: u64, novelty: Novelty) -> Self {
        Self {
            recent: VecDeque::new(),
            blocks: VecDeque::new(),
            first_ns,
            novelty,
            port: None,
            proto: 0,
            flows: Vec::new(),
            last_ns: first_ns,
            max_windows: [0; 4],
            max_new_windows: [0; 4],
            suspect: false,
            learned: false,
        }
    }

    /// Whether it has been quiet for `quiet_ns` by `now_ns` (its upload, if any, is over).
    #[must_use]
    pub fn quiet(&self, now_ns: u64, quiet_ns: u64) -> bool {
        now_ns.saturating_sub(self.last_ns) >= quiet_ns
    }

    /// Adds a bucket ending at `end_ns`, and moves what is older than 30 min into blocks.
    fn add(&mut self, end_ns: u64, sums: Sums) {
        self.recent.push_back((end_ns, sums));
        while let Some(&(t, s)) = self.recent.front() {
            if end_ns.saturating_sub(t) < RECENT_NS {
                break;
            }
            self.recent.pop_front();
            // A bucket ending at t covers (t − bucket, t]: it belongs to the block whose
            // (start, start + 10 min] holds t.
            let block = t.saturating_sub(1) - t.saturating_sub(1) % BLOCK_NS;
            match self.blocks.back_mut() {
                Some(b) if b.0 == block => b.1 += s,
                _ => self.blocks.push_back((block, s)),
            }
        }
        while self.blocks.front().is_some_and(|b| end_ns.saturating_sub(b.0) > LONGEST_NS) {
            self.blocks.pop_front();
        }
        self.last_ns = end_ns;
    }

    /// The sums within the last `window_s` seconds before `now_ns`.
    #[must_use]
    pub fn window(&self, now_ns: u64, window_s: u64) -> Sums {
        let from = now_ns.saturating_sub(window_s.saturating_mul(1_000_000_000));
        let mut sum = Sums::default();
        for (_, s) in self.recent.iter().filter(|e| e.0 > from) {
            sum += *s;
        }
        // A block counts when it starts inside the window (its end is then inside too, since
        // blocks end before the recent buckets start).
        for (_, s) in self.blocks.iter().filter(|b| b.0 >= from) {
            sum += *s;
        }
        sum
    }

    /// Whether anything of it is left within 24 h of `now_ns`.
    fn alive(&self, now_ns: u64) -> bool {
        now_ns.saturating_sub(self.last_ns) <= LONGEST_NS
    }
}

/// Peers remembered as new (first contact within a day) per host at most.
pub const MAX_FRESH: usize = 256;

/// Every followed peer of one host.
#[derive(Debug, Clone, Default)]
pub struct PeerUploads {
    tracks: Map<IpAddr, Track>,
    /// Peers the host met for the first time within the last 24 h, with when: a peer is new
    /// for the whole of its first day, not only in the bucket of its first packet (an upload
    /// often starts with a handshake too small to be followed).
    fresh: Map<IpAddr, u64>,
    /// Peers not followed because the table was full and they sent less than every followed one.
    pub dropped: u64,
}

impl PeerUploads {
    /// Adds the bucket's per-peer bytes (`peers`, the bucket's accumulators) ending at
    /// `end_ns`; `novelty` says how new a peer is when it starts being followed (a peer met for
    /// the first time within the last day is new whatever it says). Returns the peers that got
    /// bytes in this bucket, in address order.
    pub fn absorb(
        &mut self,
        peers: &Map<IpAddr, PeerAcc>,
        end_ns: u64,
        mut novelty: impl FnMut(IpAddr, &PeerAcc) -> Novelty,
    ) -> Vec<IpAddr> {
        self.tracks.retain(|_, t| t.alive(end_ns));
        self.fresh.retain(|_, first| end_ns.saturating_sub(*first) <= LONGEST_NS);
        for (ip, acc) in peers {
            if acc.new_addr && !self.fresh.contains_key(ip) {
                if self.fresh.len() >= MAX_FRESH {
                    // Full: the oldest first contact goes.
                    if let Some(oldest) = self.fresh.iter().min_by_key(|(a, t)| (**t, **a)).map(|(a, _)| *a) {
                        self.fresh.remove(&oldest);
                    }
                }
                self.fresh.insert(*ip, end_ns);
            }
        }
        let mut touched = Vec::new();
        let mut sorted: Vec<(&IpAddr, &PeerAcc)> = peers.iter().filter(|(_, a)| a.bytes_out > 0).collect();
        sorted.sort_by_key(|(ip, _)| **ip);
        for (ip, acc) in sorted {
            if !self.tracks.contains_key(ip) {
                if acc.bytes_out < TRACK_MIN_BYTES {
                    continue;
                }
                if self.tracks.len() >= MAX_TRACKED && !self.make_room(end_ns, acc.bytes_out) {
                    self.dropped += 1;
                    continue;
                }
                let mut n = novelty(*ip, acc);
                n.first_contact_ns = end_ns;
                if let Some(first) = self.fresh.get(ip) {
                    n.new_addr = true;
                    n.first_contact_ns = *first;
                }
                self.tracks.insert(*ip, Track::new(end_ns, n));
            }
            let Some(t) = self.tracks.get_mut(ip) else { continue };
            t.add(end_ns, Sums { upload: acc.upload_out, out: acc.bytes_out, inn: acc.bytes_in });
            if acc.port.is_some() {
                t.port = acc.port;
                t.proto = acc.proto;
            }
            for f in &acc.flows {
                if t.flows.len() < 4 && !t.flows.contains(f) {
                    t.flows.push(*f);
                }
            }
            touched.push(*ip);
        }
        touched
    }

    /// Forgets the followed peer with the least sent over 24 h if that is less than `bytes`.
    fn make_room(&mut self, now_ns: u64, bytes: u64) -> bool {
        let smallest = self.tracks.iter().map(|(ip, t)| (t.window(now_ns, 86_400).out, *ip)).min();
        match smallest {
            Some((sent, ip)) if sent < bytes => {
                self.tracks.remove(&ip);
                true
            }
            _ => false,
        }
    }

    /// The followed peer `ip`.
    #[must_use]
    pub fn get(&self, ip: &IpAddr) -> Option<&Track> {
        self.tracks.get(ip)
    }

    /// The followed peer `ip`, to update its maxima.
    pub fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut Track> {
        self.tracks.get_mut(ip)
    }

    /// Every followed peer.
    pub fn tracks_mut(&mut self) -> impl Iterator<Item = &mut Track> {
        self.tracks.values_mut()
    }

    /// Peers followed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// Whether none is followed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_704_067_200 * 1_000_000_000;
    const MIN: u64 = 60_000_000_000;

    fn acc(out: u64) -> PeerAcc {
        PeerAcc {
            bytes_out: out,
            bytes_in: out / 50,
            upload_out: out,
            port: Some(443),
            proto: 6,
            ..PeerAcc::default()
        }
    }

    fn fresh(_: IpAddr, _: &PeerAcc) -> Novelty {
        Novelty { new_addr: true, domain: None, domain_known: false, first_contact_ns: 0 }
    }

    #[test]
    fn windows_sum_the_right_buckets_over_a_six_hour_upload() {
        let peer = IpAddr::from([203, 0, 113, 9]);
        let mut u = PeerUploads::default();
        // 70 kB a minute for six hours.
        for m in 1..=360 {
            let peers = Map::from_iter([(peer, acc(70_000))]);
            assert_eq!(u.absorb(&peers, T0 + m * MIN, fresh), vec![peer]);
        }
        let t = u.get(&peer).expect("followed");
        let now = T0 + 360 * MIN;
        assert_eq!(t.window(now, 600).upload, 10 * 70_000);
        assert_eq!(t.window(now, 1_800).out, 30 * 70_000);
        let six = t.window(now, 6 * 3_600).upload;
        assert!((six as i64 - 360 * 70_000).abs() <= 10 * 70_000, "{six}");
        assert!(t.novelty.is_new());
    }

    #[test]
    fn small_peers_are_not_followed_and_a_full_table_keeps_the_biggest() {
        let mut u = PeerUploads::default();
        let small = Map::from_iter([(IpAddr::from([198, 51, 100, 1]), acc(1_000))]);
        assert!(u.absorb(&small, T0 + MIN, fresh).is_empty());
        for i in 0..MAX_TRACKED as u8 {
            let peers = Map::from_iter([(IpAddr::from([198, 51, 100, 10 + i]), acc(40_000 + u64::from(i)))]);
            u.absorb(&peers, T0 + 2 * MIN, fresh);
        }
        assert_eq!(u.len(), MAX_TRACKED);
        let big = IpAddr::from([203, 0, 113, 1]);
        u.absorb(&Map::from_iter([(big, acc(5_000_000))]), T0 + 3 * MIN, fresh);
        assert!(u.get(&big).is_some());
        assert!(u.get(&IpAddr::from([198, 51, 100, 10])).is_none(), "the smallest made room");
        assert_eq!(u.len(), MAX_TRACKED);
    }

    #[test]
    fn a_peer_silent_for_a_day_is_forgotten() {
        let mut u = PeerUploads::default();
        let peer = IpAddr::from([203, 0, 113, 9]);
        u.absorb(&Map::from_iter([(peer, acc(100_000))]), T0 + MIN, fresh);
        u.absorb(&Map::default(), T0 + 25 * 60 * MIN, fresh);
        assert!(u.is_empty());
    }
}
