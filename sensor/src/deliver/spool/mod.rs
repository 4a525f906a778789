//! The on-disk alert spool: every alert is appended here before any sink sees it.
//!
//! Layout of `spool_dir`: segment files `<first-seq, 20 digits>.seg` holding records (see
//! [`record`]), and one `<sink>.cursor` per sink holding the sequence number of the first
//! record that sink has not had acknowledged (written atomically: temporary file, rename).
//!
//! Invariants:
//! - sequence numbers start at 1 and grow by one per record across segments and restarts (at
//!   start the next number is past every record and every cursor on disk);
//! - readers only read bytes that a completed append has published (`committed`), so a reader
//!   never sees half a record; a torn record can only be found at start, after a crash, and is
//!   truncated away by [`record::recover`] (counted in `truncated_bytes`);
//! - a segment is deleted only when it is not the active one and every sink's cursor has
//!   passed its last record;
//! - the total size of the segments never passes `spool_max_bytes`. **When full**, `append`
//!   blocks the producer for at most `full_wait` for a sink to free a segment, then refuses
//!   the alert with [`SpoolError::Full`] and counts it in `refused`: nothing is dropped
//!   silently, the caller sees the error (and the counter shows it).

pub(crate) mod reader;
pub(crate) mod record;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::config::{DeliverySettings, FsyncPolicy};

/// Why an alert could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool held `spool_max_bytes` for all of `full_wait`: the alert was refused (counted).
    #[error(
        "alert spool full ({bytes} of {max} bytes) for {waited:?}: alert refused; a sink is not keeping up"
    )]
    Full {
        /// Bytes held.
        bytes: u64,
        /// `spool_max_bytes`.
        max: u64,
        /// How long the producer waited.
        waited: Duration,
    },
    /// The alert's JSON is larger than a record may be.
    #[error("alert of {0} bytes is larger than the spool's record limit")]
    TooLarge(usize),
    /// Reading or writing the spool directory failed.
    #[error("alert spool {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The spool's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpoolMetrics {
    /// Bytes of segment files.
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Alerts appended since start.
    pub appended: u64,
    /// Appends that had to wait for room.
    pub full_waits: u64,
    /// Alerts refused because the spool stayed full (each was returned as an error).
    pub refused: u64,
    /// Records found intact at start (replayed to sinks whose cursor had not passed them).
    pub recovered_records: u64,
    /// Bytes of torn records cut off at start (a write cut short by a crash).
    pub truncated_bytes: u64,
    /// Records a reader found corrupt after start and skipped (disk corruption).
    pub corrupt_skipped: u64,
    /// Sequence number the next alert gets.
    pub next_seq: u64,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    bytes: u64,
}

#[derive(Debug)]
struct State {
    segments: VecDeque<Segment>,
    active: File,
    next_seq: u64,
    total_bytes: u64,
    buf: Vec<u8>,
    last_sync: Instant,
    cursors: BTreeMap<String, u64>,
}

/// The spool; shared (`Arc`) by the producer and every sink's reader.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    full_wait: Duration,
    state: Mutex<State>,
    room: Condvar,
    appended_tx: tokio::sync::watch::Sender<u64>,
    appended: AtomicU64,
    full_waits: AtomicU64,
    refused: AtomicU64,
    recovered_records: u64,
    truncated_bytes: u64,
    pub(crate) corrupt_skipped: AtomicU64,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Spool {
    /// Opens (creating) the spool in `settings.spool_dir`, recovering what a previous run left.
    pub(crate) fn open(settings: &DeliverySettings) -> Result<Self, SpoolError> {
        let dir = settings.spool_dir.clone();
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut firsts = Vec::new();
        let mut next_seq = 1;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = entry.map_err(io_err(&dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(first) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
                firsts.push(first);
            } else if name.ends_with(".cursor") {
                next_seq = next_seq.max(reader::read_cursor(&path).unwrap_or(0));
            }
        }
        firsts.sort_unstable();
        let (mut segments, mut recovered_records, mut truncated_bytes) = (VecDeque::new(), 0, 0);
        for first in firsts {
            let path = segment_path(&dir, first);
            let r = record::recover(&path).map_err(io_err(&path))?;
            if r.truncated_bytes > 0 {
                eprintln!(
                    "nbad-sensor: alert spool {}: cut off a torn record of {} bytes after {} intact records \
                     (a write was interrupted)",
                    path.display(),
                    r.truncated_bytes,
                    r.records
                );
            }
            next_seq = next_seq.max(first).max(r.last_seq.map_or(0, |s| s + 1));
            recovered_records += r.records;
            truncated_bytes += r.truncated_bytes;
            if r.records == 0 {
                fs::remove_file(&path).map_err(io_err(&path))?;
            } else {
                segments.push_back(Segment { first_seq: first, bytes: r.valid_bytes });
            }
        }
        let active_path = segment_path(&dir, next_seq);
        let active = open_segment(&active_path).map_err(io_err(&active_path))?;
        segments.push_back(Segment { first_seq: next_seq, bytes: 0 });
        let total_bytes = segments.iter().map(|s| s.bytes).sum();
        Ok(Self {
            dir,
            max_bytes: settings.spool_max_bytes,
            segment_bytes: settings.segment_bytes,
            fsync: settings.fsync,
            full_wait: settings.full_wait,
            state: Mutex::new(State {
                segments,
                active,
                next_seq,
                total_bytes,
                buf: Vec::with_capacity(4096),
                last_sync: Instant::now(),
                cursors: BTreeMap::new(),
            }),
            room: Condvar::new(),
            appended_tx: tokio::sync::watch::Sender::new(next_seq),
            appended: AtomicU64::new(0),
            full_waits: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            recovered_records,
            truncated_bytes,
            corrupt_skipped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is a few plain
        // assignments after the write), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn fsync(&self) -> FsyncPolicy {
        self.fsync
    }

    /// Appends one alert's JSON; returns its sequence number. Blocks for at most `full_wait`
    /// while the spool is full (see the module docs).
    pub(crate) fn append(&self, payload: &[u8]) -> Result<u64, SpoolError> {
        if payload.len() > record::MAX_PAYLOAD {
            return Err(SpoolError::TooLarge(payload.len()));
        }
        let len = (record::HEADER + payload.len()) as u64;
        let started = Instant::now();
        let mut st = self.lock();
        let mut waited = false;
        while st.total_bytes + len > self.max_bytes {
            if !waited {
                self.full_waits.fetch_add(1, Relaxed);
                waited = true;
            }
            let left = self.full_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                self.refused.fetch_add(1, Relaxed);
                return Err(SpoolError::Full {
                    bytes: st.total_bytes,
                    max: self.max_bytes,
                    waited: started.elapsed(),
                });
            }
            st = self.room.wait_timeout(st, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        let active_bytes = st.segments.back().map_or(0, |s| s.bytes);
        if active_bytes > 0 && active_bytes + len > self.segment_bytes {
            self.rotate(&mut st)?;
        }
        let seq = st.next_seq;
        let State { buf, active, .. } = &mut *st;
        buf.clear();
        record::encode(buf, seq, now_ms(), payload);
        if let Err(source) = active.write_all(buf) {
            // Cut a partial write back to the last whole record so readers stay aligned.
            let _ = active.set_len(active_bytes);
            let first = st.segments.back().map_or(seq, |s| s.first_seq);
            return Err(SpoolError::Io { path: segment_path(&self.dir, first), source });
        }
        if let Some(active) = st.segments.back_mut() {
            active.bytes += len;
        }
        st.total_bytes += len;
        st.next_seq += 1;
        let sync = match self.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => st.last_sync.elapsed() >= every,
            FsyncPolicy::Never => false,
        };
        if sync {
            self.sync(&mut st)?;
        }
        let next = st.next_seq;
        drop(st);
        self.appended.fetch_add(1, Relaxed);
        self.appended_tx.send_replace(next);
        Ok(seq)
    }

    fn sync(&self, st: &mut State) -> Result<(), SpoolError> {
        st.last_sync = Instant::now();
        st.active.sync_data().map_err(|source| SpoolError::Io { path: self.dir.clone(), source })
    }

    fn rotate(&self, st: &mut State) -> Result<(), SpoolError> {
        if self.fsync != FsyncPolicy::Never {
            self.sync(st)?;
        }
        let path = segment_path(&self.dir, st.next_seq);
        st.active = open_segment(&path).map_err(|source| SpoolError::Io { path, source })?;
        st.segments.push_back(Segment { first_seq: st.next_seq, bytes: 0 });
        Ok(())
    }

    /// Syncs the active segment (shutdown, and the `interval` policy's timer).
    pub(crate) fn flush(&self) -> Result<(), SpoolError> {
        if self.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        let mut st = self.lock();
        self.sync(&mut st)
    }

    /// The sequence number the next alert will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// A receiver that changes whenever an append completes (its value: `next_seq`).
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended_tx.subscribe()
    }

    /// Committed length of the segment starting at `first_seq`, and the first sequence number of
    /// the segment after it (`None` while it is the active one). `None` if it no longer exists.
    pub(crate) fn segment_extent(&self, first_seq: u64) -> Option<(u64, Option<u64>)> {
        let st = self.lock();
        let i = st.segments.iter().position(|s| s.first_seq == first_seq)?;
        Some((st.segments[i].bytes, st.segments.get(i + 1).map(|s| s.first_seq)))
    }

    /// The first sequence number of the segment holding `seq` (or the oldest, if older).
    pub(crate) fn segment_for(&self, seq: u64) -> u64 {
        let st = self.lock();
        st.segments
            .iter()
            .rev()
            .find(|s| s.first_seq <= seq)
            .or(st.segments.front())
            .map_or(seq, |s| s.first_seq)
    }

    pub(crate) fn segment_file(&self, first_seq: u64) -> PathBuf {
        segment_path(&self.dir, first_seq)
    }

    /// Records that `sink` has had everything before `cursor` acknowledged, and deletes the
    /// segments every sink has passed.
    pub(crate) fn acknowledge(&self, sink: &str, cursor: u64) {
        let mut st = self.lock();
        st.cursors.insert(sink.to_owned(), cursor);
        let Some(&min) = st.cursors.values().min() else { return };
        let mut freed = false;
        while st.segments.len() > 1 && st.segments[1].first_seq <= min {
            let Some(old) = st.segments.pop_front() else { break };
            let path = segment_path(&self.dir, old.first_seq);
            if let Err(e) = fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                eprintln!("nbad-sensor: alert spool: cannot delete {}: {e}", path.display());
            }
            st.total_bytes -= old.bytes;
            freed = true;
        }
        drop(st);
        if freed {
            self.room.notify_all();
        }
    }

    /// Counters and gauges.
    pub(crate) fn metrics(&self) -> SpoolMetrics {
        let st = self.lock();
        SpoolMetrics {
            bytes: st.total_bytes,
            segments: st.segments.len() as u64,
            appended: self.appended.load(Relaxed),
            full_waits: self.full_waits.load(Relaxed),
            refused: self.refused.load(Relaxed),
            recovered_records: self.recovered_records,
            truncated_bytes: self.truncated_bytes,
            corrupt_skipped: self.corrupt_skipped.load(Relaxed),
            next_seq: st.next_seq,
        }
    }
}

fn open_segment(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests;
