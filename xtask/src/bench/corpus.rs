//! The benchmark capture's source packets: the Ethernet captures of `large_background/` and
//! `benign_mixed/` in the shared corpus, read with pcap-parser (classic pcap and pcapng, by
//! magic number, whatever the file extension says), IPv4 frames only.
//!
//! Each file is put on a common clock starting at 0; gaps longer than [`MAX_GAP_US`] are
//! shortened to it (some captures are several captures glued together, months apart). The files
//! are then overlaid and sorted by time: the template that the builder copies.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError, create_reader};
use serde::{Deserialize, Serialize};

use super::rewrite;

/// Manifest categories the template draws from.
const CATEGORIES: [&str; 2] = ["large_background", "benign_mixed"];
/// Longest gap kept between two packets of one source file, in microseconds.
pub const MAX_GAP_US: u64 = 5_000_000;

/// The corpus folder: `$NBAD_CORPUS`, else `<repo>/../shared/corpus`.
pub fn corpus_dir(root: &Path) -> Result<PathBuf> {
    let dir = match std::env::var_os("NBAD_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => root.parent().map_or_else(|| root.join("../shared/corpus"), |p| p.join("shared/corpus")),
    };
    if !dir.join("MANIFEST.tsv").is_file() {
        bail!(
            "no capture corpus at {} (expected MANIFEST.tsv there): put the shared corpus \
             beside the repository or point NBAD_CORPUS at it",
            dir.display()
        );
    }
    Ok(dir)
}

/// One manifest row selected as a source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceFile {
    pub relative_path: String,
    pub sha256: String,
    pub size: u64,
}

/// The Ethernet captures of [`CATEGORIES`], sorted by path.
pub fn select_sources(corpus: &Path) -> Result<Vec<SourceFile>> {
    let manifest_path = corpus.join("MANIFEST.tsv");
    let text =
        fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("{} has no `{name}` column", manifest_path.display()))
    };
    let (path_col, category_col) = (column("relative_path")?, column("category")?);
    let (link_col, sha_col) = (column("link_type")?, column("sha256")?);

    let mut sources = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or_default();
        if !CATEGORIES.contains(&field(category_col)) || field(link_col) != "ether" {
            continue;
        }
        let relative_path = field(path_col).to_owned();
        let Ok(meta) = fs::metadata(corpus.join(&relative_path)) else {
            eprintln!("    skipping {relative_path}: listed in the manifest but not present");
            continue;
        };
        sources.push(SourceFile { relative_path, sha256: field(sha_col).to_owned(), size: meta.len() });
    }
    sources.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    if sources.is_empty() {
        bail!("{} lists no Ethernet captures in {CATEGORIES:?}", manifest_path.display());
    }
    Ok(sources)
}

/// A source packet: bytes in the template's arena, time on the template clock.
#[derive(Debug, Clone, Copy)]
pub struct TemplatePacket {
    pub ts_us: u64,
    pub start: usize,
    pub len: u32,
    pub orig_len: u32,
    pub ip_offset: u16,
}

/// What one source file contributed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceSummary {
    pub relative_path: String,
    pub ipv4_packets: u64,
    pub other_packets: u64,
    pub skipped: Option<String>,
}

#[derive(Debug)]
pub struct Template {
    pub arena: Vec<u8>,
    pub packets: Vec<TemplatePacket>,
    pub summaries: Vec<SourceSummary>,
}

impl Template {
    pub fn frame(&self, p: &TemplatePacket) -> &[u8] {
        &self.arena[p.start..p.start + p.len as usize]
    }
}

pub fn load_template(corpus: &Path, sources: &[SourceFile]) -> Result<Template> {
    let mut template = Template { arena: Vec::new(), packets: Vec::new(), summaries: Vec::new() };
    for source in sources {
        let path = corpus.join(&source.relative_path);
        let (arena_len, packets_len) = (template.arena.len(), template.packets.len());
        let mut summary = SourceSummary {
            relative_path: source.relative_path.clone(),
            ipv4_packets: 0,
            other_packets: 0,
            skipped: None,
        };
        if let Err(err) = read_source(&path, &mut template, &mut summary) {
            // A file that does not parse is left out entirely, not half-used.
            template.arena.truncate(arena_len);
            template.packets.truncate(packets_len);
            summary = SourceSummary { ipv4_packets: 0, other_packets: 0, ..summary };
            summary.skipped = Some(format!("{err:#}"));
        }
        template.summaries.push(summary);
    }
    // Stable: equal times keep file order, then packet order.
    template.packets.sort_by_key(|p| p.ts_us);
    if template.packets.is_empty() {
        bail!("no IPv4 packets in the selected corpus files");
    }
    Ok(template)
}

/// Per-file clock: time since the file's first packet, long gaps shortened.
#[derive(Debug, Default)]
struct FileClock {
    last_raw_us: Option<u64>,
    now_us: u64,
}

impl FileClock {
    fn tick(&mut self, raw_us: u64) -> u64 {
        if let Some(last) = self.last_raw_us {
            // Out-of-order packets keep their place in file order at the same time.
            self.now_us += raw_us.saturating_sub(last).min(MAX_GAP_US);
        }
        self.last_raw_us = Some(raw_us);
        self.now_us
    }
}

/// An interface of a pcapng section: its link type and timestamp units per second.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: Linktype,
    units_per_s: u64,
}

fn read_source(path: &Path, template: &mut Template, summary: &mut SourceSummary) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = create_reader(1 << 20, file).map_err(|e| anyhow::anyhow!("not a capture: {e:?}"))?;
    let mut clock = FileClock::default();
    let mut legacy: Option<(Linktype, bool)> = None; // link type, nanosecond timestamps
    let mut interfaces: Vec<Interface> = Vec::new();
    loop {
        let offset = match reader.next() {
            Ok((offset, block)) => {
                let packet = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network, h.is_nanosecond_precision()));
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, nanos) = legacy.context("packet before the pcap header")?;
                        let frac = if nanos { u64::from(b.ts_usec) / 1000 } else { u64::from(b.ts_usec) };
                        let ts = u64::from(b.ts_sec) * 1_000_000 + frac;
                        Some((linktype, ts, b.origlen, b.data))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        interfaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let units_per_s =
                            idb.ts_resolution().context("interface with an unusable if_tsresol")?;
                        interfaces.push(Interface { linktype: idb.linktype, units_per_s });
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = usize::try_from(epb.if_id)
                            .ok()
                            .and_then(|i| interfaces.get(i))
                            .context("packet on an undeclared interface")?;
                        let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let ts = u128::from(ticks) * 1_000_000 / u128::from(iface.units_per_s);
                        let ts = u64::try_from(ts).context("timestamp out of range")?;
                        // `packet_data()` borrows the block; the field is the same bytes minus padding.
                        let caplen = usize::try_from(epb.caplen)?.min(epb.data.len());
                        Some((iface.linktype, ts, epb.origlen, &epb.data[..caplen]))
                    }
                    // Simple packet blocks carry no time; nothing else is a packet.
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some((linktype, ts, orig_len, data)) = packet {
                    let ts_us = clock.tick(ts);
                    match (linktype == Linktype::ETHERNET).then(|| rewrite::ipv4_offset(data)) {
                        Some(Some(ip)) => {
                            template.packets.push(TemplatePacket {
                                ts_us,
                                start: template.arena.len(),
                                len: u32::try_from(data.len())?,
                                orig_len: orig_len.max(u32::try_from(data.len())?),
                                ip_offset: u16::try_from(ip)?,
                            });
                            template.arena.extend_from_slice(data);
                            summary.ipv4_packets += 1;
                        }
                        _ => summary.other_packets += 1,
                    }
                }
                offset
            }
            // A truncated last record ends the file; what came before it is kept.
            Err(PcapError::Eof | PcapError::UnexpectedEof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    break;
                }
                reader.refill().map_err(|e| anyhow::anyhow!("reading: {e:?}"))?;
                continue;
            }
            Err(e) => bail!("parse error: {e:?}"),
        };
        reader.consume(offset);
    }
    Ok(())
}
