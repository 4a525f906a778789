//! Line-based openings: the SSH identification line, SMTP and FTP server
//! greetings, and the first command of their clients.
//!
//! These are a fixed prefix and one line of text, so they are matched by hand;
//! no crate parses "does this line start with `SSH-2.0-`" better than
//! `starts_with`.
//!
//! - SSH (RFC 4253 4.2): the payload starts `SSH-2.0-`, `SSH-1.99-` or the
//!   protocol-1 `SSH-1.5-` (still seen: Zeek's ssh.pcap in the corpus); the
//!   banner is that line without its CR LF, cut at 255 bytes. Lines a server
//!   may send before its identification (allowed, rarely done) hide it.
//! - SMTP and FTP servers both greet with a `220` reply (`220 ` or, for a
//!   multi-line greeting, `220-`). Which one is decided by words in the first
//!   [`GREETING_SCAN`] bytes, case-insensitively: `SMTP` (which `ESMTP` contains)
//!   makes it SMTP; otherwise `FTP` or `FileZilla` makes it FTP. A greeting
//!   with neither is left unidentified rather than guessed: many SMTP and FTP
//!   servers greet with just a host name, and the client's first command, in
//!   the other direction, tells them apart.
//! - Clients: `EHLO ` or `HELO ` starts SMTP; `USER `, `AUTH TLS` or `AUTH SSL`
//!   (RFC 4217, explicit FTPS) starts FTP. `USER` is also POP3's login
//!   command, so a POP3 client that sends it first is called FTP (IRC's
//!   `USER` has four parameters and is told apart in [`super::irc`]).
//!
//! A greeting or command must be a line of text: no control characters but
//! tab, and a line end within [`MAX_LINE`] bytes when there are more bytes.
//! A client's command must be the whole payload (one line), as a first
//! command is: text that goes on after it is the middle of something else.
//!
//! Role: an SSH banner is sent by both ends (either); a greeting is the
//! server's, a command the client's.

use super::model::{App, Role};
use super::text::{
    contains_ignore_case, first_line, printable_text, single_line, starts_with_ignore_case, text_line,
};
use super::{MAX_TEXT, Protocol};

/// Bytes of a greeting searched for the words that name its protocol.
pub const GREETING_SCAN: usize = 512;
/// Longest command or reply line (SMTP's limit, RFC 5321 4.5.3.1).
pub const MAX_LINE: usize = 512;

/// Starts of an SSH identification line.
const SSH_PREFIXES: [&[u8]; 3] = [b"SSH-2.0-", b"SSH-1.99-", b"SSH-1.5-"];
/// Words that make a 220 greeting SMTP.
const SMTP_WORDS: [&[u8]; 1] = [b"SMTP"];
/// Words that make a 220 greeting FTP (checked after the SMTP ones).
const FTP_WORDS: [&[u8]; 2] = [b"FTP", b"FileZilla"];
/// First commands of an SMTP client.
const SMTP_COMMANDS: [&[u8]; 2] = [b"EHLO ", b"HELO "];
/// First commands of an FTP client.
const FTP_COMMANDS: [&[u8]; 3] = [b"USER ", b"AUTH TLS", b"AUTH SSL"];

/// [`App::Ssh`] for an SSH identification line.
pub(super) fn ssh(payload: &[u8]) -> Option<Protocol> {
    if !SSH_PREFIXES.iter().any(|prefix| payload.starts_with(prefix)) {
        return None;
    }
    let banner = printable_text(first_line(payload, MAX_TEXT));
    Some(Protocol::new(App::Ssh { banner }, Role::Either))
}

/// [`App::Smtp`] or [`App::Ftp`] for a server greeting or a client's first
/// command that names one of them.
pub(super) fn smtp_or_ftp(payload: &[u8]) -> Option<Protocol> {
    if !text_line(payload, MAX_LINE) {
        return None;
    }
    greeting(payload)
        .map(|app| Protocol::new(app, Role::Server))
        .or_else(|| command(payload).map(|app| Protocol::new(app, Role::Client)))
}

fn greeting(payload: &[u8]) -> Option<App> {
    let rest = payload.strip_prefix(b"220")?;
    if !matches!(rest.first(), Some(b' ' | b'-')) {
        return None;
    }
    let scan = &payload[..payload.len().min(GREETING_SCAN)];
    if SMTP_WORDS.iter().any(|word| contains_ignore_case(scan, word)) {
        Some(App::Smtp)
    } else if FTP_WORDS.iter().any(|word| contains_ignore_case(scan, word)) {
        Some(App::Ftp)
    } else {
        None
    }
}

fn command(payload: &[u8]) -> Option<App> {
    // A client's first command is alone in its payload.
    if !single_line(payload, MAX_LINE) {
        return None;
    }
    let starts = |commands: &[&[u8]]| commands.iter().any(|c| starts_with_ignore_case(payload, c));
    if starts(&SMTP_COMMANDS) {
        Some(App::Smtp)
    } else if starts(&FTP_COMMANDS) && !super::irc::is_irc_user(payload) {
        Some(App::Ftp)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_banner_is_the_line_without_its_end() {
        let banner = |b: &str| Some(Protocol::new(App::Ssh { banner: b.into() }, Role::Either));
        assert_eq!(ssh(b"SSH-1.99-Cisco-1.25\r\n\x00\x00\x01"), banner("SSH-1.99-Cisco-1.25"));
        assert_eq!(ssh(b"SSH-2.0-x\x1b[2Jy\n"), banner("SSH-2.0-x?[2Jy"), "escape neutralised");
        assert_eq!(
            ssh(b"SSH-1.5-OpenSSH_6.2\n"),
            banner("SSH-1.5-OpenSSH_6.2"),
            "protocol 1 (zeek's ssh.pcap)"
        );
        assert_eq!(ssh(b"SSH-3.0-x\r\n"), None);
        assert_eq!(ssh(b"ssh-2.0-lower\r\n"), None, "the prefix is case-sensitive");
    }

    #[test]
    fn ssh_banner_is_cut_at_255_bytes() {
        let mut line = b"SSH-2.0-".to_vec();
        line.resize(400, b'a');
        let Some(Protocol { app: App::Ssh { banner }, .. }) = ssh(&line) else { panic!("not SSH") };
        assert_eq!(banner.len(), MAX_TEXT);
    }

    const SMTP_SERVER: Option<Protocol> = Some(Protocol::new(App::Smtp, Role::Server));
    const FTP_SERVER: Option<Protocol> = Some(Protocol::new(App::Ftp, Role::Server));
    const SMTP_CLIENT: Option<Protocol> = Some(Protocol::new(App::Smtp, Role::Client));
    const FTP_CLIENT: Option<Protocol> = Some(Protocol::new(App::Ftp, Role::Client));

    #[test]
    fn greetings_are_told_apart_by_their_words() {
        assert_eq!(smtp_or_ftp(b"220 mx.example.org ESMTP ready\r\n"), SMTP_SERVER);
        assert_eq!(smtp_or_ftp(b"220 (vsFTPd 3.0.5)\r\n"), FTP_SERVER);
        assert_eq!(
            smtp_or_ftp(b"220-FileZilla Server 1.8.0\r\n220 Please visit https://filezilla-project.org/\r\n"),
            FTP_SERVER
        );
        assert_eq!(smtp_or_ftp(b"220 host.example.org\r\n"), None, "neither word: not guessed");
        assert_eq!(smtp_or_ftp(b"2200 ESMTP\r\n"), None);
        assert_eq!(smtp_or_ftp(b"250 ESMTP\r\n"), None, "not a greeting");
    }

    #[test]
    fn first_client_commands() {
        assert_eq!(smtp_or_ftp(b"EHLO client.example.org\r\n"), SMTP_CLIENT);
        assert_eq!(smtp_or_ftp(b"helo x\r\n"), SMTP_CLIENT);
        assert_eq!(smtp_or_ftp(b"USER anonymous\r\n"), FTP_CLIENT);
        assert_eq!(smtp_or_ftp(b"AUTH TLS\r\n"), FTP_CLIENT);
        assert_eq!(smtp_or_ftp(b"EHLOX\r\n"), None);
        assert_eq!(smtp_or_ftp(b"USER guest 0 * :Real Name\r\n"), None, "IRC's USER");
    }

    #[test]
    fn binary_or_endless_lines_are_not_text() {
        assert_eq!(smtp_or_ftp(b"220 ESMTP\x00\x01\x02\r\n"), None);
        let mut long = b"220 ESMTP ".to_vec();
        long.resize(MAX_LINE + 10, b'x');
        assert_eq!(smtp_or_ftp(&long), None);
        assert_eq!(smtp_or_ftp(&long[..MAX_LINE]), SMTP_SERVER, "cut before its end");
    }
}
