//! `cargo xtask test`: what CI runs (`.ci/run`) and what the README tells a contributor to run.
//!
//! Steps, in order, each stopping the run on failure with the step's name: setup, `cargo fmt
//! --check`, workspace clippy with `-D warnings`, the eBPF crate's own clippy, `cargo test
//! --workspace`, then the Debian package's checks (`cargo xtask deb --check`: lintian,
//! systemd-analyze, and install/upgrade/purge in a systemd-nspawn container; root only). The
//! test step prints one plain line, `N passed, N failed, N skipped`, summed over every crate's
//! test binaries.
//!
//! Skips are counted honestly. A test that cannot run here (no root, a missing program, no
//! corpus) reports itself through `nbad_tests::gate` into the file `NBAD_TEST_REPORT` names;
//! libtest counts it as passed, so it is moved from passed to skipped, and each reason is printed
//! once. Under `CI=true` any skip other than the absent corpus fails the run and names what was
//! missing: setup installs everything else. Gated tests that ran report their wall time, which
//! is printed too, so the log shows that the root and lab tests really ran.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use nbad_tests::gate;

use crate::cmd::{self, heading, note};
use crate::setup;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    no_setup: bool,
}

pub fn run(root: &Path, args: &TestArgs) -> Result<()> {
    if !args.no_setup {
        setup::run()?;
    }

    heading("test: formatting (cargo fmt --check)");
    cmd::run("cargo fmt --check", cmd::cargo(["fmt", "--all", "--check"]).current_dir(root))?;

    heading("test: workspace lints (clippy -D warnings)");
    cmd::run(
        "cargo clippy (workspace)",
        cmd::cargo(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]).current_dir(root),
    )?;

    heading("test: eBPF crate lints");
    lint_ebpf(root)?;

    heading("test: cargo test --workspace");
    let report_path = crate::target_dir(root).join("test-report.jsonl");
    if let Some(dir) = report_path.parent() {
        fs::create_dir_all(dir)?;
    }
    // A fresh report for this run only.
    match fs::remove_file(&report_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", report_path.display()));
        }
        _ => {}
    }
    let mut totals =
        run_tests(cmd::cargo(["test", "--workspace"]).current_dir(root).env(gate::REPORT_ENV, &report_path))?;
    let mut report = GateReport::read(&report_path)?;

    // Last: the slowest step (a release build, a container boot) runs once everything else passed.
    if totals.failed == 0 {
        heading("test: Debian package (cargo xtask deb --check)");
        if nbad_tests::lab::preflight::is_root() {
            let started = Instant::now();
            crate::deb::check(root)?;
            totals.passed += 1;
            report
                .ran
                .push(("deb --check (install, upgrade, purge in a container)".into(), started.elapsed()));
        } else {
            report.skips.push(Skip {
                kind: gate::Kind::Root.name().into(),
                test: "deb --check".into(),
                reason: "needs root (it boots a systemd-nspawn container)".into(),
            });
            totals.passed += 1;
        }
    }

    heading("test: summary");
    let counts = report.summarise(&totals);
    // One plain closing line for whoever reads the end of the log.
    println!("{} passed, {} failed, {} skipped", counts.passed, counts.failed, counts.skipped);
    if totals.failed > 0 {
        bail!("step `cargo test` failed: {} tests failed", totals.failed);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        let missing: Vec<&Skip> = report.unique_skips().into_iter().filter(|s| s.kind != "corpus").collect();
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|s| format!("{} ({})", s.test, s.reason)).collect();
            bail!(
                "CI=true: {} tests skipped for a prerequisite that `cargo xtask setup` should provide: {}",
                missing.len(),
                list.join("; ")
            );
        }
    }
    Ok(())
}

/// One skipped test, as `nbad_tests::gate` reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Skip {
    kind: String,
    test: String,
    reason: String,
}

/// What the gated tests reported: who skipped and why, who ran and for how long.
#[derive(Debug, Default)]
struct GateReport {
    skips: Vec<Skip>,
    ran: Vec<(String, Duration)>,
}

/// The run's final counts, skips moved out of passed.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
    skipped: u64,
}

impl GateReport {
    /// Reads the JSON lines at `path` (absent: nothing was gated).
    fn read(path: &Path) -> Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let mut report = Self::default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            match v.get("event").and_then(serde_json::Value::as_str) {
                Some("skip") => {
                    report.skips.push(Skip {
                        kind: field("kind"),
                        test: field("test"),
                        reason: field("reason"),
                    });
                }
                Some("ran" | "failed") => {
                    let secs = v.get("seconds").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                    report.ran.push((field("test"), Duration::from_secs_f64(secs.max(0.0))));
                }
                _ => {}
            }
        }
        report
    }

    /// Each skipped test once (a test may ask its gate more than once).
    fn unique_skips(&self) -> Vec<&Skip> {
        let mut seen = std::collections::BTreeSet::new();
        self.skips.iter().filter(|s| seen.insert(s.test.as_str())).collect()
    }

    /// Prints the reasons (each once, with its tests) and the gated tests' times; returns the
    /// counts with every skipped test moved from passed to skipped. libtest's own ignored tests
    /// count as skipped too.
    fn summarise(&self, totals: &Totals) -> Counts {
        let skips = self.unique_skips();
        let mut by_reason: std::collections::BTreeMap<(&str, &str), Vec<&str>> =
            std::collections::BTreeMap::new();
        for s in &skips {
            by_reason.entry((s.kind.as_str(), s.reason.as_str())).or_default().push(s.test.as_str());
        }
        for ((kind, reason), tests) in &by_reason {
            note(&format!("skipped ({kind}), {} tests: {reason}", tests.len()));
            for t in tests {
                note(&format!("    {t}"));
            }
        }
        if totals.ignored > 0 {
            note(&format!("skipped (#[ignore]), {} tests", totals.ignored));
        }
        let mut ran = self.ran.clone();
        ran.sort();
        if !ran.is_empty() {
            note("tests behind a gate that ran, with their wall time:");
            for (test, took) in &ran {
                note(&format!("    {test}: {:.1} s", took.as_secs_f64()));
            }
        }
        let skipped = skips.len() as u64;
        Counts {
            passed: totals.passed.saturating_sub(skipped),
            failed: totals.failed,
            skipped: skipped + totals.ignored,
        }
    }
}

/// Test counts summed over every `test result:` line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Adds the counts of one libtest summary line, e.g.
    /// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result:") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (words.next(), words.next()) else { continue };
            let Ok(n) = n.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test`, echoing its output as it comes, and sums its summary lines.
fn run_tests(cmd: &mut Command) -> Result<Totals> {
    use std::io::{BufRead as _, BufReader};
    let line = format!("{cmd:?}");
    eprintln!("    $ {line}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("step `cargo test`: could not start `{line}`: {e}"))?;
    let mut totals = Totals::default();
    if let Some(out) = child.stdout.take() {
        for text in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{text}");
            totals.add_line(&text);
        }
    }
    let status = child.wait()?;
    if !status.success() && totals.failed == 0 {
        bail!("step `cargo test` failed: `{line}` exited with {status}");
    }
    Ok(totals)
}

// ---------------------------------------------------------------------------------------------
// lint_ebpf: PROVISIONAL FLAGS. The eBPF crate's owner is settling the exact command (target,
// build-std, features); change it here only, CI and the README both go through this function.
// ---------------------------------------------------------------------------------------------
/// Clippy for `ebpf/nbad-ebpf`, which the workspace excludes (it is `no_std` for the BPF target
/// and needs nightly's `-Z build-std=core`).
fn lint_ebpf(root: &Path) -> Result<()> {
    let manifest = root.join("ebpf/nbad-ebpf/Cargo.toml");
    if !manifest.is_file() {
        bail!("step `cargo clippy (eBPF)` failed: {} does not exist", manifest.display());
    }
    // The crate is outside the workspace: its formatting and lints are checked on their own.
    // Its target directory stays outside the crate, because sensor/build.rs rebuilds the
    // object whenever anything under the crate changes.
    cmd::run(
        "cargo fmt --check (eBPF)",
        Command::new("cargo").arg("fmt").arg("--manifest-path").arg(&manifest).arg("--check"),
    )?;
    cmd::run(
        "cargo clippy (eBPF)",
        cmd::cargo_nightly(["clippy", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(root.join("target/nbad-ebpf"))
            .args(["--", "-D", "warnings"]),
    )
}

#[cfg(test)]
mod tests {
    use super::{Counts, GateReport, Totals};

    #[test]
    fn skipped_tests_move_from_passed_to_skipped_once_each() {
        let report = GateReport::parse(
            "{\"event\":\"skip\",\"kind\":\"root\",\"test\":\"lab::a\",\"reason\":\"needs root\"}\n\
             {\"event\":\"skip\",\"kind\":\"root\",\"test\":\"lab::a\",\"reason\":\"needs root\"}\n\
             {\"event\":\"skip\",\"kind\":\"corpus\",\"test\":\"c::b\",\"reason\":\"no corpus\"}\n\
             {\"event\":\"ran\",\"test\":\"x::c\",\"seconds\":2.5}\n\
             not json\n",
        );
        assert_eq!(report.unique_skips().len(), 2);
        assert_eq!(report.ran.len(), 1);
        let totals = Totals { passed: 10, failed: 1, ignored: 1 };
        assert_eq!(report.summarise(&totals), Counts { passed: 8, failed: 1, skipped: 3 });
    }

    #[test]
    fn sums_libtest_summary_lines_and_ignores_the_rest() {
        let mut t = Totals::default();
        t.add_line(
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        );
        t.add_line("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out");
        t.add_line("running 5 tests");
        assert_eq!(t, Totals { passed: 15, failed: 2, ignored: 1 });
    }
}
