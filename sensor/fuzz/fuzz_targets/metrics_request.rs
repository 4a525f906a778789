//! A request head sent to the metrics endpoint: the checks are `nbad_sensor::fuzzing::metrics_request`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::metrics_request::run(data));
