//! IRC: a client's registration (`NICK`, `USER`, `PASS`, `CAP`) and a
//! server's first line (`:server NNN ...` or `:server NOTICE ...`).
//!
//! Matched by hand, each as a whole first line (RFC 2812):
//!
//! - `NICK name`: a nickname of 1 to [`MAX_NICK`] letters, digits and
//!   `[]\`_^{|}-`, not starting with a digit or `-`, then the line end;
//! - `USER user mode unused :real name`: four parameters, the last after `:`;
//! - `PASS secret` or `CAP LS`/`CAP REQ`/`CAP END`, then a `NICK`, `USER` or
//!   `CAP` line: a lone `PASS` is also FTP's and POP3's;
//! - a server line: `:`, a server name (host-like, 1 to 63 characters),
//!   a space, a three-digit numeric or `NOTICE`, a space.
//!
//! Role: registration lines are the client's, server lines the server's.

use super::Protocol;
use super::model::{App, Role};
use super::text::{first_line, line_ended, starts_with_ignore_case};

/// Longest nickname accepted (servers allow 9 to 30; some more).
pub const MAX_NICK: usize = 32;
/// Longest line read.
const MAX_LINE: usize = 512;

/// [`App::Irc`] for a client registration or a server line.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    if payload.first() == Some(&b':') {
        return server_line(payload).then_some(Protocol::new(App::Irc { nick: false }, Role::Server));
    }
    if !line_ended(payload, MAX_LINE) {
        return None;
    }
    let first = first_line(payload, MAX_LINE);
    let rest = next_line(payload);
    let registered = if nick_line(first) || is_irc_user(first) {
        true
    } else if starts_with_ignore_case(first, b"PASS ") || cap_line(first) {
        rest.map(|next| first_line(next, MAX_LINE))
            .is_some_and(|next| nick_line(next) || is_irc_user(next) || cap_line(next))
    } else {
        false
    };
    if !registered {
        return None;
    }
    let nick = nick_line(first)
        || rest.is_some_and(|next| nick_line(first_line(next, MAX_LINE)) || contains_nick(next));
    Some(Protocol::new(App::Irc { nick }, Role::Client))
}

/// The bytes after the first line end, if any.
fn next_line(payload: &[u8]) -> Option<&[u8]> {
    let end = payload.iter().take(MAX_LINE + 2).position(|&b| b == b'\n')?;
    let next = &payload[end + 1..];
    (!next.is_empty()).then_some(next)
}

fn contains_nick(rest: &[u8]) -> bool {
    rest.split(|&b| b == b'\n').take(4).any(|line| nick_line(first_line(line, MAX_LINE)))
}

fn nick_line(line: &[u8]) -> bool {
    let Some(nick) = line.strip_prefix(b"NICK ").or_else(|| line.strip_prefix(b"nick ")) else {
        return false;
    };
    let nick = nick.strip_prefix(b":").unwrap_or(nick);
    let special = |b: &u8| b"[]\\`_^{|}".contains(b);
    (1..=MAX_NICK).contains(&nick.len())
        && nick.first().is_some_and(|b| b.is_ascii_alphabetic() || special(b))
        && nick.iter().all(|b| b.is_ascii_alphanumeric() || special(b) || *b == b'-')
}

/// Whether `line` is IRC's `USER user mode unused :real name` (four parameters).
pub(super) fn is_irc_user(line: &[u8]) -> bool {
    let line = first_line(line, MAX_LINE);
    let Some(params) = line.strip_prefix(b"USER ").or_else(|| line.strip_prefix(b"user ")) else {
        return false;
    };
    let mut parts = params.splitn(4, |&b| b == b' ');
    let (Some(user), Some(mode), Some(unused), Some(real)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    [user, mode, unused].iter().all(|w| !w.is_empty() && w.iter().all(u8::is_ascii_graphic))
        && real.first() == Some(&b':')
}

fn cap_line(line: &[u8]) -> bool {
    [&b"CAP LS"[..], b"CAP REQ ", b"CAP END"].iter().any(|c| line.starts_with(c))
}

fn server_line(payload: &[u8]) -> bool {
    let line = first_line(payload, MAX_LINE);
    let Some(space) = line.iter().position(|&b| b == b' ') else { return false };
    let name = &line[1..space];
    let name_ok = (1..=63).contains(&name.len())
        && name.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    let rest = &line[space + 1..];
    let numeric = rest.len() > 4 && rest[..3].iter().all(u8::is_ascii_digit) && rest[3] == b' ';
    name_ok && (numeric || rest.starts_with(b"NOTICE "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irc(nick: bool, role: Role) -> Option<Protocol> {
        Some(Protocol::new(App::Irc { nick }, role))
    }

    #[test]
    fn client_registration() {
        // exfil_bulk_upload's IRC DCC capture opens this way.
        assert_eq!(identify(b"NICK alice\r\nUSER alice 0 * :Alice A\r\n"), irc(true, Role::Client));
        assert_eq!(identify(b"USER alice 0 * :Alice A\r\n"), irc(false, Role::Client));
        assert_eq!(identify(b"CAP LS 302\r\nNICK bob\r\n"), irc(true, Role::Client));
        assert_eq!(identify(b"PASS secret\r\nNICK bob\r\nUSER b 0 * :B\r\n"), irc(true, Role::Client));
    }

    #[test]
    fn server_lines() {
        assert_eq!(
            identify(b":irc.example.net NOTICE * :*** Looking up your hostname...\r\n"),
            irc(false, Role::Server)
        );
        assert_eq!(identify(b":irc.example.net 001 alice :Welcome\r\n"), irc(false, Role::Server));
    }

    #[test]
    fn lookalikes_are_not_irc() {
        assert_eq!(identify(b"PASS secret\r\n"), None, "a lone PASS");
        assert_eq!(identify(b"USER anonymous\r\n"), None, "FTP's USER");
        assert_eq!(identify(b"NICK 9lives\r\n"), None);
        assert_eq!(identify(b"NICK alice"), None, "no line end");
        assert_eq!(identify(b":root:x:0:0:root:/root:/bin/bash\n"), None);
        assert_eq!(identify(b": this is css;\n"), None);
    }
}
