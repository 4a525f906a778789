//! A payload to identify, a frame to find the payload in, or a TLS server flight: the checks are `nbad_sensor::fuzzing::identify`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::identify::run(data));
