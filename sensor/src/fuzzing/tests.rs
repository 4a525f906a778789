//! Replays the saved fuzz corpora and the crash regressions through every target.

use std::path::{Path, PathBuf};

use super::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_saved_input_of_every_target_replays_cleanly() {
    let mut total = 0;
    for (name, run) in TARGETS {
        let mut files = inputs(&fuzz_dir().join("seeds").join(name));
        assert!(!files.is_empty(), "{name}: no saved corpus in sensor/fuzz/seeds/{name}");
        files.extend(inputs(&fuzz_dir().join("regressions").join(name)));
        for file in &files {
            let data = std::fs::read(file).expect("a saved input reads");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name}: {} fails its checks", file.display());
        }
        total += files.len();
    }
    assert!(total >= TARGETS.len());
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("the fuzz crate's manifest");
    for (name, _) in TARGETS {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name} has no [[bin]] in sensor/fuzz");
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source).expect("the target's source");
        assert!(
            text.contains(&format!("fuzzing::{name}::run")),
            "{} does not run the check",
            source.display()
        );
    }
}
