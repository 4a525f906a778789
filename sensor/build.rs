//! Builds the XDP program in `ebpf/nbad-ebpf` for the BPF target and leaves the object at
//! `$OUT_DIR/nbad-ebpf`, where `capture::xdp::object` embeds it.
//!
//! aya-build runs `rustup run nightly cargo build --release --target bpf{el,eb}-unknown-none
//! -Z build-std=core` (linked by `bpf-linker`) in a target directory under `$OUT_DIR`, and asks
//! cargo to rerun this script whenever anything under the eBPF crate changes. The program also
//! compiles `nbad-common`, which lives outside that crate, so it is watched here as well:
//! together that keeps cargo from ever serving a stale object.
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build on machines without nightly or bpf-linker; the
//! embedded object is then empty (never a leftover from an earlier build), so the sensor still
//! compiles but cannot attach XDP, and the object's unit test fails and says why.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Package and bin target name of the XDP program; also the object's file name in `OUT_DIR`.
const EBPF_PACKAGE: &str = "nbad-ebpf";

fn main() -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let ebpf_root = manifest_dir.join("../ebpf");
    let ebpf_dir = canonical(&ebpf_root.join(EBPF_PACKAGE))?;
    let common_dir = canonical(&ebpf_root.join("nbad-common"))?;
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);

    // aya-build copies the fresh object over this placeholder; it stays empty only when
    // AYA_BUILD_SKIP is set, so a skipped build never embeds an old object.
    let object = out_dir.join(EBPF_PACKAGE);
    fs::write(&object, []).with_context(|| format!("cannot create {}", object.display()))?;

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
