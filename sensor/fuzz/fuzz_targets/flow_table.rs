//! Packet descriptions driving a small flow table (4 bytes each): the checks are `nbad_sensor::fuzzing::flow_table`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::flow_table::run(data));
