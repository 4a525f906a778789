//! One frame; the first byte picks the link type: the checks are `nbad_sensor::fuzzing::decode_frame`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::decode_frame::run(data));
