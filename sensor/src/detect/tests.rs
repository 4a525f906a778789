// Engine-level tests live in tests/detection*.rs and sensor/tests; unit tests of
// each detector sit beside it.
