//! The capture that `bench --live` replays: the benchmark capture without the frames a veth
//! with the default MTU refuses, optionally cut to `--live-packets`, written once and reused.

use std::fs::{self, File};
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use super::super::capture::BenchCapture;
use super::super::pcap_out::PcapWriter;
use crate::cmd::{heading, note};

/// The largest frame a veth with the default 1500-byte MTU sends: MTU plus the Ethernet header.
pub(super) const MAX_FRAME: usize = 1514;

/// The capture that is replayed: the benchmark capture's frames of at most [`MAX_FRAME`]
/// bytes, all of them or the first `--live-packets`. Built once, beside the benchmark capture
/// (`bench-<recipe>-live-<N|all>.pcap` and its `.json`).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LiveCapture {
    #[serde(skip)]
    pub(super) path: PathBuf,
    pub(super) packets: u64,
    bytes: u64,
    /// Frames over [`MAX_FRAME`] bytes skipped among those read.
    pub(super) left_out: u64,
    /// Concurrent flows of a synthetic capture (`--live-flows`); `None` for the corpus replay.
    #[serde(default)]
    pub(super) flows: Option<u64>,
}

impl LiveCapture {
    /// A synthetic capture (see `synthetic`) of `packets` frames over `flows` flows.
    pub(super) fn synthetic(path: PathBuf, packets: u64, bytes: u64, flows: u64) -> Self {
        Self { path, packets, bytes, left_out: 0, flows: Some(flows) }
    }

    pub(super) fn ensure(bench_dir: &Path, capture: &BenchCapture, limit: Option<u64>) -> Result<Self> {
        heading("bench --live: capture to replay");
        let stem = capture.pcap.file_stem().and_then(|s| s.to_str()).context("capture file name")?;
        let tag = limit.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let path = bench_dir.join(format!("{stem}-live-{tag}.pcap"));
        let meta_path = path.with_extension("json");
        let cached = fs::read(&meta_path).ok().and_then(|b| serde_json::from_slice::<Self>(&b).ok());
        if let Some(meta) = cached
            && fs::metadata(&path).is_ok_and(|m| m.len() == meta.bytes)
        {
            note(&format!("reusing {}", path.display()));
            let live = Self { path, ..meta };
            live.describe();
            return Ok(live);
        }
        note(&format!("writing {} from {}", path.display(), capture.pcap.display()));
        let partial = path.with_extension("pcap.partial");
        let (packets, left_out, bytes) = copy_small_frames(&capture.pcap, &partial, limit)?;
        fs::rename(&partial, &path).with_context(|| format!("renaming to {}", path.display()))?;
        let live = Self { path, packets, bytes, left_out, flows: None };
        fs::write(&meta_path, serde_json::to_string_pretty(&live)?)
            .with_context(|| format!("writing {}", meta_path.display()))?;
        live.describe();
        Ok(live)
    }

    fn describe(&self) {
        note(&format!(
            "{} packets to send; {} frames over {MAX_FRAME} bytes left out (the veth's MTU refuses them)",
            self.packets, self.left_out
        ));
    }
}

/// Copies the frames of at most [`MAX_FRAME`] bytes of `from` (a capture written by
/// `pcap_out`: classic pcap, little-endian, microseconds) to `to`, up to `limit` of them.
/// Returns (frames copied, frames left out, bytes written).
fn copy_small_frames(from: &Path, to: &Path, limit: Option<u64>) -> Result<(u64, u64, u64)> {
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; 24];
    input.read_exact(&mut header).with_context(|| format!("reading {}", from.display()))?;
    ensure!(
        header[..4] == 0xa1b2_c3d4_u32.to_le_bytes(),
        "{}: not a little-endian microsecond pcap (as `bench` writes them)",
        from.display()
    );
    let mut out = PcapWriter::create(to)?;
    let (mut kept, mut left_out) = (0u64, 0u64);
    let mut record = [0u8; 16];
    let mut frame = vec![0u8; 1 << 16];
    while limit.is_none_or(|n| kept < n) {
        match input.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
        }
        let word = |i: usize| u32::from_le_bytes([record[i], record[i + 1], record[i + 2], record[i + 3]]);
        let (ts_us, caplen, orig) = (u64::from(word(0)) * 1_000_000 + u64::from(word(4)), word(8), word(12));
        let caplen = usize::try_from(caplen).context("frame length")?;
        if frame.len() < caplen {
            frame.resize(caplen, 0);
        }
        input
            .read_exact(&mut frame[..caplen])
            .with_context(|| format!("{}: a frame cut short", from.display()))?;
        if caplen > MAX_FRAME {
            left_out += 1;
            continue;
        }
        out.write_packet(ts_us, orig, &frame[..caplen])?;
        kept += 1;
    }
    let bytes = out.finish()?;
    Ok((kept, left_out, bytes))
}
