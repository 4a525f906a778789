//! Writes seed inputs for the fuzz targets.
//!
//! Into `seeds/<target>/` (committed, and replayed by the tests), from the sensor's own
//! synthetic traffic and files only:
//!
//! - `capture_file`: the demo and self-test captures, cut to their first frames (a small seed
//!   mutates faster than the whole ten-minute capture);
//! - `decode_frame`: distinct frames of them, prefixed with the selector byte of the link type;
//! - `decode_frames`: runs of 8 consecutive frames, each cut to 255 bytes and prefixed with its
//!   length (the demo's fragmented datagram and tunnels among them);
//! - `identify`: the self-test's frames, as Ethernet frames (selector 2);
//! - `flow_table`: a few packet streams;
//! - `config_toml`: every file in `configs/`;
//! - `spool_segment`: segments of a few records, whole, torn and with a gap in the numbering;
//! - `metrics_request`: request heads, scrapes and hostile ones;
//! - `state_file`: nothing here: `cargo xtask fuzz` adds a state the sensor saved.
//!
//! Into `corpus/<target>/` (ignored by git, so that frames of `../shared/corpus` are never
//! committed): each capture given on the command line, and its frames for `decode_frame`.
//!
//! Usage (from `sensor/fuzz`):
//! `AYA_BUILD_SKIP=1 cargo run --example seed_corpus -- [CAPTURE...]`.
//! Seeds are named by content, so running it twice adds nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nbad_sensor::capture::file::FileSource;
use nbad_sensor::capture::{LinkType, Next, PacketSource};

/// Frames of the demo capture kept in its `capture_file` seed.
const DEMO_FRAMES: usize = 64;
/// Frames taken from each capture given for `decode_frame` at most.
const FRAMES_PER_CAPTURE: usize = 2_000;
/// Frames of the synthetic captures made into seeds.
const SEED_FRAMES: usize = 200;

fn main() -> Result<()> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = here.join("seeds");
    let corpus = here.join("corpus");
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;

    let mut synthetic = Vec::new();
    for (name, timeline) in
        [("demo", nbad_sensor::synth::demo::timeline(1)), ("selftest", nbad_sensor::selftest::scenario())]
    {
        let path = tmp.path().join(format!("{name}.pcap"));
        let mut full = Vec::new();
        timeline.write_pcap(&mut full).with_context(|| format!("writing the {name} capture"))?;
        std::fs::write(&path, &full).with_context(|| format!("writing the {name} capture"))?;
        write_seed(&seeds.join("capture_file"), &first_frames(&path, DEMO_FRAMES)?)?;
        synthetic.push(path);
    }
    let mut frames = BTreeSet::new();
    collect_frames(&synthetic[0], SEED_FRAMES, &mut frames)?;
    for frame in &frames {
        write_seed(&seeds.join("decode_frame"), frame)?;
    }
    let ordered = ordered_frames(&synthetic[0], SEED_FRAMES)?;
    for run in ordered.chunks(8) {
        let mut seed = vec![run[0][0] % 3];
        for frame in run {
            let cut = &frame[1..frame.len().min(256)];
            seed.push(u8::try_from(cut.len()).unwrap_or(u8::MAX));
            seed.extend_from_slice(cut);
        }
        write_seed(&seeds.join("decode_frames"), &seed)?;
    }
    let mut app_frames = BTreeSet::new();
    collect_frames(&synthetic[1], usize::MAX, &mut app_frames)?;
    // Frames with a payload (longer than a bare Ethernet + IP + TCP header with options).
    for frame in app_frames.iter().filter(|f| f[0] == 0 && f.len() > 90).take(400) {
        let mut seed = vec![2];
        seed.extend_from_slice(&frame[1..]);
        write_seed(&seeds.join("identify"), &seed)?;
    }
    for stream in
        [&[0x10u8, 0x02, 0x08, 0x01, 0x00, 0x12, 0x08, 0x01][..], &[0x31, 0, 200, 10, 0x81, 0x18, 30, 0xff]]
    {
        write_seed(&seeds.join("flow_table"), stream)?;
    }
    for entry in std::fs::read_dir(here.join("../../configs")).context("reading configs/")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            write_seed(&seeds.join("config_toml"), &std::fs::read(&path)?)?;
        }
    }
    for segment in spool_segments() {
        write_seed(&seeds.join("spool_segment"), &segment)?;
    }
    for head in [
        &b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: */*\r\n\r\n"[..],
        b"GET /metrics?name[]=x HTTP/1.0\n\n",
        b"GET /../../etc/passwd HTTP/1.1\r\n\r\n",
        b"GET http://127.0.0.1/metrics HTTP/1.1\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /metrics\r\n\r\n",
    ] {
        write_seed(&seeds.join("metrics_request"), head)?;
    }

    let mut given = BTreeSet::new();
    for path in std::env::args_os().skip(1).map(PathBuf::from) {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        write_seed(&corpus.join("capture_file"), &bytes)?;
        collect_frames(&path, FRAMES_PER_CAPTURE, &mut given)?;
    }
    for frame in &given {
        write_seed(&corpus.join("decode_frame"), frame)?;
    }
    println!(
        "seeds under {}; {} frames of the captures given under {}",
        seeds.display(),
        given.len(),
        corpus.display()
    );
    Ok(())
}

/// Spool segments: three whole records, the same torn in the last record, and a gap in the
/// numbering (the spool's record format: length, CRC-32 of what follows it, sequence number,
/// append time, payload; little-endian).
fn spool_segments() -> Vec<Vec<u8>> {
    let record = |seq: u64, payload: &[u8]| {
        let mut body = Vec::new();
        body.extend_from_slice(&seq.to_le_bytes());
        body.extend_from_slice(&(1_767_225_600_000 + seq).to_le_bytes());
        body.extend_from_slice(payload);
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    };
    let alert = br#"{"event":{"kind":"alert","id":"a1"},"rule":{"name":"scan"}}"#;
    let whole: Vec<u8> = [record(1, alert), record(2, b"{}"), record(3, alert)].concat();
    let torn = whole[..whole.len() - 7].to_vec();
    let gap: Vec<u8> = [record(1, alert), record(5, alert)].concat();
    vec![whole, torn, gap]
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
fn collect_frames(path: &Path, limit: usize, frames: &mut BTreeSet<Vec<u8>>) -> Result<()> {
    frames.extend(ordered_frames(path, limit)?);
    Ok(())
}

/// The first `limit` frames of `path` in order (selector byte first); a read error ends the
/// file, as it ends a replay.
fn ordered_frames(path: &Path, limit: usize) -> Result<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    let mut source = match FileSource::new(&[path.to_path_buf()]) {
        Ok(source) => source,
        Err(err) => {
            eprintln!("skipping {}: {err}", path.display());
            return Ok(frames);
        }
    };
    for _ in 0..limit {
        match source.next_packet() {
            Ok(Next::Packet(p)) => {
                let mut seed = vec![selector(p.link)];
                seed.extend_from_slice(p.data);
                frames.push(seed);
            }
            Ok(Next::Idle | Next::Decoded(_)) => {}
            Ok(Next::End) => break,
            Err(err) => {
                eprintln!("{}: stopped at an error: {err}", path.display());
                break;
            }
        }
    }
    Ok(frames)
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
