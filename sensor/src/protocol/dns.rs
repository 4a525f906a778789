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
//! - a known opcode: 0 QUERY, 1 IQUERY, 2 STATUS, 4 NOTIFY, 5 UPDATE (RFC
//!   2136; its zone section is read as the question section, the zone name as
//!   `qname`, SOA as `qtype`), or 6 DSO (RFC 8490, TCP only); the Z bit clear,
//!   and for a query a zero rcode;
//! - 1 to [`MAX_QUESTIONS`] questions (to [`MAX_MDNS_QUESTIONS`] with message
//!   id 0, as mDNS asks) and at most [`MAX_RECORDS`] records in
//!   each other section. Messages without a question are accepted where the
//!   protocol sends them: a NOTIFY or UPDATE response (no answer or authority
//!   records, at most [`MAX_BARE_ADDITIONALS`] additional ones such as OPT or
//!   TSIG, whose first owner name must be well-formed; with none, the message
//!   is the header alone), and a DSO message (all counts zero, a TLV of a
//!   known type after the header);
//! - the first question's name made of labels of 1 to 63 bytes, without a
//!   compression pointer (nothing but the header precedes it to point to);
//! - its class IN, CH, HS, NONE or ANY (the top bit, mDNS's unicast-response
//!   flag, ignored).
//!
//! The name is reported in presentation form: labels joined by dots, case
//! kept, a dot inside a label as `\.` and a byte outside printable ASCII as a
//! backslash and three octal digits (`\000`). It spans at most 255 bytes on
//! the wire, so escapes can make its text longer.
//!
//! When the bytes end inside the question but what is there is a well-formed
//! run of labels, the message is DNS with `qname` and `qtype` `None`: a long
//! tunnelling name can be cut that way by a 256-byte sample.
//!
//! Role: a query (QR clear: including an UPDATE or NOTIFY request) is the
//! client's, a response the server's; a DSO message either side's.
//!
//! Not handled: mDNS announcements without a question, DNS over TLS, HTTPS
//! or QUIC (those are TLS, HTTP or QUIC here), and LLMNR or mDNS told apart
//! from DNS (they share its format and are reported as DNS). NetBIOS name
//! service shares the header too; [`super::netbios`] is asked first.

use hickory_proto::op::{Header, MessageType, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::Protocol;
use super::model::{App, DnsInfo, Role};
use super::text::be16;

/// Size of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Questions a plausible message has at most (real ones have exactly one).
pub const MAX_QUESTIONS: u16 = 4;
/// Questions an mDNS query (message id 0, RFC 6762 18.1) has at most: it asks
/// for many services at once.
pub const MAX_MDNS_QUESTIONS: u16 = 64;
/// Records a plausible message has at most in its answer, authority and
/// additional sections, each.
pub const MAX_RECORDS: u16 = 512;
/// Additional records (OPT, TSIG, SIG(0)) a response without a question has at most.
pub const MAX_BARE_ADDITIONALS: u16 = 2;

/// Opcodes.
const QUERY: u8 = 0;
const IQUERY: u8 = 1;
const STATUS: u8 = 2;
const NOTIFY: u8 = 4;
const UPDATE: u8 = 5;
const DSO: u8 = 6;
/// DSO TLV types a message may start with: KEEPALIVE, RETRY DELAY, ENCRYPTION PADDING.
const DSO_TYPES: [u16; 3] = [1, 2, 3];

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
    message(payload, false)
}

/// A DNS message in a TCP stream, after its two-byte length.
pub(super) fn identify_tcp(payload: &[u8]) -> Option<Protocol> {
    let (len, rest) = payload.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if len < HEADER_LEN {
        return None;
    }
    message(rest.get(..len).unwrap_or(rest), true)
}

fn message(bytes: &[u8], tcp: bool) -> Option<Protocol> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).ok()?;
    // The second flags byte: RA, Z, AD, CD, rcode (4 bits); hickory-proto does not keep Z.
    let flags = *bytes.get(3)?;
    let rcode = flags & 0x0f;
    let query = header.message_type == MessageType::Query;
    let opcode = u8::from(header.op_code);
    let counts = header.counts;
    let plausible = matches!(opcode, QUERY | IQUERY | STATUS | NOTIFY | UPDATE | DSO)
        && flags & 0x40 == 0
        && (!query || rcode == 0)
        && (counts.queries <= MAX_QUESTIONS || (header.id == 0 && counts.queries <= MAX_MDNS_QUESTIONS))
        && counts.answers <= MAX_RECORDS
        && counts.authorities <= MAX_RECORDS
        && counts.additionals <= MAX_RECORDS;
    if !plausible {
        return None;
    }
    let bare = |qname, qtype| {
        let role = if opcode == DSO {
            Role::Either
        } else if query {
            Role::Client
        } else {
            Role::Server
        };
        Some(Protocol::new(App::Dns(DnsInfo { query, opcode, rcode, qname, qtype }), role))
    };
    let question = &bytes[HEADER_LEN..];
    if counts.queries == 0 {
        return no_question(opcode, query, &counts, question, tcp).then(|| bare(None, None))?;
    }
    if opcode == DSO {
        return None;
    }
    let cut = match labels(question)? {
        Labels::Cut => true,
        // The type and class (4 bytes) follow the name.
        Labels::Whole(name_len) => question.len() < name_len + 4,
    };
    if cut {
        return bare(None, None);
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
    bare(Some(qname.into()), Some(u16::from(question.query_type())))
}

/// Whether a message without a question is one the protocol sends: a NOTIFY
/// or UPDATE response, or a DSO message over TCP. `after` is what follows the header.
fn no_question(
    opcode: u8,
    query: bool,
    counts: &hickory_proto::op::HeaderCounts,
    after: &[u8],
    tcp: bool,
) -> bool {
    match opcode {
        NOTIFY | UPDATE if !query => {
            if counts.answers != 0 || counts.authorities != 0 || counts.additionals > MAX_BARE_ADDITIONALS {
                return false;
            }
            if counts.additionals == 0 {
                return after.is_empty();
            }
            labels(after).is_some() && !after.is_empty()
        }
        DSO => {
            let no_records = counts.answers == 0 && counts.authorities == 0 && counts.additionals == 0;
            let tlv = be16(after, 0).zip(be16(after, 2));
            tcp && no_records
                && tlv.is_some_and(|(kind, len)| {
                    DSO_TYPES.contains(&kind) && usize::from(len) + 4 <= after.len()
                })
        }
        _ => false,
    }
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
        dns_op(query, 0, qname, qtype)
    }

    fn dns_op(query: bool, opcode: u8, qname: Option<&str>, qtype: Option<u16>) -> Option<Protocol> {
        let info = DnsInfo { query, opcode, rcode: 0, qname: qname.map(Into::into), qtype };
        Some(Protocol::new(App::Dns(info), if query { Role::Client } else { Role::Server }))
    }

    /// A dynamic update as Windows clients send it to their DNS server: zone
    /// `example.local` SOA IN; prerequisite "no CNAME at host1" (class NONE);
    /// updates "delete host1's A records" (class ANY) and "add host1 A
    /// 10.0.0.23, TTL 1200". Names after the zone are compressed against it.
    const WINDOWS_UPDATE: &[u8] = b"\x8a\x1c\x28\x00\x00\x01\x00\x01\x00\x02\x00\x00\
        \x07example\x05local\x00\x00\x06\x00\x01\
        \x05host1\xc0\x0c\x00\x05\x00\xfe\x00\x00\x00\x00\x00\x00\
        \xc0\x1f\x00\x01\x00\xff\x00\x00\x00\x00\x00\x00\
        \xc0\x1f\x00\x01\x00\x01\x00\x00\x04\xb0\x00\x04\x0a\x00\x00\x17";

    /// Regression: an UPDATE (opcode 5) to port 53 was "unknown", and raised
    /// "port 53 carrying something other than DNS".
    #[test]
    fn windows_dynamic_update_is_dns_not_unknown() {
        assert_eq!(identify_udp(WINDOWS_UPDATE), dns_op(true, 5, Some("example.local"), Some(6)));
        let mut framed = u16::try_from(WINDOWS_UPDATE.len()).expect("short").to_be_bytes().to_vec();
        framed.extend_from_slice(WINDOWS_UPDATE);
        assert_eq!(identify_tcp(&framed), dns_op(true, 5, Some("example.local"), Some(6)));
        // The server's answer echoes the zone section with QR set.
        let mut response = WINDOWS_UPDATE[..31].to_vec();
        response[2] = 0xa8;
        response[7] = 0; // no prerequisites
        response[9] = 0; // no updates
        assert_eq!(identify_udp(&response), dns_op(false, 5, Some("example.local"), Some(6)));
    }

    #[test]
    fn every_opcode_with_a_question_is_dns() {
        for (opcode, flags) in [(0u8, 0x00u8), (1, 0x08), (2, 0x10), (4, 0x20), (5, 0x28)] {
            let got = identify_udp(&msg([flags, 0x00], [1, 0, 0, 0], WWW_EXAMPLE_A));
            assert_eq!(got, dns_op(true, opcode, Some("www.example.com"), Some(1)), "opcode {opcode}");
        }
        for flags in [0x18, 0x38, 0x40, 0x78] {
            assert_eq!(identify_udp(&msg([flags, 0x00], [1, 0, 0, 0], WWW_EXAMPLE_A)), None, "{flags:#x}");
        }
    }

    #[test]
    fn update_and_notify_responses_without_a_question() {
        // A bare UPDATE response: the header alone.
        assert_eq!(identify_udp(&msg([0xa8, 0x00], [0, 0, 0, 0], b"")), dns_op(false, 5, None, None));
        // A NOTIFY response with an OPT record (root owner name).
        let opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
        assert_eq!(identify_udp(&msg([0xa4, 0x00], [0, 0, 0, 1], opt)), dns_op(false, 4, None, None));
        // Trailing bytes after a bare header, answers, or a query without a question: not DNS.
        assert_eq!(identify_udp(&msg([0xa8, 0x00], [0, 0, 0, 0], b"\x01\x02")), None);
        assert_eq!(identify_udp(&msg([0xa8, 0x00], [0, 1, 0, 0], opt)), None);
        assert_eq!(identify_udp(&msg([0x28, 0x00], [0, 0, 0, 0], b"")), None);
        assert_eq!(
            identify_udp(&msg([0x81, 0x80], [0, 0, 0, 0], b"")),
            None,
            "QUERY response without a question"
        );
    }

    #[test]
    fn dso_keepalive_over_tcp() {
        // DSO request: opcode 6, all counts zero, KEEPALIVE TLV (type 1, length 8).
        let m = msg([0x30, 0x00], [0, 0, 0, 0], b"\x00\x01\x00\x08\x00\x00\x75\x30\x00\x00\x27\x10");
        let mut framed = u16::try_from(m.len()).expect("short").to_be_bytes().to_vec();
        framed.extend_from_slice(&m);
        let got = identify_tcp(&framed).expect("DSO");
        assert_eq!(got.role, Role::Either);
        assert!(matches!(got.app, App::Dns(DnsInfo { opcode: 6, qname: None, .. })));
        assert_eq!(identify_udp(&m), None, "DSO is TCP only");
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
            ([0x18, 0x00], [1, 0, 0, 0], "opcode 3 (unassigned)"),
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
