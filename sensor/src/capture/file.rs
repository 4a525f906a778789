//! Capture files: classic pcap (micro- and nanosecond, either byte order) and
//! pcapng, recognised by magic number rather than by file extension.
//!
//! Files are memory-mapped and walked in place with `pcap-parser`, so reading
//! a record costs no copy. Several files are read one after the other, in the
//! order given. A record cut short at the very end of a file (a capture that
//! was killed) ends that file and is counted; damage in the middle of a file
//! is an error that names the file and the offset.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use pcap_parser::pcapng::{Block, build_ts_resolution};
use pcap_parser::{PcapError, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};

use crate::capture::{CaptureError, LinkType, Next, PacketSource, RawPacket, SourceStats};

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_MAGIC: u32 = 0x0a0d_0d0a;

/// The location of one packet inside the mapped file.
#[derive(Debug, Clone, Copy)]
struct PacketLoc {
    ts_ns: u64,
    wire_len: u32,
    link: LinkType,
    start: usize,
    len: usize,
}

/// One pcapng interface: its link type (or the unsupported number) and clock.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Result<LinkType, i32>,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset_s: i64,
}

#[derive(Debug)]
enum Format {
    Legacy { big_endian: bool, nanos: bool, link: LinkType },
    Ng { big_endian: bool, interfaces: Vec<Interface>, last_ts_ns: u64 },
}

/// One open capture file.
#[derive(Debug)]
struct CaptureFile {
    path: String,
    map: Mmap,
    pos: usize,
    format: Format,
}

impl CaptureFile {
    fn open(path: &Path) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        let open_err = |source| CaptureError::Open { path: name.clone(), source };
        let file = std::fs::File::open(path).map_err(open_err)?;
        let map = map_file(&file).map_err(open_err)?;
        let magic = map.get(..4).map_or(0, |m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        let (format, pos) = match magic {
            PCAPNG_MAGIC => (Format::Ng { big_endian: false, interfaces: Vec::new(), last_ts_ns: 0 }, 0),
            m if [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&m)
                || [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&m.swap_bytes()) =>
            {
                let (_, header) = parse_pcap_header(&map).map_err(|e| CaptureError::Corrupt {
                    path: name.clone(),
                    offset: 0,
                    detail: format!("bad pcap file header: {e}"),
                })?;
                let link = LinkType::from_linktype(header.network.0, &name)?;
                let format = Format::Legacy {
                    big_endian: header.is_bigendian(),
                    nanos: header.is_nanosecond_precision(),
                    link,
                };
                (format, 24)
            }
            other => return Err(CaptureError::UnknownFormat { path: name, magic: other }),
        };
        Ok(Self { path: name, map, pos, format })
    }

    /// Finds the next packet, or `None` at the end of the file. The flag in
    /// the error-free result says whether the file ended inside a record.
    fn advance(&mut self) -> Result<(Option<PacketLoc>, bool), CaptureError> {
        let map: &[u8] = &self.map;
        loop {
            let rest = &map[self.pos..];
            if rest.is_empty() {
                return Ok((None, false));
            }
            match &mut self.format {
                Format::Legacy { big_endian, nanos, link } => {
                    let parsed = if *big_endian { parse_pcap_frame_be(rest) } else { parse_pcap_frame(rest) };
                    let (remaining, frame) = match parsed {
                        Ok(ok) => ok,
                        Err(e) => return cut_or_corrupt(&mut self.pos, map.len(), &self.path, &e),
                    };
                    let sub = if *nanos { 1 } else { 1_000 };
                    let ts_ns = u64::from(frame.ts_sec) * 1_000_000_000 + u64::from(frame.ts_usec) * sub;
                    let start = map.len() - rest.len() + 16;
                    let len = frame.data.len().min(frame.caplen as usize);
                    self.pos = map.len() - remaining.len();
                    return Ok((
                        Some(PacketLoc { ts_ns, wire_len: frame.origlen, link: *link, start, len }),
                        false,
                    ));
                }
                Format::Ng { big_endian, interfaces, last_ts_ns } => {
                    let parsed = if *big_endian {
                        pcap_parser::pcapng::parse_block_be(rest)
                    } else {
                        pcap_parser::pcapng::parse_block_le(rest)
                    };
                    let parsed = match rest.get(..4) {
                        // A new section may switch byte order: read its header on its own.
                        Some([0x0a, 0x0d, 0x0d, 0x0a]) => pcap_parser::pcapng::parse_sectionheaderblock(rest)
                            .map(|(r, shb)| (r, Block::SectionHeader(shb))),
                        _ => parsed,
                    };
                    let (remaining, block) = match parsed {
                        Ok(ok) => ok,
                        Err(e) => return cut_or_corrupt(&mut self.pos, map.len(), &self.path, &e),
                    };
                    let block_start = map.len() - rest.len();
                    self.pos = map.len() - remaining.len();
                    let loc = match block {
                        Block::SectionHeader(shb) => {
                            *big_endian = shb.big_endian();
                            interfaces.clear();
                            None
                        }
                        Block::InterfaceDescription(idb) => {
                            interfaces.push(Interface {
                                link: LinkType::from_linktype(idb.linktype.0, &self.path)
                                    .map_err(|_| idb.linktype.0),
                                resolution: build_ts_resolution(idb.if_tsresol).unwrap_or(1_000_000),
                                offset_s: idb.if_tsoffset,
                            });
                            None
                        }
                        Block::EnhancedPacket(epb) => {
                            let iface = interface(interfaces, epb.if_id, &self.path, block_start)?;
                            let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            let ts_ns = scale_ts(ts, iface.resolution, iface.offset_s);
                            *last_ts_ns = ts_ns;
                            let start = epb.data.as_ptr() as usize - map.as_ptr() as usize;
                            let len = epb.data.len().min(epb.caplen as usize);
                            let link = iface_link(iface, &self.path)?;
                            Some(PacketLoc { ts_ns, wire_len: epb.origlen, link, start, len })
                        }
                        Block::SimplePacket(spb) => {
                            // A simple packet block has no timestamp and belongs to interface 0.
                            let iface = interface(interfaces, 0, &self.path, block_start)?;
                            let start = spb.data.as_ptr() as usize - map.as_ptr() as usize;
                            let len = spb.data.len().min(spb.origlen as usize);
                            let link = iface_link(iface, &self.path)?;
                            let ts_ns = *last_ts_ns;
                            Some(PacketLoc { ts_ns, wire_len: spb.origlen, link, start, len })
                        }
                        _ => None,
                    };
                    if loc.is_some() {
                        return Ok((loc, false));
                    }
                }
            }
        }
    }
}

/// A parse error at the end of the data is a cut file (the file ends there);
/// anywhere else the file is corrupt.
fn cut_or_corrupt(
    pos: &mut usize,
    len: usize,
    path: &str,
    err: &pcap_parser::nom::Err<PcapError<&[u8]>>,
) -> Result<(Option<PacketLoc>, bool), CaptureError> {
    match err {
        pcap_parser::nom::Err::Incomplete(_) => {
            *pos = len;
            Ok((None, true))
        }
        other => {
            Err(CaptureError::Corrupt { path: path.to_owned(), offset: *pos, detail: other.to_string() })
        }
    }
}

fn interface<'a>(
    interfaces: &'a [Interface],
    id: u32,
    path: &str,
    offset: usize,
) -> Result<&'a Interface, CaptureError> {
    interfaces.get(id as usize).ok_or_else(|| CaptureError::Corrupt {
        path: path.to_owned(),
        offset,
        detail: format!("packet refers to interface {id}, which no interface block describes"),
    })
}

fn iface_link(iface: &Interface, path: &str) -> Result<LinkType, CaptureError> {
    iface.link.or_else(|linktype| LinkType::from_linktype(linktype, path))
}

/// Converts a pcapng timestamp in `resolution` units per second to nanoseconds.
fn scale_ts(ts: u64, resolution: u64, offset_s: i64) -> u64 {
    let resolution = resolution.max(1);
    let secs = (ts / resolution).saturating_add_signed(offset_s);
    let frac = u128::from(ts % resolution) * 1_000_000_000 / u128::from(resolution);
    secs.saturating_mul(1_000_000_000).saturating_add(u64::try_from(frac).unwrap_or(0))
}

#[expect(unsafe_code, reason = "memory-mapping a capture file is the zero-copy read path")]
fn map_file(file: &std::fs::File) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this process. A capture file
    // truncated by another process while mapped would raise SIGBUS; capture
    // files given to `replay` are finished files, as the README states.
    unsafe { Mmap::map(file) }
}

/// Replays capture files one after the other.
#[derive(Debug)]
pub struct FileSource {
    pending: VecDeque<PathBuf>,
    current: Option<CaptureFile>,
    truncated_files: u64,
}

impl FileSource {
    /// A source over `paths`, read in order. Files are opened lazily, but each
    /// is checked up front so that a wrong path fails before any work is done.
    pub fn new(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        for path in paths {
            // Open each file's header now, so that a wrong path, a file that
            // is not a capture or an unsupported link type fails before any
            // work is done.
            CaptureFile::open(path)?;
        }
        Ok(Self { pending: paths.iter().cloned().collect(), current: None, truncated_files: 0 })
    }
}

impl PacketSource for FileSource {
    fn source_stats(&mut self) -> SourceStats {
        SourceStats { truncated_files: self.truncated_files, ..SourceStats::default() }
    }

    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        loop {
            let file = match &mut self.current {
                Some(file) => file,
                None => match self.pending.pop_front() {
                    Some(path) => self.current.insert(CaptureFile::open(&path)?),
                    None => return Ok(Next::End),
                },
            };
            match file.advance()? {
                (Some(loc), _) => {
                    let file = self.current.as_ref().map(|f| &f.map[loc.start..loc.start + loc.len]);
                    let data = file.unwrap_or_default();
                    return Ok(Next::Packet(RawPacket {
                        ts_ns: loc.ts_ns,
                        wire_len: loc.wire_len,
                        link: loc.link,
                        data,
                    }));
                }
                (None, cut) => {
                    self.truncated_files += u64::from(cut);
                    self.current = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamps_scale_by_interface_resolution() {
        assert_eq!(scale_ts(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(scale_ts(1_500_000_001, 1_000_000_000, 0), 1_500_000_001);
        assert_eq!(scale_ts(3, 2, 10), 11_500_000_000);
    }

    #[test]
    fn rejects_a_file_that_is_not_a_capture_naming_the_magic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notes.pcap");
        std::fs::write(&path, b"hello world, not a capture").expect("write");
        let err = FileSource::new(std::slice::from_ref(&path)).expect_err("must fail").to_string();
        assert!(err.contains("notes.pcap") && err.contains("0x6c6c6568"), "{err}");
    }
}
