//! The `network.community_id` of the sensor's flow records equals the
//! Community ID that Wireshark's own implementation (its `communityid`
//! post-dissector, seed 0) computes for the same captures: the same set of
//! IDs, flow for flow. The captures cover TCP and UDP over IPv4 and IPv6,
//! ICMP echo (two-way types), ICMP errors and probes (one-way types), and
//! IPv6 packets with hop-by-hop headers.
//!
//! Skips (passes with a `skipping:` line) where the corpus is absent; fails
//! where tshark is missing (`cargo xtask setup` installs it).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use nbad_tests::{Corpus, sensor, tshark};
use serde_json::Value;

const REPLAY_LIMIT: Duration = Duration::from_secs(120);

fn check(path: &str) -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else {
        return Ok(());
    };
    let capture = corpus.path(corpus.entry(path)?);
    let expected = tshark::community_ids(&capture).with_context(|| format!("capture {path}"))?;

    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let replay = sensor::replay(&capture, scratch.path(), REPLAY_LIMIT)?;
    ensure!(replay.run.succeeded(), "{}", replay.run.describe());
    let got: BTreeSet<String> = sensor::read_json_lines(&replay.flows)?
        .iter()
        .filter_map(|r| r.pointer("/network/community_id").and_then(Value::as_str).map(str::to_owned))
        .collect();

    let missing: Vec<&String> = expected.difference(&got).take(10).collect();
    let extra: Vec<&String> = got.difference(&expected).take(10).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "{path}: community IDs differ from Wireshark's ({} expected, {} in records)\n  only Wireshark \
         (first 10): {missing:?}\n  only sensor (first 10): {extra:?}",
        expected.len(),
        got.len()
    );
    Ok(())
}

#[test]
fn community_ids_match_wireshark_for_tcp_and_udp_over_ipv4_and_ipv6() -> Result<()> {
    check("benign_mixed/ndpi__1kxun.pcap")
}

#[test]
fn community_ids_match_wireshark_for_icmp_echo_request_and_reply() -> Result<()> {
    check("icmp_tunnel/zeek__icmp-ping.pcap")
}

#[test]
fn community_ids_match_wireshark_for_one_way_icmp_probes() -> Result<()> {
    check("scan/evilfingers__xprobe__xprobe_icmp_m.pcap")
}

#[test]
fn community_ids_match_wireshark_for_ipv6_with_hop_by_hop_headers() -> Result<()> {
    check("beacon_c2/slips__test7-malicious.pcap")
}
