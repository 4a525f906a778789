//! Reads the input as a capture file (classic pcap or pcapng, told apart by
//! magic number) to its end or to the first error. Reading must never panic,
//! and every packet handed out must lie inside the file.
//!
//! The reader walks a 1 MiB buffer and carries a record cut by the buffer's
//! end over to the next read; fuzz inputs are far smaller than that. So an
//! input that reads cleanly is also repeated past 1 MiB (classic pcap: its
//! records after the one file header; pcapng: the whole file, one section per
//! copy), which puts record boundaries across the buffer's end at offsets the
//! fuzzer varies, and the repeated file must yield the same packets, repeated.

use std::io::Write;
use std::path::Path;

use crate::capture::file::FileSource;
use crate::capture::{LinkType, Next, PacketSource};

/// The reader's buffer size (`READ_CHUNK` in `capture/file.rs`).
const READ_CHUNK: usize = 1 << 20;
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// What one packet handed out was, for comparing two reads.
#[derive(Debug, PartialEq, Eq)]
struct Packet {
    link: LinkType,
    wire_len: u32,
    data: Vec<u8>,
}

/// How a read ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// At the end of the file, after whole records only.
    Clean,
    /// At the end of the file, inside a record; or at an error.
    Other,
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("create a temporary file");
    file.write_all(bytes).expect("write the input to the temporary file");
    file.flush().expect("flush the temporary file");
    file
}

/// Reads `path` to its end or first error; `None` when it does not open.
fn read(path: &Path, file_len: usize) -> Option<(Vec<Packet>, Ending)> {
    let mut source = FileSource::new(&[path.to_path_buf()]).ok()?;
    let mut packets = Vec::new();
    let mut captured = 0usize;
    // Every record takes at least 12 bytes of the file, so a source that
    // yields more packets than there are bytes is looping.
    for _ in 0..=file_len {
        match source.next_packet() {
            Ok(Next::Packet(p)) => {
                captured += p.data.len();
                assert!(captured <= file_len, "more bytes handed out than the {file_len}-byte file holds");
                packets.push(Packet { link: p.link, wire_len: p.wire_len, data: p.data.to_vec() });
            }
            Ok(Next::Idle) => panic!("a file source never idles"),
            Ok(Next::Decoded(_)) => panic!("a file source hands out packets, not kernel-decoded flows"),
            Ok(Next::End) => {
                let cut = source.source_stats().truncated_files > 0;
                return Some((packets, if cut { Ending::Other } else { Ending::Clean }));
            }
            Err(_) => return Some((packets, Ending::Other)),
        }
    }
    panic!("no end after {} packets from a {file_len}-byte file", file_len + 1);
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let file = write_temp(data);
    let Some((packets, Ending::Clean)) = read(file.path(), data.len()) else {
        return;
    };
    if packets.is_empty() {
        return;
    }
    // Repeat the records (or sections) until the file is past the buffer.
    let (head, body) = if data.starts_with(&PCAPNG_MAGIC) { data.split_at(0) } else { data.split_at(24) };
    let copies = READ_CHUNK / body.len() + 2;
    let mut tiled = Vec::with_capacity(head.len() + body.len() * copies);
    tiled.extend_from_slice(head);
    for _ in 0..copies {
        tiled.extend_from_slice(body);
    }
    let file = write_temp(&tiled);
    let (again, ending) =
        read(file.path(), tiled.len()).expect("the repeated file opens as the original did");
    assert_eq!(ending, Ending::Clean, "the repeated file reads cleanly as the original did");
    assert_eq!(again.len(), packets.len() * copies, "packets from {copies} copies");
    for (i, p) in again.iter().enumerate() {
        assert_eq!(p, &packets[i % packets.len()], "packet {i} of the repeated file");
    }
}
