//! Capture files: classic pcap (micro- and nanosecond, either byte order) and
//! pcapng, recognised by magic number rather than by file extension.
//!
//! Files are read in large chunks into one buffer and walked in place with
//! `pcap-parser`; a record that straddles the end of the buffer is moved to
//! its front before the next read, so memory stays bounded (1 MiB, more only
//! for a single larger record) whatever the file size. Several files are read
//! one after the other, in the order given. A record cut short at the very end
//! of a file (a capture that was killed) ends that file and is counted; damage
//! in the middle of a file is an error that names the file and the offset.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pcap_parser::pcapng::{Block, build_ts_resolution};
use pcap_parser::{PcapError, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};

use crate::capture::{CaptureError, LinkType, Next, PacketSource, RawPacket, SourceStats};

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_MAGIC: u32 = 0x0a0d_0d0a;
/// Read buffer size; it grows only to hold a single larger record.
const READ_CHUNK: usize = 1 << 20;

/// The location of one packet inside the read buffer.
#[derive(Debug, Clone, Copy)]
struct PacketLoc {
    ts_ns: u64,
    wire_len: u32,
    link: LinkType,
    start: usize,
    len: usize,
}

/// The link type of a classic pcap header's link-type field. Its upper bits are not part of
/// the type: bits 16–25 are reserved, bit 26 says that bits 28–31 give the length of a frame
/// check sequence at the end of every packet (the pcap file format specification, "LinkType
/// and additional information"). libpcap and Wireshark mask them off, and so does this; the
/// frame check sequence, if any, trails the IP datagram and is never counted, since bytes are
/// the IP lengths.
#[must_use]
pub fn classic_link_type(field: i32) -> i32 {
    field & 0xffff
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

/// What parsing the front of the buffer found.
enum Step {
    /// A packet; `consumed` bytes were used.
    Packet { consumed: usize, loc: PacketLoc },
    /// A block that is not a packet.
    Skip { consumed: usize },
    /// The buffer ends inside a record.
    Incomplete,
}

/// One open capture file.
#[derive(Debug)]
struct CaptureFile {
    path: String,
    file: File,
    /// Read buffer; valid bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[0]`, for error messages.
    base: u64,
    eof: bool,
    format: Format,
    /// Where reading progress is published, and the bytes of the files read before this one.
    progress: Option<(Arc<ReadProgress>, u64)>,
}

/// How far a [`FileSource`] has read, for a progress display on another thread. Updated once
/// per read (every [`READ_CHUNK`] bytes or so), never per packet.
#[derive(Debug, Default)]
pub struct ReadProgress {
    /// Bytes read from the files so far (all earlier files, and the current one's offset).
    pub read_bytes: AtomicU64,
    /// The files' sizes, summed when the source was made.
    pub total_bytes: u64,
}

impl CaptureFile {
    fn open(path: &Path) -> Result<Self, CaptureError> {
        Self::open_with_progress(path, None)
    }

    fn open_with_progress(
        path: &Path,
        progress: Option<(Arc<ReadProgress>, u64)>,
    ) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|reason| CaptureError::Open { path: name.clone(), reason })?;
        let mut this = Self {
            path: name,
            file,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            format: Format::Ng { big_endian: false, interfaces: Vec::new(), last_ts_ns: 0 },
            progress,
        };
        while this.end < 24 && this.fill()? {}
        let head = &this.buf[..this.end];
        let magic = head.get(..4).map_or(0, |m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        match magic {
            PCAPNG_MAGIC => {}
            m if [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&m)
                || [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&m.swap_bytes()) =>
            {
                let (_, header) = parse_pcap_header(head).map_err(|e| CaptureError::Corrupt {
                    path: this.path.clone(),
                    offset: 0,
                    detail: format!("bad pcap file header: {e}"),
                })?;
                let link = LinkType::from_linktype(classic_link_type(header.network.0), &this.path)?;
                this.format = Format::Legacy {
                    big_endian: header.is_bigendian(),
                    nanos: header.is_nanosecond_precision(),
                    link,
                };
                this.start = 24;
            }
            other => return Err(CaptureError::UnknownFormat { path: this.path, magic: other }),
        }
        Ok(this)
    }

    /// Moves unread bytes to the front and reads more; grows the buffer when
    /// a single record fills it. Returns whether any byte was added.
    fn fill(&mut self) -> Result<bool, CaptureError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    if let Some((progress, before)) = &self.progress {
                        progress.read_bytes.store(before + self.base + self.end as u64, Ordering::Relaxed);
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(reason) => return Err(CaptureError::Open { path: self.path.clone(), reason }),
            }
        }
    }

    /// Finds the next packet, or `None` at the end of the file. The flag in
    /// the error-free result says whether the file ended inside a record.
    fn advance(&mut self) -> Result<(Option<PacketLoc>, bool), CaptureError> {
        loop {
            if self.start == self.end && !self.fill()? {
                return Ok((None, false));
            }
            let offset = self.base + self.start as u64;
            let step = parse_one(&mut self.format, &self.buf[self.start..self.end], &self.path, offset)?;
            match step {
                Step::Packet { consumed, mut loc } => {
                    loc.start += self.start;
                    self.start += consumed;
                    return Ok((Some(loc), false));
                }
                Step::Skip { consumed } => self.start += consumed,
                Step::Incomplete => {
                    if !self.fill()? {
                        // The file ends inside a record: a cut capture.
                        self.start = self.end;
                        return Ok((None, true));
                    }
                }
            }
        }
    }
}

/// Parses the record or block at the front of `rest`. Packet locations are
/// relative to `rest`.
fn parse_one(format: &mut Format, rest: &[u8], path: &str, offset: u64) -> Result<Step, CaptureError> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let corrupt = |e: &pcap_parser::nom::Err<PcapError<&[u8]>>| match e {
        pcap_parser::nom::Err::Incomplete(_) => Ok(Step::Incomplete),
        other => Err(CaptureError::Corrupt { path: path.to_owned(), offset, detail: other.to_string() }),
    };
    let at = |inner: &[u8]| inner.as_ptr() as usize - rest.as_ptr() as usize;
    match format {
        Format::Legacy { big_endian, nanos, link } => {
            let parsed = if *big_endian { parse_pcap_frame_be(rest) } else { parse_pcap_frame(rest) };
            let (remaining, frame) = match parsed {
                Ok(ok) => ok,
                Err(e) => return corrupt(&e),
            };
            let sub = if *nanos { 1 } else { 1_000 };
            let ts_ns = u64::from(frame.ts_sec) * 1_000_000_000 + u64::from(frame.ts_usec) * sub;
            let len = frame.data.len().min(frame.caplen as usize);
            let loc = PacketLoc { ts_ns, wire_len: frame.origlen, link: *link, start: at(frame.data), len };
            Ok(Step::Packet { consumed: rest.len() - remaining.len(), loc })
        }
        Format::Ng { big_endian, interfaces, last_ts_ns } => {
            let parsed = match rest.get(..4) {
                // A new section may switch byte order: read its header on its own.
                Some([0x0a, 0x0d, 0x0d, 0x0a]) => pcap_parser::pcapng::parse_sectionheaderblock(rest)
                    .map(|(r, shb)| (r, Block::SectionHeader(shb))),
                _ if *big_endian => pcap_parser::pcapng::parse_block_be(rest),
                _ => pcap_parser::pcapng::parse_block_le(rest),
            };
            let (remaining, block) = match parsed {
                Ok(ok) => ok,
                Err(e) => return corrupt(&e),
            };
            let consumed = rest.len() - remaining.len();
            let loc = match block {
                Block::SectionHeader(shb) => {
                    *big_endian = shb.big_endian();
                    interfaces.clear();
                    None
                }
                Block::InterfaceDescription(idb) => {
                    interfaces.push(Interface {
                        link: LinkType::from_linktype(idb.linktype.0, path).map_err(|_| idb.linktype.0),
                        resolution: build_ts_resolution(idb.if_tsresol).unwrap_or(1_000_000),
                        offset_s: idb.if_tsoffset,
                    });
                    None
                }
                Block::EnhancedPacket(epb) => {
                    let iface = interface(interfaces, epb.if_id, path, offset)?;
                    let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                    let ts_ns = scale_ts(ts, iface.resolution, iface.offset_s);
                    *last_ts_ns = ts_ns;
                    let len = epb.data.len().min(epb.caplen as usize);
                    let link = iface_link(iface, path)?;
                    Some(PacketLoc { ts_ns, wire_len: epb.origlen, link, start: at(epb.data), len })
                }
                Block::SimplePacket(spb) => {
                    // A simple packet block has no timestamp and belongs to interface 0.
                    let iface = interface(interfaces, 0, path, offset)?;
                    let len = spb.data.len().min(spb.origlen as usize);
                    let link = iface_link(iface, path)?;
                    let ts_ns = *last_ts_ns;
                    Some(PacketLoc { ts_ns, wire_len: spb.origlen, link, start: at(spb.data), len })
                }
                _ => None,
            };
            Ok(match loc {
                Some(loc) => Step::Packet { consumed, loc },
                None => Step::Skip { consumed },
            })
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

/// Replays capture files one after the other.
#[derive(Debug)]
pub struct FileSource {
    /// Files still to open, each with the summed size of the files before it.
    pending: VecDeque<(PathBuf, u64)>,
    current: Option<CaptureFile>,
    truncated_files: u64,
    progress: Arc<ReadProgress>,
}

impl FileSource {
    /// A source over `paths`, read in order. Files are opened lazily, but each
    /// is checked up front so that a wrong path fails before any work is done.
    pub fn new(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        let mut pending = VecDeque::with_capacity(paths.len());
        let mut total = 0u64;
        for path in paths {
            // Open each file's header now, so that a wrong path, a file that
            // is not a capture or an unsupported link type fails before any
            // work is done.
            let file = CaptureFile::open(path)?;
            pending.push_back((path.clone(), total));
            total += file.file.metadata().map_or(0, |m| m.len());
        }
        let progress = Arc::new(ReadProgress { read_bytes: AtomicU64::new(0), total_bytes: total });
        Ok(Self { pending, current: None, truncated_files: 0, progress })
    }

    /// How far reading has come, to be watched from another thread.
    #[must_use]
    pub fn progress(&self) -> Arc<ReadProgress> {
        Arc::clone(&self.progress)
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
                    Some((path, before)) => {
                        let progress = Some((Arc::clone(&self.progress), before));
                        self.current.insert(CaptureFile::open_with_progress(&path, progress)?)
                    }
                    None => return Ok(Next::End),
                },
            };
            match file.advance()? {
                (Some(loc), _) => {
                    let file = self.current.as_ref().map(|f| &f.buf[loc.start..loc.start + loc.len]);
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
