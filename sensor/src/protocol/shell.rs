//! A command shell spoken over a bare connection: the first words of a reverse or bind shell.
//!
//! A shell handed to a network socket (`cmd.exe` or `/bin/sh` behind netcat, a Meterpreter
//! `shell`, an exploit's connect-back payload) has no protocol of its own: the shell's side
//! prints a banner, a prompt or a command's output, the operator's side types a command line.
//! Both are recognised here from the first payload:
//!
//! - the shell's side ([`Role::Server`], whatever its TCP role): the Windows console banner
//!   (`Microsoft Windows [Version 10.0...]`, `Microsoft Windows XP [Version ...]`), the
//!   PowerShell banner (`Windows PowerShell` then `Copyright`), a bare prompt (`C:\...>`,
//!   `PS C:\...>`, `sh-5.1$ `, `user@host:~# `), or the output of `id` (`uid=0(root) gid=`);
//! - the operator's side ([`Role::Client`]): a single line, ended by LF, whose first word is a
//!   reconnaissance or shell-spawning command (`id`, `whoami`, `uname -a`, `/bin/sh -i`,
//!   `python -c ...`; see [`COMMANDS`]).
//!
//! Telnet, rlogin and SSH are not shells in this sense: Telnet opens with option negotiation
//! and SSH with its identification line, so their first payloads never reach these checks.

use super::Protocol;
use super::model::{App, Role, ShellSide};

/// Longest payload read for a prompt or a command line.
const MAX_LINE: usize = 256;

/// Commands an operator types first into a fresh shell (first word of the line).
pub const COMMANDS: [&str; 27] = [
    "id",
    "whoami",
    "uname",
    "hostname",
    "pwd",
    "ls",
    "dir",
    "ipconfig",
    "ifconfig",
    "systeminfo",
    "netstat",
    "ps",
    "tasklist",
    "cd",
    "cat",
    "type",
    "python",
    "python3",
    "perl",
    "sh",
    "bash",
    "/bin/sh",
    "/bin/bash",
    "powershell",
    "cmd",
    "cmd.exe",
    "net",
];

/// [`App::Shell`] when `payload` is a shell's banner, prompt or output, or an operator's
/// command line.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    if let Some(side) = shell_side(payload) {
        return Some(Protocol::new(App::Shell { side }, Role::Server));
    }
    command(payload).then(|| Protocol::new(App::Shell { side: ShellSide::Command }, Role::Client))
}

fn shell_side(payload: &[u8]) -> Option<ShellSide> {
    if payload.starts_with(b"Microsoft Windows") {
        let line = first_line(payload)?;
        let rest = &line[b"Microsoft Windows".len()..];
        let at = rest.windows(9).position(|w| w == b"[Version ")?;
        return (at <= 16 && rest.get(at + 9).is_some_and(u8::is_ascii_digit)).then_some(ShellSide::Banner);
    }
    if payload.starts_with(b"Windows PowerShell\r\n") {
        let second = &payload[b"Windows PowerShell\r\n".len()..];
        return second.starts_with(b"Copyright").then_some(ShellSide::Banner);
    }
    if payload.starts_with(b"uid=") {
        let line = first_line(payload)?;
        return id_output(line).then_some(ShellSide::Output);
    }
    prompt(payload).then_some(ShellSide::Prompt)
}

/// `uid=0(root) gid=0(root) ...`.
fn id_output(line: &[u8]) -> bool {
    let rest = &line[4..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b'(') {
        return false;
    }
    let Some(close) = rest.iter().position(|&b| b == b')') else { return false };
    rest.get(close + 1..).is_some_and(|r| r.starts_with(b" gid="))
}

/// A payload that is nothing but a shell prompt: `C:\dir>`, `PS C:\dir> `, `sh-5.1$ `,
/// `bash-4.2# `, `user@host:~$ `.
fn prompt(payload: &[u8]) -> bool {
    if payload.len() > MAX_LINE || !printable(payload) {
        return false;
    }
    // A prompt may follow a blank line or two.
    let text = trim_leading_newlines(payload);
    if text.contains(&b'\n') {
        return false;
    }
    let windows = |t: &[u8]| {
        t.len() >= 4
            && t[0].is_ascii_alphabetic()
            && t[1] == b':'
            && t[2] == b'\\'
            && (t.ends_with(b">") || t.ends_with(b"> "))
    };
    if windows(text) {
        return true;
    }
    if let Some(rest) = text.strip_prefix(b"PS ") {
        return windows(rest);
    }
    let unix_end = text.ends_with(b"$ ") || text.ends_with(b"# ");
    if !unix_end {
        return false;
    }
    let head = &text[..text.len() - 2];
    // sh-5.1, bash-4.2, zsh-5.8, dash-0.5
    for shell in [&b"sh-"[..], b"bash-", b"zsh-", b"dash-"] {
        if let Some(version) = head.strip_prefix(shell) {
            return !version.is_empty() && version.iter().all(|&b| b.is_ascii_digit() || b == b'.');
        }
    }
    // user@host:path
    let Some(at) = head.iter().position(|&b| b == b'@') else { return false };
    let Some(colon) = head.iter().position(|&b| b == b':') else { return false };
    let word = |w: &[u8]| {
        !w.is_empty() && w.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    at > 0
        && colon > at + 1
        && word(&head[..at])
        && word(&head[at + 1..colon])
        && !head[colon + 1..].contains(&b' ')
}

/// One command line, ended by LF, whose first word is one of [`COMMANDS`].
fn command(payload: &[u8]) -> bool {
    if payload.len() > MAX_LINE || !payload.ends_with(b"\n") || !printable(payload) {
        return false;
    }
    let line = payload.strip_suffix(b"\n").unwrap_or(payload);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\n') || line.is_empty() {
        return false;
    }
    let word_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let word = &line[..word_end];
    COMMANDS.iter().any(|c| c.as_bytes() == word)
}

fn first_line(payload: &[u8]) -> Option<&[u8]> {
    let head = payload.get(..payload.len().min(MAX_LINE))?;
    let end = head.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(head.len());
    Some(&head[..end])
}

fn trim_leading_newlines(payload: &[u8]) -> &[u8] {
    let start = payload.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(payload.len());
    &payload[start..]
}

fn printable(payload: &[u8]) -> bool {
    payload.iter().all(|&b| b == b'\r' || b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(payload: &[u8]) -> Option<ShellSide> {
        match identify(payload)?.app {
            App::Shell { side } => Some(side),
            _ => None,
        }
    }

    #[test]
    fn windows_console_banners_are_a_shell_side() {
        assert_eq!(
            side(b"Microsoft Windows XP [Version 5.1.2600]\r\n(C) Copyright 1985-2001 Microsoft Corp.\r\n"),
            Some(ShellSide::Banner)
        );
        assert_eq!(side(b"Microsoft Windows [Version 10.0.19045.3803]\r\n"), Some(ShellSide::Banner));
        assert_eq!(
            side(b"Windows PowerShell\r\nCopyright (C) Microsoft Corporation. All rights reserved.\r\n"),
            Some(ShellSide::Banner)
        );
        assert_eq!(side(b"Microsoft Windows Update Agent\r\n"), None);
    }

    #[test]
    fn prompts_and_id_output_are_a_shell_side() {
        assert_eq!(side(b"C:\\Windows\\system32>"), Some(ShellSide::Prompt));
        assert_eq!(side(b"\r\nPS C:\\Users\\bob> "), Some(ShellSide::Prompt));
        assert_eq!(side(b"sh-5.1$ "), Some(ShellSide::Prompt));
        assert_eq!(side(b"bash-4.2# "), Some(ShellSide::Prompt));
        assert_eq!(side(b"root@web01:/var/www# "), Some(ShellSide::Prompt));
        assert_eq!(side(b"uid=33(www-data) gid=33(www-data) groups=33(www-data)\n"), Some(ShellSide::Output));
        assert_eq!(side(b"uid=abc\n"), None);
        assert_eq!(side(b"price: 5 $ "), None);
        assert_eq!(side(b"user@host: not a prompt $ "), None);
    }

    #[test]
    fn an_operators_first_command_line_is_the_client_side() {
        for line in [&b"id\n"[..], b"whoami\r\n", b"uname -a\n", b"/bin/sh -i\n", b"python -c 'import pty'\n"]
        {
            let p = identify(line).expect("present");
            assert_eq!(p.role, Role::Client, "{}", String::from_utf8_lossy(line));
            assert_eq!(p.app, App::Shell { side: ShellSide::Command });
        }
        assert!(identify(b"identify yourself\n").is_none());
        assert!(identify(b"id").is_none(), "a line ends with LF");
        assert!(identify(b"ls\nls\n").is_none(), "one line");
    }

    #[test]
    fn cut_and_hostile_input_is_refused_without_panic() {
        for n in 0..40 {
            let banner = b"Microsoft Windows [Version 10.0.1]\r\n";
            let _ = identify(&banner[..n.min(banner.len())]);
            let _ = identify(&b"uid=0(root) gid=0(root)\n"[..n.min(24)]);
        }
        assert!(identify(&[0xff; 300]).is_none());
        assert!(identify(&[b'a'; 300]).is_none());
    }
}
