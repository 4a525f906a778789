//! The spool's contract: order, cursors that survive a restart, deletion only behind every
//! cursor, the full policy, and recovery from a torn write.

use std::sync::Arc;
use std::time::Duration;

use super::reader::Reader;
use super::{Spool, SpoolError};
use crate::deliver::config::{DeliverySettings, FsyncPolicy};

fn settings(dir: &std::path::Path, max: u64, segment: u64) -> DeliverySettings {
    DeliverySettings {
        spool_dir: dir.to_path_buf(),
        spool_max_bytes: max,
        segment_bytes: segment,
        fsync: FsyncPolicy::Never,
        full_wait: Duration::from_millis(50),
        ..DeliverySettings::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(100)).into_bytes()
}

fn seqs(reader: &mut Reader, max: usize) -> Vec<u64> {
    reader.next_batch(max).expect("read").iter().map(|r| r.seq).collect()
}

#[test]
fn readers_see_every_record_in_order_across_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Arc::new(Spool::open(&settings(dir.path(), 1 << 20, 1024)).expect("open"));
    let mut reader = Reader::open(&spool, "a");
    for i in 0..50 {
        assert_eq!(spool.append(&payload(i)).expect("append"), i + 1);
    }
    assert!(spool.metrics().segments > 5, "{:?}", spool.metrics());
    let batch = reader.next_batch(1000).expect("read");
    assert_eq!(batch.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=50).collect::<Vec<_>>());
    assert_eq!(batch[49].payload, payload(49));
    assert!(reader.next_batch(10).expect("read").is_empty());
}

#[test]
fn segments_are_deleted_only_after_every_cursor_passed_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Arc::new(Spool::open(&settings(dir.path(), 1 << 20, 1024)).expect("open"));
    let mut fast = Reader::open(&spool, "fast");
    let mut slow = Reader::open(&spool, "slow");
    for i in 0..50 {
        spool.append(&payload(i)).expect("append");
    }
    let segments = spool.metrics().segments;
    assert_eq!(seqs(&mut fast, 100).len(), 50);
    fast.commit(51).expect("commit");
    assert_eq!(spool.metrics().segments, segments, "the slow sink still needs them");
    assert_eq!(seqs(&mut slow, 20), (1..=20).collect::<Vec<_>>());
    slow.commit(21).expect("commit");
    assert!(spool.metrics().segments < segments);
    assert_eq!(seqs(&mut slow, 100), (21..=50).collect::<Vec<_>>());
    slow.commit(51).expect("commit");
    assert_eq!(spool.metrics().segments, 1, "only the active segment is left");
}

#[test]
fn a_restart_resumes_each_sink_at_its_persisted_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let spool = Arc::new(Spool::open(&settings(dir.path(), 1 << 20, 1024)).expect("open"));
        let mut reader = Reader::open(&spool, "a");
        for i in 0..30 {
            spool.append(&payload(i)).expect("append");
        }
        assert_eq!(seqs(&mut reader, 10).len(), 10);
        reader.commit(11).expect("commit");
        // Read further without committing: these must come again after the restart.
        assert_eq!(seqs(&mut reader, 10).len(), 10);
    }
    let spool = Arc::new(Spool::open(&settings(dir.path(), 1 << 20, 1024)).expect("reopen"));
    // Segments wholly before the cursor were deleted at the commit; the rest is recovered.
    let recovered = spool.metrics().recovered_records;
    assert!((20..30).contains(&recovered), "{recovered}");
    let mut reader = Reader::open(&spool, "a");
    assert_eq!(spool.append(&payload(99)).expect("append"), 31, "numbers continue");
    assert_eq!(seqs(&mut reader, 100), (11..=31).collect::<Vec<_>>());
}

#[test]
fn a_torn_last_record_is_cut_off_at_restart_and_numbering_continues() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let spool = Spool::open(&settings(dir.path(), 1 << 20, 1 << 16)).expect("open");
        for i in 0..5 {
            spool.append(&payload(i)).expect("append");
        }
    }
    let seg = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "seg") && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
        })
        .expect("a segment with records");
    let len = std::fs::metadata(&seg).expect("stat").len();
    let file = std::fs::OpenOptions::new().write(true).open(&seg).expect("open segment");
    file.set_len(len - 7).expect("tear the last record");
    let spool = Arc::new(Spool::open(&settings(dir.path(), 1 << 20, 1 << 16)).expect("reopen"));
    let m = spool.metrics();
    assert_eq!(m.recovered_records, 4);
    assert!(m.truncated_bytes > 0);
    let mut reader = Reader::open(&spool, "a");
    assert_eq!(spool.append(&payload(5)).expect("append"), 5, "the torn record's number is reused");
    assert_eq!(seqs(&mut reader, 100), vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_full_spool_blocks_then_refuses_with_a_counted_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Arc::new(Spool::open(&settings(dir.path(), 4096, 1024)).expect("open"));
    let _reader = Reader::open(&spool, "stuck");
    let mut refused = None;
    for i in 0..100 {
        if let Err(e) = spool.append(&payload(i)) {
            refused = Some(e);
            break;
        }
    }
    assert!(matches!(refused, Some(SpoolError::Full { .. })), "{refused:?}");
    let m = spool.metrics();
    assert_eq!((m.refused, m.full_waits), (1, 1));
    assert!(m.bytes <= 4096);
}

#[test]
fn a_full_spool_accepts_again_once_a_sink_catches_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Arc::new(Spool::open(&settings(dir.path(), 4096, 1024)).expect("open"));
    let mut reader = Reader::open(&spool, "a");
    let mut n = 0;
    while spool.append(&payload(n)).is_ok() {
        n += 1;
    }
    let read = seqs(&mut reader, 1000);
    reader.commit(read.last().expect("some") + 1).expect("commit");
    spool.append(&payload(n)).expect("room again");
}
