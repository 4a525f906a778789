//! What a failed send means, and how long to wait before the next try.
//!
//! A sink reports a failure as [`SendError::Retriable`] (the receiver may take it later: a
//! connection error, a timeout, 429, 5xx, HEC "server is busy") or [`SendError::Permanent`]
//! (the receiver will never take this request as it is: 400, 401, 403, 413, a bulk item's
//! mapping error). Retriable failures are retried forever with capped exponential backoff
//! and full jitter (a uniform delay in `0..=min(max, initial × 2^attempt)`), never sooner
//! than a `Retry-After` the receiver sent; permanent ones go to the dead-letter file.

use std::time::Duration;

/// Retry-After values above this are clamped, so a bogus header cannot park a sink for days.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// Why a send (or one item of it) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendError {
    /// Try again later.
    Retriable {
        /// What happened, for the log and `last_error`.
        reason: String,
        /// The receiver's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Will never succeed: dead-letter it.
    Permanent {
        /// What the receiver said, written with the dead letter.
        reason: String,
    },
}

impl SendError {
    /// A retriable error without Retry-After.
    pub(crate) fn retry(reason: impl Into<String>) -> Self {
        Self::Retriable { reason: reason.into(), retry_after: None }
    }

    /// A permanent error.
    pub(crate) fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent { reason: reason.into() }
    }

    /// The reason, either way.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Self::Retriable { reason, .. } | Self::Permanent { reason } => reason,
        }
    }
}

/// What a sink's `send` returns: `Ok` with the items that were not accepted (by index into the
/// batch; empty = all acknowledged), or an error for the whole batch.
pub(crate) type SendResult = Result<Vec<(usize, SendError)>, SendError>;

/// Classifies an HTTP status that is not a success. `body` is a short excerpt for the reason.
pub(crate) fn http_status(status: u16, retry_after: Option<Duration>, body: &str) -> SendError {
    let reason = format!("HTTP {status}: {}", excerpt(body));
    match status {
        400 | 401 | 403 | 413 => SendError::Permanent { reason },
        _ => SendError::Retriable { reason, retry_after },
    }
}

/// The first 300 characters of a response body, on one line.
pub(crate) fn excerpt(body: &str) -> String {
    body.chars().take(300).map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned()
}

/// `Retry-After` as delta-seconds (the HTTP-date form is not used by the receivers here and
/// is ignored: the backoff applies instead).
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s).min(RETRY_AFTER_MAX))
}

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, attempt: 0 }
    }

    /// The ceiling of the next delay: `min(max, initial × 2^attempt)`.
    pub(crate) fn ceiling(&self) -> Duration {
        self.initial.saturating_mul(1 << self.attempt.min(20)).min(self.max)
    }

    /// The next delay, honouring `retry_after`.
    pub(crate) fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        let ceiling = u64::try_from(self.ceiling().as_millis()).unwrap_or(u64::MAX);
        self.attempt = self.attempt.saturating_add(1);
        let jittered = Duration::from_millis(fastrand::u64(0..=ceiling));
        jittered.max(retry_after.unwrap_or_default())
    }

    /// After a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_ceiling_doubles_up_to_the_cap_and_delays_stay_under_it() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            ceilings.push(b.ceiling().as_millis());
            let c = b.ceiling();
            assert!(b.next(None) <= c);
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn retry_after_is_a_floor_and_is_clamped() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        assert_eq!(b.next(Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some("999999")), Some(RETRY_AFTER_MAX));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }

    #[test]
    fn client_errors_that_cannot_succeed_are_permanent_and_the_rest_retriable() {
        for status in [400, 401, 403, 413] {
            assert!(matches!(http_status(status, None, ""), SendError::Permanent { .. }), "{status}");
        }
        for status in [404, 408, 429, 500, 502, 503] {
            assert!(matches!(http_status(status, None, ""), SendError::Retriable { .. }), "{status}");
        }
    }
}
