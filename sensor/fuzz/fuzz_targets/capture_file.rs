//! A whole capture file (pcap or pcapng, any bytes): the checks are `nbad_sensor::fuzzing::capture_file`, which the tests also replay over
//! the saved corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nbad_sensor::fuzzing::capture_file::run(data));
