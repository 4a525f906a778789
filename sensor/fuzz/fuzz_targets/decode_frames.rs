//! A stream of length-prefixed frames through one decoder (fragments, tunnels): the checks are `nbad_sensor::fuzzing::decode_frames`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::decode_frames::run(data));
