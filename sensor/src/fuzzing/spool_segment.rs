//! Reads the input as an alert spool segment, as a restart does after a crash. Recovery must
//! never panic; it keeps a prefix of whole records with valid checksums and consecutive
//! sequence numbers and cuts the rest off the file; a second recovery finds that prefix intact
//! and nothing to cut; and the records kept, written again, are byte for byte the prefix.

use crate::deliver::spool::record::{self, Parsed};

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(file) = tempfile::NamedTempFile::new() else { return };
    if std::fs::write(file.path(), data).is_err() {
        return;
    }
    let first = record::recover(file.path()).expect("a readable segment recovers");
    assert_eq!(first.valid_bytes + first.truncated_bytes, data.len() as u64, "{first:?}");
    let kept = std::fs::read(file.path()).expect("the segment is still there");
    assert_eq!(kept.len() as u64, first.valid_bytes, "the file is cut to its valid prefix");
    assert_eq!(&kept[..], &data[..kept.len()], "the valid prefix is left as it was");
    let second = record::recover(file.path()).expect("a recovered segment recovers");
    assert_eq!((second.records, second.last_seq, second.truncated_bytes), (first.records, first.last_seq, 0));

    let mut rewritten = Vec::with_capacity(kept.len());
    let mut at = 0;
    let mut records = 0;
    while let Parsed::Record(rec, used) = record::parse(&kept[at..]) {
        record::encode(&mut rewritten, rec.seq, rec.appended_ms, rec.payload);
        at += used;
        records += 1;
    }
    assert_eq!(records, first.records);
    assert_eq!(rewritten, kept, "records written again are the prefix");
}
