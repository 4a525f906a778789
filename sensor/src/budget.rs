//! The memory budget of a configuration: what `nbad-sensor run` may hold at most with its caps,
//! item by item, and the `MemoryMax` / `MemoryHigh` the service unit should carry for it
//! (`nbad-sensor check-config FILE` prints the breakdown; `--memory-max` and `--memory-high`
//! print the bytes alone).
//!
//! Each item is a configured cap (or a fixed one in the code) times the bytes one entry takes.
//! Flat entries are sized from the types themselves (`size_of`, plus the growth slack of the
//! containers that hold them); entries with collections inside (a scan source's targets, a
//! host's baseline and channels) are sized from what they hold when they are busy, as measured
//! by the flood test (`tests/tests/flood.rs`, which checks the process's peak RSS against this
//! budget) and recorded in docs/RELIABILITY.md. Nested caps are not multiplied out: every host
//! at `max_channels_per_host` channels of `history` events, or every scan source at 4,096
//! ports of 4,096 targets, would be a worst case no appliance could reserve; those inner caps
//! bound one entry, the counters say when they bite.
//!
//! The kernel's share counts too: the libpcap ring and the XDP maps are charged to the
//! service's memory cgroup. The XDP flow map is per CPU, so the budget takes the CPU count as
//! a parameter (`check-config` uses this machine's).

use std::fmt::{self, Display, Formatter};

use crate::config::{CaptureMode, Config};

/// CPUs of the appliance the shipped service unit is sized for (`packaging/*.service`); a
/// test checks that its `MemoryMax` covers the packaged configuration's budget on it. An
/// appliance with more CPUs, or a bigger `max_flows`, resizes it with a drop-in.
pub const UNIT_CPUS: u64 = 16;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The process without any table: code, thread stacks, the async runtime, allocator slack.
/// With detection off, 20,000 flows and the table full, the flood test peaks at 15 MiB.
const BASE_BYTES: u64 = 32 * MIB;
/// Headroom of `MemoryMax` over the budget (×1.5), in tenths.
const MAX_HEADROOM_TENTHS: u64 = 15;
/// `MemoryHigh` (where the kernel starts reclaiming and throttling) over the budget (×1.2), in
/// tenths: under `MemoryMax`, so a sensor growing past its budget slows before it is killed.
const HIGH_HEADROOM_TENTHS: u64 = 12;

/// One flow in the table: the entry in a slab that grows by doubling (up to twice its length),
/// its slot in the hash index (an index and a control byte, at most 7/8 full after power-of-two
/// growth) and in the timer wheel.
const FLOW_OVERHEAD_BYTES: u64 = 24 + 16;
/// One XDP flow-map entry, besides its per-CPU counters: the key and the map's own overhead,
/// and the two active sets sized like it (`capture/xdp/mod.rs`).
const XDP_ENTRY_BYTES: u64 = 100 + 2 * 100;
/// Per CPU and XDP flow-map entry: the counters (`FlowCounters`, 72 bytes).
const XDP_PER_CPU_BYTES: u64 = 72;
/// A host with a baseline: its metric baselines, the open bucket's capped accumulators and its
/// beaconing channels, as a busy workstation holds them.
const HOST_BYTES: u64 = 8 * KIB;
/// A source the scan detector follows in a bucket: 1.6 KiB measured (docs/RELIABILITY.md: 90 MiB
/// between 8,192 and 65,536 followed spoofed sources).
const SCAN_SOURCE_BYTES: u64 = 1_664;
/// A source followed by the slow scan rules over their window.
const SLOW_SCAN_SOURCE_BYTES: u64 = 2 * KIB;
/// A flood victim or amplifier: its HyperLogLog (256 B), per-second bits and top talkers
/// (`flood::VICTIM_BYTES`, 1,712 B), in a map that grows by doubling.
fn flood_victim_bytes() -> u64 {
    n(crate::detect::flood::VICTIM_BYTES) * 2
}
/// A long connection followed (its flow key, start and counters in a map).
const LONG_CONNECTION_BYTES: u64 = 128;
/// A service (server, port, protocol) in the inventory.
const SERVICE_BYTES: u64 = 96;
/// An alert remembered for verdicts (its id, detector, host, window, score).
const LEDGER_ALERT_BYTES: u64 = 512;
/// A suppression (scope, author, reason, expiry).
const SUPPRESSION_BYTES: u64 = 256;
/// An alert as ECS JSON, in the console's list or in a sink's batch.
const ALERT_DOC_BYTES: u64 = 4 * KIB;
/// The detectors' fixed-size tables, whatever the configuration: DNS tracking (65,536 hosts),
/// resolved names (65,536 addresses), names of open flows (65,536), pending TLS hellos and HTTP
/// requests (4,096 each), the JA4 census (8,192).
const FIXED_DETECTOR_BYTES: u64 = 48 * MIB;
/// A sink's read buffer: one spool record at most (`deliver/spool/record.rs`).
const SINK_READ_BYTES: u64 = MIB;

/// One line of the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// What it is.
    pub what: &'static str,
    /// How it is counted: the cap and the entry size.
    pub how: String,
    /// Bytes.
    pub bytes: u64,
}

/// The memory budget of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    /// The items, in pipeline order.
    pub items: Vec<Item>,
    /// CPUs assumed (the XDP flow map is per CPU).
    pub cpus: u64,
}

fn item(what: &'static str, count: u64, entry: u64, unit: &str) -> Item {
    Item { what, how: format!("{count} {unit} × {entry} B"), bytes: count.saturating_mul(entry) }
}

fn n(x: impl TryInto<u64>) -> u64 {
    x.try_into().unwrap_or(u64::MAX)
}

impl MemoryBudget {
    /// The budget of `cfg` on a machine with `cpus` CPUs.
    #[must_use]
    pub fn of(cfg: &Config, cpus: u64) -> Self {
        let mut items = vec![Item { what: "base", how: "code, stacks, runtime".into(), bytes: BASE_BYTES }];
        items.push(capture(cfg, cpus));
        let flows = &cfg.flows;
        let workers = n(flows.workers);
        // Each worker's queue, its recycled batches and the one on each side in hand.
        let batches = workers * (n(flows.channel_depth) + 4);
        let packet = n(size_of::<crate::decode::PacketMeta>());
        items.push(item("packet batches", batches * n(flows.batch_size), packet, "packets"));
        let flow = n(crate::flow::FLOW_ENTRY_BYTES) * 2 + FLOW_OVERHEAD_BYTES;
        items.push(item("flow table", n(flows.max_flows), flow, "flows"));
        let record = n(size_of::<crate::flow::FlowRecord>());
        let inputs = workers + n(cfg.capture.threads);
        let chunks = n(crate::pipeline::ANALYSIS_QUEUE_PER_INPUT) * inputs + workers;
        items.push(item("flow records queued", chunks * n(crate::pipeline::RECORD_CHUNK), record, "records"));
        let export = &cfg.output.export;
        let queued = export.ipfix.iter().map(|x| n(x.queue_records)).sum::<u64>()
            + export.kafka.as_ref().map_or(0, |k| n(k.queue_records));
        if queued > 0 {
            items.push(item("export queues", queued, record, "records"));
        }
        if cfg.detection.enabled {
            detection(cfg, &mut items);
        }
        if let Some(console) = &cfg.console {
            items.push(item(
                "console alerts",
                2 * n(console.max_alerts),
                ALERT_DOC_BYTES,
                "alerts and incidents",
            ));
        }
        let sinks = &cfg.alerts.sinks;
        let batch = sinks.iter().map(|s| n(s.batch_max_events) * ALERT_DOC_BYTES + SINK_READ_BYTES).sum();
        items.push(Item {
            what: "alert sinks",
            how: format!("{} sinks, a batch and a read buffer each", sinks.len()),
            bytes: batch,
        });
        Self { items, cpus }
    }

    /// The budget of `cfg` on this machine.
    #[must_use]
    pub fn here(cfg: &Config) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |c| n(c.get()));
        Self::of(cfg, cpus)
    }

    /// Bytes, all items.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.items.iter().fold(0, |sum, i| sum.saturating_add(i.bytes))
    }

    /// What the unit's `MemoryMax` should be: the budget × 1.5, rounded up to MiB.
    #[must_use]
    pub fn memory_max(&self) -> u64 {
        round_up_mib(self.total().saturating_mul(MAX_HEADROOM_TENTHS) / 10)
    }

    /// What the unit's `MemoryHigh` should be: the budget × 1.2, rounded up to MiB.
    #[must_use]
    pub fn memory_high(&self) -> u64 {
        round_up_mib(self.total().saturating_mul(HIGH_HEADROOM_TENTHS) / 10)
    }
}

fn round_up_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

/// The kernel's capture memory: the libpcap ring, or the XDP maps and sample ring; `auto` may
/// end up with either.
fn capture(cfg: &Config, cpus: u64) -> Item {
    // One ring per capture thread (`capture.threads`, libpcap only).
    let pcap = u64::from(cfg.capture.buffer_bytes) * n(cfg.capture.threads);
    let xdp = &cfg.capture.xdp.settings;
    let per_entry = XDP_ENTRY_BYTES + XDP_PER_CPU_BYTES * cpus;
    let xdp_bytes = u64::from(xdp.flow_map_entries) * per_entry + u64::from(xdp.sample_ring_bytes);
    let xdp_how = format!(
        "XDP: {} entries × {per_entry} B ({cpus} CPUs) + {} B ring",
        xdp.flow_map_entries, xdp.sample_ring_bytes
    );
    match cfg.capture.mode {
        CaptureMode::Pcap => Item {
            what: "capture (kernel)",
            how: format!(
                "libpcap ring {} B × {} capture threads",
                cfg.capture.buffer_bytes, cfg.capture.threads
            ),
            bytes: pcap,
        },
        CaptureMode::Xdp => Item { what: "capture (kernel)", how: xdp_how, bytes: xdp_bytes },
        CaptureMode::Auto => Item {
            what: "capture (kernel)",
            how: format!("the larger of libpcap ring {pcap} B and {xdp_how}"),
            bytes: pcap.max(xdp_bytes),
        },
    }
}

fn detection(cfg: &Config, items: &mut Vec<Item>) {
    let d = &cfg.detection;
    items.push(item("host baselines", n(d.max_hosts), HOST_BYTES, "hosts (detection.max_hosts)"));
    if d.scan.enabled {
        items.push(item(
            "scan sources",
            n(d.scan.max_sources),
            SCAN_SOURCE_BYTES,
            "sources (scan.max_sources)",
        ));
        let slow = n(d.scan.slow_max_sources);
        items.push(item(
            "slow scan sources",
            slow,
            SLOW_SCAN_SOURCE_BYTES,
            "sources (scan.slow_max_sources)",
        ));
    }
    if d.flood.enabled {
        // Victims and amplifiers are each capped at max_victims.
        let victims = 2 * n(d.flood.max_victims);
        items.push(item(
            "flood victims",
            victims,
            flood_victim_bytes(),
            "victims and amplifiers (flood.max_victims)",
        ));
    }
    if d.long_connection.enabled {
        let tracked = n(d.long_connection.max_tracked);
        items.push(item(
            "long connections",
            tracked,
            LONG_CONNECTION_BYTES,
            "flows (long_connection.max_tracked)",
        ));
    }
    let services = n(d.protocol_mismatch.max_services);
    items.push(item(
        "service inventory",
        services,
        SERVICE_BYTES,
        "services (protocol_mismatch.max_services)",
    ));
    items.push(item(
        "verdict ledger",
        d.verdicts.max_alerts,
        LEDGER_ALERT_BYTES,
        "alerts (verdicts.max_alerts)",
    ));
    let suppressions = d.verdicts.max_suppressions;
    items.push(item(
        "suppressions",
        suppressions,
        SUPPRESSION_BYTES,
        "suppressions (verdicts.max_suppressions)",
    ));
    items.push(Item {
        what: "detector tables",
        how: "fixed caps in the code".into(),
        bytes: FIXED_DETECTOR_BYTES,
    });
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

impl Display for MemoryBudget {
    /// The breakdown as TOML comments, so that `check-config`'s output stays a valid file.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Memory budget ({} CPUs): what `run` may hold with these caps", self.cpus)?;
        for i in &self.items {
            writeln!(f, "#   {:<20} {:>10}  {}", i.what, mib(i.bytes), i.how)?;
        }
        writeln!(f, "#   {:<20} {:>10}", "total", mib(self.total()))?;
        let (high, max) = (self.memory_high(), self.memory_max());
        writeln!(f, "# Service unit: MemoryHigh={}M MemoryMax={}M", high / MIB, max / MIB)?;
        writeln!(f, "# (`nbad-sensor check-config --memory-max FILE` prints the MemoryMax bytes alone)")
    }
}

#[cfg(test)]
mod tests;
