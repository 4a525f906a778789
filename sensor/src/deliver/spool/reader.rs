//! A sink's view of the spool: its cursor, persisted atomically, and the reads from it.
//!
//! The cursor is the sequence number of the first record the sink has not had acknowledged.
//! It moves only through [`Reader::commit`], which the delivery loop calls once the receiver
//! acknowledged (or a record was dead-lettered); reading ahead for a batch does not move it,
//! so a crash between send and acknowledgement replays the batch (at-least-once, same
//! `event.id`).

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::record::{self, Parsed};
use super::{Spool, SpoolError};
use crate::deliver::config::FsyncPolicy;

/// Bytes read from a segment at a time; larger than any record.
const CHUNK: u64 = 4 << 20;

/// One record handed to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spooled {
    /// Sequence number.
    pub seq: u64,
    /// When it was spooled, ms since the epoch.
    pub appended_ms: u64,
    /// The alert's JSON.
    pub payload: Vec<u8>,
}

/// The value of a cursor file, if it holds one.
pub(crate) fn read_cursor(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A sink's cursor and read position.
#[derive(Debug)]
pub(crate) struct Reader {
    spool: Arc<Spool>,
    name: String,
    cursor_path: PathBuf,
    cursor: u64,
    segment: u64,
    offset: u64,
    file: Option<File>,
    buf: Vec<u8>,
}

impl Reader {
    /// The reader of sink `name`, at its persisted cursor (the oldest record if it has none).
    /// Registers the cursor with the spool, so no segment it still needs is deleted.
    pub(crate) fn open(spool: &Arc<Spool>, name: &str) -> Self {
        let cursor_path = spool.dir().join(format!("{name}.cursor"));
        let cursor = read_cursor(&cursor_path).unwrap_or(0).min(spool.next_seq());
        spool.acknowledge(name, cursor);
        Self {
            spool: Arc::clone(spool),
            name: name.to_owned(),
            cursor_path,
            cursor,
            segment: spool.segment_for(cursor),
            offset: 0,
            file: None,
            buf: Vec::new(),
        }
    }

    /// The first sequence number not yet acknowledged.
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Up to `max` records after the last one returned; empty when caught up.
    pub(crate) fn next_batch(&mut self, max: usize) -> Result<Vec<Spooled>, SpoolError> {
        let mut out = Vec::new();
        // Each pass moves to a later segment or further into this one; segments are bounded.
        for _ in 0..1_000_000 {
            if out.len() >= max {
                break;
            }
            let Some((limit, next)) = self.spool.segment_extent(self.segment) else {
                // Deleted under us can only mean every record in it was acknowledged.
                self.move_to(self.spool.segment_for(self.cursor.max(self.segment)));
                if self.spool.segment_extent(self.segment).is_none() {
                    break;
                }
                continue;
            };
            if self.offset >= limit {
                match next {
                    Some(next) => {
                        self.move_to(next);
                        continue;
                    }
                    None => break,
                }
            }
            let path = self.spool.segment_file(self.segment);
            let io = |source| SpoolError::Io { path: path.clone(), source };
            if self.file.is_none() {
                self.file = Some(File::open(&path).map_err(io)?);
            }
            let want = (limit - self.offset).min(CHUNK);
            self.buf.resize(usize::try_from(want).unwrap_or(usize::MAX), 0);
            if let Some(file) = &self.file {
                file.read_exact_at(&mut self.buf, self.offset).map_err(io)?;
            }
            let mut at = 0;
            loop {
                match record::parse(&self.buf[at..]) {
                    Parsed::Record(rec, used) => {
                        at += used;
                        if rec.seq >= self.cursor {
                            out.push(Spooled {
                                seq: rec.seq,
                                appended_ms: rec.appended_ms,
                                payload: rec.payload.to_vec(),
                            });
                            if out.len() >= max {
                                break;
                            }
                        }
                    }
                    Parsed::End => break,
                    Parsed::Torn if want < limit - self.offset && at > 0 => break, // cut by CHUNK
                    Parsed::Torn => {
                        self.spool.corrupt_skipped.fetch_add(1, Relaxed);
                        eprintln!(
                            "nbad-sensor: alert spool {}: corrupt record at byte {}; skipping the rest of the segment",
                            path.display(),
                            self.offset + at as u64
                        );
                        at = self.buf.len();
                        break;
                    }
                }
            }
            self.offset += at as u64;
        }
        Ok(out)
    }

    fn move_to(&mut self, segment: u64) {
        self.segment = segment;
        self.offset = 0;
        self.file = None;
    }

    /// Everything before `next` is acknowledged: persist the cursor, then let the spool delete
    /// what no sink needs.
    pub(crate) fn commit(&mut self, next: u64) -> Result<(), SpoolError> {
        if next <= self.cursor {
            return Ok(());
        }
        let tmp = self.cursor_path.with_extension("cursor.tmp");
        let io = |source| SpoolError::Io { path: self.cursor_path.clone(), source };
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(format!("{next}\n").as_bytes()).map_err(io)?;
        if self.spool.fsync() != FsyncPolicy::Never {
            file.sync_data().map_err(io)?;
        }
        drop(file);
        fs::rename(&tmp, &self.cursor_path).map_err(io)?;
        self.cursor = next;
        self.spool.acknowledge(&self.name, next);
        Ok(())
    }
}
