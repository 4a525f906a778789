//! Reads the input as a configuration file. Loading must never panic, whatever the structure
//! or the values (hostile numbers, huge arrays, odd strings, unknown keys); a refusal must name
//! its origin; a configuration that loads must print an effective configuration that loads back
//! to the same thing (what `check-config` shows is what the sensor runs with).

use std::path::Path;

use crate::config;

/// The origin every message must name.
const ORIGIN: &str = "fuzz.toml";

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match config::from_str(text, Path::new(ORIGIN)) {
        Ok(cfg) => {
            let effective = cfg.effective_toml();
            let again = config::from_str(&effective, cfg.origin())
                .unwrap_or_else(|e| panic!("the effective configuration does not load: {e}\n{effective}"));
            assert_eq!(again, cfg, "the effective configuration loads differently:\n{effective}");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(ORIGIN), "a refusal that does not name its origin: {message}");
        }
    }
}
