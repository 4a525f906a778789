//! The site's clock: which hour of the day and which kind of day a packet time falls on, for
//! baselines kept by hour of day (a nightly backup is normal at 02:00 on a weekday and not at
//! 15:00 on a Sunday).
//!
//! Time zones are IANA names read from the system's time zone database (Debian's tzdata) by
//! jiff, so daylight saving time moves the slots with the clock on the wall. The default is
//! UTC: a replay gives the same alerts on every machine unless the configuration says where
//! the sensor is (`detection.timezone`).

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;

/// Slots of the day: 24 hours on weekdays, 24 on weekends.
pub const SLOTS: usize = 48;

/// Converts packet times to local slots.
#[derive(Debug, Clone)]
pub struct SiteClock {
    tz: TimeZone,
    name: String,
}

impl Default for SiteClock {
    fn default() -> Self {
        Self { tz: TimeZone::UTC, name: "UTC".to_owned() }
    }
}

impl PartialEq for SiteClock {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl SiteClock {
    /// The clock of the IANA zone `name` ("UTC", "Europe/Berlin", ...); `None` when the system's
    /// time zone database does not know it.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("utc") {
            return Some(Self::default());
        }
        TimeZone::get(name).ok().map(|tz| Self { tz, name: name.to_owned() })
    }

    /// The zone's name as configured.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The slot of `ts_ns` (ns since the epoch): `hour + 24` on Saturdays and Sundays.
    #[must_use]
    pub fn slot(&self, ts_ns: u64) -> usize {
        let secs = i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
        let Ok(ts) = Timestamp::from_second(secs) else { return 0 };
        let local = ts.to_zoned(self.tz.clone());
        let weekend = matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday);
        usize::try_from(local.hour()).unwrap_or(0) + if weekend { 24 } else { 0 }
    }

    /// A slot's name for evidence: "weekday 02:00" or "weekend 15:00".
    #[must_use]
    pub fn slot_name(slot: usize) -> String {
        let kind = if slot >= 24 { "weekend" } else { "weekday" };
        format!("{kind} {:02}:00", slot % 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_NS: u64 = 3_600_000_000_000;
    /// 2024-01-01T00:00:00Z, a Monday.
    const MONDAY: u64 = 1_704_067_200 * 1_000_000_000;

    #[test]
    fn utc_slots_follow_the_hour_and_the_weekend() {
        let c = SiteClock::default();
        assert_eq!(c.slot(MONDAY + 2 * HOUR_NS + 1), 2);
        // Saturday 2024-01-06 15:30 UTC.
        assert_eq!(c.slot(MONDAY + (5 * 24 + 15) * HOUR_NS + HOUR_NS / 2), 24 + 15);
        assert_eq!(SiteClock::slot_name(24 + 15), "weekend 15:00");
    }

    #[test]
    fn a_named_zone_shifts_the_hour_and_an_unknown_one_is_refused() {
        let Some(berlin) = SiteClock::named("Europe/Berlin") else {
            // No tzdata on this machine: nothing to check beyond UTC.
            return;
        };
        // 23:30 UTC on Sunday is 00:30 on Monday in Berlin (UTC+1 in January).
        let sunday_late = MONDAY - HOUR_NS / 2;
        assert_eq!(berlin.slot(sunday_late), 0);
        assert_eq!(SiteClock::default().slot(sunday_late), 24 + 23);
        assert!(SiteClock::named("Mars/Olympus_Mons").is_none());
    }
}
