//! The addresses a DNS response gives: its A and AAAA answer records.
//!
//! Read by hand over the message (after the header and the question section), because only
//! the type, the length and four or sixteen bytes of each answer matter and the message may be
//! cut. Every length is checked before it is used; a name is skipped label by label (a
//! compression pointer ends it), at most [`MAX_ANSWERS`] records are read, and whatever does not
//! fit stops the walk with what was found so far.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Answer records read at most.
pub const MAX_ANSWERS: usize = 16;
/// Addresses kept at most.
pub const MAX_ADDRS: usize = 8;

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// The byte after a (possibly compressed) name starting at `at`, if the name is whole.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    // A name has at most 127 labels; a pointer ends it.
    for _ in 0..128 {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return (at + 2 <= msg.len()).then_some(at + 2),
            l if l & 0xc0 != 0 => return None,
            l => at += 1 + usize::from(l),
        }
    }
    None
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    msg.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// The A and AAAA addresses of the answer section of DNS message `msg` (no TCP length prefix),
/// at most [`MAX_ADDRS`]. Empty for a query, a message without answers, or one too cut to read.
#[must_use]
pub fn addresses(msg: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let (Some(flags), Some(qd), Some(an)) = (msg.get(2), u16_at(msg, 4), u16_at(msg, 6)) else {
        return out;
    };
    if flags & 0x80 == 0 || an == 0 {
        return out;
    }
    let mut at = HEADER_LEN;
    for _ in 0..qd.min(4) {
        let Some(next) = skip_name(msg, at) else { return out };
        at = next + 4;
    }
    for _ in 0..usize::from(an).min(MAX_ANSWERS) {
        let Some(next) = skip_name(msg, at) else { return out };
        let (Some(rtype), Some(class), Some(rdlen)) =
            (u16_at(msg, next), u16_at(msg, next + 2), u16_at(msg, next + 8))
        else {
            return out;
        };
        let data = next + 10;
        let Some(rdata) = msg.get(data..data + usize::from(rdlen)) else { return out };
        if class & 0x7fff == CLASS_IN {
            match (rtype, rdata.len()) {
                (TYPE_A, 4) => out.push(IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))),
                (TYPE_AAAA, 16) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(rdata);
                    out.push(IpAddr::V6(Ipv6Addr::from(b)));
                }
                _ => {}
            }
        }
        if out.len() >= MAX_ADDRS {
            break;
        }
        at = data + usize::from(rdlen);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response for www.example.com: a CNAME, then an A and an AAAA record (names compressed).
    fn response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00");
        m.extend_from_slice(&[0, 1, 0, 1]);
        // CNAME www -> e.example.com
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'e', 0xc0, 16]);
        // A 93.184.216.34
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
        // AAAA 2606:2800:220:1::248
        m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        m.extend_from_slice(&[0x26, 0x06, 0x28, 0, 0x02, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, 0x02, 0x48]);
        m
    }

    #[test]
    fn reads_a_and_aaaa_answers_after_a_cname() {
        let addrs = addresses(&response());
        assert_eq!(
            addrs,
            vec![
                IpAddr::from([93, 184, 216, 34]),
                "2606:2800:220:1::248".parse::<IpAddr>().expect("an address")
            ]
        );
    }

    #[test]
    fn a_cut_message_gives_what_it_holds_and_never_panics() {
        let full = response();
        for cut in 0..full.len() {
            let got = addresses(&full[..cut]);
            assert!(got.len() <= 2, "cut at {cut}");
        }
        let mut query = full.clone();
        query[2] = 0x01;
        assert!(addresses(&query).is_empty(), "a query has no answers to read");
    }
}
