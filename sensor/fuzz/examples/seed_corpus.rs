//! Writes seed inputs for the fuzz targets into `corpus/<target>/`.
//!
//! - `capture_file`: the synthetic demo capture, cut to its first frames (a
//!   small seed mutates faster than the whole ten-minute capture), and each
//!   capture file given on the command line as it is.
//! - `decode_frame`: every distinct frame of those captures, prefixed with the
//!   selector byte of its link type.
//! - `flow_table`: nothing; it starts from an empty corpus.
//!
//! Usage (from `sensor/fuzz`):
//! `AYA_BUILD_SKIP=1 cargo run --example seed_corpus -- [CAPTURE...]`.
//! Seeds are named by content, so running it twice adds nothing. The corpus
//! folder is ignored by git: seeds made from `../shared/corpus` are never
//! committed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nbad_sensor::capture::file::FileSource;
use nbad_sensor::capture::{LinkType, Next, PacketSource};

/// Frames of the demo capture kept in its `capture_file` seed.
const DEMO_FRAMES: usize = 64;
/// Frames taken from each capture for `decode_frame` at most.
const FRAMES_PER_CAPTURE: usize = 2_000;

fn main() -> Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;

    let demo = tmp.path().join("demo.pcap");
    let mut full = Vec::new();
    nbad_sensor::synth::demo::timeline(1).write_pcap(&mut full).context("writing the demo capture")?;
    std::fs::write(&demo, &full).context("writing the demo capture")?;
    let small = first_frames(&demo, DEMO_FRAMES)?;
    write_seed(&corpus.join("capture_file"), &small)?;

    let mut captures = vec![demo];
    captures.extend(std::env::args_os().skip(1).map(PathBuf::from));
    let mut frames = BTreeSet::new();
    for path in &captures {
        if path != &captures[0] {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            write_seed(&corpus.join("capture_file"), &bytes)?;
        }
        collect_frames(path, &mut frames)?;
    }
    for frame in &frames {
        write_seed(&corpus.join("decode_frame"), frame)?;
    }
    std::fs::create_dir_all(corpus.join("flow_table")).context("creating corpus/flow_table")?;
    println!(
        "{} captures, {} distinct frames, seeds under {}",
        captures.len(),
        frames.len(),
        corpus.display()
    );
    Ok(())
}

/// The selector byte `decode_frame` maps to `link`.
fn selector(link: LinkType) -> u8 {
    match link {
        LinkType::Ethernet => 0,
        LinkType::Null => 1,
        LinkType::Loop => 2,
        LinkType::Raw => 3,
        LinkType::LinuxSll => 4,
        LinkType::LinuxSll2 => 5,
    }
}

/// Adds the frames of `path` (selector byte first) to `frames`; a read error
/// ends the file, as it ends a replay.
fn collect_frames(path: &Path, frames: &mut BTreeSet<Vec<u8>>) -> Result<()> {
    let mut source = match FileSource::new(&[path.to_path_buf()]) {
        Ok(source) => source,
        Err(err) => {
            eprintln!("skipping {}: {err}", path.display());
            return Ok(());
        }
    };
    for _ in 0..FRAMES_PER_CAPTURE {
        match source.next_packet() {
            Ok(Next::Packet(p)) => {
                let mut seed = vec![selector(p.link)];
                seed.extend_from_slice(p.data);
                frames.insert(seed);
            }
            Ok(Next::Idle) => {}
            Ok(Next::End) => break,
            Err(err) => {
                eprintln!("{}: stopped at an error: {err}", path.display());
                break;
            }
        }
    }
    Ok(())
}

/// The file header and first `n` records of a classic pcap.
fn first_frames(path: &Path, n: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut end = 24;
    for _ in 0..n {
        let Some(header) = bytes.get(end..end + 16) else { break };
        let caplen = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        end = (end + 16 + caplen).min(bytes.len());
    }
    Ok(bytes[..end].to_vec())
}

/// Writes `data` under `dir`, named by a hash of its content.
fn write_seed(dir: &Path, data: &[u8]) -> Result<()> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = format!("seed-{:016x}", BuildHasherDefault::<DefaultHasher>::default().hash_one(data));
    let path = dir.join(name);
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))
}
