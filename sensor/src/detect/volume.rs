//! A host's outbound volume over days, for the volume rules of [`super::exfiltration`]:
//! hourly totals for the last two weeks and the highs the host reached before.
//!
//! - **Hours**: outbound bytes per clock hour (absolute UTC hours; the site's local slot of
//!   each is computed when needed, see [`super::clock`]), the last [`HISTORY_HOURS`] of them,
//!   each flagged when any of its buckets was a candidate of a volume rule. Flagged hours are
//!   kept (they are what happened) but never used as "normal": an ongoing upload cannot raise
//!   its own threshold. Idle hours count as zero: a host that sends 2 MB a day is judged
//!   against 2 MB a day, not against its few busy minutes.
//! - **Highs**: the largest value the host reached, in buckets that were not candidates, of a
//!   few quantities (bytes in one bucket; bytes to one peer within 10 min, 30 min, 6 h and
//!   24 h, for any peer and for peers new to the host), decayed with a half-life of [`HIGH_HALF_LIFE_DAYS`] so that one old burst does
//!   not excuse uploads for ever.
//!
//! Everything is plain data with serde defaults, saved with the baseline; a state written
//! before these fields existed loads with empty history (the host then relies on the absolute
//! floors until it has some).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Hours of history kept: two weeks, so that every hour-of-day slot of both weekday and
/// weekend has a few earlier days to compare with.
pub const HISTORY_HOURS: usize = 14 * 24;
/// Half-life of the decayed highs, in days.
pub const HIGH_HALF_LIFE_DAYS: f64 = 7.0;
/// One hour in ns.
pub const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: f64 = 86_400e9;

/// The window lengths of the per-peer highs: 10 min, 30 min, 6 h, 24 h.
pub const PEER_WINDOWS_S: [u64; 4] = [600, 1_800, 6 * 3_600, 24 * 3_600];

/// One hour's outbound bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourTotal {
    /// Bytes sent to outside peers.
    pub bytes: u64,
    /// Some bucket of the hour was a candidate of a volume rule.
    pub suspect: bool,
}

/// A maximum that fades: `value × 2^(−Δt / half-life)`, raised by anything larger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DecayedHigh {
    /// The value at `at_ns`.
    pub value: f64,
    /// When it was last set or raised, ns since the epoch.
    pub at_ns: u64,
}

impl DecayedHigh {
    /// The high as of `now_ns`.
    #[must_use]
    pub fn at(&self, now_ns: u64) -> f64 {
        let days = now_ns.saturating_sub(self.at_ns) as f64 / DAY_NS;
        self.value * (-days / HIGH_HALF_LIFE_DAYS * std::f64::consts::LN_2).exp()
    }

    /// Raises the high to `x` if `x` is above its decayed value.
    pub fn offer(&mut self, x: f64, now_ns: u64) {
        if x > self.at(now_ns) {
            self.value = x;
            self.at_ns = now_ns;
        }
    }
}

/// The outbound history of one host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeHistory {
    /// Absolute hour (`ns / HOUR_NS`) of the last entry of `hours`.
    pub last_hour: u64,
    /// Hourly totals, oldest first; the last one is `last_hour` (the hour in progress, when the
    /// host is active in it).
    pub hours: VecDeque<HourTotal>,
    /// Highest bytes in one bucket (not a candidate).
    pub bucket_high: DecayedHigh,
    /// Highest bytes to one peer within each of [`PEER_WINDOWS_S`] (not a candidate).
    pub peer_high: [DecayedHigh; 4],
    /// The same, counting only peers that were new to the host when it started sending them
    /// much: what this host usually uploads to a peer it has just met.
    pub new_peer_high: [DecayedHigh; 4],
}

impl VolumeHistory {
    /// Adds a bucket's outbound bytes, ending at `end_ns`, to its hour. Hours between the last
    /// one and this one are idle (zero).
    pub fn add(&mut self, end_ns: u64, bytes: u64, suspect: bool) {
        // A bucket ending exactly on the hour belongs to the hour before.
        let hour = end_ns.saturating_sub(1) / HOUR_NS;
        if self.hours.is_empty() {
            self.last_hour = hour;
            self.hours.push_back(HourTotal::default());
        } else if hour > self.last_hour {
            let gap = (hour - self.last_hour).min(HISTORY_HOURS as u64);
            for _ in 0..gap {
                self.hours.push_back(HourTotal::default());
            }
            self.last_hour = hour;
            while self.hours.len() > HISTORY_HOURS {
                self.hours.pop_front();
            }
        }
        // A bucket older than the last hour (a clock that went back) counts in the last hour.
        if let Some(last) = self.hours.back_mut() {
            last.bytes = last.bytes.saturating_add(bytes);
            last.suspect |= suspect;
        }
    }

    /// The hourly totals with their absolute hour, oldest first.
    pub fn hours(&self) -> impl Iterator<Item = (u64, HourTotal)> + '_ {
        let first = (self.last_hour + 1).saturating_sub(self.hours.len() as u64);
        self.hours.iter().enumerate().map(move |(i, h)| (first + i as u64, *h))
    }

    /// Bytes over the last `hours` hours up to `now_ns` (the hour in progress included).
    #[must_use]
    pub fn window(&self, now_ns: u64, hours: u64) -> u64 {
        let now_hour = now_ns.saturating_sub(1) / HOUR_NS;
        let from = (now_hour + 1).saturating_sub(hours);
        self.hours().filter(|(h, _)| *h >= from && *h <= now_hour).map(|(_, t)| t.bytes).sum()
    }

    /// Whole days of history before the hour in progress.
    #[must_use]
    pub fn days_of_history(&self) -> usize {
        self.hours.len().saturating_sub(1) / 24
    }

    /// Totals of the last complete days (24-hour blocks ending before the hour in progress),
    /// newest first, leaving out any day with a suspect hour.
    #[must_use]
    pub fn daily_totals(&self) -> Vec<u64> {
        let complete: Vec<HourTotal> = self.hours.iter().rev().skip(1).copied().collect();
        complete
            .chunks_exact(24)
            .filter(|day| day.iter().all(|h| !h.suspect))
            .map(|day| day.iter().map(|h| h.bytes).sum())
            .collect()
    }

    /// The earlier totals (not suspect) of the hours whose slot `slot_of` says equals `slot`,
    /// the hour in progress excluded.
    #[must_use]
    pub fn slot_totals(&self, slot: usize, slot_of: impl Fn(u64) -> usize) -> Vec<u64> {
        self.hours()
            .filter(|(h, t)| *h < self.last_hour && !t.suspect && slot_of(*h * HOUR_NS) == slot)
            .map(|(_, t)| t.bytes)
            .collect()
    }
}

/// The median of `v` (0 when empty).
#[must_use]
pub fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => 0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_704_067_200 * 1_000_000_000;
    const MIN: u64 = 60_000_000_000;

    #[test]
    fn buckets_sum_into_hours_and_idle_hours_count_as_zero() {
        let mut v = VolumeHistory::default();
        v.add(T0 + MIN, 100, false);
        v.add(T0 + 2 * MIN, 50, false);
        v.add(T0 + 3 * HOUR_NS + MIN, 7, true);
        let hours: Vec<(u64, u64, bool)> =
            v.hours().map(|(h, t)| (h - T0 / HOUR_NS, t.bytes, t.suspect)).collect();
        assert_eq!(hours, vec![(0, 150, false), (1, 0, false), (2, 0, false), (3, 7, true)]);
        assert_eq!(v.window(T0 + 3 * HOUR_NS + 2 * MIN, 1), 7);
        assert_eq!(v.window(T0 + 3 * HOUR_NS + 2 * MIN, 6), 157);
    }

    #[test]
    fn history_keeps_two_weeks_and_days_leave_out_suspect_ones() {
        let mut v = VolumeHistory::default();
        for h in 0..(20 * 24) {
            // One hour of day 15 had an upload.
            let suspect = h / 24 == 15 && h % 24 == 5;
            v.add(T0 + h * HOUR_NS + MIN, 1_000, suspect);
        }
        assert_eq!(v.hours.len(), HISTORY_HOURS);
        let days = v.daily_totals();
        assert_eq!(days.len(), 12, "13 complete days before the hour in progress, one suspect");
        assert!(days.iter().all(|d| *d == 24_000));
    }

    #[test]
    fn a_decayed_high_halves_in_a_week_and_is_raised_by_larger_values() {
        let mut h = DecayedHigh::default();
        h.offer(1_000.0, T0);
        let week = 7 * 24 * HOUR_NS;
        assert!((h.at(T0 + week) - 500.0).abs() < 1.0);
        h.offer(600.0, T0 + week);
        assert!((h.at(T0 + week) - 600.0).abs() < 1e-9);
        h.offer(100.0, T0 + week);
        assert!((h.at(T0 + week) - 600.0).abs() < 1e-9);
    }

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&[5, 1, 9]), 5);
        assert_eq!(median(&[4, 1, 9, 2]), 3);
        assert_eq!(median(&[]), 0);
    }
}
