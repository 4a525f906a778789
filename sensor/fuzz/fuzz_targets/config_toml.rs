//! A configuration file (TOML, any structure or values): the checks are `nbad_sensor::fuzzing::config_toml`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::config_toml::run(data));
