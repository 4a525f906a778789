//! Byte helpers shared by the identifiers: bounded, printable strings from
//! wire bytes, text-line checks, and big/little-endian reads that answer
//! `None` instead of panicking when the bytes are short.
//!
//! Every string a [`super::Protocol`] holds is made here, so the promise
//! "at most [`MAX_TEXT`] bytes, no control characters" is kept in one place.

use super::MAX_TEXT;
use super::model::Text;

/// The bytes up to the first CR or LF (or the end), at most `max` of them.
pub(super) fn first_line(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(bytes.len());
    &bytes[..end.min(max)]
}

/// `bytes` as a string when they are 1 to `max` (at most [`MAX_TEXT`])
/// printable ASCII characters without spaces (a host name, a token).
pub(super) fn ascii_token(bytes: &[u8], max: usize) -> Option<Text> {
    let max = max.min(MAX_TEXT);
    let printable = !bytes.is_empty() && bytes.len() <= max && bytes.iter().all(u8::is_ascii_graphic);
    printable.then(|| bytes.iter().map(|&b| char::from(b)).collect())
}

/// The first [`MAX_TEXT`] bytes as text, each byte that is neither printable
/// ASCII nor a space shown as `?`.
pub(super) fn printable_text(bytes: &[u8]) -> Text {
    let bytes = bytes.get(..MAX_TEXT).unwrap_or(bytes);
    bytes.iter().map(|&b| if b == b' ' || b.is_ascii_graphic() { char::from(b) } else { '?' }).collect()
}

/// Whether `payload` starts with a line of text: no control characters but
/// tab before the first line end, which comes within `max_line` bytes unless
/// the payload ends first.
pub(super) fn text_line(payload: &[u8], max_line: usize) -> bool {
    let line = first_line(payload, max_line + 1);
    line.len() <= max_line && line.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether the first line of `payload` is ended (by CR LF or LF) within `max_line` bytes.
pub(super) fn line_ended(payload: &[u8], max_line: usize) -> bool {
    let line = first_line(payload, max_line + 1);
    line.len() <= max_line && matches!(payload.get(line.len()), Some(b'\r' | b'\n'))
}

/// Whether `payload` is one line: a line end within `max_line` bytes and
/// nothing after it (or no line end yet because the payload is cut there).
pub(super) fn single_line(payload: &[u8], max_line: usize) -> bool {
    let line = first_line(payload, max_line + 1);
    if line.len() > max_line {
        return false;
    }
    let rest = &payload[line.len()..];
    matches!(rest, [] | [b'\n'] | [b'\r'] | [b'\r', b'\n'])
}

/// Whether `bytes` starts with `prefix`, ignoring ASCII case.
pub(super) fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether `haystack` contains `needle`, ignoring ASCII case.
pub(super) fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle))
}

/// A big-endian `u16` at `at`.
pub(super) fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*bytes.get(at..)?.first_chunk()?))
}

/// A big-endian `u32` at `at`.
pub(super) fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*bytes.get(at..)?.first_chunk()?))
}

/// A little-endian `u16` at `at`.
pub(super) fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(*bytes.get(at..)?.first_chunk()?))
}

/// A little-endian `u32` at `at`.
pub(super) fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(*bytes.get(at..)?.first_chunk()?))
}

/// The bytes from `at` up to (not including) the first NUL within `max`
/// bytes, and the offset after that NUL; `None` when no NUL comes in time.
pub(super) fn c_string(bytes: &[u8], at: usize, max: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(at..)?;
    let rest = rest.get(..max.saturating_add(1)).unwrap_or(rest);
    let end = rest.iter().position(|&b| b == 0)?;
    Some((&rest[..end], at + end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_bounded_and_neutralised() {
        assert_eq!(&*printable_text(b"a\x1bb c\x00"), "a?b c?");
        assert_eq!(printable_text(&[b'x'; 400]).len(), MAX_TEXT);
    }

    #[test]
    fn tokens_refuse_spaces_controls_and_length() {
        assert_eq!(ascii_token(b"example.org", 20).as_deref(), Some("example.org"));
        assert_eq!(ascii_token(b"a b", 20), None);
        assert_eq!(ascii_token(b"", 20), None);
        assert_eq!(ascii_token(&[b'a'; 300], 1000), None, "never past MAX_TEXT");
    }

    #[test]
    fn short_reads_are_none() {
        assert_eq!(be16(&[1], 0), None);
        assert_eq!(be32(&[0, 0, 0, 1], 0), Some(1));
        assert_eq!(le32(&[1, 0, 0, 0], 1), None);
        assert_eq!(be16(&[1, 2], usize::MAX), None);
    }

    #[test]
    fn c_strings_need_their_nul_in_time() {
        assert_eq!(c_string(b"ab\0cd", 0, 8), Some((&b"ab"[..], 3)));
        assert_eq!(c_string(b"abcdef\0", 0, 3), None);
        assert_eq!(c_string(b"ab", 5, 3), None);
    }

    #[test]
    fn lines() {
        assert!(text_line(b"220 ok\r\n\x00", 10));
        assert!(!text_line(b"220\x01ok\r\n", 10));
        assert!(line_ended(b"NICK a\r\n", 10));
        assert!(!line_ended(b"NICK a", 10));
    }
}
