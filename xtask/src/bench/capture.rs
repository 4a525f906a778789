//! The benchmark capture, `target/bench/bench-<recipe>.pcap`: K copies of the corpus template
//! (see `corpus`), each copy with its own addresses (see `rewrite`) and shifted by
//! `copy × COPY_SHIFT_US`, merged in time order. K is the smallest number of copies that
//! reaches the packet target; the flow target is then met by cutting long flows into
//! sub-flows (see `split`): copying alone would need about 50 M packets to reach 300 000 flows.
//!
//! Built once: `<recipe>` hashes everything the bytes depend on (recipe version, targets, the
//! constants below, each source's path, sha256 and size), so an existing file with that name is
//! the same file and is reused. Written under a temporary name and renamed when complete.
//! Memory stays at the template (tens of MB) plus the flow counter: copies are generated on the
//! fly by a k-way merge and streamed to disk.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use super::corpus::{self, SourceFile, SourceSummary, Template};
use super::pcap_out::PcapWriter;
use super::rewrite::{self, AddressPlan};
use super::split;
use crate::cmd::{heading, note};

const RECIPE_VERSION: &str = "nbad-sensor bench capture v3 (flows cut by client port)";
/// Time shift between consecutive copies: small, so that copies overlap almost entirely.
const COPY_SHIFT_US: u64 = 5_000;
/// The template's time 0 in every copy: 2023-11-14T22:13:20Z.
const BASE_EPOCH_US: u64 = 1_700_000_000_000_000;
/// Packets in the small capture used as the replay's memory baseline.
pub const HEAD_PACKETS: u64 = 1_000;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Targets {
    pub packets: u64,
    pub flows: u64,
}

/// What was built, stored beside the capture as `bench-<recipe>.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaptureMeta {
    pub recipe: String,
    pub targets: Targets,
    pub packets: u64,
    /// Distinct direction-free 5-tuples.
    pub flows: u64,
    pub bytes: u64,
    pub span_s: f64,
    /// Most flows alive at one instant, a flow being alive from its first packet until
    /// `idle_s` after its last: one entry per idle timeout in [`IDLE_TIMEOUTS_S`].
    pub flows_alive_peak: Vec<AlivePeak>,
    pub copies: u32,
    pub copy_shift_us: u64,
    pub max_gap_us: u64,
    pub template_packets: u64,
    /// Distinct 5-tuples of the corpus packets as captured.
    pub template_flows: u64,
    /// Longest run of packets kept in one 5-tuple (see `split`).
    pub chunk_packets: u32,
    pub template_flows_after_cut: u64,
    pub sources: Vec<SourceSummary>,
}

/// Idle timeouts for which the builder reports how many flows are alive at once.
const IDLE_TIMEOUTS_S: [u64; 3] = [0, 15, 60];

#[derive(Debug, Serialize, Deserialize)]
pub struct AlivePeak {
    pub idle_s: u64,
    pub flows: u64,
}

#[derive(Debug)]
pub struct BenchCapture {
    pub pcap: PathBuf,
    /// The first [`HEAD_PACKETS`] packets of `pcap`.
    pub head: PathBuf,
    pub meta: CaptureMeta,
}

/// The capture for `targets`, if it is already built.
pub fn existing(bench_dir: &Path, corpus_dir: &Path, targets: Targets) -> Result<Option<BenchCapture>> {
    let sources = corpus::select_sources(corpus_dir)?;
    let paths = Paths::new(bench_dir, &recipe_hash(&sources, targets));
    Ok(cached(&paths.pcap, &paths.head, &paths.meta).map(|meta| {
        heading("bench: benchmark capture");
        note(&format!("reusing {} (same recipe {})", paths.pcap.display(), meta.recipe));
        describe(&meta);
        BenchCapture { pcap: paths.pcap, head: paths.head, meta }
    }))
}

#[derive(Debug)]
struct Paths {
    pcap: PathBuf,
    head: PathBuf,
    meta: PathBuf,
}

impl Paths {
    fn new(bench_dir: &Path, recipe: &str) -> Self {
        Self {
            pcap: bench_dir.join(format!("bench-{recipe}.pcap")),
            head: bench_dir.join(format!("bench-{recipe}-head{HEAD_PACKETS}.pcap")),
            meta: bench_dir.join(format!("bench-{recipe}.json")),
        }
    }
}

/// The capture for `targets`: the existing one, or built now.
pub fn ensure(bench_dir: &Path, corpus_dir: &Path, targets: Targets) -> Result<BenchCapture> {
    if let Some(capture) = existing(bench_dir, corpus_dir, targets)? {
        return Ok(capture);
    }
    heading("bench: benchmark capture");
    let sources = corpus::select_sources(corpus_dir)?;
    let recipe = recipe_hash(&sources, targets);
    let Paths { pcap, head, meta: meta_path } = Paths::new(bench_dir, &recipe);

    fs::create_dir_all(bench_dir).with_context(|| format!("creating {}", bench_dir.display()))?;
    note(&format!(
        "building {} from {} source files in {}",
        pcap.display(),
        sources.len(),
        corpus_dir.display()
    ));
    let started = Instant::now();
    let template = corpus::load_template(corpus_dir, &sources)?;
    for s in &template.summaries {
        if let Some(reason) = &s.skipped {
            note(&format!("skipped {}: {reason}", s.relative_path));
        }
    }
    let meta = build(&template, targets, &recipe, &pcap, &head)?;
    let json = serde_json::to_string_pretty(&meta)?;
    fs::write(&meta_path, json).with_context(|| format!("writing {}", meta_path.display()))?;
    note(&format!("built in {:.1} s", started.elapsed().as_secs_f64()));
    describe(&meta);
    Ok(BenchCapture { pcap, head, meta })
}

fn describe(meta: &CaptureMeta) {
    note(&format!(
        "{} packets, {} flows (direction-free 5-tuples), {} bytes ({:.0} MiB), span {:.1} s",
        meta.packets,
        meta.flows,
        meta.bytes,
        meta.bytes as f64 / 1_048_576.0,
        meta.span_s
    ));
    note(&format!(
        "{} copies x {} corpus packets from {} files, copy i shifted by i x {} ms; the corpus's \
         {} flows cut into {} by renumbering client ports every {} packets",
        meta.copies,
        meta.template_packets,
        meta.sources.iter().filter(|s| s.ipv4_packets > 0).count(),
        meta.copy_shift_us / 1000,
        meta.template_flows,
        meta.template_flows_after_cut,
        meta.chunk_packets,
    ));
    let alive: Vec<String> = meta
        .flows_alive_peak
        .iter()
        .map(|a| format!("{} with a {} s idle timeout", a.flows, a.idle_s))
        .collect();
    note(&format!("flows alive at once, at most: {}", alive.join(", ")));
}

/// The stored description, if the capture, its head and the description all exist and agree.
fn cached(pcap: &Path, head: &Path, meta_path: &Path) -> Option<CaptureMeta> {
    let meta: CaptureMeta = serde_json::from_slice(&fs::read(meta_path).ok()?).ok()?;
    let size = fs::metadata(pcap).ok()?.len();
    (size == meta.bytes && head.is_file()).then_some(meta)
}

/// FNV-1a (64 bit) of the recipe: stable across Rust releases, unlike `DefaultHasher`.
fn recipe_hash(sources: &[SourceFile], targets: Targets) -> String {
    let mut text = format!(
        "{RECIPE_VERSION}\npackets={}\nflows={}\nshift={COPY_SHIFT_US}\ngap={}\nepoch={BASE_EPOCH_US}\nhead={HEAD_PACKETS}\n",
        targets.packets,
        targets.flows,
        corpus::MAX_GAP_US
    );
    for s in sources {
        text.push_str(&format!("{}\t{}\t{}\n", s.relative_path, s.sha256, s.size));
    }
    let hash = text
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:012x}", hash >> 16)
}

fn build(
    template: &Template,
    targets: Targets,
    recipe: &str,
    pcap: &Path,
    head: &Path,
) -> Result<CaptureMeta> {
    let template_packets = template.packets.len() as u64;
    let analysis = split::analyse(template);
    let fixed_flows = analysis.fixed_flows();
    let copied_target = targets.flows.saturating_sub(fixed_flows);
    let most_per_copy = analysis.copied_flows(1);
    ensure!(most_per_copy > 0, "the template has no flow that copies can multiply");
    let copies = targets.packets.div_ceil(template_packets).max(copied_target.div_ceil(most_per_copy)).max(1);
    let chunk = analysis.chunk_size_for(copied_target.div_ceil(copies));
    let port_rewrites = analysis.port_rewrites(template, chunk)?;
    let copies = u32::try_from(copies).context("too many copies")?;

    let addresses = template.packets.iter().flat_map(|p| {
        let (src, dst) = rewrite::addresses(template.frame(p), usize::from(p.ip_offset));
        [src, dst]
    });
    let plan = AddressPlan::new(addresses, copies)?;

    let partial = pcap.with_extension("pcap.partial");
    let head_partial = head.with_extension("pcap.partial");
    let mut out = PcapWriter::create(&partial)?;
    let mut head_out = PcapWriter::create(&head_partial)?;
    let mut flows: HashMap<u128, (u64, u64)> = HashMap::new();
    let mut scratch = Vec::with_capacity(65_536);
    let mut packets = 0u64;
    let (mut first_ts, mut last_ts) = (u64::MAX, 0u64);

    // k-way merge of the copies; ties go to the lower copy number, so the order is total.
    let copy_start = |copy: u32| BASE_EPOCH_US + u64::from(copy) * COPY_SHIFT_US;
    let mut heap: BinaryHeap<Reverse<(u64, u32, usize)>> =
        (0..copies).map(|c| Reverse((copy_start(c) + template.packets[0].ts_us, c, 0))).collect();
    while let Some(Reverse((ts, copy, index))) = heap.pop() {
        let p = &template.packets[index];
        let ip = usize::from(p.ip_offset);
        scratch.clear();
        scratch.extend_from_slice(template.frame(p));
        let (src, dst) = rewrite::addresses(&scratch, ip);
        rewrite::rewrite_addresses(&mut scratch, ip, plan.map(copy, src), plan.map(copy, dst));
        if let Some((source_side, port)) = port_rewrites[index] {
            rewrite::rewrite_port(&mut scratch, ip, source_side, port);
        }

        out.write_packet(ts, p.orig_len, &scratch)?;
        if packets < HEAD_PACKETS {
            head_out.write_packet(ts, p.orig_len, &scratch)?;
        }
        packets += 1;
        first_ts = first_ts.min(ts);
        last_ts = last_ts.max(ts);
        let span = flows.entry(rewrite::flow_key(&scratch, ip)).or_insert((ts, ts));
        span.1 = ts;

        if let Some(next) = template.packets.get(index + 1) {
            heap.push(Reverse((copy_start(copy) + next.ts_us, copy, index + 1)));
        }
    }
    let bytes = out.finish()?;
    head_out.finish()?;

    let flow_count = flows.len() as u64;
    ensure!(
        packets >= targets.packets && flow_count >= targets.flows,
        "built {packets} packets / {flow_count} flows, short of {} / {}",
        targets.packets,
        targets.flows
    );
    fs::rename(&head_partial, head).with_context(|| format!("renaming to {}", head.display()))?;
    fs::rename(&partial, pcap).with_context(|| format!("renaming to {}", pcap.display()))?;

    Ok(CaptureMeta {
        recipe: recipe.to_owned(),
        targets,
        packets,
        flows: flow_count,
        bytes,
        span_s: last_ts.saturating_sub(first_ts) as f64 / 1e6,
        flows_alive_peak: IDLE_TIMEOUTS_S
            .iter()
            .map(|&idle_s| AlivePeak {
                idle_s,
                flows: max_overlap(flows.values().map(|&(a, b)| (a, b + idle_s * 1_000_000))),
            })
            .collect(),
        copies,
        copy_shift_us: COPY_SHIFT_US,
        max_gap_us: corpus::MAX_GAP_US,
        template_packets,
        template_flows: analysis.flows(),
        chunk_packets: chunk,
        template_flows_after_cut: fixed_flows + analysis.copied_flows(chunk),
        sources: template.summaries.clone(),
    })
}

/// The most intervals covering one instant; an interval includes both ends.
fn max_overlap(spans: impl Iterator<Item = (u64, u64)>) -> u64 {
    // (time, 0) opens before (time, 1) closes, so touching intervals overlap.
    let mut events: Vec<(u64, u8)> = spans.flat_map(|(a, b)| [(a, 0), (b, 1)]).collect();
    events.sort_unstable();
    let (mut open, mut most) = (0u64, 0u64);
    for (_, kind) in events {
        if kind == 0 {
            open += 1;
            most = most.max(open);
        } else {
            open -= 1;
        }
    }
    most
}
