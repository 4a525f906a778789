//! One way for a test to say that it could not run here, and for the test
//! run to count it.
//!
//! libtest has no "skipped at run time": a test that returns early is counted
//! as passed. So every test that needs something the machine may lack (root,
//! a program, a receiver, the shared corpus) asks [`require`] (or calls
//! [`skip`]) first. Where the need is not met, the test is reported as
//! skipped:
//!
//! - one line `SKIPPED <test>: <reason>` on stderr, written past libtest's
//!   output capture, so it shows in every log;
//! - one JSON line appended to the file named by `NBAD_TEST_REPORT`, when
//!   that is set (`cargo xtask test` sets it). xtask subtracts those tests
//!   from libtest's passed count, adds them to the skipped count, prints each
//!   reason once, and under `CI=true` fails the run on any skip that is not
//!   [`Kind::Corpus`]: CI installs everything else (`cargo xtask setup`).
//!
//! A test whose needs are met gets a [`Ran`] guard; when it is dropped (the
//! test ended, passed or not) it reports the test's wall time the same way,
//! so the log shows that the root and lab tests really ran and how long they
//! took.
//!
//! The test's name is its binary's and the name libtest gives its thread (`lab::test`).

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Environment variable naming the report file (JSON lines).
pub const REPORT_ENV: &str = "NBAD_TEST_REPORT";

/// Why a test could not run. Only [`Kind::Corpus`] is an acceptable skip in CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The shared capture corpus (`../shared/corpus`) is absent. It is never
    /// committed, so a clone without it cannot run these tests.
    Corpus,
    /// The test needs root (namespaces, XDP, containers).
    Root,
    /// A program, package or service that `cargo xtask setup` installs is
    /// missing or does not work.
    Prerequisite,
}

impl Kind {
    /// The name written to the report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Corpus => "corpus",
            Self::Root => "root",
            Self::Prerequisite => "prerequisite",
        }
    }
}

/// Something a test needs.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// Effective uid 0.
    Root,
    /// A program on `$PATH` (or in /usr/sbin, /sbin), with the Debian package
    /// that provides it.
    Program {
        /// The program's file name.
        program: &'a str,
        /// Its Debian package.
        package: &'a str,
    },
}

impl fmt::Display for Need<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("root"),
            Self::Program { program, package } => write!(f, "{program} (package {package})"),
        }
    }
}

/// Checks `needs`: `Some` guard when all are met, else reports the test as
/// skipped (naming every unmet need) and returns `None`.
///
/// ```text
/// let Some(_ran) = gate::require(&[Need::Root]) else { return Ok(()) };
/// ```
#[must_use]
pub fn require(needs: &[Need<'_>]) -> Option<Ran> {
    let mut missing = Vec::new();
    let mut kind = Kind::Prerequisite;
    for need in needs {
        let met = match need {
            Need::Root => crate::lab::preflight::is_root(),
            Need::Program { program, .. } => crate::lab::preflight::find_program(program).is_some(),
        };
        if !met {
            if matches!(need, Need::Root) {
                kind = Kind::Root;
            }
            missing.push(need.to_string());
        }
    }
    if missing.is_empty() {
        return Some(Ran::start());
    }
    // Without root, the programs do not matter yet: say only that.
    let reason = if kind == Kind::Root {
        "needs root".to_owned()
    } else {
        format!("needs {} (cargo xtask setup installs it)", missing.join(", "))
    };
    skip(kind, &reason);
    None
}

/// Reports the calling test as skipped for `reason`. The test should return
/// right after.
pub fn skip(kind: Kind, reason: &str) {
    let test = test_name();
    report(&serde_json::json!({ "event": "skip", "kind": kind.name(), "test": test, "reason": reason }));
    say(&format!("SKIPPED {test}: {reason}\n"));
}

/// Proof that a gated test passed its gate: reports the test's wall time when
/// dropped.
#[derive(Debug)]
pub struct Ran {
    test: String,
    started: Instant,
}

impl Ran {
    /// A guard for the calling test, started now (for tests whose needs are
    /// checked another way, for example [`crate::Corpus::open_or_skip`]).
    #[must_use]
    pub fn start() -> Self {
        Self { test: test_name(), started: Instant::now() }
    }
}

impl Drop for Ran {
    fn drop(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let failed = std::thread::panicking();
        let outcome = if failed { "failed" } else { "ran" };
        report(&serde_json::json!({ "event": outcome, "test": self.test, "seconds": secs }));
        say(&format!("RAN {} in {secs:.1} s{}\n", self.test, if failed { ", and failed" } else { "" }));
    }
}

/// The running test's name, `binary::path::test`: libtest names each test's thread after its
/// path in the binary, and cargo names the binary `<target>-<hash>`.
fn test_name() -> String {
    let test = std::thread::current().name().unwrap_or("(unnamed test)").to_owned();
    let binary = std::env::current_exe().ok().and_then(|exe| {
        let stem = exe.file_stem()?.to_str()?.to_owned();
        Some(stem.rsplit_once('-').map_or(stem.clone(), |(name, _)| name.to_owned()))
    });
    match binary {
        Some(binary) => format!("{binary}::{test}"),
        None => test,
    }
}

/// Writes to the process's stderr directly. libtest captures what `eprint!`
/// prints (and shows it only for failed tests); a direct write is not
/// captured, so these lines reach the log for passing tests too.
fn say(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Appends one JSON line to the report file, if one is configured. One
/// `write` of a short line to a file opened for appending, so lines of tests
/// running in parallel (and in several test binaries) never interleave.
fn report(event: &serde_json::Value) {
    let Some(path) = std::env::var_os(REPORT_ENV).map(PathBuf::from) else { return };
    let mut line = event.to_string();
    line.push('\n');
    match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(mut file) => {
            if let Err(e) = file.write_all(line.as_bytes()) {
                say(&format!("gate: cannot write {}: {e}\n", path.display()));
            }
        }
        Err(e) => say(&format!("gate: cannot open {}: {e}\n", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_need_that_every_machine_meets_gives_a_guard() {
        assert!(require(&[Need::Program { program: "sh", package: "dash" }]).is_some());
    }

    #[test]
    fn a_missing_program_is_named_with_its_package() {
        let need = Need::Program { program: "no-such-program-nbl", package: "nbl-nothing" };
        assert_eq!(need.to_string(), "no-such-program-nbl (package nbl-nothing)");
    }
}
