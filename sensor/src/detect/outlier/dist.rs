//! A learned distribution of feature vectors: per feature, an exponentially weighted mean and
//! variance of `ln(1 + x)` and a mean of `x` itself. One per host (its own behaviour) and one per
//! peer group (its members' behaviour).
//!
//! Unlike the baselines of [`crate::detect::baseline`], every active bucket is learned, zeros
//! included: "this host never fans out to inside hosts" is exactly what an outlier rule needs to
//! know. A standard deviation floor (`sd_floor`, in `ln` units) keeps a perfectly regular host
//! from alerting on noise. A saved distribution with another number of features (a later
//! version added one) is relearned from scratch rather than misread.

use serde::{Deserialize, Serialize};

use super::features::F;

/// Mean and variance per feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    /// Buckets learned.
    pub n: u32,
    /// Mean of `ln(1 + x)` per feature.
    pub mean: Vec<f64>,
    /// Variance of `ln(1 + x)` per feature.
    pub var: Vec<f64>,
    /// Mean of `x` per feature (rates, for rules that count events).
    pub raw: Vec<f64>,
}

impl Dist {
    /// Learns one bucket: `x` raw, `y` its logs; base weight `alpha`, scaled by `weight`.
    pub fn learn(&mut self, x: &[f64; F], y: &[f64; F], alpha: f64, weight: f64) {
        if self.mean.len() != F || self.var.len() != F || self.raw.len() != F {
            *self = Self { n: 0, mean: vec![0.0; F], var: vec![0.0; F], raw: vec![0.0; F] };
        }
        self.n = self.n.saturating_add(1);
        if self.n == 1 && weight >= 1.0 {
            self.mean.copy_from_slice(y);
            self.raw.copy_from_slice(x);
            self.var.iter_mut().for_each(|v| *v = 0.0);
            return;
        }
        let a = crate::detect::baseline::learn_weight(self.n, alpha, weight);
        for f in 0..F {
            let d = y[f] - self.mean[f];
            self.mean[f] += a * d;
            self.var[f] = (1.0 - a) * (self.var[f] + a * d * d);
            self.raw[f] += a * (x[f] - self.raw[f]);
        }
    }

    /// Whether the distribution holds `min` buckets of the current feature set.
    #[must_use]
    pub fn ready(&self, min: u32) -> bool {
        self.n >= min && self.mean.len() == F
    }

    /// The standard deviation of feature `f`, at least `floor`.
    #[must_use]
    pub fn sd(&self, f: usize, floor: f64) -> f64 {
        self.var.get(f).copied().unwrap_or(0.0).max(0.0).sqrt().max(floor)
    }

    /// How many standard deviations `y` (a log value) lies above the mean of feature `f`.
    #[must_use]
    pub fn z(&self, f: usize, y: f64, floor: f64) -> f64 {
        (y - self.mean.get(f).copied().unwrap_or(0.0)) / self.sd(f, floor)
    }

    /// The expected range `[low, high]` of feature `f` on the linear scale, `sigma` wide.
    #[must_use]
    pub fn range(&self, f: usize, sigma: f64, floor: f64) -> [f64; 2] {
        let m = self.mean.get(f).copied().unwrap_or(0.0);
        let sd = self.sd(f, floor);
        [(m - sigma * sd).exp_m1().max(0.0), (m + sigma * sd).exp_m1()]
    }

    /// The mean of `x` of feature `f`.
    #[must_use]
    pub fn rate(&self, f: usize) -> f64 {
        self.raw.get(f).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_zeros_and_flags_what_never_happened() {
        let mut d = Dist::default();
        let x = [0.0; F];
        for _ in 0..100 {
            d.learn(&x, &x, 0.01, 1.0);
        }
        assert!(d.ready(60));
        let y = 50f64.ln_1p();
        assert!(d.z(0, y, 0.75) > 5.0, "50 of something never seen is far out");
        assert!(d.range(0, 4.0, 0.75)[1] < 25.0);
        assert!(d.rate(0) < 1e-9);
    }

    #[test]
    fn another_feature_count_is_relearned() {
        let mut d = Dist { n: 500, mean: vec![1.0; 3], var: vec![1.0; 3], raw: vec![1.0; 3] };
        assert!(!d.ready(1));
        let x = [2.0; F];
        d.learn(&x, &x, 0.01, 1.0);
        assert_eq!(d.n, 1);
        assert_eq!(d.mean.len(), F);
    }
}
