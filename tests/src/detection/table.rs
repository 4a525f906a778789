//! The expected alerts of the corpus captures: one row per capture of every
//! category except `malformed` (which `malformed_corpus.rs` covers).
//!
//! Each row comes from the capture's `ground_truth` in `MANIFEST.tsv`: the
//! detector that should see the episode and the host at fault (`source.ip`
//! of the alert). Rows are one of:
//!
//! - [`Expect::Alert`]: the episode is detected; the test fails if that
//!   (detector, host) alert is missing;
//! - [`Expect::Miss`]: the episode is not detected, and the reason says why
//!   (no detector for it, below a documented floor, needs a learned baseline).
//!   The test reports a miss that starts being detected but does not fail;
//! - [`Expect::Benign`]: no episode; at most `max_alerts` alerts. Budgets
//!   above 0 say which alerts they allow and why;
//! - [`Expect::Unreadable`]: the sensor refuses the file (exit status not 0)
//!   with a message containing the given text.
//!
//! Config per row: only `home_networks`, as a SOC would set them (a public
//! address that is the monitored host, or a victim made the only inside host
//! so that its peer is "outside"). Everything else is [`super::TEST_DETECTION`]
//! for every row: no per-file tuning.

/// What a capture is expected to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The episode is detected: an alert of `detector` with `host` at fault.
    Alert { detector: &'static str, host: &'static str },
    /// The episode is not detected by `detector` on `host`, for `reason`.
    Miss { detector: &'static str, host: &'static str, reason: &'static str },
    /// No episode: at most `max_alerts` alerts, for the reason in `note`.
    Benign { max_alerts: usize, note: &'static str },
    /// The sensor refuses the file; its stderr contains `error`.
    Unreadable { error: &'static str },
}

/// One row: a capture, its config override and what it should raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Path relative to the corpus root.
    pub capture: &'static str,
    /// `[sensor] home_networks`; empty = the default (RFC 1918 + fc00::/7).
    pub home_networks: &'static [&'static str],
    /// What it should raise.
    pub expect: Expect,
}

impl Case {
    /// The capture's category (its top-level folder).
    #[must_use]
    pub fn category(&self) -> &'static str {
        self.capture.split_once('/').map_or(self.capture, |(c, _)| c)
    }

    /// True for rows that are an episode (detected or not).
    #[must_use]
    pub fn is_episode(&self) -> bool {
        matches!(self.expect, Expect::Alert { .. } | Expect::Miss { .. })
    }

    /// The (detector, host) of an episode row.
    #[must_use]
    pub fn episode(&self) -> Option<(&'static str, &'static str)> {
        match self.expect {
            Expect::Alert { detector, host } | Expect::Miss { detector, host, .. } => Some((detector, host)),
            Expect::Benign { .. } | Expect::Unreadable { .. } => None,
        }
    }
}

const fn alert(capture: &'static str, detector: &'static str, host: &'static str) -> Case {
    Case { capture, home_networks: &[], expect: Expect::Alert { detector, host } }
}

const fn miss(
    capture: &'static str,
    detector: &'static str,
    host: &'static str,
    reason: &'static str,
) -> Case {
    Case { capture, home_networks: &[], expect: Expect::Miss { detector, host, reason } }
}

const fn benign(capture: &'static str, max_alerts: usize, note: &'static str) -> Case {
    Case { capture, home_networks: &[], expect: Expect::Benign { max_alerts, note } }
}

const fn home(mut case: Case, home_networks: &'static [&'static str]) -> Case {
    case.home_networks = home_networks;
    case
}

/// Why a single upload in one capture is not detected: a host without a
/// learned baseline is judged by the learning floor only.
const EXFIL_LEARNING: &str = "a lone capture is a host still learning: the dominant-upload floor is \
     learning_min_bytes (50 MB) and the bucket/hour rules need an active baseline; the same upload after \
     a learned baseline is detected (long-input test)";

/// Every row. Order: category, then path.
pub const CASES: &[Case] = &[
    // ---- beacon_c2 -------------------------------------------------------
    home(alert("beacon_c2/slips__test-cc-capture-2.pcap", "beaconing", "147.32.80.37"), &["147.32.80.37/32"]),
    alert("beacon_c2/zeek__merlinc2-quic.pcapng", "beaconing", "10.0.0.4"),
    alert("beacon_c2/ndpi__log4j-webapp-exploit.pcap", "protocol_mismatch", "172.16.238.10"),
    miss(
        "beacon_c2/ndpi__tls_malicious_sha1.pcapng",
        "protocol_mismatch",
        "-",
        "certificate blacklist: reputation, not behaviour; no detector for it",
    ),
    miss(
        "beacon_c2/ndpi__malware.pcap",
        "beaconing",
        "192.168.0.20",
        "two single connections to listed malware domains: reputation, not behaviour",
    ),
    miss(
        "beacon_c2/slips__test7-malicious.pcap",
        "beaconing",
        "192.168.2.16",
        "the periodic traffic is NTP every ~60 s, on an ignored port (123) by design; the sensor also \
         reports a telnet scan by 192.168.2.16 (54 hosts on 23/tcp, all failed) that the manifest does not label",
    ),
    miss(
        "beacon_c2/honeynet__fc_0.pcap",
        "exfiltration",
        "10.0.0.2",
        "one 192 kB telnet session inside the LAN: below every floor",
    ),
    alert("beacon_c2/sanders__ek_to_cryptowall4.pcapng", "suspicious_http", "192.168.122.145"),
    miss(
        "beacon_c2/zeek__ticks-dns-1hr.pcap",
        "beaconing",
        "10.0.0.1",
        "hourly DNS: port 53 is in beaconing.ignore_ports by design (dns_tunnel covers DNS)",
    ),
    home(alert("beacon_c2/sanders__ratinfected.pcapng", "beaconing", "172.16.0.114"), &["172.16.0.114/32"]),
    alert("beacon_c2/honeynet__fc1_attack-trace.pcap", "protocol_mismatch", "192.150.11.111"),
    alert("beacon_c2/lmg__evidence06.pcap", "protocol_mismatch", "10.10.10.70"),
    alert("beacon_c2/sanders__aurora.pcapng", "protocol_mismatch", "192.168.100.206"),
    alert("beacon_c2/honeynet__fc2_suspicious-time.pcap", "suspicious_http", "10.0.4.15"),
    alert("beacon_c2/otrf__log4shell_java_serialized.pcapng", "protocol_mismatch", "192.168.2.5"),
    alert("beacon_c2/lmg__evidence05.pcap", "suspicious_http", "192.168.23.129"),
    // ---- benign_mixed ----------------------------------------------------
    benign("benign_mixed/ndpi__bot.pcap", 0, "crawler fetching images"),
    benign("benign_mixed/zeek__smb3_multichannel.pcap", 0, ""),
    benign("benign_mixed/ndpi__teams.pcap", 0, ""),
    benign("benign_mixed/zeek__modbusBig.pcap", 0, "regular Modbus polling: the beaconing trap"),
    benign("benign_mixed/ndpi__openvpn-1194.pcap", 0, ""),
    benign("benign_mixed/ndpi__dropbox.pcap", 0, ""),
    benign("benign_mixed/ndpi__443-firefox.pcap", 0, ""),
    benign("benign_mixed/onetwogleb__doh_29may_benign.pcap", 0, ""),
    benign("benign_mixed/ndpi__dns.pcap", 0, ""),
    benign("benign_mixed/ppp__http-packets.pcap", 0, ""),
    benign("benign_mixed/ppa__email-troubles.pcap", 0, ""),
    benign("benign_mixed/zeek__bro.org.pcap", 0, ""),
    benign("benign_mixed/ppa__http.cap", 0, ""),
    benign("benign_mixed/ndpi__NTPv4.pcap", 0, ""),
    benign("benign_mixed/onetwogleb__doh_31may_benign.pcap", 0, ""),
    benign("benign_mixed/ndpi__1kxun.pcap", 0, ""),
    benign(
        "benign_mixed/zeek__ssh.pcap",
        2,
        "protocol_mismatch nonstandard_port: SSH on 2200 and 40184, which is what that rule reports",
    ),
    benign("benign_mixed/ja4__http2-with-cookies.pcapng", 0, ""),
    benign("benign_mixed/zeek__workshop_2011_browse.pcap", 0, ""),
    benign("benign_mixed/ndpi__reddit.pcap", 0, ""),
    benign("benign_mixed/ndpi__bittorrent.pcap", 0, ""),
    benign("benign_mixed/sanders__tcp_ports.pcapng", 0, ""),
    benign("benign_mixed/ndpi__quic.pcap", 0, ""),
    benign(
        "benign_mixed/mercury__capture2.pcap",
        0,
        "Skype peers ping their client every 32 to 45 s inside one flow: the client's answers start no burst",
    ),
    benign(
        "benign_mixed/ndpi__ssh.pcap",
        1,
        "SSH on 127.0.0.1:8000 (an HTTP port): cross_protocol, as designed",
    ),
    // ---- dns_tunnel ------------------------------------------------------
    alert("dns_tunnel/korving__doh_c2_dns2tcp_KEY.pcap", "dns_tunnel", "192.168.0.10"),
    alert("dns_tunnel/ndpi__dns-tunnel-iodine.pcap", "dns_tunnel", "10.0.2.30"),
    alert("dns_tunnel/ndpi__bad-dns-traffic.pcap", "dns_tunnel", "192.168.43.91"),
    alert("dns_tunnel/sbousseaden__cmds_over_dns_txt.pcap", "dns_tunnel", "192.168.100.121"),
    alert("dns_tunnel/korving__doh_c2_dnstt_ios11.pcap", "dns_tunnel", "192.168.0.10"),
    alert("dns_tunnel/ndpi__dns-exf.pcap", "dns_tunnel", "192.168.2.225"),
    alert("dns_tunnel/dmachard__iodine.pcap", "dns_tunnel", "192.168.1.17"),
    alert("dns_tunnel/dmachard__sods.pcap", "dns_tunnel", "192.168.1.17"),
    alert("dns_tunnel/ndpi__dns_exfiltration.pcap", "dns_tunnel", "192.168.220.56"),
    alert("dns_tunnel/korving__doh_c2_dnstt_none.pcap", "dns_tunnel", "192.168.0.10"),
    alert("dns_tunnel/dmachard__dns2tcp.pcap", "dns_tunnel", "192.168.1.17"),
    // ---- dos_flood: floods at a victim (the host named is the victim) -----
    alert("dos_flood/stopddos__amp.UDP.snmp.src161.pcapng", "flood", "10.10.10.10"),
    alert("dos_flood/stopddos__amp.TCP.reflection.SYNACK.pcap", "flood", "10.10.10.10"),
    alert("dos_flood/stopddos__pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng", "flood", "10.10.10.10"),
    miss(
        "dos_flood/ppa__dosattack.pcap",
        "flood",
        "-",
        "crafted sample: 100 single SYNs with random spoofed sources and destinations, no address repeats, \
         so there is no victim (and no source) to judge",
    ),
    benign(
        "dos_flood/stopddos__amp.TCP.syn.optionallyACK.pcapng",
        0,
        "control: internet background radiation and backscatter at about 1 packet/s (peak 16/s) from 60 \
         sources over 818 s, not a flood",
    ),
    alert("dos_flood/stopddos__pkt.TCP.synflood.spoofed.pcap", "flood", "10.10.10.10"),
    // ---- exfil_bulk_upload -----------------------------------------------
    miss("exfil_bulk_upload/ja4__ssh-scp-1050.pcap", "exfiltration", "192.168.1.197", EXFIL_LEARNING),
    miss("exfil_bulk_upload/lmg__puzzle1-anns-bad-aim.pcap", "exfiltration", "192.168.1.158", EXFIL_LEARNING),
    miss("exfil_bulk_upload/zeek__nfs_write.pcap", "exfiltration", "-", EXFIL_LEARNING),
    home(
        miss("exfil_bulk_upload/zeek__smb2-write.pcap", "exfiltration", "10.0.0.11", EXFIL_LEARNING),
        &["10.0.0.11/32"],
    ),
    home(
        miss(
            "exfil_bulk_upload/sv__filecontainer-smb.pcap",
            "exfiltration",
            "192.168.202.115",
            EXFIL_LEARNING,
        ),
        &["192.168.202.115/32"],
    ),
    miss("exfil_bulk_upload/ndpi__youtubeupload.pcap", "exfiltration", "-", EXFIL_LEARNING),
    miss("exfil_bulk_upload/ndpi__whatsappfiles.pcap", "exfiltration", "192.168.2.29", EXFIL_LEARNING),
    miss("exfil_bulk_upload/zeek__globus-url-copy.pcap", "exfiltration", "192.168.57.103", EXFIL_LEARNING),
    miss("exfil_bulk_upload/zeek__smtp-attachment-msg.pcap", "exfiltration", "-", EXFIL_LEARNING),
    miss("exfil_bulk_upload/zeek__http-post-large.pcap", "exfiltration", "-", EXFIL_LEARNING),
    home(
        miss("exfil_bulk_upload/zeek__irc-dcc-send.pcapng", "exfiltration", "10.0.0.7", EXFIL_LEARNING),
        &["10.0.0.7/32"],
    ),
    miss("exfil_bulk_upload/zeek__putty-upload.pcap", "exfiltration", "127.0.0.1", EXFIL_LEARNING),
    miss("exfil_bulk_upload/zeek__smb2readwrite.pcap", "exfiltration", "-", EXFIL_LEARNING),
    miss("exfil_bulk_upload/sv__smtp2525-bulk-upload.pcap", "exfiltration", "10.9.18.101", EXFIL_LEARNING),
    home(
        miss("exfil_bulk_upload/sv__smb-filename.pcap", "exfiltration", "10.4.30.101", EXFIL_LEARNING),
        &["10.4.30.101/32"],
    ),
    home(
        miss(
            "exfil_bulk_upload/ppa__ftp-uploadfailed.pcap",
            "exfiltration",
            "67.169.189.180",
            EXFIL_LEARNING,
        ),
        &["67.169.189.180/32"],
    ),
    // ---- icmp_tunnel -----------------------------------------------------
    miss(
        "icmp_tunnel/zeek__ping6-in-ipv4.pcap",
        "icmp_tunnel",
        "-",
        "IPv6 in IPv4 (protocol 41) is not decapsulated (only GRE and VXLAN are), and it is 3 pings",
    ),
    benign("icmp_tunnel/zeek__icmp-ping.pcap", 0, "control: two ordinary pings"),
    alert("icmp_tunnel/ndpi__icmp-tunnel.pcap", "icmp_tunnel", "192.168.154.131"),
    // ---- large_background ------------------------------------------------
    benign("large_background/zeek__echo-connections.pcap", 0, ""),
    benign("large_background/lmg__evidence03.pcap", 0, ""),
    benign("large_background/honeynet__fc4.pcap", 0, "VoIP"),
    benign(
        "large_background/otrf__apt29_day2_UTICA-C.cap",
        1,
        "beaconing 10.0.1.5 -> 192.168.0.4:443: in the APT29 emulation that address is the C2 server, so \
         probably a true positive the manifest calls background",
    ),
    benign("large_background/otrf__apt29_day2_SCRANTON.cap", 0, ""),
    Case {
        capture: "large_background/lmg__evidence08.pcap",
        home_networks: &[],
        expect: Expect::Unreadable { error: "link type 105" },
    },
    benign("large_background/onetwogleb__doh_20may_benign.pcap", 0, ""),
    benign("large_background/onetwogleb__doh_25may_malicious.pcap", 0, ""),
    benign("large_background/onetwogleb__doh_04june_benign.pcap", 0, ""),
    benign("large_background/sv__smb2-async-read.pcap", 0, ""),
    // ---- proto_nonstandard_port ------------------------------------------
    alert("proto_nonstandard_port/zeek__ssl-and-ssh-using-sslh.pcap", "protocol_mismatch", "192.168.2.144"),
    alert("proto_nonstandard_port/zeek__ssl-to-http-server.pcap", "protocol_mismatch", "192.168.1.108"),
    alert("proto_nonstandard_port/ndpi__portable_executable.pcap", "protocol_mismatch", "172.16.99.10"),
    // Rule fully_encrypted: the client's first payload is indistinguishable from random.
    alert("proto_nonstandard_port/ndpi__vmess-tcp.pcapng", "protocol_mismatch", "127.0.0.1"),
    miss(
        "proto_nonstandard_port/zeek__ctu-64702-888.pcap",
        "protocol_mismatch",
        "192.168.1.108",
        "unidentified payload on unregistered port 888",
    ),
    alert("proto_nonstandard_port/ndpi__tor.pcap", "suspicious_tls", "192.168.1.252"),
    // Rule fully_encrypted: the client's first payload is indistinguishable from random.
    alert("proto_nonstandard_port/ndpi__shadowsocks-tcp.pcapng", "protocol_mismatch", "127.0.0.1"),
    miss(
        "proto_nonstandard_port/zeek__reverse-ssh.pcap",
        "protocol_mismatch",
        "10.0.0.1",
        "SSH on its own port 22: a reverse tunnel is not a port mismatch",
    ),
    miss(
        "proto_nonstandard_port/ndpi__http_on_sip_port.pcap",
        "protocol_mismatch",
        "82.178.111.221",
        "HTTP to 8888, a registered HTTP port; only the source port is SIP's",
    ),
    alert("proto_nonstandard_port/zeek__get-to-ssh-server.pcap", "protocol_mismatch", "136.216.42.40"),
    miss(
        "proto_nonstandard_port/sv__doh2.pcap",
        "protocol_mismatch",
        "10.200.30.140",
        "HTTP/2 cleartext on 80 is registered there; DNS inside HTTP is not looked at",
    ),
    benign(
        "proto_nonstandard_port/ndpi__socks.pcap",
        1,
        "control: SOCKS on 1080 is quiet; the one alert is SOCKS 5 to port 21477, a proxy on an \
         unregistered port, which protocol_mismatch reports by design",
    ),
    miss(
        "proto_nonstandard_port/zeek__http-nonstandard-port.pcap",
        "protocol_mismatch",
        "127.0.0.1",
        "HTTP on unregistered 1234 is not reported by design (everyday traffic)",
    ),
    alert("proto_nonstandard_port/ndpi__tls_port_80.pcapng", "protocol_mismatch", "57.91.202.194"),
    miss(
        "proto_nonstandard_port/ja4__ssh-r.pcap",
        "long_connection",
        "192.168.1.197",
        "SSH with remote port-forward on 22: 423 s, under long_connection.min_duration_s (7200)",
    ),
    alert("proto_nonstandard_port/zeek__psql-15432.pcap", "protocol_mismatch", "192.168.123.132"),
    miss(
        "proto_nonstandard_port/zeek__wstunnel-https.pcap",
        "protocol_mismatch",
        "-",
        "websocket tunnel inside TLS on 443: well-formed TLS",
    ),
    miss(
        "proto_nonstandard_port/zeek__quic-custom-port-4433.pcap",
        "protocol_mismatch",
        "-",
        "QUIC on unregistered 4433 is not reported by design (only SSH, SMTP and FTP are)",
    ),
    alert("proto_nonstandard_port/zeek__http-to-ssh.pcap", "protocol_mismatch", "127.0.0.1"),
    alert("proto_nonstandard_port/zeek__https-to-http.pcap", "protocol_mismatch", "127.0.0.1"),
    alert("proto_nonstandard_port/ndpi__openvpn_obfuscated.pcapng", "protocol_mismatch", "192.168.12.156"),
    alert("proto_nonstandard_port/zeek__http-single-conn-22.pcap", "protocol_mismatch", "10.0.0.1"),
    alert("proto_nonstandard_port/zeek__ssh-on-port-80.pcap", "protocol_mismatch", "172.16.238.1"),
    // ---- scan ------------------------------------------------------------
    // DHCP starvation: 10 000 DISCOVERs from one client hardware address, 0.0.0.0 to broadcast, in
    // one flow. The flood detector's dhcp_flood rule counts DHCP client messages per client.
    alert("scan/sv__dhcp-request-flood.pcap", "flood", "0.0.0.0"),
    alert("scan/evilfingers__nmap__FTP_BOUNCE_SCAN.pcap", "scan", "192.168.1.25"),
    alert("scan/sanders__activeosfingerprinting.pcapng", "scan", "172.16.16.128"),
    alert("scan/ndpi__synscan.pcap", "scan", "172.16.0.8"),
    alert("scan/evilfingers__nmap__TCP_SYN_SCAN.pcap", "scan", "192.168.1.10"),
    alert("scan/evilfingers__nmap__NULL_SCAN.pcap", "scan", "192.168.1.10"),
    alert("scan/zeek__ftp-bruteforce.pcap", "beaconing", "192.168.56.1"),
    // 250 DHCPINFORMs of one client hardware address in 5 s, each from another address: dhcp_flood.
    // The manifest names no host; the alert names the lowest of the window's source addresses.
    alert("scan/zeek__dhcp_flood.pcap", "flood", "128.2.5.91"),
    miss("scan/zeek__vnc-scanner.pcap", "scan", "192.168.0.11", "one RFB connection: no fan-out"),
    alert("scan/lmg__evidence04-mr-x-scan.pcap", "scan", "10.42.42.253"),
    alert("scan/evilfingers__nmap__XMAS_TREE_SCAN.pcap", "scan", "192.168.1.10"),
    alert("scan/slips__ssh-bruteforce-port902.pcap", "protocol_mismatch", "147.32.80.40"),
    alert("scan/evilfingers__nmap__FIN_SCAN.pcap", "scan", "192.168.1.10"),
    alert("scan/evilfingers__nmap__version_scan.pcap", "scan", "192.168.1.10"),
    miss(
        "scan/evilfingers__xprobe__xprobe_icmp_m.pcap",
        "scan",
        "192.168.1.20",
        "a few ICMP fingerprint probes to one host",
    ),
    alert("scan/evilfingers__nmap__ACK_SCAN.pcap", "scan", "192.168.1.10"),
    alert("scan/evilfingers__nmap__RPC_SCAN.pcap", "scan", "192.168.1.10"),
    alert("scan/slips__test8-malicious.pcap", "scan", "192.168.1.247"),
    alert("scan/zeek__nmap-vsn.pcap", "scan", "192.168.1.71"),
    alert("scan/sanders__synscan.pcapng", "scan", "172.16.0.8"),
    alert("scan/zeek__sshguess.pcap", "beaconing", "192.168.56.1"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_capture_once_and_only_known_detectors() {
        let mut seen = std::collections::BTreeSet::new();
        for case in CASES {
            assert!(seen.insert(case.capture), "{} is listed twice", case.capture);
            if let Some((detector, _)) = case.episode() {
                assert!(
                    super::super::DETECTORS.contains(&detector),
                    "{}: unknown detector {detector}",
                    case.capture
                );
            }
        }
    }
}
