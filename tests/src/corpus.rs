//! The shared capture corpus and its `MANIFEST.tsv`.
//!
//! The corpus lives outside the repository (`../shared/corpus` beside it, or
//! wherever `NBAD_CORPUS` points) and is never committed. Tests call
//! [`Corpus::open_or_skip`], which reports the test as skipped (see
//! [`crate::gate`]) and returns `None` where the corpus is absent: the one
//! skip that CI accepts.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

/// Environment variable that overrides the corpus location.
pub const CORPUS_ENV: &str = "NBAD_CORPUS";

/// The manifest's columns, in the order the corpus README documents them.
pub const MANIFEST_COLUMNS: [&str; 16] = [
    "relative_path",
    "category",
    "source_repo",
    "source_path",
    "commit",
    "bytes",
    "packets",
    "format",
    "link_type",
    "duration_s",
    "origin",
    "description",
    "ground_truth",
    "top_ip_conversations",
    "licence",
    "sha256",
];

/// One row of `MANIFEST.tsv`: one capture file.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestEntry {
    /// Path relative to the corpus root, e.g. `malformed/zeek__trunc-hdr.pcap`.
    pub relative_path: String,
    /// Top-level folder: `benign_mixed`, `malformed`, `scan`, …
    pub category: String,
    /// Public repository the file came from.
    pub source_repo: String,
    /// Path of the file in that repository.
    pub source_path: String,
    /// Commit of that repository the file was taken at.
    pub commit: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Number of packets (records) in the file.
    pub packets: u64,
    /// Container as detected by magic number (`pcap`, `nsecpcap`, `pcapng`);
    /// the file extension is not reliable.
    pub format: String,
    /// Link type as capinfos names it (`ether`, `linux-sll`, `rawip`, …).
    pub link_type: String,
    /// Seconds between first and last packet.
    pub duration_s: f64,
    /// How the traffic was made: `real`, `lab` or `crafted`.
    pub origin: String,
    /// What the capture shows.
    pub description: String,
    /// Which hosts and flows are the anomaly, if any.
    pub ground_truth: String,
    /// The busiest IP pairs, as a hint.
    pub top_ip_conversations: String,
    /// Licence of the source.
    pub licence: String,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// The corpus: its root folder and its parsed manifest.
#[derive(Debug, Clone)]
pub struct Corpus {
    root: PathBuf,
    entries: Vec<ManifestEntry>,
}

impl Corpus {
    /// Where the corpus is expected: `NBAD_CORPUS` if set, else
    /// `../shared/corpus` relative to the repository root.
    #[must_use]
    pub fn default_root() -> PathBuf {
        match std::env::var_os(CORPUS_ENV) {
            Some(dir) => PathBuf::from(dir),
            // CARGO_MANIFEST_DIR is <repo>/tests; the corpus sits beside <repo>.
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        }
    }

    /// Opens the corpus at [`Corpus::default_root`]. Where it is absent, the
    /// calling test is reported as skipped ([`crate::gate`], kind corpus) and
    /// this returns `Ok(None)`; a corpus that is present but unreadable is an
    /// error.
    pub fn open_or_skip() -> Result<Option<Self>> {
        let root = Self::default_root();
        if !root.join("MANIFEST.tsv").is_file() {
            crate::gate::skip(
                crate::gate::Kind::Corpus,
                &format!("corpus not found at {} (set {CORPUS_ENV} to point at it)", root.display()),
            );
            return Ok(None);
        }
        Self::open(&root).map(Some)
    }

    /// Opens the corpus at `root` and parses its `MANIFEST.tsv`.
    pub fn open(root: &Path) -> Result<Self> {
        let manifest = root.join("MANIFEST.tsv");
        let text =
            fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
        let entries = parse_manifest(&text).with_context(|| format!("parsing {}", manifest.display()))?;
        Ok(Self { root: root.to_path_buf(), entries })
    }

    /// The corpus root folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every manifest row, in file order.
    #[must_use]
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// The row for `relative_path`, or an error naming the path.
    pub fn entry(&self, relative_path: &str) -> Result<&ManifestEntry> {
        self.entries
            .iter()
            .find(|e| e.relative_path == relative_path)
            .with_context(|| format!("{relative_path} is not in MANIFEST.tsv"))
    }

    /// Absolute path of a capture.
    #[must_use]
    pub fn path(&self, entry: &ManifestEntry) -> PathBuf {
        self.root.join(&entry.relative_path)
    }

    /// Rows of one category (top-level folder), e.g. `malformed`.
    pub fn in_category<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a ManifestEntry> {
        self.entries.iter().filter(move |e| e.category == category)
    }
}

/// Parses the text of `MANIFEST.tsv`. The header must name exactly
/// [`MANIFEST_COLUMNS`] (in any order); every row must have as many fields.
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestEntry>> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().context("empty manifest")?;
    let header: Vec<&str> = header.split('\t').collect();
    let index = |name: &str| -> Result<usize> {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("header has no column {name:?} (header: {header:?})"))
    };
    let idx: Vec<usize> = MANIFEST_COLUMNS.iter().map(|c| index(c)).collect::<Result<_>>()?;
    if header.len() != MANIFEST_COLUMNS.len() {
        bail!("header has {} columns, expected {}: {header:?}", header.len(), MANIFEST_COLUMNS.len());
    }

    let mut entries = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != header.len() {
            bail!("line {}: {} fields, expected {}", n + 1, fields.len(), header.len());
        }
        let field = |column: usize| fields[idx[column]].to_owned();
        let number = |column: usize| -> Result<u64> {
            let raw = fields[idx[column]];
            raw.parse().with_context(|| {
                format!("line {}: column {} is {raw:?}, not a whole number", n + 1, MANIFEST_COLUMNS[column])
            })
        };
        let duration_raw = fields[idx[9]];
        let duration_s = duration_raw
            .parse()
            .with_context(|| format!("line {}: duration_s is {duration_raw:?}, not a number", n + 1))?;
        entries.push(ManifestEntry {
            relative_path: field(0),
            category: field(1),
            source_repo: field(2),
            source_path: field(3),
            commit: field(4),
            bytes: number(5)?,
            packets: number(6)?,
            format: field(7),
            link_type: field(8),
            duration_s,
            origin: field(10),
            description: field(11),
            ground_truth: field(12),
            top_ip_conversations: field(13),
            licence: field(14),
            sha256: field(15),
        });
    }
    Ok(entries)
}

/// Joins failure lines under a heading, for one assertion that reports every
/// failing capture at once.
#[must_use]
pub fn report(heading: &str, failures: &[String]) -> String {
    let mut out = format!("{heading} ({} failing):\n", failures.len());
    for f in failures {
        let _ = writeln!(out, "\n{f}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "relative_path\tcategory\tsource_repo\tsource_path\tcommit\tbytes\tpackets\tformat\tlink_type\tduration_s\torigin\tdescription\tground_truth\ttop_ip_conversations\tlicence\tsha256";

    #[test]
    fn parses_a_manifest_row() -> Result<()> {
        let text = format!(
            "{HEADER}\nmalformed/x.pcap\tmalformed\to/r\tp/x.pcap\tabc\t460\t6\tpcap\trawip\t0.5\tcrafted\td\tg\tt\tMIT\tff\n"
        );
        let rows = parse_manifest(&text)?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].relative_path, "malformed/x.pcap");
        assert_eq!(rows[0].packets, 6);
        assert_eq!(rows[0].link_type, "rawip");
        assert!((rows[0].duration_s - 0.5).abs() < f64::EPSILON);
        Ok(())
    }

    #[test]
    fn rejects_a_row_with_missing_fields() {
        let text = format!("{HEADER}\nmalformed/x.pcap\tmalformed\n");
        assert!(parse_manifest(&text).is_err());
    }

    #[test]
    fn rejects_a_header_without_a_documented_column() {
        let text = HEADER.replace("packets", "pkts");
        assert!(parse_manifest(&text).is_err());
    }
}
