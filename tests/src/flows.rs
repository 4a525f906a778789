//! Per-flow totals: the direction-free key both sides are summed under, the
//! sensor's ECS flow records read back into totals, and a readable diff.
//!
//! The key is `{lower (ip, port), higher (ip, port), protocol}`. Ports take
//! part only for TCP, UDP and SCTP; ICMP, ICMPv6 and every other protocol are
//! compared per unordered address pair and protocol, because the sensor's
//! ICMP "ports" (type/code equivalents) are its own convention, not
//! something tshark reports. VLAN ids are not part of the key: summing over
//! them loses nothing the accounting check needs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Protocols whose ports are part of the key.
const PORT_PROTOCOLS: [u8; 3] = [6, 17, 132];

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Address as the packet carries it (IPv4 stays IPv4).
    pub ip: IpAddr,
    /// Port, for TCP, UDP and SCTP only.
    pub port: Option<u16>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (IpAddr::V6(ip), Some(port)) => write!(f, "[{ip}]:{port}"),
            (ip, Some(port)) => write!(f, "{ip}:{port}"),
            (ip, None) => write!(f, "{ip}"),
        }
    }
}

/// A direction-free flow key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    /// IP protocol number.
    pub proto: u8,
    /// The lower endpoint (by address, then port).
    pub lo: Endpoint,
    /// The higher endpoint.
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key of a packet or record between `a` and `b`, either way round.
    /// Ports are dropped unless `proto` is TCP, UDP or SCTP.
    #[must_use]
    pub fn new(proto: u8, a: IpAddr, a_port: Option<u16>, b: IpAddr, b_port: Option<u16>) -> Self {
        let keep_ports = PORT_PROTOCOLS.contains(&proto);
        let a = Endpoint { ip: a, port: a_port.filter(|_| keep_ports) };
        let b = Endpoint { ip: b, port: b_port.filter(|_| keep_ports) };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Self { proto, lo, hi }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} <-> {}", proto_name(self.proto), self.lo, self.hi)
    }
}

/// Packets and IP-layer bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets.
    pub packets: u64,
    /// IP-layer bytes (IPv4 total length, IPv6 payload length + 40).
    pub bytes: u64,
}

impl Totals {
    /// Adds one count to this one.
    pub fn add(&mut self, packets: u64, bytes: u64) {
        self.packets += packets;
        self.bytes += bytes;
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pkts / {} bytes", self.packets, self.bytes)
    }
}

/// Totals per flow key.
pub type FlowTotals = BTreeMap<FlowKey, Totals>;

/// The sum over every key.
#[must_use]
pub fn grand_total(totals: &FlowTotals) -> Totals {
    let mut sum = Totals::default();
    for t in totals.values() {
        sum.add(t.packets, t.bytes);
    }
    sum
}

/// Sums the sensor's flow records (`flow_end` and `flow_interim`; interim
/// records carry deltas) per key, from `network.packets` and
/// `network.bytes`. Records of other actions are skipped. A record whose
/// `source` + `destination` counts disagree with its `network` counts is an
/// error: the sums below would not mean what they say.
pub fn totals_from_records(records: &[Value]) -> Result<FlowTotals> {
    let mut totals = FlowTotals::new();
    for (n, record) in records.iter().enumerate() {
        let action = record.pointer("/event/action").and_then(Value::as_str);
        if !matches!(action, Some("flow_end" | "flow_interim")) {
            continue;
        }
        let (key, t) =
            record_totals(record).with_context(|| format!("flow record {} ({})", n + 1, clip(record)))?;
        totals.entry(key).or_default().add(t.packets, t.bytes);
    }
    Ok(totals)
}

fn record_totals(record: &Value) -> Result<(FlowKey, Totals)> {
    let proto = record_proto(record)?;
    let ip = |side: &str| -> Result<IpAddr> {
        let raw = str_at(record, &format!("/{side}/ip"))?;
        raw.parse().with_context(|| format!("{side}.ip {raw:?} is not an IP address"))
    };
    let port = |side: &str| -> Result<Option<u16>> {
        match record.pointer(&format!("/{side}/port")) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let p = v
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .with_context(|| format!("{side}.port {v} is not a port number"))?;
                Ok(Some(p))
            }
        }
    };
    let key = FlowKey::new(proto, ip("source")?, port("source")?, ip("destination")?, port("destination")?);
    let total =
        Totals { packets: u64_at(record, "/network/packets")?, bytes: u64_at(record, "/network/bytes")? };
    let sides = Totals {
        packets: u64_at(record, "/source/packets")? + u64_at(record, "/destination/packets")?,
        bytes: u64_at(record, "/source/bytes")? + u64_at(record, "/destination/bytes")?,
    };
    if sides != total {
        bail!("source + destination = {sides}, but network = {total}");
    }
    Ok((key, total))
}

/// `network.iana_number` (a string of digits, as ECS has it), else the
/// number of `network.transport`.
fn record_proto(record: &Value) -> Result<u8> {
    if let Some(v) = record.pointer("/network/iana_number") {
        let parsed = match v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
            _ => None,
        };
        return parsed.with_context(|| format!("network.iana_number {v} is not a protocol number"));
    }
    let name = str_at(record, "/network/transport")?;
    proto_number(name).with_context(|| format!("network.transport {name:?} has no known number"))
}

fn str_at<'a>(record: &'a Value, pointer: &str) -> Result<&'a str> {
    record.pointer(pointer).and_then(Value::as_str).with_context(|| format!("no string at {pointer}"))
}

fn u64_at(record: &Value, pointer: &str) -> Result<u64> {
    record.pointer(pointer).and_then(Value::as_u64).with_context(|| format!("no whole number at {pointer}"))
}

fn clip(record: &Value) -> String {
    record.to_string().chars().take(300).collect()
}

/// A key whose totals differ (a side that lacks the key counts zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The flow.
    pub key: FlowKey,
    /// What tshark counted.
    pub expected: Totals,
    /// What the sensor's records sum to.
    pub got: Totals,
}

/// Every key whose totals differ, in key order.
#[must_use]
pub fn diff(expected: &FlowTotals, got: &FlowTotals) -> Vec<Mismatch> {
    let keys: std::collections::BTreeSet<&FlowKey> = expected.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let e = expected.get(key).copied().unwrap_or_default();
            let g = got.get(key).copied().unwrap_or_default();
            (e != g).then_some(Mismatch { key: *key, expected: e, got: g })
        })
        .collect()
}

/// The first `limit` mismatches, one line each, and how many more there are.
#[must_use]
pub fn render_diff(mismatches: &[Mismatch], limit: usize) -> String {
    let mut lines: Vec<String> = mismatches
        .iter()
        .take(limit)
        .map(|m| {
            let note = match (m.expected.packets, m.got.packets) {
                (_, 0) => "  (no sensor record)",
                (0, _) => "  (not in tshark)",
                _ => "",
            };
            format!("  {}: expected {}, got {}{note}", m.key, m.expected, m.got)
        })
        .collect();
    if mismatches.len() > limit {
        lines.push(format!("  … and {} more", mismatches.len() - limit));
    }
    lines.join("\n")
}

/// Name of an IP protocol number, for messages.
#[must_use]
pub fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        2 => "igmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        n => format!("proto {n}"),
    }
}

/// Number of a transport name as tshark's protocol list or the sensor's
/// `network.transport` spells it.
#[must_use]
pub fn proto_number(name: &str) -> Option<u8> {
    Some(match name {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "sctp" => 132,
        "udplite" => 136,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("bad test address {s:?}: {e}"))
    }

    #[test]
    fn keys_both_directions_the_same() {
        let a = FlowKey::new(6, ip("10.0.0.2"), Some(80), ip("10.0.0.1"), Some(1234));
        let b = FlowKey::new(6, ip("10.0.0.1"), Some(1234), ip("10.0.0.2"), Some(80));
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "tcp 10.0.0.1:1234 <-> 10.0.0.2:80");
    }

    #[test]
    fn keys_icmp_by_address_pair_only() {
        let echo = FlowKey::new(1, ip("10.0.0.1"), Some(8), ip("10.0.0.2"), Some(0));
        let reply = FlowKey::new(1, ip("10.0.0.2"), None, ip("10.0.0.1"), None);
        assert_eq!(echo, reply);
    }

    #[test]
    fn sums_interim_and_end_records_per_key() -> Result<()> {
        let rec = |action: &str, sp: u64, dp: u64, sb: u64, db: u64| {
            serde_json::json!({
                "event": {"action": action},
                "source": {"ip": "10.0.0.1", "port": 1234, "packets": sp, "bytes": sb},
                "destination": {"ip": "10.0.0.2", "port": 80, "packets": dp, "bytes": db},
                "network": {"iana_number": "6", "transport": "tcp",
                            "packets": sp + dp, "bytes": sb + db},
            })
        };
        let records = [
            rec("flow_interim", 2, 1, 120, 60),
            rec("flow_end", 1, 1, 40, 40),
            serde_json::json!({"event": {"action": "something_else"}}),
        ];
        let totals = totals_from_records(&records)?;
        let key = FlowKey::new(6, ip("10.0.0.2"), Some(80), ip("10.0.0.1"), Some(1234));
        assert_eq!(totals.get(&key), Some(&Totals { packets: 5, bytes: 260 }));
        assert_eq!(totals.len(), 1);
        Ok(())
    }

    #[test]
    fn rejects_a_record_whose_sides_do_not_add_up() {
        let record = serde_json::json!({
            "event": {"action": "flow_end"},
            "source": {"ip": "10.0.0.1", "packets": 1, "bytes": 40},
            "destination": {"ip": "10.0.0.2", "packets": 1, "bytes": 40},
            "network": {"iana_number": "47", "packets": 3, "bytes": 80},
        });
        assert!(totals_from_records(&[record]).is_err());
    }

    #[test]
    fn diff_reports_keys_missing_on_either_side() {
        let k1 = FlowKey::new(17, ip("::1"), Some(53), ip("::2"), Some(5353));
        let k2 = FlowKey::new(58, ip("::1"), None, ip("::2"), None);
        let expected = FlowTotals::from([(k1, Totals { packets: 2, bytes: 100 })]);
        let got = FlowTotals::from([(k2, Totals { packets: 1, bytes: 48 })]);
        let d = diff(&expected, &got);
        assert_eq!(d.len(), 2);
        let text = render_diff(&d, 1);
        assert!(text.contains("udp [::1]:53 <-> [::2]:5353: expected 2 pkts / 100 bytes, got 0 pkts / 0 bytes  (no sensor record)"), "{text}");
        assert!(text.contains("… and 1 more"), "{text}");
    }
}
