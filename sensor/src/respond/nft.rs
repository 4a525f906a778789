//! The nftables action: an `inet` table with four sets (quarantined inside
//! hosts and blocked peers, IPv4 and IPv6, all with `flags timeout`) and a
//! forward chain that drops what they name, both directions.
//!
//! Every element is added with the action's TTL as its kernel timeout, so the
//! undo happens even if the sensor dies; the sensor also deletes it at the TTL
//! (an element already gone is no error) and writes the undo to the audit log.
//! `nft` runs as `command` (argv prefix) with the script on stdin: `["nft"]` on
//! this machine, `["ssh", ..., "gw", "sudo", "nft"]` on a gateway, `["ip",
//! "netns", "exec", NS, "nft"]` in a namespace (the tests).

use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::config::{NftAction, NftSettings};

/// How long one `nft` run may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

fn set_name(action: NftAction, ip: IpAddr) -> &'static str {
    match (action, ip) {
        (NftAction::QuarantineHost, IpAddr::V4(_)) => "quarantine4",
        (NftAction::QuarantineHost, IpAddr::V6(_)) => "quarantine6",
        (NftAction::BlockPeer, IpAddr::V4(_)) => "block4",
        (NftAction::BlockPeer, IpAddr::V6(_)) => "block6",
    }
}

/// The script that creates the table, its sets and its chain (idempotent: the chain's rules are
/// flushed and written again; the sets keep their elements).
#[must_use]
pub fn setup_script(table: &str) -> String {
    let mut s = format!("add table inet {table}\n");
    for (set, kind) in [
        ("quarantine4", "ipv4_addr"),
        ("quarantine6", "ipv6_addr"),
        ("block4", "ipv4_addr"),
        ("block6", "ipv6_addr"),
    ] {
        s.push_str(&format!("add set inet {table} {set} {{ type {kind}; flags timeout; }}\n"));
    }
    s.push_str(&format!(
        "add chain inet {table} forward {{ type filter hook forward priority -10; policy accept; }}\n\
         flush chain inet {table} forward\n"
    ));
    for (family, set) in [("ip", "quarantine4"), ("ip6", "quarantine6"), ("ip", "block4"), ("ip6", "block6")]
    {
        for side in ["saddr", "daddr"] {
            s.push_str(&format!("add rule inet {table} forward {family} {side} @{set} counter drop\n"));
        }
    }
    s
}

/// The script that adds `ip` for `ttl`.
#[must_use]
pub fn add_script(n: &NftSettings, ip: IpAddr, ttl: Duration) -> String {
    format!(
        "add element inet {} {} {{ {ip} timeout {}s }}\n",
        n.table,
        set_name(n.action, ip),
        ttl.as_secs().max(1)
    )
}

/// The script that removes `ip`.
#[must_use]
pub fn delete_script(n: &NftSettings, ip: IpAddr) -> String {
    format!("delete element inet {} {} {{ {ip} }}\n", n.table, set_name(n.action, ip))
}

/// Runs `script` through `command -f -`; the error says what `nft` said.
///
/// # Errors
/// The command cannot start, times out, or exits non-zero.
pub fn run(command: &[String], script: &str) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("no command")?;
    let mut child = Command::new(program)
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| format!("writing to {program}: {e}"))?;
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("{program} exited with {status}: {}", err.trim()));
            }
            Ok(None) if start.elapsed() >= COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {COMMAND_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    }
}

/// Whether `nft`'s error says the element was not there (it expired by its kernel timeout).
#[must_use]
pub fn is_already_gone(err: &str) -> bool {
    err.contains("No such file or directory") || err.contains("does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(action: NftAction) -> NftSettings {
        NftSettings {
            enabled: true,
            action,
            command: vec!["nft".into()],
            table: "nbad_response".into(),
            setup: true,
        }
    }

    #[test]
    fn elements_go_to_the_set_of_their_action_and_family_with_the_ttl() {
        let q = settings(NftAction::QuarantineHost);
        let v4: IpAddr = "10.1.0.5".parse().expect("address");
        let v6: IpAddr = "fd00::5".parse().expect("address");
        assert_eq!(
            add_script(&q, v4, Duration::from_secs(600)),
            "add element inet nbad_response quarantine4 { 10.1.0.5 timeout 600s }\n"
        );
        assert_eq!(delete_script(&q, v6), "delete element inet nbad_response quarantine6 { fd00::5 }\n");
        let b = settings(NftAction::BlockPeer);
        assert!(add_script(&b, v4, Duration::from_millis(10)).contains("block4 { 10.1.0.5 timeout 1s }"));
    }

    #[test]
    fn the_setup_drops_both_directions_of_every_set() {
        let s = setup_script("t");
        for set in ["quarantine4", "quarantine6", "block4", "block6"] {
            assert!(s.contains(&format!("add set inet t {set} {{")), "{s}");
            assert!(s.contains(&format!("saddr @{set} counter drop")), "{s}");
            assert!(s.contains(&format!("daddr @{set} counter drop")), "{s}");
        }
        assert!(s.contains("flags timeout"));
    }
}
