//! Reading the figures: what a subject has accounted for and dropped (the sensor's stats JSON,
//! Suricata's stats.log), what tcpreplay says it sent, and the machine's CPU time from
//! `/proc/stat`.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cmd;

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) accounted: u64,
    pub(super) drops: u64,
    pub(super) counters: BTreeMap<String, u64>,
}

/// From the sensor's stats JSON; see the `live` module docs for what counts as accounted.
pub(super) fn sensor_counts(stats: &Value) -> Counts {
    let mut counters = BTreeMap::new();
    let capture = &stats["capture"];
    for (prefix, object) in [("capture.", capture), ("capture.source.", &capture["source"])] {
        if let Some(map) = object.as_object() {
            for (key, value) in map {
                if let Some(n) = value.as_u64() {
                    counters.insert(format!("{prefix}{key}"), n);
                }
            }
        }
    }
    // capture.threads > 1: each capture thread's share.
    for (i, thread) in capture["threads"].as_array().into_iter().flatten().enumerate() {
        for key in ["packets_read", "kernel_dropped"] {
            if let Some(n) = thread[key].as_u64() {
                counters.insert(format!("capture.threads.{i}.{key}"), n);
            }
        }
    }
    for key in [
        "/decode/parsed",
        "/decode/non_ip",
        "/decode/malformed_total",
        "/flows/created",
        "/flows/active_peak",
    ] {
        if let Some(n) = stats.pointer(key).and_then(Value::as_u64) {
            counters.insert(key.trim_start_matches('/').replace('/', "."), n);
        }
    }
    let get = |key: &str| counters.get(key).copied().unwrap_or(0);
    let xdp = counters.contains_key("capture.source.seen");
    let (accounted, drops) = if xdp {
        let outside_flows = ["not_ip", "truncated", "malformed"].map(|k| get(&format!("capture.source.{k}")));
        (get("capture.packets_read") + outside_flows.iter().sum::<u64>(), get("capture.source.flow_map_full"))
    } else {
        (get("capture.packets_read"), get("capture.kernel_dropped") + get("capture.interface_dropped"))
    };
    Counts { accounted, drops, counters }
}

/// From Suricata's stats.log: the last value of each counter (the log is appended to every
/// `stats.interval` seconds). Accounted: `decoder.pkts`; drops: `capture.kernel_drops`.
pub(super) fn suricata_counts(stats_log: &str) -> Result<Counts> {
    let mut counters = BTreeMap::new();
    // "capture.kernel_packets                        | Total                     | 1000"
    for line in stats_log.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [name, "Total", value] = cells[..]
            && let Ok(n) = value.parse::<u64>()
        {
            counters.insert(name.to_owned(), n);
        }
    }
    let accounted = *counters.get("decoder.pkts").context("no decoder.pkts in stats.log yet")?;
    let drops = counters.get("capture.kernel_drops").copied().unwrap_or(0);
    counters.retain(|k, _| k.starts_with("capture.") || k == "decoder.pkts" || k.starts_with("flow.total"));
    Ok(Counts { accounted, drops, counters })
}

/// tcpreplay's summary: "Actual: 1000000 packets (162922068 bytes) sent in 1.25 seconds".
pub(super) fn parse_tcpreplay(text: &str) -> Option<(u64, f64)> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix("Actual:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let packets = words.first()?.parse().ok()?;
    let seconds = words.iter().position(|w| *w == "in").and_then(|i| words.get(i + 1))?.parse().ok()?;
    Some((packets, seconds))
}

/// The number after `label` on the first line that has it ("Failed packets:  5040").
pub(super) fn find_count(text: &str, label: &str) -> Option<u64> {
    text.lines().find_map(|l| l.trim().strip_prefix(label)).and_then(|rest| rest.trim().parse().ok())
}

/// The machine's CPU time so far, in clock ticks, summed over the CPUs (`/proc/stat`).
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuTimes {
    /// user + nice + system + irq + softirq + steal (guest time is inside user).
    pub(super) busy: u64,
    pub(super) softirq: u64,
}

impl CpuTimes {
    pub(super) fn read() -> Result<Self> {
        let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
        Self::parse(line).context("parsing /proc/stat")
    }

    /// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`
    fn parse(line: &str) -> Option<Self> {
        let v: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(Self { busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7), softirq: at(6) })
    }
}

/// `getconf CLK_TCK` (the unit of `/proc/stat`), 100 if it cannot be read.
pub(super) fn clock_ticks() -> f64 {
    cmd::probe(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_packets_and_seconds_from_the_tcpreplay_summary() {
        let text = "Actual: 1000000 packets (162922068 bytes) sent in 1.25 seconds\n\
                    Rated: 129524551.0 Bps, 1036.19 Mbps, 795009.24 pps\n\
                    Statistics for network device: nbbtx\n\tSuccessful packets:        1000000\n\
                    \tFailed packets:            5040\n";
        assert_eq!(parse_tcpreplay(text), Some((1_000_000, 1.25)));
        assert_eq!(find_count(text, "Failed packets:"), Some(5040));
        assert_eq!(parse_tcpreplay("Warning: nothing sent"), None);
    }

    #[test]
    fn xdp_accounts_packets_in_flows_and_frames_outside_them() {
        let stats = json!({
            "capture": { "packets_read": 990, "kernel_dropped": 0, "interface_dropped": 0,
                "source": { "seen": 1000, "parsed": 995, "not_ip": 3, "truncated": 1, "malformed": 1,
                    "flow_map_full": 5 } },
            "decode": { "parsed": 990 }, "flows": { "created": 10, "active_peak": 10 }
        });
        let counts = sensor_counts(&stats);
        assert_eq!((counts.accounted, counts.drops), (995, 5));
        assert_eq!(counts.counters["capture.source.seen"], 1000);
    }

    #[test]
    fn libpcap_accounts_frames_read_and_reports_its_drops() {
        let stats =
            json!({ "capture": { "packets_read": 900, "kernel_dropped": 70, "interface_dropped": 30 } });
        let counts = sensor_counts(&stats);
        assert_eq!((counts.accounted, counts.drops), (900, 100));
    }

    #[test]
    fn takes_the_last_suricata_stats_dump() {
        let log = "Counter | TM Name | Value\n\
                   capture.kernel_packets | Total | 10\ndecoder.pkts | Total | 10\n\
                   ------\n\
                   capture.kernel_packets | Total | 25\ncapture.kernel_drops | Total | 2\ndecoder.pkts | Total | 23\n";
        let counts = suricata_counts(log).expect("counts");
        assert_eq!((counts.accounted, counts.drops), (23, 2));
        assert!(suricata_counts("Counter | TM Name | Value\n").is_err());
    }

    #[test]
    fn counts_busy_time_without_idle_and_iowait() {
        let t = CpuTimes::parse("cpu  100 10 50 1000 20 5 7 3 0 0").expect("parses");
        assert_eq!((t.busy, t.softirq), (175, 7));
    }
}
