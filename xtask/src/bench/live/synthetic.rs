//! `--live-flows N`: a synthetic capture of N concurrent UDP flows, for the shape the corpus
//! replay does not have: every flow active through the whole replay, so that every poll of
//! the XDP path finds all N of them changed.
//!
//! Packet k belongs to flow k mod N; flow i goes from 198.18.(i / 256 mod 256).(i mod 256),
//! port 10000 + i / 65536, to 198.19.0.1 port 5001 (RFC 2544's benchmarking range; the bench's
//! veth pair has no addresses and no routes, so the frames go nowhere else). Each frame is 60
//! bytes (IPv4 total length 46), 1 µs apart in the file (tcpreplay `--topspeed` ignores that).
//! Built once per (N, packets), beside the other live captures.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, ensure};

use super::super::pcap_out::PcapWriter;
use super::capture::LiveCapture;
use crate::cmd::{heading, note};

/// Most flows `--live-flows` takes: the source address and port encode the flow index.
pub(in super::super) const MAX_FLOWS: u64 = 1 << 24;
/// Packets sent when `--live-packets` is not given.
pub(super) const DEFAULT_PACKETS: u64 = 3_000_000;

const FRAME_LEN: usize = 60;
const IP_TOTAL_LEN: u16 = 46;
const DST_PORT: u16 = 5001;

/// The synthetic capture of `flows` flows and `packets` packets, written unless it exists.
pub(super) fn ensure(bench_dir: &Path, flows: u64, packets: u64) -> Result<LiveCapture> {
    heading("bench --live: synthetic capture to replay");
    ensure!((1..=MAX_FLOWS).contains(&flows), "--live-flows must be 1 to {MAX_FLOWS}");
    let path = bench_dir.join(format!("live-udp-{flows}-flows-{packets}.pcap"));
    let expected = 24 + packets * (16 + FRAME_LEN as u64);
    let live = LiveCapture::synthetic(path.clone(), packets, expected, flows);
    if fs::metadata(&path).is_ok_and(|m| m.len() == expected) {
        note(&format!("reusing {}", path.display()));
    } else {
        fs::create_dir_all(bench_dir).with_context(|| format!("creating {}", bench_dir.display()))?;
        note(&format!("writing {}", path.display()));
        let partial = path.with_extension("pcap.partial");
        let mut out = PcapWriter::create(&partial)?;
        let mut frame = [0u8; FRAME_LEN];
        for k in 0..packets {
            fill_frame(&mut frame, k % flows, k);
            out.write_packet(1_700_000_000_000_000 + k, FRAME_LEN as u32, &frame)?;
        }
        let bytes = out.finish()?;
        ensure!(bytes == expected, "wrote {bytes} bytes, expected {expected}");
        fs::rename(&partial, &path).with_context(|| format!("renaming to {}", path.display()))?;
    }
    note(&format!(
        "{packets} packets round-robin over {flows} concurrent UDP flows, {FRAME_LEN}-byte frames"
    ));
    Ok(live)
}

/// Flow `flow`'s `seq`-th frame: Ethernet, IPv4 (checksummed), UDP (no checksum), payload.
fn fill_frame(frame: &mut [u8; FRAME_LEN], flow: u64, seq: u64) {
    let flow = flow.to_be_bytes();
    let (hi, mid, lo) = (flow[5], flow[6], flow[7]);
    frame.fill(0);
    frame[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut frame[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&IP_TOTAL_LEN.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, mid, lo]);
    ip[16..20].copy_from_slice(&[198, 19, 0, 1]);
    let sum = ip_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut frame[34..42];
    udp[0..2].copy_from_slice(&(10_000 + u16::from(hi)).to_be_bytes());
    udp[2..4].copy_from_slice(&DST_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(IP_TOTAL_LEN - 20).to_be_bytes());
    frame[42..50].copy_from_slice(&seq.to_be_bytes());
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_differ_by_source_address_and_port_and_headers_check_out() {
        let (mut a, mut b) = ([0u8; FRAME_LEN], [0u8; FRAME_LEN]);
        fill_frame(&mut a, 0x01_0203, 7);
        assert_eq!(&a[26..30], &[198, 18, 2, 3]);
        assert_eq!(u16::from_be_bytes([a[34], a[35]]), 10_001);
        assert_eq!(ip_checksum(&a[14..34]), 0, "a valid header sums to zero");
        fill_frame(&mut b, 0x01_0204, 7);
        assert_ne!(a[26..36], b[26..36]);
    }
}
