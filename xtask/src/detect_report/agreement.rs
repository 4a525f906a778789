//! How often nbad-sensor's protocol identification agrees with nDPI's, flow by flow.
//!
//! A flow counts when both tools label it: the sensor's flow record carries `network.protocol`
//! (its first payloads were identified) and nDPI identified it by its payload (`Confidence:
//! DPI`, not a guess by port) as a protocol the sensor knows ([`ndpi_name`] maps nDPI's master
//! protocol to the sensor's names). Flows are matched by transport and both endpoints.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// A flow's identity: transport and its two endpoints in order.
type Key = (String, String, String);

fn key(transport: &str, a: &str, b: &str) -> Key {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (transport.to_ascii_lowercase(), lo.to_owned(), hi.to_owned())
}

/// The sensor's name for nDPI's master protocol `ndpi`, when the sensor identifies it.
#[must_use]
pub fn ndpi_name(ndpi: &str) -> Option<&'static str> {
    Some(match ndpi {
        "TLS" | "DoH_DoT" | "SMTPS" | "IMAPS" | "POP3S" | "FTPS" => "tls",
        "HTTP" | "HTTP_Proxy" | "HTTP_Connect" => "http",
        "DNS" | "MDNS" | "LLMNR" => "dns",
        "QUIC" => "quic",
        "SSH" => "ssh",
        "SMTP" => "smtp",
        "FTP_CONTROL" => "ftp",
        "POP3" => "pop3",
        "IMAP" => "imap",
        "Telnet" => "telnet",
        "MySQL" => "mysql",
        "PostgreSQL" => "postgresql",
        "MsSQL-TDS" => "mssql",
        "Redis" => "redis",
        "MongoDB" => "mongodb",
        "LDAP" => "ldap",
        "Kerberos" => "kerberos",
        "SMBv1" | "SMBv23" => "smb",
        "NetBIOS" => "netbios",
        "RDP" => "rdp",
        "SOCKS" => "socks",
        "IRC" => "irc",
        "SIP" => "sip",
        "RTSP" => "rtsp",
        "MQTT" => "mqtt",
        "AMQP" => "amqp",
        "NTP" => "ntp",
        "SNMP" => "snmp",
        "TFTP" => "tftp",
        "DHCP" => "dhcp",
        "Syslog" => "syslog",
        "OpenVPN" => "openvpn",
        "WireGuard" => "wireguard",
        "IPsec" => "ike",
        "BitTorrent" => "bittorrent",
        "VNC" => "vnc",
        "STUN" => "stun",
        "Jabber" | "XMPP" => "xmpp",
        _ => return None,
    })
}

/// The family a sensor name compares in: SOCKS 4 and 5 are nDPI's one SOCKS, HTTP/2 with
/// prior knowledge is HTTP to nDPI.
fn family(name: &str) -> &str {
    match name {
        "socks4" | "socks5" => "socks",
        "http2" => "http",
        other => other,
    }
}

/// One flow nDPI labelled by its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdpiLabel {
    key: Key,
    /// nDPI's master protocol (`TLS` of `TLS.Google`).
    pub master: String,
}

/// `\t1\tTCP 10.0.2.15:55080 <-> 192.150.187.43:80 [proto: 7/HTTP][ClearText][Confidence: DPI]...`
#[must_use]
pub fn parse_label(line: &str) -> Option<NdpiLabel> {
    let mut words = line.split_whitespace();
    words.next()?.parse::<u64>().ok()?;
    let transport = words.next()?;
    let a = words.next()?;
    let arrow = words.next()?;
    if arrow != "<->" && arrow != "->" {
        return None;
    }
    let b = words.next()?;
    if !line.contains("[Confidence: DPI") {
        return None;
    }
    let (_, rest) = line.split_once("[proto: ")?;
    let (proto, _) = rest.split_once(']')?;
    let name = proto.split_once('/').map_or(proto, |(_, n)| n);
    let master = name.split('.').next()?.to_owned();
    Some(NdpiLabel { key: key(transport, a, b), master })
}

/// The sensor's labels from a flow-record file (ECS JSON lines).
fn sensor_labels(flows: &Path) -> Result<HashMap<Key, String>> {
    let text = fs::read_to_string(flows).with_context(|| format!("reading {}", flows.display()))?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(protocol) = v.pointer("/network/protocol").and_then(|p| p.as_str()) else { continue };
        let endpoint = |side: &str| -> Option<String> {
            let ip = v.pointer(&format!("/{side}/ip"))?.as_str()?;
            let port = v.pointer(&format!("/{side}/port"))?.as_u64()?;
            Some(if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") })
        };
        let (Some(a), Some(b), Some(t)) = (
            endpoint("source"),
            endpoint("destination"),
            v.pointer("/network/transport").and_then(|t| t.as_str()),
        ) else {
            continue;
        };
        out.insert(key(t, &a, &b), protocol.to_owned());
    }
    Ok(out)
}

/// Agreement over the whole corpus.
#[derive(Debug, Default)]
pub struct Agreement {
    /// Flows both label.
    pub both: usize,
    /// Of them, the same protocol.
    pub agree: usize,
    /// (nDPI's master, the sensor's name) → flows, with one capture that shows it.
    pub disagreements: BTreeMap<(String, String), (usize, String)>,
    /// nDPI's label where the sensor has none, → flows (the sensor did not identify them).
    pub sensor_silent: BTreeMap<String, usize>,
}

impl Agreement {
    /// Adds one capture: nDPI's labels and the sensor's flow records.
    pub fn add(&mut self, capture: &str, ndpi: &[NdpiLabel], flows: &Path) -> Result<()> {
        let ours = sensor_labels(flows)?;
        for label in ndpi {
            let Some(theirs) = ndpi_name(&label.master) else { continue };
            let Some(mine) = ours.get(&label.key) else {
                *self.sensor_silent.entry(label.master.clone()).or_default() += 1;
                continue;
            };
            self.both += 1;
            if family(mine) == theirs {
                self.agree += 1;
            } else {
                let e = self
                    .disagreements
                    .entry((label.master.clone(), mine.clone()))
                    .or_insert_with(|| (0, capture.to_owned()));
                e.0 += 1;
            }
        }
        Ok(())
    }

    /// The report's section.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let share = if self.both > 0 { 100.0 * self.agree as f64 / self.both as f64 } else { 0.0 };
        let _ = writeln!(out, "### Protocol identification against nDPI\n");
        let _ = writeln!(
            out,
            "Flows both tools label (nDPI by payload, `Confidence: DPI`, as a protocol the sensor \
             knows; the sensor's `network.protocol`): **{} of {} agree ({share:.1} %)**.\n",
            self.agree, self.both
        );
        if !self.disagreements.is_empty() {
            let _ = writeln!(out, "| nDPI | nbad-sensor | flows | e.g. |");
            let _ = writeln!(out, "|---|---|---:|---|");
            for ((theirs, mine), (n, capture)) in &self.disagreements {
                let _ = writeln!(out, "| {theirs} | {mine} | {n} | {capture} |");
            }
            let _ = writeln!(out);
        }
        if !self.sensor_silent.is_empty() {
            let listed: Vec<String> = self.sensor_silent.iter().map(|(p, n)| format!("{p} {n}")).collect();
            let _ = writeln!(
                out,
                "Flows nDPI labels and the sensor leaves unidentified (most began before the \
                 capture did, and the sensor never judges a flow from its middle): {}.\n",
                listed.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_payload_label_and_skips_guesses() {
        let line = "\t1\tTCP 10.0.2.15:55080 <-> 192.150.187.43:80 [proto: 91.26/TLS.ntop][Encrypted][Confidence: DPI][cat: Web/5]";
        let got = parse_label(line).expect("a label");
        assert_eq!(got.master, "TLS");
        assert_eq!(got.key, key("tcp", "192.150.187.43:80", "10.0.2.15:55080"));
        let guessed = "\t2\tUDP 10.0.0.1:5000 <-> 10.0.0.2:53 [proto: 5/DNS][Confidence: Match by port]";
        assert_eq!(parse_label(guessed), None);
    }

    #[test]
    fn socks_and_http2_compare_as_ndpi_names_them() {
        assert_eq!(family("socks5"), ndpi_name("SOCKS").expect("mapped"));
        assert_eq!(family("http2"), ndpi_name("HTTP").expect("mapped"));
        assert_eq!(ndpi_name("Skype_Teams"), None);
    }
}
