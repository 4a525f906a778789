//! Long inputs for baselines over time, built from short corpus captures.
//!
//! Most corpus captures last seconds: a per-host baseline cannot learn from
//! them. [`LongInput::build`] makes the input a baseline needs:
//!
//! 1. **learning**: a benign capture repeated `repeats` times, one copy every
//!    `period_s` seconds (each copy shifted in time; packets later than the
//!    period in a copy are dropped so copies never overlap), its host renamed
//!    to the chosen host;
//! 2. **episode**: a corpus episode whose host at fault is renamed to the
//!    same host, starting one second after the last learning period, on a
//!    bucket boundary.
//!
//! Frames are read with pcap-parser (classic pcap and pcapng, by magic
//! number), turned into Ethernet frames (Linux cooked and raw IP get a zero
//! Ethernet header) and written as classic pcap with microsecond times.
//! Renaming an IPv4 address rewrites the header, recomputes its checksum, and
//! adjusts the TCP or UDP checksum for the pseudo-header (RFC 1624), so the
//! result decodes like the source. IPv6 and non-IP frames are copied as they
//! are.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError, create_reader};

/// Start of every long input: 2024-01-01T00:00:00Z, a bucket boundary.
pub const EPOCH_S: u64 = 1_704_067_200;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const ETH_LEN: usize = 14;
const SLL_LEN: usize = 16;

/// One frame: Ethernet bytes and a time in microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture time, µs since the epoch.
    pub ts_us: u64,
    /// Ethernet frame.
    pub data: Vec<u8>,
}

/// Reads every frame of a capture as Ethernet (see the module docs). Frames
/// of other link types (802.11, loopback) are an error: nothing here needs
/// them.
pub fn read_ethernet(path: &Path) -> Result<Vec<Frame>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = create_reader(1 << 20, file)
        .map_err(|e| anyhow::anyhow!("{}: not a capture: {e:?}", path.display()))?;
    let mut frames = Vec::new();
    // Classic pcap: link type and ticks per second; pcapng: one per interface.
    let mut legacy = (Linktype::ETHERNET, 1_000_000u64);
    let mut interfaces: Vec<(Linktype, u64)> = Vec::new();
    loop {
        let offset = match reader.next() {
            Ok((offset, block)) => {
                let packet = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        let per_s = if h.is_nanosecond_precision() { 1_000_000_000 } else { 1_000_000 };
                        legacy = (h.network, per_s);
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let ticks = u64::from(b.ts_sec) * legacy.1 + u64::from(b.ts_usec);
                        Some((legacy, ticks, b.data))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        interfaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let per_s = idb.ts_resolution().context("interface with an unusable if_tsresol")?;
                        interfaces.push((idb.linktype, per_s));
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = usize::try_from(epb.if_id)
                            .ok()
                            .and_then(|i| interfaces.get(i).copied())
                            .context("packet on an undeclared interface")?;
                        let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let caplen = usize::try_from(epb.caplen)?.min(epb.data.len());
                        Some((iface, ticks, &epb.data[..caplen]))
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some(((linktype, per_s), ticks, data)) = packet {
                    let ts_us = u64::try_from(u128::from(ticks) * 1_000_000 / u128::from(per_s.max(1)))?;
                    frames.push(Frame { ts_us, data: to_ethernet(linktype, data, path)? });
                }
                offset
            }
            Err(PcapError::Eof | PcapError::UnexpectedEof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    break;
                }
                reader.refill().map_err(|e| anyhow::anyhow!("{}: reading: {e:?}", path.display()))?;
                continue;
            }
            Err(e) => bail!("{}: parse error: {e:?}", path.display()),
        };
        reader.consume(offset);
    }
    Ok(frames)
}

/// The frame as Ethernet: as it is, or with a zero Ethernet header in place
/// of a Linux cooked header or in front of a raw IP packet.
fn to_ethernet(linktype: Linktype, data: &[u8], path: &Path) -> Result<Vec<u8>> {
    let with_header = |ethertype: [u8; 2], payload: &[u8]| {
        let mut frame = vec![0u8; ETH_LEN];
        frame[12..14].copy_from_slice(&ethertype);
        frame.extend_from_slice(payload);
        frame
    };
    Ok(match linktype {
        Linktype::ETHERNET => data.to_vec(),
        Linktype::LINUX_SLL => match (data.get(14..16), data.get(SLL_LEN..)) {
            (Some(ethertype), Some(payload)) => with_header([ethertype[0], ethertype[1]], payload),
            _ => data.to_vec(),
        },
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 | Linktype(12 | 14) => {
            let ethertype =
                if data.first().is_some_and(|b| b >> 4 == 6) { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
            with_header(ethertype, data)
        }
        other => bail!("{}: link type {other} is not handled here", path.display()),
    })
}

/// Renames IPv4 addresses in an Ethernet frame (after up to two VLAN tags)
/// by `map`; returns whether anything changed. The IPv4 header checksum is
/// recomputed and a TCP or UDP checksum adjusted; other frames are left as
/// they are.
pub fn rewrite_ipv4(frame: &mut [u8], map: &BTreeMap<Ipv4Addr, Ipv4Addr>) -> bool {
    let mut ip = 12;
    for _ in 0..3 {
        match frame.get(ip..ip + 2) {
            Some([0x81, 0x00] | [0x88, 0xa8]) => ip += 4,
            Some([0x08, 0x00]) => break,
            _ => return false,
        }
    }
    ip += 2;
    let Some(&first) = frame.get(ip) else { return false };
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || frame.len() < ip + ihl {
        return false;
    }
    let mut changed = [0u16; 2];
    let (mut old_sum, mut new_sum) = (0u32, 0u32);
    for (i, at) in [ip + 12, ip + 16].into_iter().enumerate() {
        let old = Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
        if let Some(new) = map.get(&old) {
            frame[at..at + 4].copy_from_slice(&new.octets());
            old_sum += words(&old.octets());
            new_sum += words(&new.octets());
            changed[i] = 1;
        }
    }
    if changed == [0, 0] {
        return false;
    }
    frame[ip + 10..ip + 12].fill(0);
    let header_sum = fold(words(&frame[ip..ip + ihl]));
    frame[ip + 10..ip + 12].copy_from_slice(&(!header_sum).to_be_bytes());
    // TCP and UDP checksums cover the addresses (pseudo-header): adjust them
    // by the difference, in the first fragment only.
    let fragment_offset = u16::from_be_bytes([frame[ip + 6], frame[ip + 7]]) & 0x1fff;
    let l4 = ip + ihl;
    let at = match frame[ip + 9] {
        6 if fragment_offset == 0 => l4 + 16,
        17 if fragment_offset == 0 => l4 + 6,
        _ => return true,
    };
    let udp = at == l4 + 6;
    if let Some(bytes) = frame.get_mut(at..at + 2) {
        let old = u16::from_be_bytes([bytes[0], bytes[1]]);
        // A UDP checksum of 0 means "none" and stays 0.
        if !(udp && old == 0) {
            // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
            let sum = u32::from(!old) + u32::from(!fold(old_sum)) + u32::from(fold(new_sum));
            let new = match !fold(sum) {
                0 if udp => 0xffff,
                other => other,
            };
            bytes.copy_from_slice(&new.to_be_bytes());
        }
    }
    true
}

/// Sum of the big-endian 16-bit words of `bytes` (an odd last byte padded).
fn words(bytes: &[u8]) -> u32 {
    bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))).sum()
}

/// One's-complement fold of a 32-bit sum to 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum of an IPv4 header whose checksum field is zero.
#[must_use]
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    !fold(words(header))
}

/// Writes `frames` as a classic pcap (little-endian, µs, Ethernet).
pub fn write_pcap(path: &Path, frames: &[Frame]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    header.extend_from_slice(&262_144u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    out.write_all(&header)?;
    for f in frames {
        let len = u32::try_from(f.data.len()).context("frame over 4 GiB")?;
        let sec = u32::try_from(f.ts_us / 1_000_000).context("time past 2106")?;
        let usec = (f.ts_us % 1_000_000) as u32;
        for field in [sec, usec, len, len] {
            out.write_all(&field.to_le_bytes())?;
        }
        out.write_all(&f.data)?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

/// A learning period and an episode on one host, as two captures.
#[derive(Debug)]
pub struct LongInput {
    /// The benign capture repeated: what the baseline learns.
    pub learning: Vec<Frame>,
    /// The episode, after the learning period.
    pub episode: Vec<Frame>,
}

/// How to build a [`LongInput`].
#[derive(Debug, Clone, Copy)]
pub struct Recipe<'a> {
    /// Benign capture to repeat.
    pub base: &'a Path,
    /// Its host, renamed to `host`.
    pub base_host: Ipv4Addr,
    /// Copies of the base.
    pub repeats: u64,
    /// Seconds between copies (a copy's packets after that are dropped).
    pub period_s: u64,
    /// The episode capture.
    pub episode: &'a Path,
    /// The episode's host at fault, renamed to `host`.
    pub episode_host: Ipv4Addr,
    /// The host both are put on.
    pub host: Ipv4Addr,
}

impl LongInput {
    /// Builds the learning period and the episode (see the module docs).
    pub fn build(r: &Recipe<'_>) -> Result<Self> {
        let base = read_ethernet(r.base)?;
        let first = base.first().context("the base capture has no packets")?.ts_us;
        let period_us = r.period_s * 1_000_000;
        let base_map = BTreeMap::from([(r.base_host, r.host)]);
        let mut learning = Vec::new();
        for copy in 0..r.repeats {
            let start = (EPOCH_S + copy * r.period_s + 1) * 1_000_000;
            for f in base.iter().filter(|f| f.ts_us.saturating_sub(first) < period_us - 1_000_000) {
                let mut data = f.data.clone();
                rewrite_ipv4(&mut data, &base_map);
                learning.push(Frame { ts_us: start + (f.ts_us - first), data });
            }
        }
        let episode = Self::episode_at(r, EPOCH_S + r.repeats * r.period_s + 1)?;
        Ok(Self { learning, episode })
    }

    /// The episode alone, renamed, starting at `start_s`.
    pub fn episode_at(r: &Recipe<'_>, start_s: u64) -> Result<Vec<Frame>> {
        let frames = read_ethernet(r.episode)?;
        let first = frames.first().context("the episode capture has no packets")?.ts_us;
        let map = BTreeMap::from([(r.episode_host, r.host)]);
        Ok(frames
            .into_iter()
            .map(|mut f| {
                rewrite_ipv4(&mut f.data, &map);
                Frame { ts_us: start_s * 1_000_000 + f.ts_us.saturating_sub(first), data: f.data }
            })
            .collect())
    }

    /// Seconds the learning period covers.
    #[must_use]
    pub fn learning_seconds(r: &Recipe<'_>) -> u64 {
        r.repeats * r.period_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + UDP frame with valid checksums, 10.0.0.1 → 10.0.0.2.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETHERTYPE_IPV4);
        let mut ip = vec![0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let sum = !fold(words(&ip));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut udp = vec![0x30, 0x39, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd'];
        let sum = udp_checksum(&ip, &udp);
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        f.extend(ip);
        f.extend(udp);
        f
    }

    fn udp_checksum(ip: &[u8], udp: &[u8]) -> u16 {
        let mut zeroed = udp.to_vec();
        zeroed[6..8].fill(0);
        let pseudo = words(&ip[12..20]) + 17 + u32::try_from(udp.len()).unwrap_or(0);
        !fold(pseudo + words(&zeroed))
    }

    #[test]
    fn renaming_an_address_keeps_ip_and_udp_checksums_valid() {
        let mut f = udp_frame();
        let map = BTreeMap::from([(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 168, 77, 200))]);
        assert!(rewrite_ipv4(&mut f, &map));
        let (ip, udp) = f[ETH_LEN..].split_at(20);
        assert_eq!(&ip[12..16], &[192, 168, 77, 200]);
        assert_eq!(fold(words(ip)), 0xffff, "IPv4 header checksum verifies");
        assert_eq!(
            u16::from_be_bytes([udp[6], udp[7]]),
            udp_checksum(ip, udp),
            "UDP checksum matches a fresh one"
        );
    }

    #[test]
    fn leaves_frames_without_a_mapped_address_alone() {
        let mut f = udp_frame();
        let before = f.clone();
        assert!(!rewrite_ipv4(
            &mut f,
            &BTreeMap::from([(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8))])
        ));
        assert_eq!(f, before);
    }
}
