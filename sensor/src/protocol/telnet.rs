//! Telnet: option negotiation (RFC 854, 855) at the start of a connection.
//!
//! A payload is Telnet when it starts with one or more complete IAC commands
//! (`IAC WILL|WONT|DO|DONT option`, or a subnegotiation `IAC SB option ...
//! IAC SE` of at most [`MAX_SUBNEGOTIATION`] bytes), every option a registered
//! one (0–49, 138–140, 255), and what follows them, if anything, is text (a
//! login prompt). Matched by hand: these are three-byte commands.
//!
//! Role: both ends negotiate (either).

use super::Protocol;
use super::model::{App, Role};

/// Longest subnegotiation accepted.
pub const MAX_SUBNEGOTIATION: usize = 64;
/// Commands read at most.
const MAX_COMMANDS: usize = 64;

const IAC: u8 = 0xff;
const SB: u8 = 0xfa;
const SE: u8 = 0xf0;

fn option_known(option: u8) -> bool {
    matches!(option, 0..=49 | 138..=140 | 255)
}

/// [`App::Telnet`] when `payload` starts with Telnet negotiation.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let mut at = 0;
    let mut commands = 0;
    while payload.get(at) == Some(&IAC) && commands < MAX_COMMANDS {
        let (&verb, &option) = (payload.get(at + 1)?, payload.get(at + 2)?);
        if !option_known(option) {
            return None;
        }
        match verb {
            0xfb..=0xfe => at += 3,
            SB => {
                let body = payload.get(at + 3..)?;
                let body = body.get(..MAX_SUBNEGOTIATION).unwrap_or(body);
                let end = body.windows(2).position(|w| w == [IAC, SE])?;
                at += 3 + end + 2;
            }
            _ => return None,
        }
        commands += 1;
    }
    if commands == 0 {
        return None;
    }
    let rest = &payload[at..];
    let text =
        rest.iter().all(|&b| b == b'\r' || b == b'\n' || b == 0 || b == b'\t' || (0x20..0x7f).contains(&b));
    text.then_some(Protocol::new(App::Telnet, Role::Either))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TELNET: Option<Protocol> = Some(Protocol::new(App::Telnet, Role::Either));

    #[test]
    fn negotiation_is_telnet() {
        // A Linux telnetd's opening: DO TERMINAL-TYPE, DO TSPEED, DO XDISPLOC, DO NEW-ENVIRON.
        assert_eq!(identify(b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"), TELNET);
        // Subnegotiation, then a prompt.
        assert_eq!(identify(b"\xff\xfa\x18\x01\xff\xf0\xff\xfb\x01login: "), TELNET);
    }

    #[test]
    fn broken_negotiation_is_not() {
        assert_eq!(identify(b"\xff\xfd"), None, "cut command");
        assert_eq!(identify(b"\xff\xfd\x99"), None, "unregistered option");
        assert_eq!(identify(b"\xff\xf1\x01"), None, "not a negotiation verb");
        assert_eq!(identify(b"\xff\xfa\x18\x01\x02"), None, "subnegotiation never ends");
        assert_eq!(identify(b"\xff\xfd\x18\x00\x9c\xee\x10"), None, "binary after it");
        assert_eq!(identify(b"login: "), None);
    }
}
