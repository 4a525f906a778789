//! A classic pcap writer: little-endian, microsecond timestamps, Ethernet link type. Small
//! enough to write by hand; the layout is the libpcap file format (`pcap-savefile(5)`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

const MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 262_144;

#[derive(Debug)]
pub struct PcapWriter {
    out: BufWriter<File>,
    bytes: u64,
}

impl PcapWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = Self { out: BufWriter::with_capacity(1 << 20, file), bytes: 0 };
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC_MICROSECONDS.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        writer.put(&header)?;
        Ok(writer)
    }

    pub fn write_packet(&mut self, ts_us: u64, orig_len: u32, data: &[u8]) -> Result<()> {
        let ts_sec = u32::try_from(ts_us / 1_000_000).context("timestamp past 2106")?;
        let ts_usec = (ts_us % 1_000_000) as u32;
        let caplen = u32::try_from(data.len()).context("packet over 4 GiB")?;
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&ts_sec.to_le_bytes());
        record[4..8].copy_from_slice(&ts_usec.to_le_bytes());
        record[8..12].copy_from_slice(&caplen.to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.max(caplen).to_le_bytes());
        self.put(&record)?;
        self.put(data)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).context("writing the capture")?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and returns the file's size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        self.out.flush().context("writing the capture")?;
        Ok(self.bytes)
    }
}
