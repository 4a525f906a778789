//! The on-disk record format of spool segments, and the scan that recovers a segment after a
//! crash.
//!
//! A record is a 24-byte header followed by the payload (the alert as JSON):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | payload length, u32 little-endian |
//! | 4..8 | CRC-32 (IEEE) of bytes 8.. of the record (sequence, time and payload) |
//! | 8..16 | sequence number, u64 LE, one more than the previous record's in the spool |
//! | 16..24 | append time, ms since the epoch, u64 LE |
//!
//! Parsing never panics: a short header, a length past the end or above [`MAX_PAYLOAD`], or a
//! CRC mismatch is a [`Parsed::Torn`] (the rest of the buffer is not trusted), and a buffer
//! that ends exactly at a record boundary is [`Parsed::End`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::path::Path;

/// Header bytes before each payload.
pub(crate) const HEADER: usize = 24;
/// The largest payload accepted (an alert's JSON is a few KiB).
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// Sequence number.
    pub seq: u64,
    /// When it was appended, ms since the epoch.
    pub appended_ms: u64,
    /// The alert's JSON.
    pub payload: &'a [u8],
}

/// What the bytes at an offset hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A valid record of this many bytes in all.
    Record(Record<'a>, usize),
    /// The buffer ends here.
    End,
    /// A partial or corrupt record: nothing from here on is trusted.
    Torn,
}

/// Appends the record for `payload` to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, seq: u64, appended_ms: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(&appended_ms.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.extend_from_slice(payload);
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    buf.get(at..at + 8)?.try_into().ok().map(u64::from_le_bytes)
}

/// Parses the record at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.is_empty() {
        return Parsed::End;
    }
    let (Some(len), Some(crc), Some(seq), Some(appended_ms)) =
        (u32_at(buf, 0), u32_at(buf, 4), u64_at(buf, 8), u64_at(buf, 16))
    else {
        return Parsed::Torn;
    };
    let len = len as usize;
    if len > MAX_PAYLOAD {
        return Parsed::Torn;
    }
    let Some(body) = buf.get(8..HEADER + len) else {
        return Parsed::Torn;
    };
    if crc32fast::hash(body) != crc {
        return Parsed::Torn;
    }
    let payload = &body[HEADER - 8..];
    Parsed::Record(Record { seq, appended_ms, payload }, HEADER + len)
}

/// What recovering one segment found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Valid records.
    pub records: u64,
    /// Sequence number of the last valid record.
    pub last_seq: Option<u64>,
    /// Length of the valid prefix; the file is truncated to it.
    pub valid_bytes: u64,
    /// Bytes cut off after the valid prefix (a torn write, or corruption).
    pub truncated_bytes: u64,
}

/// Scans the segment at `path`, truncates it after its last valid record and reports what it
/// held. A record whose sequence number does not follow the previous one is treated as torn
/// too (it cannot be a record this spool wrote in order).
pub(crate) fn recover(path: &Path) -> io::Result<Recovered> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    let mut at = 0;
    let mut out = Recovered::default();
    while let Parsed::Record(rec, used) = parse(&buf[at..]) {
        if out.last_seq.is_some_and(|last| rec.seq != last + 1) {
            break;
        }
        out.records += 1;
        out.last_seq = Some(rec.seq);
        at += used;
    }
    out.valid_bytes = at as u64;
    out.truncated_bytes = (buf.len() - at) as u64;
    if out.truncated_bytes > 0 {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(out.valid_bytes)?;
        file.sync_all()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1000, b"{\"a\":1}");
        encode(&mut buf, 8, 1001, b"{\"b\":2}");
        buf
    }

    #[test]
    fn parses_back_what_it_encodes() {
        let buf = two_records();
        let Parsed::Record(first, used) = parse(&buf) else { panic!("first record parses") };
        assert_eq!((first.seq, first.appended_ms, first.payload), (7, 1000, &b"{\"a\":1}"[..]));
        let Parsed::Record(second, used2) = parse(&buf[used..]) else { panic!("second record parses") };
        assert_eq!(second.seq, 8);
        assert_eq!(parse(&buf[used + used2..]), Parsed::End);
    }

    #[test]
    fn every_truncation_of_a_record_is_torn_never_a_panic() {
        let buf = two_records();
        for cut in 1..HEADER + 7 {
            assert_eq!(parse(&buf[..cut]), Parsed::Torn, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut buf = two_records();
        buf[HEADER + 2] ^= 0x10;
        assert_eq!(parse(&buf), Parsed::Torn);
    }

    #[test]
    fn recovery_truncates_a_torn_tail_and_keeps_the_valid_prefix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("seg");
        let mut buf = two_records();
        let valid = buf.len() as u64;
        let mut torn = Vec::new();
        encode(&mut torn, 9, 1002, b"{\"c\":3}");
        buf.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(&path, &buf).expect("write");
        let r = recover(&path).expect("recover");
        assert_eq!((r.records, r.last_seq, r.valid_bytes), (2, Some(8), valid));
        assert_eq!(r.truncated_bytes, torn.len() as u64 - 3);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), valid);
    }
}
