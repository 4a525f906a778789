//! Small helpers for validating a table's keys: each error names the file, the dotted key, the
//! value as written and what would be valid. Used by the tables that live beside their stage
//! (`[[output.ipfix]]`, `[output.kafka]`, the Kafka client keys).

use std::path::Path;
use std::time::Duration;

use super::ConfigError;

/// Validation of one file's keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check<'a> {
    /// The file (or origin) errors name.
    pub origin: &'a Path,
}

impl Check<'_> {
    /// An `Invalid` error for `key`.
    pub(crate) fn invalid(&self, key: &str, value: String, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.to_path_buf(),
            key: key.to_owned(),
            value,
            expected: expected.into(),
        }
    }

    /// `v` if it lies in `lo..=hi` and fits `T`.
    pub(crate) fn int<T: TryFrom<i64>>(
        &self,
        key: &str,
        v: i64,
        lo: i64,
        hi: i64,
        unit: &str,
    ) -> Result<T, ConfigError> {
        if (lo..=hi).contains(&v)
            && let Ok(x) = T::try_from(v)
        {
            return Ok(x);
        }
        Err(self.invalid(key, v.to_string(), format!("an integer from {lo} to {hi} {unit}")))
    }

    /// Milliseconds in `lo..=hi`.
    pub(crate) fn ms(&self, key: &str, v: i64, lo: i64, hi: i64) -> Result<Duration, ConfigError> {
        self.int(key, v, lo, hi, "milliseconds").map(Duration::from_millis)
    }

    /// `v` if it is one of `valid`.
    pub(crate) fn one_of<'v>(&self, key: &str, v: &str, valid: &[&'v str]) -> Result<&'v str, ConfigError> {
        valid.iter().copied().find(|x| *x == v).ok_or_else(|| {
            let list: Vec<String> = valid.iter().map(|x| q(x)).collect();
            self.invalid(key, q(v), format!("one of {}", list.join(", ")))
        })
    }
}

/// `value` as a TOML string literal, for messages and the effective configuration.
pub(crate) fn q(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}
