//! Redis: a client's first command (RESP array of bulk strings, or an
//! inline command) and a server's first reply.
//!
//! Matched by hand (RESP is a length and CR LF, repeated):
//!
//! - array: `*<n>\r\n` with 1 to [`MAX_ELEMENTS`] elements, then the first
//!   element `$<len>\r\n<command>\r\n` whole, its length matching and the
//!   command 1 to [`MAX_COMMAND`] ASCII letters (a pipelined or cut rest does
//!   not matter);
//! - inline: one of [`INLINE`], each a Redis-only command, then CR LF or a space;
//! - replies: `+PONG\r\n`, an error whose code only Redis sends (`-NOAUTH`,
//!   `-WRONGPASS`, `-DENIED`, `-NOPROTO`), or the RESP3 `HELLO` reply map
//!   starting `%<n>\r\n$6\r\nserver\r\n`.
//!
//! A bare `+OK\r\n` is not taken: other line protocols answer it too.
//!
//! Role: a command is the client's, a reply the server's.

use super::Protocol;
use super::model::{App, Role};
use super::text::starts_with_ignore_case;

/// Elements a first command has at most.
pub const MAX_ELEMENTS: usize = 1024;
/// Longest command name accepted.
pub const MAX_COMMAND: usize = 32;
/// Inline commands that only Redis clients send first.
pub const INLINE: [&[u8]; 10] = [
    b"PING",
    b"INFO",
    b"CONFIG GET",
    b"HELLO",
    b"FLUSHALL",
    b"DBSIZE",
    b"SLAVEOF",
    b"REPLICAOF",
    b"KEYS ",
    b"CLIENT ",
];
/// Replies only a Redis server sends.
const REPLIES: [&[u8]; 6] =
    [b"+PONG\r\n", b"-NOAUTH ", b"-WRONGPASS ", b"-DENIED ", b"-NOPROTO ", b"-LOADING "];

/// [`App::Redis`] for a first command or reply.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    match payload.first()? {
        b'*' => array(payload).then_some(Protocol::new(App::Redis, Role::Client)),
        b'+' | b'-' => {
            REPLIES.iter().any(|r| payload.starts_with(r)).then_some(Protocol::new(App::Redis, Role::Server))
        }
        b'%' => hello_map(payload).then_some(Protocol::new(App::Redis, Role::Server)),
        _ => inline(payload).then_some(Protocol::new(App::Redis, Role::Client)),
    }
}

/// A decimal number of 1 to 10 digits after `prefix`, ended by CR LF; its value and the rest.
fn counted(bytes: &[u8], prefix: u8) -> Option<(usize, &[u8])> {
    let rest = bytes.strip_prefix(&[prefix])?;
    let digits = rest.iter().take(11).take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 10 {
        return None;
    }
    let value = rest[..digits].iter().fold(0usize, |acc, &d| acc * 10 + usize::from(d - b'0'));
    Some((value, rest[digits..].strip_prefix(b"\r\n")?))
}

fn array(payload: &[u8]) -> bool {
    let Some((count, rest)) = counted(payload, b'*') else { return false };
    let Some((len, rest)) = counted(rest, b'$') else { return false };
    let plausible = (1..=MAX_ELEMENTS).contains(&count) && (1..=MAX_COMMAND).contains(&len);
    plausible
        && rest.get(..len).is_some_and(|name| name.iter().all(u8::is_ascii_alphabetic))
        && rest.get(len..len + 2) == Some(b"\r\n")
}

fn inline(payload: &[u8]) -> bool {
    INLINE.iter().any(|c| {
        starts_with_ignore_case(payload, c)
            && (c.ends_with(b" ")
                || matches!(payload.get(c.len()..c.len() + 2), Some(b"\r\n") | Some([b' ', _])))
    })
}

fn hello_map(payload: &[u8]) -> bool {
    counted(payload, b'%').is_some_and(|(_, rest)| rest.starts_with(b"$6\r\nserver\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(role: Role) -> Option<Protocol> {
        Some(Protocol::new(App::Redis, role))
    }

    #[test]
    fn resp_arrays_and_inline_commands() {
        assert_eq!(identify(b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"), redis(Role::Client));
        assert_eq!(identify(b"*3\r\n$3\r\nSET\r\n$1\r\nk"), redis(Role::Client), "cut after the command");
        assert_eq!(identify(b"PING\r\n"), redis(Role::Client));
        assert_eq!(identify(b"config get *\r\n"), redis(Role::Client));
        assert_eq!(identify(b"*2\r\n$5\r\nAUTH\r\n"), None, "length does not match");
        assert_eq!(identify(b"*0\r\n"), None);
        assert_eq!(identify(b"PINGS\r\n"), None);
        assert_eq!(identify(b"* OK IMAP ready\r\n"), None);
    }

    #[test]
    fn replies_only_redis_sends() {
        assert_eq!(identify(b"+PONG\r\n"), redis(Role::Server));
        assert_eq!(identify(b"-NOAUTH Authentication required.\r\n"), redis(Role::Server));
        assert_eq!(identify(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), redis(Role::Server));
        assert_eq!(identify(b"+OK\r\n"), None);
        assert_eq!(identify(b"-ERR unknown\r\n"), None);
    }
}
