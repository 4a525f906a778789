//! Configuration: TOML file → raw serde structs → validated [`Config`].
//!
//! This module owns the configuration file format, its defaults and its validation. The rest
//! of the sensor only ever sees a [`Config`], whose invariants are listed on the types in
//! `settings.rs`: durations are `Duration`s, networks are `IpNet`s, the worker count is
//! resolved, and every number is inside its documented range.
//!
//! - `raw.rs`: the file exactly as written (`deny_unknown_fields`, defaults for every key
//!   except `sensor.id` (the hostname) and `capture.interface` (none)).
//! - `validate.rs`: ranges, formats and cross-key rules; raw → validated.
//! - `settings.rs`: the validated types.
//! - `effective.rs`: the effective configuration printed back as TOML.
//! - `error.rs`: [`ConfigError`]; every message names the file, and for a bad value the dotted
//!   key, the value and what would be valid.
//!
//! Every key, with unit, default and valid values, is documented in
//! `configs/sensor.example.toml`, and a test loads every file in `configs/`. Nothing here
//! panics on a bad file; the first problem found (in file order) is returned.

pub(crate) mod check;
mod effective;
mod error;
mod raw;
mod settings;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::ConfigError;
pub(crate) use settings::BUILT_IN_ORIGIN;
pub use settings::{
    CaptureMode, CaptureSettings, Config, DecodeSettings, FlowSettings, MetricsSettings, OutputSettings,
    OutputTarget, SensorSettings, XdpCaptureSettings,
};
pub(crate) use validate::toml_string;

/// Reads and validates the configuration file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
    from_str(&text, path)
}

/// Parses and validates configuration `text`; `origin` (usually the file name) prefixes every
/// error message.
pub fn from_str(text: &str, origin: impl AsRef<Path>) -> Result<Config, ConfigError> {
    let origin = origin.as_ref();
    let raw: raw::RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
        path: origin.to_path_buf(),
        message: err.to_string().trim_end().to_owned(),
    })?;
    validate::validate(raw, origin)
}

/// The built-in defaults: what an empty file gives. `capture.interface` is unset.
#[must_use]
pub fn default() -> Config {
    Config::default()
}

impl Default for Config {
    fn default() -> Self {
        validate::validate(raw::RawConfig::default(), Path::new(BUILT_IN_ORIGIN))
            .expect("the built-in defaults pass validation (tested by built_in_defaults_are_valid)")
    }
}
