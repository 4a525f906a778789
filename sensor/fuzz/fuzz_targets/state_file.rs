//! A saved baseline state, loaded and run: the checks are `nbad_sensor::fuzzing::state_file`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::state_file::run(data));
