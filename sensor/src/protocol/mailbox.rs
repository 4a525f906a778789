//! Mailbox access: POP3 and IMAP greetings and first client commands.
//!
//! Matched by hand, as a prefix and one line of text (see [`super::banner`]):
//!
//! - POP3 (RFC 1939): the server greets with `+OK ` and text (a Redis server
//!   answers `+OK` followed by the line end, never a space); a client starts
//!   with `CAPA`, `STLS` or `APOP name digest`. A client's `USER` is taken
//!   for FTP's ([`super::banner`]), and `AUTH` is shared with SMTP and IMAP,
//!   so neither names POP3.
//! - IMAP (RFC 9051): the server greets with an untagged `* OK `, `* PREAUTH `
//!   or `* BYE `; a client's first command is a tag (1 to [`MAX_TAG`] letters,
//!   digits or dots, at least one digit: `a001`, `1`, `A1`) and one of `CAPABILITY`, `LOGIN`, `AUTHENTICATE`,
//!   `STARTTLS`, `ID`, `NOOP`, `LOGOUT`.
//!
//! The line must be text (no control characters but tab) and end within
//! [`super::banner::MAX_LINE`] bytes, or the payload end first; a client's
//! command must be the whole payload.

use super::Protocol;
use super::banner::MAX_LINE;
use super::model::{App, Role};
use super::text::{single_line, starts_with_ignore_case, text_line};

/// Longest IMAP tag accepted.
pub const MAX_TAG: usize = 20;

/// POP3 client commands that only POP3 sends first.
const POP3_COMMANDS: [&[u8]; 3] = [b"CAPA\r\n", b"STLS\r\n", b"APOP "];
/// IMAP greetings.
const IMAP_GREETINGS: [&[u8]; 3] = [b"* OK ", b"* PREAUTH ", b"* BYE "];
/// IMAP commands a client may send first.
const IMAP_COMMANDS: [&[u8]; 7] =
    [b"CAPABILITY", b"LOGIN", b"AUTHENTICATE", b"STARTTLS", b"ID", b"NOOP", b"LOGOUT"];

/// [`App::Pop3`] or [`App::Imap`] for a greeting or a first client command.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    if !text_line(payload, MAX_LINE) {
        return None;
    }
    if payload.starts_with(b"+OK ") {
        return Some(Protocol::new(App::Pop3, Role::Server));
    }
    let one_line = single_line(payload, MAX_LINE);
    if one_line && POP3_COMMANDS.iter().any(|c| starts_with_ignore_case(payload, c)) {
        return Some(Protocol::new(App::Pop3, Role::Client));
    }
    if IMAP_GREETINGS.iter().any(|g| starts_with_ignore_case(payload, g)) {
        return Some(Protocol::new(App::Imap, Role::Server));
    }
    (one_line && imap_command(payload)).then_some(Protocol::new(App::Imap, Role::Client))
}

/// Whether `payload` starts with an IMAP tag, a space and a first command.
fn imap_command(payload: &[u8]) -> bool {
    let Some(space) = payload.iter().take(MAX_TAG + 1).position(|&b| b == b' ') else { return false };
    let tag = &payload[..space];
    let digit = tag.iter().any(u8::is_ascii_digit);
    if !digit || !tag.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'.') {
        return false;
    }
    let rest = &payload[space + 1..];
    IMAP_COMMANDS.iter().any(|c| {
        starts_with_ignore_case(rest, c) && matches!(rest.get(c.len()), None | Some(b' ' | b'\r' | b'\n'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop3(role: Role) -> Option<Protocol> {
        Some(Protocol::new(App::Pop3, role))
    }

    fn imap(role: Role) -> Option<Protocol> {
        Some(Protocol::new(App::Imap, role))
    }

    #[test]
    fn pop3_greeting_and_commands() {
        assert_eq!(identify(b"+OK Dovecot (Debian) ready.\r\n"), pop3(Role::Server));
        assert_eq!(identify(b"CAPA\r\n"), pop3(Role::Client));
        assert_eq!(identify(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), pop3(Role::Client));
        assert_eq!(identify(b"+OK\r\n"), None, "a bare +OK is Redis's answer as much as POP3's");
    }

    #[test]
    fn imap_greeting_and_tagged_commands() {
        assert_eq!(identify(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n"), imap(Role::Server));
        assert_eq!(identify(b"a001 CAPABILITY\r\n"), imap(Role::Client));
        assert_eq!(identify(b"A1 login user secret\r\n"), imap(Role::Client));
        assert_eq!(identify(b"1.2 STARTTLS\r\n"), imap(Role::Client));
        assert_eq!(identify(b"a001 CAPABILITYX\r\n"), None);
        assert_eq!(identify(b"x-y LOGIN a b\r\n"), None, "tag with a dash");
    }

    #[test]
    fn ordinary_text_is_neither() {
        assert_eq!(identify(b"<p>OK then</p>\r\n"), None);
        assert_eq!(identify(b"The ID of the order is 42\r\n"), None);
        assert_eq!(identify(b"* item one\r\n* item two\r\n"), None);
    }
}
