//! Builds the XDP program in `ebpf/nbad-ebpf` for the BPF target and leaves the object at
//! `$OUT_DIR/nbad-ebpf`, where `capture::xdp::object` embeds it.
//!
//! aya-build runs `rustup run nightly cargo build --release --target bpf{el,eb}-unknown-none
//! -Z build-std=core` (linked by `bpf-linker`) in a target directory under `$OUT_DIR`, and asks
//! cargo to rerun this script whenever anything under the eBPF crate changes. The program also
//! compiles `nbad-common`, which lives outside that crate, so it is watched here as well:
//! together that keeps cargo from ever serving a stale object.
//!
//! aya-build relays every line of that inner build as a `cargo:warning`, which cargo shows as
//! hundreds of `warning: nbad-sensor@…: Compiling …` lines on every build that runs it. So this
//! script runs itself a second time as a child (`NBAD_EBPF_BUILD=1`) to call aya-build, keeps
//! the child's `cargo:` instructions, passes on all but the warnings, and shows the warnings
//! (the inner build's whole output) only when the build fails.
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build on machines without nightly or bpf-linker; the
//! embedded object is then empty (never a leftover from an earlier build), so the sensor still
//! compiles but cannot attach XDP, and the object's unit test fails and says why.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, anyhow, bail};
use aya_build::{Package, Toolchain};

/// Package and bin target name of the XDP program; also the object's file name in `OUT_DIR`.
const EBPF_PACKAGE: &str = "nbad-ebpf";
/// Set in the child run that calls aya-build.
const CHILD_ENV: &str = "NBAD_EBPF_BUILD";

fn main() -> anyhow::Result<()> {
    if env::var_os(CHILD_ENV).is_some() {
        return build_ebpf();
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);

    // aya-build copies the fresh object over this placeholder; it stays empty only when
    // AYA_BUILD_SKIP is set, so a skipped build never embeds an old object.
    let object = out_dir.join(EBPF_PACKAGE);
    fs::write(&object, []).with_context(|| format!("cannot create {}", object.display()))?;

    let me = env::current_exe().context("the build script's own path")?;
    let out = Command::new(&me)
        .env(CHILD_ENV, "1")
        .current_dir(&manifest_dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} again to build the XDP program", me.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut warnings = Vec::new();
    for line in stdout.lines() {
        match line.strip_prefix("cargo:warning=") {
            // Building without XDP support is worth one line on every build.
            Some(text) if text.starts_with("AYA_BUILD_SKIP") => println!("{line}"),
            Some(text) => warnings.push(text),
            // rerun-if-changed, rerun-if-env-changed and the like: cargo's to keep.
            None => println!("{line}"),
        }
    }
    if !out.status.success() {
        for w in &warnings {
            println!("cargo:warning={w}");
        }
        bail!(
            "building the XDP program failed (its build output is above, as warnings): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The child run: aya-build, with its output on this process's stdout for the parent to sort.
fn build_ebpf() -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let ebpf_root = manifest_dir.join("../ebpf");
    let ebpf_dir = canonical(&ebpf_root.join(EBPF_PACKAGE))?;
    let common_dir = canonical(&ebpf_root.join("nbad-common"))?;

    // aya-build watches the eBPF crate itself (`root_dir`); its path dependency is ours to watch.
    println!("cargo:rerun-if-changed={}", utf8(&common_dir)?);

    // aya-build runs `cargo build --package nbad-ebpf` in the current directory. The crate is
    // excluded from this workspace (its own `[workspace]`, profiles and nightly toolchain), so
    // cargo has to start from the crate's directory to find it.
    env::set_current_dir(&ebpf_dir).with_context(|| format!("cannot enter {}", ebpf_dir.display()))?;

    aya_build::build_ebpf(
        [Package { name: EBPF_PACKAGE, root_dir: utf8(&ebpf_dir)?, ..Package::default() }],
        Toolchain::Nightly,
    )
    .context(
        "building the XDP program failed; it needs the nightly toolchain with rust-src and \
         bpf-linker (or set AYA_BUILD_SKIP=1 to build without XDP support)",
    )
}

fn canonical(path: &Path) -> anyhow::Result<PathBuf> {
    path.canonicalize().with_context(|| format!("cannot resolve {}", path.display()))
}

fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str().ok_or_else(|| anyhow!("path is not UTF-8: {}", path.display()))
}
