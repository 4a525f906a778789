//! The packet-to-alert latency histogram: recorded with HdrHistogram (3 significant digits,
//! 1 µs to 1 h, fixed memory), exposed as a Prometheus histogram with fixed buckets.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Upper bounds of the exposed buckets, seconds; `+Inf` follows.
pub const BUCKETS_S: [f64; 13] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Longest latency recorded as itself; longer ones are recorded as this.
const MAX_US: u64 = 3_600_000_000;

#[derive(Debug)]
struct Inner {
    hist: Histogram<u64>,
    sum_us: u64,
}

/// A latency histogram shared between the stage that records and the metrics endpoint.
/// Recording takes a short lock: it is meant for alerts, not for packets.
#[derive(Debug)]
pub struct LatencyHistogram {
    inner: Mutex<Inner>,
}

/// The histogram as Prometheus wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of all values, seconds.
    pub sum_s: f64,
    /// Values recorded.
    pub count: u64,
    /// `(upper bound in seconds, values in this bucket and not in an earlier one)`; the last
    /// bound is `f64::MAX` (`+Inf`).
    pub buckets: Vec<(f64, u64)>,
}

/// Quantiles of a histogram, milliseconds (microsecond resolution, 3 significant digits).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencyQuantiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        // 1 µs .. 1 h at 3 significant digits is a valid HdrHistogram range: this cannot fail.
        let hist = Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| {
            Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
        });
        Self { inner: Mutex::new(Inner { hist, sum_us: 0 }) }
    }

    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_US);
        if let Ok(mut inner) = self.inner.lock() {
            inner.hist.saturating_record(us);
            inner.sum_us = inner.sum_us.saturating_add(us);
        }
    }

    /// Median, 99th percentile and maximum; `None` before the first value.
    #[must_use]
    pub fn quantiles(&self) -> Option<LatencyQuantiles> {
        let inner = self.inner.lock().ok()?;
        let h = &inner.hist;
        let ms = |us: u64| us as f64 / 1e3;
        (!h.is_empty()).then(|| LatencyQuantiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        })
    }

    /// Counts per exposed bucket. Each HdrHistogram bucket goes to the first exposed bucket
    /// whose bound is at or above its highest equivalent value.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets: Vec<(f64, u64)> = BUCKETS_S.iter().map(|&b| (b, 0)).collect();
        buckets.push((f64::MAX, 0));
        let Ok(inner) = self.inner.lock() else {
            return HistogramSnapshot { sum_s: 0.0, count: 0, buckets };
        };
        for v in inner.hist.iter_recorded() {
            let secs = inner.hist.highest_equivalent(v.value_iterated_to()) as f64 / 1e6;
            let slot = BUCKETS_S.iter().position(|&b| secs <= b).unwrap_or(BUCKETS_S.len());
            buckets[slot].1 += v.count_at_value();
        }
        HistogramSnapshot { sum_s: inner.sum_us as f64 / 1e6, count: inner.hist.len(), buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_prometheus_buckets() {
        let h = LatencyHistogram::new();
        for ms in [2, 3, 40, 700, 20_000] {
            h.record(Duration::from_millis(ms));
        }
        h.record(Duration::from_secs(7200));
        let s = h.snapshot();
        assert_eq!(s.count, 6);
        let count_at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).map(|(_, n)| *n);
        assert_eq!(count_at(0.005), Some(2));
        assert_eq!(count_at(0.05), Some(1));
        assert_eq!(count_at(1.0), Some(1));
        assert_eq!(count_at(30.0), Some(1));
        assert_eq!(count_at(f64::MAX), Some(1), "over 300 s goes to +Inf");
        assert!((s.sum_s - (20.745 + 3600.0)).abs() < 0.01, "{}", s.sum_s);
    }

    #[test]
    fn quantiles_name_the_median_the_99th_percentile_and_the_largest() {
        let h = LatencyHistogram::new();
        assert_eq!(h.quantiles(), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let q = h.quantiles().expect("values recorded");
        assert_eq!(q.count, 100);
        assert!((q.p50_ms - 50.0).abs() < 0.1, "{q:?}");
        assert!((q.p99_ms - 99.0).abs() < 0.1, "{q:?}");
        assert!((q.max_ms - 100.0).abs() < 0.1, "{q:?}");
    }
}
