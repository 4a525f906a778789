//! The part of the sensor's `--stats` JSON that xtask reads (the sensor writes more; extra
//! fields are ignored, a missing one is an error that names it).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct SensorStats {
    pub capture: Capture,
    pub decode: Decode,
    pub flows: Flows,
    pub elapsed_s: f64,
}

#[derive(Debug, Deserialize)]
pub struct Capture {
    pub packets_read: u64,
    pub bytes_read: u64,
}

#[derive(Debug, Deserialize)]
pub struct Decode {
    pub parsed: u64,
    pub malformed_total: u64,
    pub malformed: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
pub struct Flows {
    pub created: u64,
    pub active_peak: u64,
    pub records: u64,
}

impl SensorStats {
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading the sensor's stats {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing the sensor's stats {}", path.display()))
    }
}
