//! The expected side of the flow-accounting tests: tshark's reading of a
//! capture, one [`IpPacket`] per frame that carries IP.
//!
//! tshark runs with IP reassembly off, so each frame is counted once, as it
//! was on the wire:
//!
//! ```text
//! tshark -n -r FILE -o ip.defragment:FALSE -o ipv6.defragment:FALSE \
//!   -T fields -E separator=/t -E occurrence=a -E aggregator=, \
//!   -e frame.number -e frame.protocols -e ip.src -e ip.dst -e ip.proto -e ip.len \
//!   -e ip.flags.mf -e ip.frag_offset -e ipv6.src -e ipv6.dst -e ipv6.nxt -e ipv6.plen \
//!   -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport -e sctp.srcport -e sctp.dstport
//! ```
//!
//! The flow layer is the outermost IP header (the first `ip` or `ipv6` in
//! `frame.protocols`); an ICMP error's quoted header is not a flow layer.
//! IP bytes are `ip.len`, or `ipv6.plen + 40`.
//!
//! Captures with GRE or VXLAN tunnels, IP fragments, a zero IP length (TSO
//! captures) or IPv6 extension headers before an unknown protocol are
//! refused with an error naming the frame: the sensor opens tunnels and
//! gives later fragments their first fragment's ports, which this reading
//! does not model, so such captures do not belong in the accounting test.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::flows::{FlowKey, FlowTotals, proto_number};

/// Fields asked of tshark, in column order.
pub const FIELDS: [&str; 18] = [
    "frame.number",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.len",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.plen",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "sctp.srcport",
    "sctp.dstport",
];

// Column indices into FIELDS.
const FRAME: usize = 0;
const PROTOCOLS: usize = 1;
const IP_SRC: usize = 2;
const IP_DST: usize = 3;
const IP_PROTO: usize = 4;
const IP_LEN: usize = 5;
const IP_MF: usize = 6;
const IP_FRAG_OFFSET: usize = 7;
const IPV6_SRC: usize = 8;
const IPV6_DST: usize = 9;
const IPV6_NXT: usize = 10;
const IPV6_PLEN: usize = 11;
const TCP_SRC: usize = 12;
const UDP_SRC: usize = 14;
const SCTP_SRC: usize = 16;

/// The tshark arguments for `capture` (without the program name).
#[must_use]
pub fn args(capture: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "-n",
        "-r",
        &capture.to_string_lossy(),
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for field in FIELDS {
        args.push("-e".into());
        args.push(field.into());
    }
    args
}

/// One frame that carries IP, as tshark reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket {
    /// tshark's frame number (1-based).
    pub frame: u64,
    /// The flow it belongs to.
    pub key: FlowKey,
    /// IP-layer bytes: `ip.len`, or `ipv6.plen + 40`.
    pub ip_bytes: u64,
}

/// tshark's reading of a whole capture.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Frames in the file, IP or not.
    pub frames: u64,
    /// The frames that carry IP.
    pub packets: Vec<IpPacket>,
}

impl Reading {
    /// Packets and bytes per flow key.
    #[must_use]
    pub fn flow_totals(&self) -> FlowTotals {
        let mut totals = FlowTotals::new();
        for p in &self.packets {
            totals.entry(p.key).or_default().add(1, p.ip_bytes);
        }
        totals
    }
}

/// Checks that tshark can be run; the error says how to install it.
pub fn check_installed() -> Result<()> {
    match Command::new("tshark").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!("`tshark --version` failed ({}): reinstall it with `cargo xtask setup`", out.status),
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "tshark is not installed (it computes the expected side of this test): run `cargo \
             xtask setup` (CI installs it)"
        ),
        Err(e) => Err(e).context("running `tshark --version`"),
    }
}

/// Runs tshark on `capture` and reads every frame.
pub fn read(capture: &Path) -> Result<Reading> {
    check_installed()?;
    let out = Command::new("tshark").args(args(capture)).output().context("running tshark")?;
    if !out.status.success() {
        bail!(
            "tshark failed on {} ({}): {}",
            capture.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("tshark output is not UTF-8")?;
    parse(&text).with_context(|| format!("reading tshark's output for {}", capture.display()))
}

/// The Community IDs Wireshark's `communityid` post-dissector computes for
/// the frames of `capture` (seed 0), without duplicates.
pub fn community_ids(capture: &Path) -> Result<BTreeSet<String>> {
    check_installed()?;
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(capture)
        .args(["--enable-protocol", "communityid", "-T", "fields", "-e", "communityid"])
        .output()
        .context("running tshark")?;
    if !out.status.success() {
        bail!(
            "tshark failed on {} ({}): {}",
            capture.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("tshark output is not UTF-8")?;
    Ok(text.split(['\n', ',']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

/// Parses tshark's output for [`FIELDS`].
pub fn parse(text: &str) -> Result<Reading> {
    let mut reading = Reading::default();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        reading.frames += 1;
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != FIELDS.len() {
            bail!("line {:?}: {} columns, expected {}", line, cols.len(), FIELDS.len());
        }
        let frame: u64 = cols[FRAME].parse().with_context(|| format!("frame.number {:?}", cols[FRAME]))?;
        if let Some(packet) = ip_packet(frame, &cols).with_context(|| format!("frame {frame}"))? {
            reading.packets.push(packet);
        }
    }
    Ok(reading)
}

/// The flow layer of one frame, or `None` for a frame without IP.
fn ip_packet(frame: u64, cols: &[&str]) -> Result<Option<IpPacket>> {
    let tokens: Vec<&str> = cols[PROTOCOLS].split(':').collect();
    let Some(layer) = tokens.iter().position(|t| *t == "ip" || *t == "ipv6") else {
        return Ok(None);
    };
    // The first IP layer is the first occurrence of its fields.
    let v6 = tokens[layer] == "ipv6";
    // Skip IPv6 extension headers (`ipv6.hopopts`, `ipv6.fraghdr`, …).
    let after: Vec<&str> =
        tokens[layer + 1..].iter().copied().skip_while(|t| t.starts_with("ipv6.")).collect();
    let ext_headers: Vec<&str> =
        tokens[layer + 1..].iter().copied().take_while(|t| t.starts_with("ipv6.")).collect();
    let transport = after.first().copied();

    if transport == Some("gre") || (transport == Some("udp") && after.get(1) == Some(&"vxlan")) {
        bail!("tunnelled packet ({}): not supported by this test's reading", cols[PROTOCOLS]);
    }

    let (src, dst, proto, ip_bytes) = if v6 {
        if ext_headers.contains(&"ipv6.fraghdr") {
            bail!("IPv6 fragment: not supported by this test's reading");
        }
        let nxt: u8 = first(cols[IPV6_NXT], "ipv6.nxt")?;
        let proto = if ext_headers.is_empty() {
            nxt
        } else {
            transport.and_then(proto_number).with_context(|| {
                format!("IPv6 extension headers before {transport:?}: cannot tell the protocol")
            })?
        };
        let plen: u64 = first(cols[IPV6_PLEN], "ipv6.plen")?;
        if plen == 0 {
            bail!("ipv6.plen is 0 (jumbogram or TSO capture): not supported");
        }
        (
            first::<IpAddr>(cols[IPV6_SRC], "ipv6.src")?,
            first::<IpAddr>(cols[IPV6_DST], "ipv6.dst")?,
            proto,
            plen + 40,
        )
    } else {
        let mf = first_str(cols[IP_MF], "ip.flags.mf")?;
        let offset: u64 = first(cols[IP_FRAG_OFFSET], "ip.frag_offset")?;
        if matches!(mf, "1" | "True" | "true") || offset != 0 {
            bail!("IPv4 fragment: not supported by this test's reading");
        }
        let len: u64 = first(cols[IP_LEN], "ip.len")?;
        if len < 20 {
            bail!("ip.len is {len} (TSO capture?): not supported");
        }
        (
            first::<IpAddr>(cols[IP_SRC], "ip.src")?,
            first::<IpAddr>(cols[IP_DST], "ip.dst")?,
            first::<u8>(cols[IP_PROTO], "ip.proto")?,
            len,
        )
    };

    // Ports of the transport header right after the flow layer: its
    // occurrence index is the number of same-named layers before it.
    let port_col = match (proto, transport) {
        (6, Some("tcp")) => Some(("tcp", TCP_SRC)),
        (17, Some("udp")) => Some(("udp", UDP_SRC)),
        (132, Some("sctp")) => Some(("sctp", SCTP_SRC)),
        (6 | 17 | 132, _) => {
            bail!("protocol {proto} but tshark decoded no header for it ({})", cols[PROTOCOLS])
        }
        _ => None,
    };
    let (sport, dport) = match port_col {
        Some((name, col)) => {
            let idx = tokens[..layer + 1 + ext_headers.len()].iter().filter(|t| **t == name).count();
            (Some(nth::<u16>(cols[col], idx, name)?), Some(nth::<u16>(cols[col + 1], idx, name)?))
        }
        None => (None, None),
    };

    Ok(Some(IpPacket { frame, key: FlowKey::new(proto, src, sport, dst, dport), ip_bytes }))
}

fn first_str<'a>(col: &'a str, name: &str) -> Result<&'a str> {
    col.split(',').next().filter(|s| !s.is_empty()).with_context(|| format!("no {name}"))
}

fn first<T: std::str::FromStr>(col: &str, name: &str) -> Result<T> {
    nth(col, 0, name)
}

fn nth<T: std::str::FromStr>(col: &str, n: usize, name: &str) -> Result<T> {
    let raw = col
        .split(',')
        .nth(n)
        .filter(|s| !s.is_empty())
        .with_context(|| format!("no occurrence {n} of {name} in {col:?}"))?;
    raw.parse().ok().with_context(|| format!("{name} {raw:?} does not parse"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one output line from (column, value) pairs; other columns empty.
    fn line(frame: u64, protocols: &str, values: &[(usize, &str)]) -> String {
        let mut cols = vec![String::new(); FIELDS.len()];
        cols[FRAME] = frame.to_string();
        cols[PROTOCOLS] = protocols.into();
        for (i, v) in values {
            cols[*i] = (*v).into();
        }
        cols.join("\t")
    }

    #[test]
    fn reads_tcp_over_ipv4_and_skips_arp() -> Result<()> {
        let text = [
            line(
                1,
                "eth:ethertype:ip:tcp",
                &[
                    (IP_SRC, "10.0.0.2"),
                    (IP_DST, "10.0.0.1"),
                    (IP_PROTO, "6"),
                    (IP_LEN, "60"),
                    (IP_MF, "0"),
                    (IP_FRAG_OFFSET, "0"),
                    (TCP_SRC, "80"),
                    (TCP_SRC + 1, "1234"),
                ],
            ),
            line(2, "eth:ethertype:arp", &[]),
        ]
        .join("\n");
        let r = parse(&text)?;
        assert_eq!(r.frames, 2);
        assert_eq!(r.packets.len(), 1);
        assert_eq!(r.packets[0].key.to_string(), "tcp 10.0.0.1:1234 <-> 10.0.0.2:80");
        assert_eq!(r.packets[0].ip_bytes, 60);
        Ok(())
    }

    #[test]
    fn keys_an_icmp_error_on_its_outer_header() -> Result<()> {
        let text = line(
            7,
            "eth:ethertype:ip:icmp:ip:udp:dns",
            &[
                (IP_SRC, "10.0.0.1,10.0.0.2"),
                (IP_DST, "10.0.0.2,8.8.8.8"),
                (IP_PROTO, "1,17"),
                (IP_LEN, "84,56"),
                (IP_MF, "0,0"),
                (IP_FRAG_OFFSET, "0,0"),
                (UDP_SRC, "5353"),
                (UDP_SRC + 1, "53"),
            ],
        );
        let r = parse(&text)?;
        assert_eq!(r.packets[0].key.to_string(), "icmp 10.0.0.1 <-> 10.0.0.2");
        assert_eq!(r.packets[0].ip_bytes, 84);
        Ok(())
    }

    #[test]
    fn reads_icmpv6_after_a_hop_by_hop_header() -> Result<()> {
        let text = line(
            3,
            "eth:ethertype:ipv6:ipv6.hopopts:icmpv6",
            &[(IPV6_SRC, "fe80::1"), (IPV6_DST, "ff02::16"), (IPV6_NXT, "0"), (IPV6_PLEN, "36")],
        );
        let r = parse(&text)?;
        assert_eq!(r.packets[0].key.proto, 58);
        assert_eq!(r.packets[0].ip_bytes, 76);
        Ok(())
    }

    #[test]
    fn refuses_fragments_and_tunnels() {
        let frag = line(
            1,
            "eth:ethertype:ip:data",
            &[
                (IP_SRC, "10.0.0.1"),
                (IP_DST, "10.0.0.2"),
                (IP_PROTO, "17"),
                (IP_LEN, "1500"),
                (IP_MF, "1"),
                (IP_FRAG_OFFSET, "0"),
            ],
        );
        assert!(parse(&frag).is_err());
        let gre = line(
            1,
            "eth:ethertype:ip:gre:ip:icmp",
            &[
                (IP_SRC, "10.0.0.1,192.168.0.1"),
                (IP_DST, "10.0.0.2,192.168.0.2"),
                (IP_PROTO, "47,1"),
                (IP_LEN, "108,84"),
                (IP_MF, "0,0"),
                (IP_FRAG_OFFSET, "0,0"),
            ],
        );
        assert!(parse(&gre).is_err());
    }
}
