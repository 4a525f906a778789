//! Syslog: RFC 5424 and RFC 3164 (BSD) messages, over UDP and over TCP
//! (RFC 6587: with or without an octet count before each message).
//!
//! Matched by hand: `<PRI>` with PRI from 0 to 191 written without leading
//! zeros; then either RFC 5424's version `1 ` and a timestamp or `-`, or a
//! BSD timestamp (`Mmm dd hh:mm:ss `), or (BSD's anything-goes form) at
//! least [`MIN_TEXT`] bytes of text. Over TCP an octet count (1 to 5 digits
//! and a space) may come first. The first line must be text: no control
//! characters but tab within the bytes read.
//!
//! Role: the sender of a message is the client of the collector's port.

use super::Protocol;
use super::model::{App, Role};

/// Text a BSD message without a timestamp must have at least.
pub const MIN_TEXT: usize = 8;
/// Bytes of the message checked for text.
const SCAN: usize = 128;
const MONTHS: [&[u8; 4]; 12] = [
    b"Jan ", b"Feb ", b"Mar ", b"Apr ", b"May ", b"Jun ", b"Jul ", b"Aug ", b"Sep ", b"Oct ", b"Nov ",
    b"Dec ",
];

/// [`App::Syslog`] for a message (`octet_count` allows RFC 6587's count first).
pub(super) fn identify(payload: &[u8], octet_count: bool) -> Option<Protocol> {
    let message = if octet_count && payload.first().is_some_and(u8::is_ascii_digit) {
        let digits = payload.iter().take(6).take_while(|b| b.is_ascii_digit()).count();
        if digits > 5 || payload.get(digits) != Some(&b' ') {
            return None;
        }
        &payload[digits + 1..]
    } else {
        payload
    };
    let rest = message.strip_prefix(b"<")?;
    let digits = rest.iter().take(4).take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 3 || rest.get(digits) != Some(&b'>') || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let pri = rest[..digits].iter().fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    let pri = u8::try_from(pri).ok().filter(|&p| p <= 191)?;
    let body = &rest[digits + 1..];
    let scan = &body[..body.len().min(SCAN)];
    let line_end = scan.iter().position(|&b| b == b'\n' || b == b'\r' || b == 0).unwrap_or(scan.len());
    let text = scan[..line_end].iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f);
    let rfc5424 = body.starts_with(b"1 ") && body.get(2).is_some_and(|&b| b.is_ascii_digit() || b == b'-');
    let bsd = body.first_chunk::<4>().is_some_and(|m| MONTHS.contains(&m));
    let plausible = text && (rfc5424 || bsd || line_end >= MIN_TEXT);
    plausible.then_some(Protocol::new(App::Syslog { pri }, Role::Client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syslog(pri: u8) -> Option<Protocol> {
        Some(Protocol::new(App::Syslog { pri }, Role::Client))
    }

    #[test]
    fn rfc5424_bsd_and_octet_counted() {
        let m =
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - An application event";
        assert_eq!(identify(m, false), syslog(165));
        assert_eq!(identify(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", false), syslog(34));
        assert_eq!(identify(b"<0>kernel: panic imminent", false), syslog(0));
        assert_eq!(identify(b"87 <34>1 2003-10-11T22:14:15Z host app - - - msg", true), syslog(34));
        assert_eq!(identify(b"87 <34>1 2003-10-11T22:14:15Z host app - - - msg", false), None);
    }

    #[test]
    fn lookalikes_are_not_syslog() {
        assert_eq!(identify(b"<192>1 - - - - - -", false), None, "PRI over 191");
        assert_eq!(identify(b"<034>Oct 11 22:14:15 host x", false), None, "leading zero");
        assert_eq!(identify(b"<13>\x00\x01\x02\x03\x04\x05\x06\x07\x08", false), None, "binary");
        assert_eq!(identify(b"<13>ab", false), None, "too little text");
        assert_eq!(identify(b"<html><body>", false), None);
    }
}
