//! Helpers for the integration tests in `tests/tests/`: they run the real
//! `nbad-sensor` binary on real captures from the shared corpus and check its
//! output against an independent reading of the same capture (tshark).
//!
//! - [`corpus`]: where the corpus is (`NBAD_CORPUS`, else `../shared/corpus`
//!   beside the repository) and its `MANIFEST.tsv`. The corpus is never
//!   committed; when it is absent every test that needs it is reported as
//!   skipped.
//! - [`gate`]: the one way a test says it cannot run here (no root, a
//!   missing program, no corpus) and is counted as skipped, not passed, by
//!   `cargo xtask test`.
//! - [`sensor`]: where the binary is (`NBAD_SENSOR_BIN`, else
//!   `target/<profile>/nbad-sensor` next to the test executable) and how to
//!   run it with a time limit.
//! - [`tshark`]: the expected side, one [`tshark::IpPacket`] per IP packet,
//!   and Wireshark's Community IDs.
//! - [`flows`]: the direction-free flow key both sides are summed under, the
//!   sensor's flow records read back, and a readable diff.
//! - [`detection`]: the table of expected alerts per corpus capture, replays
//!   that return alerts, and long inputs with a learned baseline
//!   (`tests/tests/detection_corpus.rs`, `cargo xtask detect-report`).
//! - [`lab`]: a network of namespaces with real clients and servers and the
//!   sensor on a mirror port (`cargo xtask lab`, `tests/tests/lab.rs`).
//! - [`live`]: one capture link between two test namespaces and a live
//!   `nbad-sensor run` on it (`tests/tests/reload.rs`, `metrics.rs`, and the
//!   sensor crate's `crash_safety.rs`).
//! - [`receivers`]: real alert receivers (rsyslog, syslog-ng, Redis, NATS,
//!   an OpenSearch-compatible server, a Splunk HEC contract server) for the
//!   delivery tests (`tests/tests/delivery*.rs`).

pub mod corpus;
pub mod detection;
pub mod flows;
pub mod gate;
pub mod lab;
pub mod live;
pub mod receivers;
pub mod sensor;
pub mod tshark;

pub use corpus::{Corpus, ManifestEntry};
