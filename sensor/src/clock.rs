//! The wall clock, where the sensor needs it (live capture, health checks,
//! delivery bookkeeping); everything that detection and flow expiry decide
//! takes its time from the packets instead.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ns since the Unix epoch (0 for a clock set before 1970).
#[must_use]
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
