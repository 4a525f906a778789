//! The checks the fuzz targets in `sensor/fuzz` run, one module per target, each with
//! `run(data)`: it must not panic, and it asserts what must hold for any input.
//!
//! They live in the library, not in the fuzz crate, for two reasons: they reach internals that
//! are not public (the spool's record format, the metrics endpoint's request handling), and the
//! tests replay the saved corpora (`sensor/fuzz/seeds/<target>/`) and every crash found
//! (`sensor/fuzz/regressions/<target>/`) through the same functions on stable Rust, in CI, on
//! every run — without libFuzzer or the nightly toolchain.

pub mod capture_file;
pub mod config_toml;
pub mod decode_frame;
pub mod decode_frames;
pub mod flow_table;
pub mod identify;
pub mod metrics_request;
pub mod spool_segment;
pub mod state_file;

/// A target's checks.
pub type Check = fn(&[u8]);

/// Every target by name, as `cargo xtask fuzz` and the fuzz crate's binaries name them.
pub const TARGETS: [(&str, Check); 9] = [
    ("capture_file", capture_file::run),
    ("config_toml", config_toml::run),
    ("decode_frame", decode_frame::run),
    ("decode_frames", decode_frames::run),
    ("flow_table", flow_table::run),
    ("identify", identify::run),
    ("metrics_request", metrics_request::run),
    ("spool_segment", spool_segment::run),
    ("state_file", state_file::run),
];

#[cfg(test)]
mod tests;
