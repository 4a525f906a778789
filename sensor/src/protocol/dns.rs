//! DNS over UDP and over TCP: the header and the first question, read with
//! hickory-proto.
//!
//! Only the header and the first question are decoded ([`Header::read`] and
//! [`Query::read`] on a [`BinDecoder`]), not the whole message: a response cut
//! at 256 bytes is still DNS, and the records after the question do not matter
//! here. Over TCP the message follows a two-byte length (RFC 7766), which must
//! be at least a header's size; a payload longer than that length (pipelined
//! queries) is read up to it.
//!
//! Random UDP payloads must not pass for DNS, so a message must also be
//! plausible:
//!
//! - opcode 0 (standard query), the Z bit clear, and for a query a zero rcode;
//! - 1 to [`MAX_QUESTIONS`] questions and at most [`MAX_RECORDS`] records in
//!   each other section;
//! - the first question's name made of labels of 1 to 63 bytes, without a
//!   compression pointer (nothing but the header precedes it to point to);
//! - its class IN, CH, HS, NONE or ANY (the top bit, mDNS's unicast-response
//!   flag, ignored).
//!
//! The name is given as hickory-proto writes it: labels joined by dots, case
//! kept, a dot inside a label as `\.` and a byte outside printable ASCII as a
//! backslash and three octal digits (`\000`). It spans at most 255 bytes on
//! the wire, so escapes can make its text longer.
//!
//! When the bytes end inside the question but what is there is a well-formed
//! run of labels, the message is DNS with `qname` and `qtype` `None`: a long
//! tunnelling name can be cut that way by a 256-byte sample.
//!
//! Not handled: messages without a question (mDNS announcements, some
//! NOTIFY/UPDATE traffic, which also has other opcodes), DNS over TLS, HTTPS or
//! QUIC (those are TLS, HTTP or QUIC here), and LLMNR or mDNS told apart from
//! DNS (they share its format and are reported as DNS).

use hickory_proto::op::{Header, MessageType, OpCode, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::Protocol;

/// Size of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Questions a plausible message has at most (real ones have exactly one).
pub const MAX_QUESTIONS: u16 = 4;
/// Records a plausible message has at most in its answer, authority and
/// additional sections, each.
pub const MAX_RECORDS: u16 = 512;

/// Longest label (RFC 1035 2.3.4).
const MAX_LABEL: u8 = 63;
/// Longest name on the wire, root label included (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// DNS classes a question may ask for: IN, CH, HS, NONE, ANY.
const CLASSES: [u16; 5] = [1, 3, 4, 254, 255];
/// mDNS's unicast-response (question) / cache-flush (record) bit in the class.
const MDNS_CLASS_FLAG: u16 = 0x8000;

/// A DNS message carried in one UDP datagram.
pub(super) fn identify_udp(payload: &[u8]) -> Option<Protocol> {
    message(payload)
}

/// A DNS message in a TCP stream, after its two-byte length.
pub(super) fn identify_tcp(payload: &[u8]) -> Option<Protocol> {
    let (len, rest) = payload.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if len < HEADER_LEN {
        return None;
    }
    message(rest.get(..len).unwrap_or(rest))
}

fn message(bytes: &[u8]) -> Option<Protocol> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).ok()?;
    // The second flags byte: RA, Z, AD, CD, rcode (4 bits); hickory-proto does not keep Z.
    let flags = *bytes.get(3)?;
    let z_clear = flags & 0x40 == 0;
    let query = header.message_type == MessageType::Query;
    let rcode_ok = !query || flags & 0x0f == 0;
    let counts = header.counts;
    let plausible = header.op_code == OpCode::Query
        && z_clear
        && rcode_ok
        && (1..=MAX_QUESTIONS).contains(&counts.queries)
        && counts.answers <= MAX_RECORDS
        && counts.authorities <= MAX_RECORDS
        && counts.additionals <= MAX_RECORDS;
    if !plausible {
        return None;
    }
    let question = &bytes[HEADER_LEN..];
    let cut = match labels(question)? {
        Labels::Cut => true,
        // The type and class (4 bytes) follow the name.
        Labels::Whole(name_len) => question.len() < name_len + 4,
    };
    if cut {
        return Some(Protocol::Dns { query, qname: None, qtype: None });
    }
    let question = Query::read(&mut decoder).ok()?;
    let class = u16::from(question.query_class()) & !MDNS_CLASS_FLAG;
    if !CLASSES.contains(&class) {
        return None;
    }
    let name = question.name();
    let qname = if name.is_root() {
        ".".to_owned()
    } else {
        let mut ascii = name.to_ascii();
        if ascii.ends_with('.') {
            ascii.pop();
        }
        ascii
    };
    Some(Protocol::Dns { query, qname: Some(qname), qtype: Some(u16::from(question.query_type())) })
}

/// How the first question's name looks.
enum Labels {
    /// Labels up to the root label, all there: the name's length on the wire.
    Whole(usize),
    /// Well-formed labels up to the end of the bytes.
    Cut,
}

/// Walks the labels of a name at the start of `bytes`; `None` for a
/// compression pointer, a reserved label type, a label over 63 bytes or a name
/// over 255 bytes.
fn labels(bytes: &[u8]) -> Option<Labels> {
    let mut at = 0;
    while let Some(&len) = bytes.get(at) {
        if len == 0 {
            return Some(Labels::Whole(at + 1));
        }
        if len > MAX_LABEL || at + 1 + usize::from(len) >= MAX_NAME {
            return None;
        }
        at += 1 + usize::from(len);
    }
    Some(Labels::Cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with the given flags and counts, then `question`.
    fn msg(flags: [u8; 2], counts: [u16; 4], question: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, flags[0], flags[1]];
        for c in counts {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(question);
        m
    }

    const WWW_EXAMPLE_A: &[u8] = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01";

    fn dns(query: bool, qname: Option<&str>, qtype: Option<u16>) -> Option<Protocol> {
        Some(Protocol::Dns { query, qname: qname.map(Into::into), qtype })
    }

    #[test]
    fn query_and_its_question() {
        let got = identify_udp(&msg([0x01, 0x00], [1, 0, 0, 0], WWW_EXAMPLE_A));
        assert_eq!(got, dns(true, Some("www.example.com"), Some(1)));
    }

    #[test]
    fn root_name_is_a_dot() {
        let got = identify_udp(&msg([0x01, 0x00], [1, 0, 0, 1], b"\x00\x00\x02\x00\x01"));
        assert_eq!(got, dns(true, Some("."), Some(2)));
    }

    #[test]
    fn odd_bytes_in_names_are_escaped() {
        let got =
            identify_udp(&msg([0x01, 0x00], [1, 0, 0, 0], b"\x05a\x00b.C\x07Example\x00\x00\x10\x00\x01"));
        assert_eq!(got, dns(true, Some(r"a\000b\.C.Example"), Some(16)), "case kept, NUL and dot escaped");
    }

    #[test]
    fn mdns_unicast_response_bit_is_ignored_in_the_class() {
        let got = identify_udp(&msg([0, 0], [1, 0, 0, 0], b"\x05_http\x04_tcp\x05local\x00\x00\x0c\x80\x01"));
        assert_eq!(got, dns(true, Some("_http._tcp.local"), Some(12)));
    }

    #[test]
    fn question_cut_by_the_end_of_the_payload_is_still_dns() {
        let whole = msg([0x01, 0x00], [1, 0, 0, 0], WWW_EXAMPLE_A);
        for cut in HEADER_LEN..whole.len() {
            assert_eq!(identify_udp(&whole[..cut]), dns(true, None, None), "cut at {cut}");
        }
        assert_eq!(identify_udp(&whole[..HEADER_LEN - 1]), None, "header cut short");
    }

    #[test]
    fn implausible_headers_are_not_dns() {
        let cases: [([u8; 2], [u16; 4], &str); 7] = [
            ([0x28, 0x00], [1, 0, 0, 0], "opcode 5 (update)"),
            ([0x01, 0x40], [1, 0, 0, 0], "Z bit set"),
            ([0x01, 0x03], [1, 0, 0, 0], "query with an rcode"),
            ([0x01, 0x00], [0, 0, 0, 0], "no question"),
            ([0x01, 0x00], [5, 0, 0, 0], "too many questions"),
            ([0x81, 0x80], [1, 600, 0, 0], "too many answers"),
            ([0x81, 0x80], [1, 0, 0, 9999], "too many additionals"),
        ];
        for (flags, counts, why) in cases {
            assert_eq!(identify_udp(&msg(flags, counts, WWW_EXAMPLE_A)), None, "{why}");
        }
    }

    #[test]
    fn malformed_questions_are_not_dns() {
        let header = ([0x01, 0x00], [1, 0, 0, 0]);
        let cases: [(&[u8], &str); 4] = [
            (b"\xc0\x0c\x00\x01\x00\x01", "compression pointer"),
            (b"\x40aaaa", "label over 63 bytes"),
            (b"\x03www\x00\x00\x01\x12\x34", "class 0x1234"),
            (b"\x03www\x00\x00\x01\x00\x00", "class 0"),
        ];
        for (question, why) in cases {
            assert_eq!(identify_udp(&msg(header.0, header.1, question)), None, "{why}");
        }
    }

    #[test]
    fn tcp_needs_a_length_prefix_of_at_least_a_header() {
        let m = msg([0x01, 0x00], [1, 0, 0, 0], WWW_EXAMPLE_A);
        let mut framed = u16::try_from(m.len()).expect("short").to_be_bytes().to_vec();
        framed.extend_from_slice(&m);
        assert_eq!(identify_tcp(&framed), dns(true, Some("www.example.com"), Some(1)));
        assert_eq!(identify_tcp(&m), None, "unframed");
        framed[..2].copy_from_slice(&[0, 11]);
        assert_eq!(identify_tcp(&framed), None, "length shorter than a header");
    }
}
