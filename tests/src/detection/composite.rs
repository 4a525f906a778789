//! Composite inputs: days of one host's ordinary traffic, then an episode on the same host, built
//! from corpus captures (the regression table of exfiltration after a learned baseline).
//!
//! - [`Background`]: benign captures placed one after another on one host for hours: *dense*
//!   (a copy about every minute) or *sparse* (a copy about every half hour, so the host is active
//!   in under 10 % of its minutes), each copy a capture picked at random. Each copy is cut to
//!   [`COPY_MAX_S`], the capture's client
//!   (the address that opens the most TCP connections) is renamed to the host, the host's ports are shifted per copy (every copy is a new
//!   connection) and the spacing is jittered by ±30 %, so that nothing in the background is
//!   periodic.
//! - [`Upload`]: the upload conversation of an exfiltration capture (the uploader and the peer it
//!   sent the most to, both directions), the uploader renamed to the host and the peer to a
//!   peer the background never talks to. [`Upload::paced`] repeats it as new connections (ports
//!   shifted) until a volume is reached, spread over a duration with jittered spacing; a copy
//!   longer than its share of the duration is compressed in time to fit.
//!
//! Every rewrite keeps IPv4, TCP and UDP checksums valid (RFC 1624 adjustments, see
//! [`super::long_input::rewrite_ipv4`]). IPv6 frames and frames of other addresses are copied as
//! they are. Times are µs from [`super::long_input::EPOCH_S`] (a Monday, 00:00 UTC).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use super::long_input::{EPOCH_S, Frame, read_ethernet, rewrite_ipv4};

/// Longest part of a benign capture one copy keeps, in seconds.
pub const COPY_MAX_S: u64 = 45;
/// A peer no corpus capture talks to (TEST-NET-2): the upload's destination.
pub const NEW_PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

/// A deterministic generator (xorshift64*), so that a composite is the same every time.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `x` jittered by up to ±`share`.
    pub fn jitter(&mut self, x: f64, share: f64) -> f64 {
        x * (1.0 + share * (2.0 * self.unit() - 1.0))
    }
}

/// Where the IPv4 header of an Ethernet frame starts (after up to two VLAN tags).
fn ipv4_at(frame: &[u8]) -> Option<usize> {
    let mut at = 12;
    for _ in 0..3 {
        match frame.get(at..at + 2)? {
            [0x81, 0x00] | [0x88, 0xa8] => at += 4,
            [0x08, 0x00] => return (frame.get(at + 2)? >> 4 == 4).then_some(at + 2),
            _ => return None,
        }
    }
    None
}

/// Source and destination of an IPv4 frame, and its IP length.
#[must_use]
pub fn ipv4_endpoints(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u64)> {
    let ip = ipv4_at(frame)?;
    let h = frame.get(ip..ip + 20)?;
    let len = u64::from(u16::from_be_bytes([h[2], h[3]]));
    Some((Ipv4Addr::new(h[12], h[13], h[14], h[15]), Ipv4Addr::new(h[16], h[17], h[18], h[19]), len))
}

/// Replaces `host`'s TCP or UDP port in `frame` by `port_of(old)` (source port when the frame
/// is from `host`, destination port when it is to it), adjusting the checksum.
pub fn shift_host_port(frame: &mut [u8], host: Ipv4Addr, port_of: impl Fn(u16) -> u16) {
    let Some(ip) = ipv4_at(frame) else { return };
    let Some((src, dst, _)) = ipv4_endpoints(frame) else { return };
    let ihl = usize::from(frame[ip] & 0x0f) * 4;
    let proto = frame[ip + 9];
    let fragment_offset = u16::from_be_bytes([frame[ip + 6], frame[ip + 7]]) & 0x1fff;
    if fragment_offset != 0 || !matches!(proto, 6 | 17) {
        return;
    }
    let l4 = ip + ihl;
    let at = if src == host {
        l4
    } else if dst == host {
        l4 + 2
    } else {
        return;
    };
    let sum_at = if proto == 6 { l4 + 16 } else { l4 + 6 };
    let (Some(old), true) =
        (frame.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])), frame.len() >= sum_at + 2)
    else {
        return;
    };
    let new = port_of(old);
    frame[at..at + 2].copy_from_slice(&new.to_be_bytes());
    let old_sum = u16::from_be_bytes([frame[sum_at], frame[sum_at + 1]]);
    if proto == 17 && old_sum == 0 {
        return;
    }
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
    let mut sum = u32::from(!old_sum) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut out = !(sum as u16);
    if proto == 17 && out == 0 {
        out = 0xffff;
    }
    frame[sum_at..sum_at + 2].copy_from_slice(&out.to_be_bytes());
}

/// The client of a capture: the IPv4 address that sent the most TCP SYNs (without ACK), or the
/// busiest one when there is none. (Renaming the busiest address of a two-party capture would
/// as often pick the server.)
#[must_use]
pub fn client_address(frames: &[Frame]) -> Option<Ipv4Addr> {
    let mut syns: BTreeMap<Ipv4Addr, u64> = BTreeMap::new();
    for f in frames {
        let (Some(ip), Some((src, _, _))) = (ipv4_at(&f.data), ipv4_endpoints(&f.data)) else { continue };
        let ihl = usize::from(f.data[ip] & 0x0f) * 4;
        if f.data[ip + 9] == 6 && f.data.get(ip + ihl + 13).is_some_and(|flags| flags & 0x12 == 0x02) {
            *syns.entry(src).or_default() += 1;
        }
    }
    syns.into_iter()
        .max_by_key(|(ip, n)| (*n, std::cmp::Reverse(*ip)))
        .map(|(ip, _)| ip)
        .or_else(|| busiest_address(frames))
}

/// The IPv4 address in the most frames of `frames`.
#[must_use]
pub fn busiest_address(frames: &[Frame]) -> Option<Ipv4Addr> {
    let mut count: BTreeMap<Ipv4Addr, u64> = BTreeMap::new();
    for f in frames {
        if let Some((s, d, _)) = ipv4_endpoints(&f.data) {
            *count.entry(s).or_default() += 1;
            *count.entry(d).or_default() += 1;
        }
    }
    count.into_iter().max_by_key(|(ip, n)| (*n, std::cmp::Reverse(*ip))).map(|(ip, _)| ip)
}

/// A port for copy `n` of a connection whose host port was `old`: in 20000–59999, different for
/// every copy (up to 40 000 copies) and every old port.
pub fn copy_port(old: u16, n: u64) -> u16 {
    let base = (u64::from(old) * 7_919 + n * 104_729) % 40_000;
    u16::try_from(20_000 + base).unwrap_or(20_000)
}

/// One benign capture ready to be copied onto the host.
#[derive(Debug, Clone)]
struct Piece {
    frames: Vec<Frame>,
    host: Ipv4Addr,
}

/// Days of one host's ordinary traffic.
#[derive(Debug, Clone)]
pub struct Background {
    pieces: Vec<Piece>,
    /// The host everything is renamed to.
    pub host: Ipv4Addr,
    /// Mean seconds between copies.
    pub every_s: f64,
    seed: u64,
}

impl Background {
    /// The captures at `paths`, their busiest addresses put on `host`, one copy about every
    /// `every_s` seconds.
    pub fn new(paths: &[&Path], host: Ipv4Addr, every_s: f64, seed: u64) -> Result<Self> {
        let mut pieces = Vec::new();
        for path in paths {
            let frames = read_ethernet(path)?;
            let first = frames.first().with_context(|| format!("{}: no packets", path.display()))?.ts_us;
            let frames: Vec<Frame> = frames
                .into_iter()
                .filter(|f| f.ts_us.saturating_sub(first) < COPY_MAX_S * 1_000_000)
                .collect();
            let client = client_address(&frames).with_context(|| format!("{}: no IPv4", path.display()))?;
            pieces.push(Piece { frames, host: client });
        }
        if pieces.is_empty() {
            bail!("a background needs at least one capture");
        }
        Ok(Self { pieces, host, every_s, seed })
    }

    /// The background's frames from `from_s` to `to_s` seconds after the epoch. The same
    /// background gives the same frames for the same range, whatever ranges were asked before.
    #[must_use]
    pub fn frames(&self, from_s: u64, to_s: u64) -> Vec<Frame> {
        let mut rng = Rng::new(self.seed);
        let mut out = Vec::new();
        let mut t = 0.0f64;
        let mut n = 0u64;
        while (t as u64) < to_s {
            let start = t as u64;
            // A random capture each time: a fixed rotation would bring each server back at a
            // steady period, which is a beacon.
            let pick = ((rng.unit() * self.pieces.len() as f64) as usize).min(self.pieces.len() - 1);
            let piece = &self.pieces[pick];
            let gap = rng.jitter(self.every_s, 0.3);
            if start >= from_s {
                let first = piece.frames.first().map_or(0, |f| f.ts_us);
                let map = BTreeMap::from([(piece.host, self.host)]);
                for f in &piece.frames {
                    let ts_us = (EPOCH_S + start) * 1_000_000 + (f.ts_us - first);
                    if ts_us >= (EPOCH_S + to_s) * 1_000_000 {
                        break;
                    }
                    let mut data = f.data.clone();
                    rewrite_ipv4(&mut data, &map);
                    shift_host_port(&mut data, self.host, |p| if p < 1024 { p } else { copy_port(p, n) });
                    out.push(Frame { ts_us, data });
                }
            }
            t += gap;
            n += 1;
        }
        out.sort_by_key(|f| f.ts_us);
        out
    }
}

/// The upload conversation of an exfiltration capture, on the host and the new peer.
#[derive(Debug, Clone)]
pub struct Upload {
    frames: Vec<Frame>,
    /// The host.
    pub host: Ipv4Addr,
    /// IP bytes the host sends in one copy.
    pub bytes_per_copy: u64,
    /// Seconds one copy lasts.
    pub copy_s: f64,
}

impl Upload {
    /// The conversation of `uploader` with the peer it sends the most to in `path`, renamed to
    /// `host` and [`NEW_PEER`].
    pub fn from_capture(path: &Path, uploader: Ipv4Addr, host: Ipv4Addr) -> Result<Self> {
        let frames = read_ethernet(path)?;
        let mut sent: BTreeMap<Ipv4Addr, u64> = BTreeMap::new();
        for f in &frames {
            if let Some((s, d, len)) = ipv4_endpoints(&f.data)
                && s == uploader
            {
                *sent.entry(d).or_default() += len;
            }
        }
        let (peer, _) = sent
            .into_iter()
            .max_by_key(|(ip, n)| (*n, std::cmp::Reverse(*ip)))
            .with_context(|| format!("{}: {uploader} sends nothing over IPv4", path.display()))?;
        if peer == uploader {
            bail!("{}: {uploader} uploads to itself (loopback): cannot rename", path.display());
        }
        let map = BTreeMap::from([(uploader, host), (peer, NEW_PEER)]);
        let mut out = Vec::new();
        let mut bytes = 0;
        for f in frames {
            let Some((s, d, len)) = ipv4_endpoints(&f.data) else { continue };
            if !((s == uploader && d == peer) || (s == peer && d == uploader)) {
                continue;
            }
            if s == uploader {
                bytes += len;
            }
            let mut data = f.data;
            rewrite_ipv4(&mut data, &map);
            out.push(Frame { ts_us: f.ts_us, data });
        }
        let first = out.first().map_or(0, |f| f.ts_us);
        let last = out.last().map_or(0, |f| f.ts_us);
        Ok(Self { frames: out, host, bytes_per_copy: bytes, copy_s: (last - first) as f64 / 1e6 })
    }

    /// Copies (new connections) from `start_s` on until `total` bytes are sent, spread over
    /// `duration_s` with jittered spacing; returns the frames and the time of the last one (µs).
    #[must_use]
    pub fn paced(&self, total: u64, duration_s: u64, start_s: u64, seed: u64) -> (Vec<Frame>, u64) {
        let copies = total.div_ceil(self.bytes_per_copy.max(1)).max(1);
        let share = duration_s as f64 / copies as f64;
        // A copy longer than its share is compressed to 80 % of the share.
        let squeeze = if self.copy_s > 0.8 * share { 0.8 * share / self.copy_s } else { 1.0 };
        let mut rng = Rng::new(seed);
        let first = self.frames.first().map_or(0, |f| f.ts_us);
        let mut out = Vec::new();
        for n in 0..copies {
            // Copy n starts in its slot, jittered within the slot's free part.
            let slack = (share - self.copy_s * squeeze).max(0.0);
            let at = start_s as f64 + n as f64 * share + rng.unit() * slack;
            for f in &self.frames {
                let offset = (f.ts_us - first) as f64 * squeeze;
                let ts_us = ((EPOCH_S as f64 + at) * 1e6 + offset) as u64;
                let mut data = f.data.clone();
                shift_host_port(&mut data, self.host, |p| copy_port(p, n + 1));
                out.push(Frame { ts_us, data });
            }
        }
        out.sort_by_key(|f| f.ts_us);
        let end = out.last().map_or(0, |f| f.ts_us);
        (out, end)
    }
}

/// Merges frame lists by time.
#[must_use]
pub fn merge(mut a: Vec<Frame>, b: Vec<Frame>) -> Vec<Frame> {
    a.extend(b);
    a.sort_by_key(|f| f.ts_us);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + TCP (20-byte header, valid checksums), 10.0.0.1:40000 → 10.0.0.2:443.
    fn tcp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let ip = [0x45, 0, 0, 44, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        f.extend_from_slice(&ip);
        let mut tcp =
            vec![0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0];
        tcp.extend_from_slice(b"data");
        f.extend_from_slice(&tcp);
        let sum = tcp_checksum(&f[14..34], &f[34..]);
        f[50..52].copy_from_slice(&sum.to_be_bytes());
        f
    }

    fn tcp_checksum(ip: &[u8], seg: &[u8]) -> u16 {
        let mut zeroed = seg.to_vec();
        zeroed[16..18].fill(0);
        let words = |b: &[u8]| -> u32 {
            b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))).sum()
        };
        let mut sum = words(&ip[12..20]) + 6 + u32::try_from(seg.len()).unwrap_or(0) + words(&zeroed);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn shifting_the_host_port_keeps_the_tcp_checksum_valid() {
        let mut f = tcp_frame();
        shift_host_port(&mut f, Ipv4Addr::new(10, 0, 0, 1), |_| 23_456);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 23_456);
        assert_eq!(u16::from_be_bytes([f[50], f[51]]), tcp_checksum(&f[14..34], &f[34..]));
        let before = f.clone();
        shift_host_port(&mut f, Ipv4Addr::new(10, 9, 9, 9), |_| 1);
        assert_eq!(f, before, "a frame of other hosts is left alone");
    }

    #[test]
    fn copies_get_distinct_ports_and_jitter_stays_within_its_share() {
        let ports: std::collections::BTreeSet<u16> = (1..=500).map(|n| copy_port(40_000, n)).collect();
        assert_eq!(ports.len(), 500);
        let mut r = Rng::new(7);
        for _ in 0..1_000 {
            let j = r.jitter(60.0, 0.3);
            assert!((42.0..=78.0).contains(&j), "{j}");
        }
    }
}
