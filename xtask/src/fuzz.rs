//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `sensor/fuzz`, one after another, each for
//! a time or a number of executions, and reports per target what libFuzzer counted: executions,
//! their rate, coverage (edges) and features, the corpus, and whether it crashed.
//!
//! Each run starts from the committed seeds (`sensor/fuzz/seeds/<target>`, read-only) and the
//! local corpus (`sensor/fuzz/corpus/<target>`, ignored by git, kept between runs so that runs
//! across sessions add up). With `--save`, the inputs that add coverage are merged into the
//! seeds (libFuzzer's `-merge=1`), which the tests then replay on every CI run. A crash stops
//! that target; its input is copied to `sensor/fuzz/regressions/<target>/`, which the tests
//! replay too, so a crash fixed stays fixed.
//!
//! Results are appended to `target/fuzz/runs.jsonl` and printed as table rows for
//! docs/FUZZING.md. Not run by CI: it needs the nightly toolchain and minutes to hours per
//! target.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::cmd::{self, heading, note};

/// Every target of the fuzz crate: the files in `sensor/fuzz/fuzz_targets/` (the sensor's tests
/// check that each of `nbad_sensor::fuzzing::TARGETS` has one).
fn all_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Minutes per target (libFuzzer's -max_total_time).
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Stop a target after this many executions (libFuzzer's -runs), whichever comes first.
    #[arg(long)]
    runs: Option<u64>,
    /// Merge the inputs that add coverage into the committed seeds afterwards.
    #[arg(long)]
    save: bool,
    /// Targets to run (default: all).
    targets: Vec<String>,
}

/// What libFuzzer reported at the end of one run.
#[derive(Debug, Default, serde::Serialize)]
struct Outcome {
    target: String,
    executions: u64,
    execs_per_s: u64,
    seconds: u64,
    edges: u64,
    features: u64,
    corpus: u64,
    crashed: bool,
    artifact: Option<String>,
}

pub fn run(root: &Path, args: &FuzzArgs) -> Result<()> {
    let fuzz_dir = root.join("sensor/fuzz");
    let all = all_targets(&fuzz_dir)?;
    let targets: Vec<&str> = if args.targets.is_empty() {
        all.iter().map(String::as_str).collect()
    } else {
        for t in &args.targets {
            if !all.contains(t) {
                bail!("no fuzz target {t:?}; the targets are: {}", all.join(", "));
            }
        }
        args.targets.iter().map(String::as_str).collect()
    };
    heading("fuzz: tools");
    if cmd::probe(Command::new("cargo").args(["+nightly", "fuzz", "--version"]))?.is_none() {
        cmd::run("install cargo-fuzz", Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let log_dir = root.join("target/fuzz");
    fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let mut outcomes = Vec::new();
    for target in targets {
        heading(&format!("fuzz: {target}"));
        let corpus = fuzz_dir.join("corpus").join(target);
        let seeds = fuzz_dir.join("seeds").join(target);
        fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        fs::create_dir_all(&seeds).with_context(|| format!("creating {}", seeds.display()))?;
        let mut c = fuzz_command(&fuzz_dir, target);
        c.arg(&corpus).arg(&seeds).arg("--").arg(format!("-max_total_time={}", args.minutes * 60));
        c.args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"]);
        if let Some(runs) = args.runs {
            c.arg(format!("-runs={runs}"));
        }
        note(&format!("$ {}", cmd::display(&c)));
        let out = c.stdin(Stdio::null()).output().with_context(|| format!("running the {target} fuzzer"))?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        fs::write(log_dir.join(format!("{target}.log")), &log)?;
        let mut outcome = parse(target, &log);
        outcome.crashed = !out.status.success();
        if outcome.crashed {
            let artifact = outcome.artifact.clone().context(format!(
                "{target}: the fuzzer failed without leaving an input; see {}",
                log_dir.join(format!("{target}.log")).display()
            ))?;
            let regressions = fuzz_dir.join("regressions").join(target);
            fs::create_dir_all(&regressions)?;
            let from = fuzz_dir.join(&artifact);
            let name = from.file_name().map_or_else(|| PathBuf::from("crash"), PathBuf::from);
            fs::copy(&from, regressions.join(name)).with_context(|| format!("copying {}", from.display()))?;
            note(&format!("CRASH: input {artifact}, copied to {}", regressions.display()));
        } else if args.save {
            let mut merge = fuzz_command(&fuzz_dir, target);
            merge.arg(&seeds).arg(&corpus).args(["--", "-merge=1"]);
            cmd::run("merge into the seeds", merge.stdout(Stdio::null()).stderr(Stdio::null()))?;
        }
        note(&row(&outcome));
        let line = serde_json::to_string(&outcome)?;
        let mut runs = fs::read_to_string(log_dir.join("runs.jsonl")).unwrap_or_default();
        runs.push_str(&line);
        runs.push('\n');
        fs::write(log_dir.join("runs.jsonl"), runs)?;
        outcomes.push(outcome);
    }
    heading("fuzz: summary (rows for docs/FUZZING.md)");
    eprintln!("| target | executions | execs/s | seconds | edges | features | corpus | crashed |");
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---|");
    for o in &outcomes {
        eprintln!("{}", row(o));
    }
    let crashed: Vec<&str> = outcomes.iter().filter(|o| o.crashed).map(|o| o.target.as_str()).collect();
    if !crashed.is_empty() {
        bail!("crashes in {}: their inputs are in sensor/fuzz/regressions/", crashed.join(", "));
    }
    Ok(())
}

fn fuzz_command(fuzz_dir: &Path, target: &str) -> Command {
    let mut c = Command::new("cargo");
    c.args(["+nightly", "fuzz", "run", "--release", target]).current_dir(fuzz_dir).env("AYA_BUILD_SKIP", "1");
    c
}

fn row(o: &Outcome) -> String {
    format!(
        "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
        o.target,
        o.executions,
        o.execs_per_s,
        o.seconds,
        o.edges,
        o.features,
        o.corpus,
        if o.crashed { "**yes**" } else { "no" }
    )
}

/// The final statistics of a libFuzzer log: `stat::` lines, the last status line
/// (`#N ... cov: E ft: F corp: C/...`) and the artifact of a crash.
fn parse(target: &str, log: &str) -> Outcome {
    let mut o = Outcome { target: target.to_owned(), ..Outcome::default() };
    let number = |s: &str| s.trim().parse::<u64>().unwrap_or(0);
    for line in log.lines() {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            o.executions = number(v);
        } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
            o.execs_per_s = number(v);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            // "Done 123 runs in 60 second(s)"
            o.seconds = rest.split_whitespace().nth(3).map_or(0, number);
        } else if line.starts_with('#') && line.contains(" cov: ") {
            let field = |name: &str| {
                line.split_whitespace()
                    .skip_while(|w| *w != name)
                    .nth(1)
                    .map_or(0, |v| number(v.split('/').next().unwrap_or("0")))
            };
            o.edges = field("cov:");
            o.features = field("ft:");
            o.corpus = field("corp:");
        } else if let Some(rest) = line.split("Test unit written to ").nth(1) {
            o.artifact = Some(rest.trim().to_owned());
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzers_final_statistics() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 3/40b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 120 ft: 300 corp: 25/1Kb lim: 43 exec/s: 2048 rss: 40Mb\n\
                   Done 5000 runs in 2 second(s)\nstat::number_of_executed_units: 5000\n\
                   stat::average_exec_per_sec:     2500\nstat::new_units_added:          22\n";
        let o = parse("identify", log);
        assert_eq!((o.executions, o.execs_per_s, o.seconds), (5000, 2500, 2));
        assert_eq!((o.edges, o.features, o.corpus), (120, 300, 25));
        assert!(o.artifact.is_none());
        let crash = parse(
            "identify",
            "==1== ERROR\nartifact_prefix='x'; Test unit written to artifacts/identify/crash-ab\n",
        );
        assert_eq!(crash.artifact.as_deref(), Some("artifacts/identify/crash-ab"));
    }
}
