//! The capture-loss ratio over a sliding window, and the `capture_loss` health alert.
//!
//! The monitor is fed cumulative counters ([`LossSample`]) at whatever pace its caller likes
//! (the live sensor: every few seconds) and keeps those of the last `window`. The ratio over
//! the window is the larger of the two estimates (see the module above):
//! kernel drops / (packets read + kernel drops), and unseen-ACK events / ACK events. Each
//! needs a minimum amount of evidence in the window before it counts, so two ACKs on a quiet
//! link cannot read as 50 % loss. Time is passed in, never read here.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::alert::{Alert, Detector, Evidence, LearningState, Severity, alert_id};

/// Samples kept at most, whatever the window and the feeding pace.
const MAX_SAMPLES: usize = 4096;

/// When capture loss is alerted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPolicy {
    /// Alert above this fraction lost, 0..1. Default 0.10.
    pub threshold: f64,
    /// The window the ratio is taken over. Default 15 minutes.
    pub window: Duration,
    /// ACK events the window must hold before the ACK estimate counts. Default 1000.
    pub min_ack_events: u64,
    /// Packets the window must hold before the kernel-drop estimate counts. Default 10000.
    pub min_packets: u64,
}

impl Default for LossPolicy {
    fn default() -> Self {
        Self {
            threshold: 0.10,
            window: Duration::from_secs(15 * 60),
            min_ack_events: 1000,
            min_packets: 10_000,
        }
    }
}

/// Cumulative counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossSample {
    /// When, ns since the epoch.
    pub at_ns: u64,
    /// Packets read by the capture.
    pub packets: u64,
    /// Packets the kernel dropped.
    pub kernel_dropped: u64,
    /// ACK events (see `CaptureLossCounters`).
    pub ack_events: u64,
    /// Unseen-ACK events.
    pub unseen_ack_events: u64,
}

/// The loss over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossRatio {
    /// Kernel drops / (packets + drops), when the window has enough packets.
    pub kernel: Option<f64>,
    /// Unseen-ACK events / ACK events, when the window has enough ACK events.
    pub unseen_acks: Option<f64>,
    /// Start of the window, ns.
    pub from_ns: u64,
    /// End of the window, ns.
    pub to_ns: u64,
}

impl LossRatio {
    /// The larger of the two estimates (0 when neither has enough evidence).
    #[must_use]
    pub fn combined(&self) -> f64 {
        self.kernel.unwrap_or(0.0).max(self.unseen_acks.unwrap_or(0.0))
    }
}

/// Windowed capture loss and its alert.
#[derive(Debug)]
pub struct LossMonitor {
    policy: LossPolicy,
    samples: VecDeque<LossSample>,
    /// An alert was raised and the ratio has not yet fallen back below half the threshold.
    alerting: bool,
}

impl LossMonitor {
    /// A monitor with `policy`.
    #[must_use]
    pub fn new(policy: LossPolicy) -> Self {
        Self { policy, samples: VecDeque::new(), alerting: false }
    }

    /// Adds a sample and drops those older than the window (keeping one at or before its
    /// start, so the window is covered whole).
    pub fn observe(&mut self, sample: LossSample) {
        if self.samples.len() >= MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        let start = sample.at_ns.saturating_sub(self.policy.window.as_nanos().try_into().unwrap_or(u64::MAX));
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|s| s.at_ns <= start) {
            self.samples.pop_front();
        }
    }

    /// The loss between the oldest and the newest sample kept.
    #[must_use]
    pub fn ratio(&self) -> Option<LossRatio> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let packets = last.packets.saturating_sub(first.packets);
        let dropped = last.kernel_dropped.saturating_sub(first.kernel_dropped);
        let acks = last.ack_events.saturating_sub(first.ack_events);
        let unseen = last.unseen_ack_events.saturating_sub(first.unseen_ack_events);
        let seen_total = packets + dropped;
        Some(LossRatio {
            kernel: (seen_total >= self.policy.min_packets).then(|| dropped as f64 / seen_total as f64),
            unseen_acks: (acks >= self.policy.min_ack_events).then(|| unseen as f64 / acks as f64),
            from_ns: first.at_ns,
            to_ns: last.at_ns,
        })
    }

    /// Adds `sample`, and returns a `capture_loss` alert when the ratio crosses the threshold.
    /// One alert per episode: the next needs the ratio to fall below half the threshold first.
    pub fn check(&mut self, sensor_id: &str, sample: LossSample) -> Option<Alert> {
        self.observe(sample);
        let ratio = self.ratio()?;
        let loss = ratio.combined();
        if self.alerting {
            self.alerting = loss >= self.policy.threshold / 2.0;
            return None;
        }
        if loss <= self.policy.threshold {
            return None;
        }
        self.alerting = true;
        Some(capture_loss_alert(sensor_id, &ratio, &self.policy))
    }
}

/// The `capture_loss` health alert for `ratio`. Its host is the unspecified address: the
/// sensor itself is at fault, not a monitored host.
#[must_use]
pub fn capture_loss_alert(sensor_id: &str, ratio: &LossRatio, policy: &LossPolicy) -> Alert {
    let host = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let loss = ratio.combined();
    // 10 % loss is worth a look (40); half the traffic gone is as bad as it gets for a sensor.
    let risk_score = (40.0 + loss * 100.0).clamp(0.0, 90.0) as u8;
    let mut details = serde_json::Map::new();
    if let Some(k) = ratio.kernel {
        details.insert("kernel_drop_ratio".into(), k.into());
    }
    if let Some(a) = ratio.unseen_acks {
        details.insert("unseen_ack_ratio".into(), a.into());
    }
    details.insert("window_s".into(), policy.window.as_secs().into());
    Alert {
        id: alert_id(sensor_id, Detector::CaptureLoss, host, None, None, ratio.to_ns),
        timestamp_ns: ratio.to_ns,
        sensor_id: sensor_id.to_owned(),
        detector: Detector::CaptureLoss,
        description: "The sensor is not seeing all the traffic on its capture interface".to_owned(),
        message: format!(
            "capture loss {:.1} % over the last {} min (threshold {:.1} %): flow records and \
             detections are incomplete",
            loss * 100.0,
            policy.window.as_secs() / 60,
            policy.threshold * 100.0
        ),
        risk_score,
        severity: Severity::from_score(risk_score),
        host,
        peer: None,
        port: None,
        transport: None,
        community_id: None,
        host_criticality: 1,
        host_owner: None,
        evidence: Evidence {
            metric: "capture_loss_ratio".to_owned(),
            observed: loss,
            baseline_mean: None,
            baseline_band: None,
            threshold: policy.threshold,
            learning_state: LearningState::NotApplicable,
            window_start_ns: ratio.from_ns,
            window_end_ns: ratio.to_ns,
            community_ids: Vec::new(),
            details,
        },
        incident: None,
        host_role: None,
        record: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    fn sample(minute: u64, packets: u64, dropped: u64, acks: u64, unseen: u64) -> LossSample {
        LossSample {
            at_ns: minute * MIN,
            packets,
            kernel_dropped: dropped,
            ack_events: acks,
            unseen_ack_events: unseen,
        }
    }

    #[test]
    fn raises_one_alert_when_loss_passes_ten_percent_over_the_window() {
        let mut m = LossMonitor::new(LossPolicy::default());
        assert!(m.check("s1", sample(0, 0, 0, 0, 0)).is_none());
        // 5 % ACK-based loss: no alert.
        assert!(m.check("s1", sample(5, 100_000, 0, 2000, 100)).is_none());
        // Then 30 % of the next ACKs acknowledge unseen data: 700 / 4000 = 17.5 % over the window.
        let alert = m.check("s1", sample(10, 200_000, 0, 4000, 700)).expect("an alert");
        assert_eq!(alert.detector, Detector::CaptureLoss);
        assert!((alert.evidence.observed - 0.175).abs() < 1e-9, "{}", alert.evidence.observed);
        assert_eq!(alert.evidence.window_start_ns, 0);
        assert!(alert.message.contains("17.5 %"), "{}", alert.message);
        // Still lossy: no second alert for the same episode.
        assert!(m.check("s1", sample(11, 210_000, 0, 4400, 800)).is_none());
    }

    #[test]
    fn too_little_evidence_is_not_loss() {
        let mut m = LossMonitor::new(LossPolicy::default());
        m.observe(sample(0, 0, 0, 0, 0));
        // One ACK of two unseen and 100 of 200 packets dropped: below both minimums.
        assert!(m.check("s1", sample(1, 100, 100, 2, 1)).is_none());
        assert_eq!(m.ratio().map(|r| r.combined()), Some(0.0));
    }

    #[test]
    fn kernel_drops_count_against_packets_offered() {
        let mut m = LossMonitor::new(LossPolicy::default());
        m.observe(sample(0, 0, 0, 0, 0));
        m.observe(sample(1, 90_000, 10_000, 0, 0));
        let r = m.ratio().expect("a ratio");
        assert_eq!(r.kernel, Some(0.1));
        assert_eq!(r.unseen_acks, None);
    }

    #[test]
    fn only_the_window_counts() {
        let mut m = LossMonitor::new(LossPolicy::default());
        m.observe(sample(0, 0, 0, 0, 0));
        // Heavy loss in the first minute...
        m.observe(sample(1, 50_000, 50_000, 0, 0));
        // ...then none for the next 20 minutes.
        m.observe(sample(21, 1_050_000, 50_000, 0, 0));
        let r = m.ratio().expect("a ratio");
        assert_eq!(r.from_ns, MIN, "the window starts at the last sample before its start");
        assert_eq!(r.kernel, Some(0.0));
    }
}
