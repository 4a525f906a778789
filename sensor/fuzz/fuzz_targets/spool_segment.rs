//! An alert spool segment recovered after a crash: the checks are `nbad_sensor::fuzzing::spool_segment`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::spool_segment::run(data));
