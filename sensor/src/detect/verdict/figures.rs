//! Precision and time to detect, from the verdicts.
//!
//! - **Precision** of a detector and rule is `TP / (TP + FP)` over its judged
//!   alerts. `benign_expected` alerts are counted apart: the behaviour was
//!   real, so they are not the detector's mistakes, but nobody needed them, so
//!   they are not its successes either.
//! - **Time to detect** of a true-positive incident (an alert outside any
//!   incident counts as its own) runs from the start of the earliest evidence
//!   window of its judged alerts (the first evidence packet, or the start of the
//!   bucket it fell in) to its first alert.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Kind, Verdict};

/// Verdict counts of one detector and rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleFigures {
    /// The detector.
    pub detector: String,
    /// The rule.
    pub rule: String,
    /// True positives.
    pub true_positive: u64,
    /// False positives.
    pub false_positive: u64,
    /// Benign, expected.
    pub benign_expected: u64,
    /// `TP / (TP + FP)`, when either is above zero.
    pub precision: Option<f64>,
}

/// Time to detect of one true-positive incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The incident (or the alert, outside any incident).
    pub incident: String,
    /// Seconds from the first evidence to the first alert.
    pub seconds: f64,
}

/// All figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Verdicts counted.
    pub verdicts: u64,
    /// Per detector and rule, in name order.
    pub rules: Vec<RuleFigures>,
    /// Per detector (its rules summed), in name order.
    pub detectors: Vec<RuleFigures>,
    /// Over every detector.
    pub overall: RuleFigures,
    /// Time to detect per true-positive incident, in incident order.
    pub detections: Vec<Detection>,
    /// Median time to detect, seconds.
    pub ttd_median_s: Option<f64>,
    /// 90th percentile, seconds.
    pub ttd_p90_s: Option<f64>,
    /// Longest, seconds.
    pub ttd_max_s: Option<f64>,
}

impl RuleFigures {
    fn add(&mut self, k: Kind) {
        match k {
            Kind::TruePositive => self.true_positive += 1,
            Kind::FalsePositive => self.false_positive += 1,
            Kind::BenignExpected => self.benign_expected += 1,
        }
        let judged = self.true_positive + self.false_positive;
        self.precision = (judged > 0).then(|| self.true_positive as f64 / judged as f64);
    }
}

impl Figures {
    /// The figures of `verdicts`.
    #[must_use]
    pub fn of(verdicts: &[Verdict]) -> Self {
        let mut rules: BTreeMap<(String, String), RuleFigures> = BTreeMap::new();
        let mut detectors: BTreeMap<String, RuleFigures> = BTreeMap::new();
        let mut overall =
            RuleFigures { detector: "all".into(), rule: "all".into(), ..RuleFigures::default() };
        // Incident → (earliest evidence, first alert).
        let mut incidents: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for v in verdicts {
            let d = v.alert.detector.name().to_owned();
            rules
                .entry((d.clone(), v.alert.rule.clone()))
                .or_insert_with(|| RuleFigures {
                    detector: d.clone(),
                    rule: v.alert.rule.clone(),
                    ..Default::default()
                })
                .add(v.verdict);
            detectors
                .entry(d.clone())
                .or_insert_with(|| RuleFigures { detector: d, rule: "all".into(), ..Default::default() })
                .add(v.verdict);
            overall.add(v.verdict);
            if v.verdict == Kind::TruePositive {
                let key = v.alert.incident.clone().unwrap_or_else(|| v.alert.id.clone());
                let start = v.alert.window_start_ns.min(v.alert.ts_ns);
                let at = incidents.entry(key).or_insert((start, v.alert.ts_ns));
                at.0 = at.0.min(start);
                at.1 = at.1.min(v.alert.ts_ns);
            }
        }
        let detections: Vec<Detection> = incidents
            .into_iter()
            .map(|(incident, (start, first))| Detection {
                incident,
                seconds: first.saturating_sub(start) as f64 / 1e9,
            })
            .collect();
        let mut secs: Vec<f64> = detections.iter().map(|d| d.seconds).collect();
        secs.sort_by(f64::total_cmp);
        let pick = |q: f64| -> Option<f64> {
            let last = secs.len().checked_sub(1)?;
            let i = ((last as f64) * q).round() as usize;
            secs.get(i.min(last)).copied()
        };
        Self {
            verdicts: verdicts.len() as u64,
            rules: rules.into_values().collect(),
            detectors: detectors.into_values().collect(),
            overall,
            ttd_median_s: pick(0.5),
            ttd_p90_s: pick(0.9),
            ttd_max_s: secs.last().copied(),
            detections,
        }
    }

    /// A plain-text table for `nbad-sensor report`.
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let pct = |p: Option<f64>| p.map_or_else(|| "-".to_owned(), |p| format!("{:.1} %", 100.0 * p));
        let _ = writeln!(out, "verdicts: {}", self.verdicts);
        let _ = writeln!(
            out,
            "{:<20} {:<32} {:>5} {:>5} {:>7} {:>9}",
            "detector", "rule", "TP", "FP", "benign", "precision"
        );
        for r in self.rules.iter().chain(&self.detectors).chain(std::iter::once(&self.overall)) {
            let _ = writeln!(
                out,
                "{:<20} {:<32} {:>5} {:>5} {:>7} {:>9}",
                r.detector,
                r.rule,
                r.true_positive,
                r.false_positive,
                r.benign_expected,
                pct(r.precision)
            );
        }
        let s = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.0} s"));
        let _ = writeln!(
            out,
            "time to detect over {} true-positive incidents: median {}, p90 {}, max {}",
            self.detections.len(),
            s(self.ttd_median_s),
            s(self.ttd_p90_s),
            s(self.ttd_max_s)
        );
        out
    }
}
