//! Flow accounting against an independent reader: for real captures from the
//! corpus, the per-flow sums of packets and IP-layer bytes over every flow
//! record `nbad-sensor replay` writes (end and interim records alike) equal
//! what tshark counts for the same capture, and so do the grand totals.
//!
//! The captures cover the containers and link layers the sensor reads:
//! classic and nanosecond pcap, pcapng, files whose extension names the
//! other container, Ethernet, 802.1Q-tagged Ethernet, Linux cooked capture
//! (SLL, including frames from `lo` whose SLL header says ARPHRD_LOOPBACK),
//! raw IP, IPv4 and IPv6, ICMP, and a spoofed SYN flood with tens of
//! thousands of one-packet flows. None of them has tunnels or IP fragments:
//! see `nbad_tests::tshark` for why. The corpus has no BSD loopback and no
//! SLL2 capture, so those link types are not covered here.
//!
//! Skips (passes with a `skipping:` line) where the corpus is absent; fails
//! where tshark is missing (`cargo xtask setup` installs it).

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use nbad_tests::flows::{self, grand_total};
use nbad_tests::{Corpus, sensor, tshark};

/// Time limit for one replay; the largest capture here replays in seconds.
const REPLAY_LIMIT: Duration = Duration::from_secs(120);
/// Mismatching flows printed per capture.
const DIFF_LINES: usize = 12;

/// A capture under test and what the manifest must say about it, so that a
/// test named after a link type keeps testing that link type.
struct Case {
    path: &'static str,
    format: &'static str,
    link_type: &'static str,
}

fn check(case: &Case) -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else {
        return Ok(());
    };
    check_in(&corpus, case).with_context(|| format!("capture {}", case.path))
}

fn check_in(corpus: &Corpus, case: &Case) -> Result<()> {
    let entry = corpus.entry(case.path)?;
    ensure!(
        entry.format == case.format && entry.link_type == case.link_type,
        "MANIFEST.tsv says {} / {}, this test is for {} / {}",
        entry.format,
        entry.link_type,
        case.format,
        case.link_type
    );
    let path = corpus.path(entry);

    let expected = tshark::read(&path)?;
    ensure!(
        expected.frames == entry.packets,
        "tshark read {} frames, MANIFEST.tsv says {}",
        expected.frames,
        entry.packets
    );
    let want = expected.flow_totals();
    let want_total = grand_total(&want);

    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let replay = sensor::replay(&path, scratch.path(), REPLAY_LIMIT)?;
    ensure!(replay.run.succeeded(), "{}", replay.run.describe());
    let records = sensor::read_json_lines(&replay.flows)?;
    let got = flows::totals_from_records(&records)?;
    let got_total = grand_total(&got);

    let mismatches = flows::diff(&want, &got);
    if !mismatches.is_empty() || got_total != want_total {
        bail!(
            "flow sums differ from tshark's.\n\
             totals: tshark {} IP packets / {} bytes in {} flows; sensor {} / {} in {} flows \
             ({} records)\n\
             {} flows differ (expected = tshark, got = sensor):\n{}",
            want_total.packets,
            want_total.bytes,
            want.len(),
            got_total.packets,
            got_total.bytes,
            got.len(),
            records.len(),
            mismatches.len(),
            flows::render_diff(&mismatches, DIFF_LINES)
        );
    }
    // The grand total above is a sum over flows; tie it to the packet list too.
    ensure!(
        got_total.packets == u64::try_from(expected.packets.len())?,
        "sensor counted {} packets, tshark lists {} IP packets",
        got_total.packets,
        expected.packets.len()
    );
    println!(
        "{}: {} IP packets, {} bytes, {} flows: sensor agrees with tshark",
        case.path,
        want_total.packets,
        want_total.bytes,
        want.len()
    );
    Ok(())
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_ethernet_pcap_with_ipv4_and_ipv6() -> Result<()> {
    // TCP, UDP multicast (SSDP, LLMNR, NBNS) and some IPv6 LLMNR.
    check(&Case { path: "benign_mixed/ndpi__1kxun.pcap", format: "pcap", link_type: "ether" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_ethernet_pcapng() -> Result<()> {
    check(&Case { path: "exfil_bulk_upload/zeek__irc-dcc-send.pcapng", format: "pcapng", link_type: "ether" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_pcapng_named_dot_pcap() -> Result<()> {
    // The container is detected by magic number, not by extension.
    check(&Case { path: "benign_mixed/ndpi__ssh.pcap", format: "pcapng", link_type: "ether" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_pcap_named_dot_pcapng() -> Result<()> {
    check(&Case {
        path: "dos_flood/stopddos__amp.TCP.syn.optionallyACK.pcapng",
        format: "pcap",
        link_type: "ether",
    })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_nanosecond_pcap() -> Result<()> {
    check(&Case {
        path: "proto_nonstandard_port/zeek__get-to-ssh-server.pcap",
        format: "nsecpcap",
        link_type: "ether",
    })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_vlan_tagged_ethernet() -> Result<()> {
    // Every frame carries one 802.1Q tag.
    check(&Case { path: "exfil_bulk_upload/sv__filecontainer-smb.pcap", format: "pcap", link_type: "ether" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_linux_cooked_pcap() -> Result<()> {
    // Every frame has ARPHRD_ETHER (1) in its SLL header; 4 are ARP.
    check(&Case { path: "beacon_c2/ndpi__log4j-webapp-exploit.pcap", format: "pcap", link_type: "linux-sll" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_linux_cooked_pcap_with_loopback_frames() -> Result<()> {
    // A capture on Linux's "any" device: half the frames come from `lo`, so
    // their SLL header says ARPHRD_LOOPBACK (772), not ARPHRD_ETHER (1). The
    // protocol field is an EtherType either way.
    check(&Case {
        path: "dns_tunnel/korving__doh_c2_dns2tcp_KEY.pcap",
        format: "pcap",
        link_type: "linux-sll",
    })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_linux_cooked_pcapng_with_ipv6() -> Result<()> {
    // IPv6 to the Internet over ARPHRD_ETHER, IPv4 on `lo` over ARPHRD_LOOPBACK.
    check(&Case {
        path: "proto_nonstandard_port/ndpi__vmess-tcp.pcapng",
        format: "pcapng",
        link_type: "linux-sll",
    })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_raw_ip() -> Result<()> {
    // The corpus's only raw-IP capture; a SYN that carries payload, well formed
    // at the IP layer.
    check(&Case { path: "malformed/zeek__payload-syn.pcap", format: "pcap", link_type: "rawip" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_ipv6_only_capture() -> Result<()> {
    check(&Case { path: "benign_mixed/ndpi__reddit.pcap", format: "pcap", link_type: "ether" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_icmp_echo() -> Result<()> {
    // An SSH session tunnelled in ICMP echo payloads, plus ARP (not IP).
    check(&Case { path: "icmp_tunnel/ndpi__icmp-tunnel.pcap", format: "pcap", link_type: "ether" })
}

#[test]
fn per_flow_packet_and_byte_sums_match_tshark_for_spoofed_syn_flood() -> Result<()> {
    // Tens of thousands of one-packet flows: whatever the flow table does
    // under that pressure (eviction, emergency mode), no packet is lost
    // from the records.
    check(&Case {
        path: "dos_flood/stopddos__pkt.TCP.synflood.spoofed.pcap",
        format: "pcap",
        link_type: "ether",
    })
}
