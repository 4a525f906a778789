//! The libpcap floor for `cargo xtask bench`: the plainest possible libpcap reader.
//!
//! Opens a capture with `pcap::Capture::from_file`, loops `next_packet()` and counts packets and
//! captured bytes; it decodes nothing. Whatever the sensor's replay does beyond reading packets
//! shows up as the difference between its rate and this one, measured in the same bench run.
//!
//! Usage: `pcap_read_loop FILE`; prints `packets=N` and `bytes=M` on separate lines.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next().map(PathBuf::from), args.next()) else {
        bail!("usage: pcap_read_loop FILE");
    };
    let mut capture = pcap::Capture::from_file(&path)
        .with_context(|| format!("opening {} with libpcap", path.display()))?;
    let (mut packets, mut bytes) = (0u64, 0u64);
    loop {
        match capture.next_packet() {
            Ok(packet) => {
                packets += 1;
                bytes += u64::from(packet.header.caplen);
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", path.display()));
            }
        }
    }
    println!("packets={packets}");
    println!("bytes={bytes}");
    Ok(())
}
