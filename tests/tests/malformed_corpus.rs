//! Every capture in `corpus/malformed/` (truncated and bogus headers, bad
//! checksums, IPv6 extension-header abuse, fragment sprays, fuzzed payloads,
//! parser crash reproducers) replays with exit status 0 within 60 s, writes a
//! stats file that parses, has a `decode.malformed_total` counter, and reads
//! exactly the number of packets the manifest lists for the file.
//!
//! Skips (passes with a `skipping:` line) where the corpus is absent.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use nbad_tests::corpus::report;
use nbad_tests::{Corpus, ManifestEntry, sensor};
use serde_json::Value;

/// Per-file time limit: a hang is a failure.
const REPLAY_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn every_malformed_capture_replays_with_exit_0_and_reads_every_packet() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else {
        return Ok(());
    };
    let entries: Vec<&ManifestEntry> = corpus.in_category("malformed").collect();
    ensure!(!entries.is_empty(), "MANIFEST.tsv lists no malformed captures");

    let mut failures = Vec::new();
    let mut malformed_sum = 0;
    for entry in &entries {
        match replay_one(&corpus, entry) {
            Ok(malformed) => malformed_sum += malformed,
            Err(e) => failures.push(format!("{}: {e:#}", entry.relative_path)),
        }
    }
    ensure!(failures.is_empty(), "{}", report("malformed captures that fail", &failures));
    // Files with only bad checksums are not malformed to a flow sensor, but
    // truncated and bogus headers are: the counter must have moved somewhere.
    ensure!(malformed_sum > 0, "decode.malformed_total is 0 for all {} malformed captures", entries.len());
    println!(
        "{} malformed captures replayed; decode.malformed_total summed to {malformed_sum}",
        entries.len()
    );
    Ok(())
}

/// Replays one file and checks it; returns its `decode.malformed_total`.
fn replay_one(corpus: &Corpus, entry: &ManifestEntry) -> Result<u64> {
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let replay = sensor::replay(&corpus.path(entry), scratch.path(), REPLAY_LIMIT)?;
    ensure!(replay.run.succeeded(), "{}", replay.run.describe());

    let stats = sensor::read_stats(&replay.stats)?;
    let malformed =
        sensor::lookup(&stats, "decode.malformed_total").context("stats have no decode.malformed_total")?;
    let malformed =
        malformed.as_u64().with_context(|| format!("decode.malformed_total is {malformed}, not a count"))?;

    let read: Vec<(String, &Value)> = sensor::find_key(&stats, "packets_read");
    if read.is_empty() {
        bail!("stats have no packets_read");
    }
    for (path, value) in read {
        ensure!(
            value.as_u64() == Some(entry.packets),
            "{path} is {value}, MANIFEST.tsv lists {} packets",
            entry.packets
        );
    }
    Ok(malformed)
}
