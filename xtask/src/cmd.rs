//! Running child processes the same way everywhere: echo the command line, let it use the
//! terminal, and turn a failure into an error that names the step.
//!
//! xtask's own messages go to stderr, so a task's stdout is only what its children print.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The step under way and when it started (see [`heading`]).
static STEP: std::sync::Mutex<Option<(String, std::time::Instant)>> = std::sync::Mutex::new(None);

/// Prints a step heading. The step before it (if any) ends here, and how long it took is printed
/// first, so that every long task shows its steps' times.
pub fn heading(text: &str) {
    end_step();
    eprintln!("\n==> {text}");
    if let Ok(mut step) = STEP.lock() {
        *step = Some((text.to_owned(), std::time::Instant::now()));
    }
}

/// Ends the step under way, printing how long it took (xtask calls it once more at exit).
pub fn end_step() {
    let Ok(mut step) = STEP.lock() else { return };
    if let Some((text, started)) = step.take() {
        eprintln!("    [{text}: {:.1} s]", started.elapsed().as_secs_f64());
    }
}

/// Prints a detail line under the current step.
pub fn note(text: &str) {
    eprintln!("    {text}");
}

/// The command line as a shell user would type it (without quoting; for display only).
pub fn display(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    if let Some(dir) = cmd.get_current_dir() {
        line = format!("(cd {} && {line})", dir.display());
    }
    line
}

/// Runs `cmd` with the terminal as its stdio; fails naming `step` if it cannot start or exits
/// non-zero.
pub fn run(step: &str, cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    eprintln!("    $ {line}");
    let status = cmd.status().with_context(|| format!("step `{step}`: could not start `{line}`"))?;
    if !status.success() {
        bail!("step `{step}` failed: `{line}` exited with {status}");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or `None` when the program is not installed.
/// A program that starts but exits non-zero also gives `None`: callers use this to probe.
pub fn probe(cmd: &mut Command) -> Result<Option<String>> {
    match cmd.stdin(Stdio::null()).stderr(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("could not run `{}`", display(cmd))),
    }
}

/// A `cargo` command from PATH (the rustup proxy, so `+toolchain` works), without the
/// variables `cargo run` set for xtask itself (see [`without_cargo_run_env`]).
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("cargo");
    cmd.args(args);
    without_cargo_run_env(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment what `cargo run` set for the xtask binary
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `CARGO_CRATE_NAME`, ...). Build scripts that
/// track one of them (ring's tracks `CARGO_MANIFEST_DIR`) would otherwise see it change between
/// a build started by xtask and the same build started from a shell, and cargo would rebuild
/// them and everything above them: `cargo xtask deb` and `cargo build --release` rebuilt the
/// whole release binary, each undoing the other.
pub fn without_cargo_run_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(key, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE");
        if set_by_cargo_run {
            cmd.env_remove(key);
        }
    }
}

/// `cargo +nightly ...`. rustup exports `RUSTUP_TOOLCHAIN` (the toolchain of the outer
/// `cargo xtask`) to its children; it is removed so that nothing below can fall back to it.
pub fn cargo_nightly<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").args(args).env_remove("RUSTUP_TOOLCHAIN");
    without_cargo_run_env(&mut cmd);
    cmd
}
