//! Free text (alert messages, evidence strings): addresses found in it and names that look
//! like host or domain names.
//!
//! Alert messages are prose written by each detector (`"10.0.0.5 → 203.0.113.9:443: TLS
//! ..."`, `"... asked for names under example.com"`); rather than re-render every detector's
//! message, the text is scanned: every IPv4 or IPv6 address in it is offered to a rewrite
//! function (the pseudonym map), and, when payload fields are dropped, every token of prose
//! (between white space and brackets) that holds a DNS name (two or more labels, the last of
//! two or more letters) is replaced, whole, by [`REDACTED`]. Prose that is no name is left alone; a name that is not shaped like one
//! (a User-Agent) is caught by the caller, which also replaces the exact values it dropped
//! from the evidence.

use std::borrow::Cow;
use std::net::IpAddr;

/// What replaces a dropped value.
pub const REDACTED: &str = "[redacted]";

fn addr_char(c: char) -> bool {
    c.is_ascii_hexdigit() || c == '.' || c == ':'
}

/// `text` with every address `f` changes replaced by what it returns.
pub fn rewrite_addrs<'a>(text: &'a str, f: &mut dyn FnMut(IpAddr) -> IpAddr) -> Cow<'a, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut rest = text.char_indices().peekable();
    while let Some((start, c)) = rest.next() {
        if !addr_char(c) || text[..start].chars().next_back().is_some_and(addr_char) {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = rest.peek() {
            if !addr_char(c) {
                break;
            }
            end = i + c.len_utf8();
            rest.next();
        }
        for (s, e) in candidates(text, start, end) {
            if let Ok(ip) = text[s..e].parse::<IpAddr>() {
                let new = f(ip);
                if new != ip {
                    out.push_str(&text[copied..s]);
                    out.push_str(&new.to_string());
                    copied = e;
                }
            }
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The spans of `text[start..end]` (a run of hex digits, dots and colons) that may be an
/// address: the run without trailing punctuation; failing that, each dotted-decimal part of
/// it (`10.0.0.5:443`, `abc10.0.0.5`).
fn candidates(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let run = &text[start..end];
    let trimmed = run.trim_end_matches(['.', ':']);
    if trimmed.parse::<IpAddr>().is_ok() {
        return vec![(start, start + trimmed.len())];
    }
    let mut spans = Vec::new();
    let mut from: Option<usize> = None;
    for (i, c) in run.char_indices().chain(std::iter::once((run.len(), ' '))) {
        if c.is_ascii_digit() || c == '.' {
            from.get_or_insert(i);
        } else if let Some(f) = from.take() {
            let part = run[f..i].trim_matches('.');
            let lead = run[f..i].len() - run[f..i].trim_start_matches('.').len();
            if part.matches('.').count() == 3 {
                spans.push((start + f + lead, start + f + lead + part.len()));
            }
        }
    }
    spans
}

/// Characters that end a token of prose: white space and punctuation that no name holds.
fn splits_tokens(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"' | '\'' | '<' | '>' | '[' | ']' | '{' | '}')
}

/// Whether `token` holds a DNS name: after its trailing dots and port, a dot with something
/// before it and a last label of two or more letters (so no address, number or abbreviation
/// such as "e.g."). Whatever else the token holds (an encoded label of odd characters, a
/// path) goes with it.
fn is_name(token: &str) -> bool {
    let t = token.trim_end_matches(['.', ':']);
    let t =
        t.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(t, |(h, _)| h);
    let t = t.split('/').next().unwrap_or(t);
    match t.rsplit_once('.') {
        Some((before, last)) => {
            !before.trim_start_matches('.').is_empty()
                && last.len() >= 2
                && last.chars().all(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

/// `text` with every token that holds a name replaced by [`REDACTED`].
pub fn redact_names(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        if !splits_tokens(c) {
            start.get_or_insert(i);
            continue;
        }
        if let Some(s) = start.take() {
            let token = text[s..i].trim_end_matches(['.', ':']);
            if is_name(token) {
                out.push_str(&text[copied..s]);
                out.push_str(REDACTED);
                copied = s + token.len();
            }
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Whether `s` holds nothing but addresses (with a port or prefix), numbers, port ranges and
/// RFC 3339 times: no name can hide in it.
pub fn is_numeric_or_address(s: &str) -> bool {
    s.split([' ', ',', '[', ']']).filter(|t| !t.is_empty()).all(|t| {
        t.parse::<IpAddr>().is_ok()
            || t.parse::<std::net::SocketAddr>().is_ok()
            || t.parse::<ipnet::IpNet>().is_ok()
            || t.parse::<f64>().is_ok()
            || t.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b':' || b == b'/')
            || t.parse::<jiff::Timestamp>().is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) if a.octets()[0] == 10 => IpAddr::from([10, 99, 99, 99]),
            IpAddr::V6(a) if a.segments()[0] == 0xfd00 => "fd00::99".parse().expect("literal"),
            other => other,
        }
    }

    #[test]
    fn addresses_in_prose_are_rewritten_wherever_they_sit() {
        let cases = [
            ("10.0.0.5 → 203.0.113.9:443: TLS", "10.99.99.99 → 203.0.113.9:443: TLS"),
            ("scanned 10.1.2.3, 10.1.2.4.", "scanned 10.99.99.99, 10.99.99.99."),
            ("peer 10.0.0.7:22 and [fd00::1]:80", "peer 10.99.99.99:22 and [fd00::99]:80"),
            ("net 10.0.0.0/24", "net 10.99.99.99/24"),
            ("no address here, 1.5 s", "no address here, 1.5 s"),
            ("outside 8.8.8.8 only", "outside 8.8.8.8 only"),
        ];
        for (input, want) in cases {
            assert_eq!(rewrite_addrs(input, &mut bump), want, "{input}");
        }
    }

    #[test]
    fn addresses_numbers_and_times_carry_no_name_and_anything_else_may() {
        for s in [
            "10.0.0.1",
            "10.0.0.1:22",
            "[fd00::1]:80",
            "10.0.0.0/24",
            "1.5",
            "22-25",
            "2023-11-14T22:58:20.000000Z",
            "1, 2",
        ] {
            assert!(is_numeric_or_address(s), "{s}");
        }
        for s in ["bad.cafe", "cafe", "curl/8.4", "10.0.0.1 via evil.example"] {
            assert!(!is_numeric_or_address(s), "{s}");
        }
    }

    #[test]
    fn name_shaped_tokens_are_redacted_and_prose_is_not() {
        let cases = [
            ("asked for names under evil-c2.example.com.", "asked for names under [redacted]."),
            ("TLS to www.example.org:443 (SNI)", "TLS to [redacted] (SNI)"),
            ("every 30.0 s, e.g. 10.0.0.1, 1.5x", "every 30.0 s, e.g. 10.0.0.1, 1.5x"),
            ("a_b.c-d.io", "[redacted]"),
            ("carrying: H4sI\\+2Q\\=\\=.files-example.org (rule x)", "carrying: [redacted] (rule x)"),
            ("from 203.0.113.7:80files-example.org/load.php?e=1: x", "from [redacted]: x"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_names(input), want, "{input}");
        }
    }
}
