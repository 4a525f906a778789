//! Exfiltration after a learned baseline, as a regression table (`nbad_tests::detection::
//! exfil_table`): every corpus upload at three paces on a dense and a sparse host, each beside a
//! control without the upload.
//!
//! Holds the line the issue set: every 10-minute and 20-minute episode is found before it ends,
//! at least 85 % of the 6-hour ones are found, and the controls raise nothing at all. The table is
//! printed (`--nocapture`); docs/DETECTION.md carries the table of the last run.

use anyhow::{Result, ensure};
use nbad_tests::Corpus;
use nbad_tests::detection::exfil_table::{self, Row};

#[test]
fn every_corpus_upload_is_found_after_a_learned_baseline_and_the_controls_stay_quiet() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else {
        return Ok(());
    };
    let _ran = nbad_tests::gate::Ran::start();
    let scratch = tempfile::tempdir()?;
    let (rows, skipped) = exfil_table::run(&corpus, scratch.path(), |line| println!("{line}"))?;
    for s in &skipped {
        println!("not put on the host: {s}");
    }
    println!("{}", exfil_table::markdown(&rows));
    let episodes: Vec<&Row> = rows.iter().filter(|r| r.episode != "control").collect();
    ensure!(!episodes.is_empty(), "no upload could be put on the host");
    let mut failures = Vec::new();
    for r in &episodes {
        if r.pace != "25MB/6h" && !r.before_end() {
            failures.push(format!("not found before the upload ended: {}", r.line()));
        }
    }
    let slow: Vec<&&Row> = episodes.iter().filter(|r| r.pace == "25MB/6h").collect();
    let found = slow.iter().filter(|r| r.time_to_detect().is_some()).count();
    if found * 100 < slow.len() * 85 {
        failures.push(format!("25 MB over 6 h: {found} of {} found, fewer than 85 %", slow.len()));
    }
    for r in rows.iter().filter(|r| r.episode == "control" && !r.alerts.is_empty()) {
        failures.push(format!("control not quiet: {}", r.line()));
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
