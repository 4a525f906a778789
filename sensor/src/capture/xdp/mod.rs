//! XDP capture: the kernel program (`ebpf/nbad-ebpf`) keeps per-flow counters and samples
//! packets on an interface; this module loads it, attaches it, and reads what it gathered.
//!
//! [`XdpCapture::attach`] loads the embedded object ([`object::EBPF_OBJECT`]) with the map
//! sizes from [`XdpSettings`], writes the sampling settings, attaches the program in the
//! requested [`XdpMode`] and measures the kernel clock. From then on:
//! - [`XdpCapture::poll_flows`] returns, per flow, what changed since it was last read
//!   ([`FlowDelta`], timestamps in wall-clock nanoseconds since the Unix epoch). It runs the
//!   collector program, which reads in the kernel only the flows the program marked active (see
//!   `active`), so a poll costs a few syscalls and work in proportion to the flows that had
//!   packets, not to the flows in the map; a packet is returned by the first poll after it
//!   arrived, [`XdpCapture::poll_flows_last`] included;
//! - [`XdpCapture::forget`] removes a flow userspace has expired, returning its last delta;
//! - [`XdpCapture::samples`] drains the sampled packets;
//! - [`XdpCapture::counters`] sums the program's outcome counters over the CPUs.
//!
//! Invariants and limits:
//! - The program never drops or changes traffic (it always returns `XDP_PASS`), and it is
//!   detached when the [`XdpCapture`] is dropped.
//! - XDP runs on **receive** only. On a SPAN/mirror port or a TAP every packet of both
//!   directions arrives as received traffic, so both directions are counted; on a host's own
//!   interface only the packets it receives are.
//! - Flow keys are built exactly as `decode` builds them, so kernel-counted and
//!   libpcap-decoded flows share one table; the program's docs list the few corner cases
//!   (later fragments, long IPv6 extension chains) where they differ.
//! - The kernel map is bounded (LRU): when it is full, the least recently used flow is evicted
//!   and its packets since the last poll are lost; polling often enough keeps that rare, and
//!   the `flow_map_full` counter shows inserts that failed outright.

mod active;
pub mod error;
mod loader;
pub mod object;
mod reader;
pub mod source;
mod totals;

use std::fmt;

use nbad_common::{FlowKey, SAMPLE_MAX_LEN, XdpConfig};
use reader::PollKind;

pub use error::XdpError;
pub use loader::KernelClock;
pub use reader::{FlowDelta, PollStats, Sample, XdpCounters};

/// How to attach the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver (native) mode only: fastest; fails when the driver lacks XDP support.
    Native,
    /// Generic (skb) mode: works on every interface, after the kernel has built an skb.
    Skb,
    /// Native if the driver supports it, else generic; [`AttachedMode`] says which it got.
    Auto,
}

/// The mode the program was attached in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachedMode {
    /// Driver (native) mode.
    Native,
    /// Generic (skb) mode, as requested.
    Skb,
    /// Generic mode after native mode failed ([`XdpMode::Auto`]); why native failed.
    SkbFallback {
        /// The native attempt's error, for the log.
        native_error: String,
    },
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native => f.write_str("native"),
            Self::Skb => f.write_str("skb"),
            Self::SkbFallback { native_error } => write!(f, "skb (native mode failed: {native_error})"),
        }
    }
}

/// Validated XDP capture settings. `Default` gives the program's own defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpSettings {
    /// Packets sampled at the start of each flow direction; counted per CPU, so a direction
    /// spread over k CPUs may yield up to k × this many. 0 turns flow-start sampling off.
    pub samples_per_direction: u32,
    /// Bytes copied from the start of each sampled frame, 0 to 256.
    pub sample_len: u32,
    /// Flows the kernel map holds (LRU), 1 to 16 777 216. Memory: about
    /// `(72 × CPUs + 100)` bytes per entry, plus about 100 bytes per entry for each of the two
    /// active sets, which are sized like it (each holds the flows of one epoch).
    pub flow_map_entries: u32,
    /// Size of the sample ring buffer in bytes, 4 KiB to 1 GiB; rounded up to a power-of-two
    /// number of pages. Each sample takes 328 bytes of it.
    pub sample_ring_bytes: u32,
    /// DNS and ICMP echo packets sampled beyond the flow start: token refill per second and
    /// CPU, at most 1 000 000.
    pub sample_rate_per_sec: u32,
    /// Token-bucket depth for those packets, per CPU.
    pub sample_burst: u32,
}

impl Default for XdpSettings {
    fn default() -> Self {
        let d = XdpConfig::DEFAULT;
        Self {
            samples_per_direction: d.samples_per_direction,
            sample_len: d.sample_len,
            flow_map_entries: nbad_common::FLOWS_DEFAULT_MAX_ENTRIES,
            sample_ring_bytes: nbad_common::SAMPLES_DEFAULT_BYTES,
            sample_rate_per_sec: d.rate_per_sec,
            sample_burst: d.burst,
        }
    }
}

impl XdpSettings {
    /// Largest [`XdpSettings::flow_map_entries`].
    pub const MAX_FLOW_MAP_ENTRIES: u32 = 1 << 24;

    /// Checks every value; the error names the first bad one.
    pub fn validate(&self) -> Result<(), XdpError> {
        let check = |ok: bool, key: &'static str, value: u32, valid: &'static str| {
            if ok { Ok(()) } else { Err(XdpError::InvalidSetting { key, value: value.to_string(), valid }) }
        };
        check(self.sample_len as usize <= SAMPLE_MAX_LEN, "sample_len", self.sample_len, "0 to 256 bytes")?;
        check(
            (1..=Self::MAX_FLOW_MAP_ENTRIES).contains(&self.flow_map_entries),
            "flow_map_entries",
            self.flow_map_entries,
            "1 to 16777216 flows",
        )?;
        check(
            (4096..=1 << 30).contains(&self.sample_ring_bytes),
            "sample_ring_bytes",
            self.sample_ring_bytes,
            "4096 to 1073741824 bytes",
        )?;
        check(
            self.sample_rate_per_sec <= XdpConfig::MAX_RATE_PER_SEC,
            "sample_rate_per_sec",
            self.sample_rate_per_sec,
            "0 to 1000000 samples per second and CPU",
        )
    }

    /// The settings as the program reads them.
    fn program_config(&self) -> XdpConfig {
        XdpConfig {
            configured: 1,
            samples_per_direction: self.samples_per_direction,
            sample_len: self.sample_len,
            rate_per_sec: self.sample_rate_per_sec,
            burst: self.sample_burst,
            epoch: active::Epochs::FIRST,
        }
    }
}

/// The XDP program attached to one interface, and the reader of its maps.
pub struct XdpCapture {
    interface: String,
    mode: AttachedMode,
    clock: KernelClock,
    // Field order matters for Drop: the reader's maps go before the program they belong to.
    reader: reader::Reader,
    program: loader::Attached,
}

impl fmt::Debug for XdpCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpCapture")
            .field("interface", &self.interface)
            .field("mode", &self.mode)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl XdpCapture {
    /// Loads the program with `settings`, attaches it to `interface` in `mode`, and measures the
    /// kernel clock. Needs CAP_BPF and CAP_NET_ADMIN (or root).
    ///
    /// The error says exactly what stood in the way; see [`XdpError`]. With [`XdpMode::Auto`] a
    /// failed native attach is retried in skb mode, and [`XdpCapture::mode`] says so.
    pub fn attach(interface: &str, mode: XdpMode, settings: &XdpSettings) -> Result<Self, XdpError> {
        settings.validate()?;
        validate_interface_name(interface)?;
        let mut ebpf = loader::load(settings.flow_map_entries, settings.sample_ring_bytes)?;
        loader::configure(&mut ebpf, &settings.program_config())?;
        loader::load_programs(&mut ebpf)?;
        let clock = KernelClock::measure(&ebpf)?;
        let reader = reader::Reader::new(&mut ebpf, settings)?;
        let (program, attached_mode) = loader::Attached::attach(ebpf, interface, mode)?;
        Ok(Self { interface: interface.to_owned(), mode: attached_mode, clock, reader, program })
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The mode the program was attached in.
    pub fn mode(&self) -> &AttachedMode {
        &self.mode
    }

    /// The conversion from kernel timestamps to wall-clock time in use.
    pub fn clock(&self) -> KernelClock {
        self.clock
    }

    /// Measures the clock offset again, e.g. after the wall clock was stepped.
    pub fn recalibrate_clock(&mut self) -> Result<KernelClock, XdpError> {
        self.clock = KernelClock::measure(self.program.ebpf())?;
        Ok(self.clock)
    }

    /// What the flows with packets gained since they were last read; flows without new
    /// packets are left out. Every packet that arrived before the poll shows up (see the
    /// `active` module).
    pub fn poll_flows(&mut self) -> Result<Vec<FlowDelta>, XdpError> {
        self.reader.poll_flows(&self.clock, PollKind::Interval { prune_before_ns: None }, self.program.ebpf())
    }

    /// Like [`Self::poll_flows`], and also removes from the kernel map (now and then, not at
    /// every poll) the flows without new packets whose last packet came before
    /// `idle_before_ns` (wall clock, ns since the epoch).
    pub fn poll_flows_pruning(&mut self, idle_before_ns: u64) -> Result<Vec<FlowDelta>, XdpError> {
        let kind = PollKind::Interval { prune_before_ns: Some(idle_before_ns) };
        self.reader.poll_flows(&self.clock, kind, self.program.ebpf())
    }

    /// The poll at shutdown: like [`Self::poll_flows`], without pruning.
    pub fn poll_flows_last(&mut self) -> Result<Vec<FlowDelta>, XdpError> {
        self.reader.poll_flows(&self.clock, PollKind::Last, self.program.ebpf())
    }

    /// What polling has cost so far (flows read one by one, whole-map walks, ...).
    pub fn poll_stats(&self) -> PollStats {
        self.reader.poll_stats()
    }

    /// Removes `key` from the kernel map (userspace expired it) and returns what it gained
    /// since the last poll, if anything. A packet arriving after this starts a new flow.
    pub fn forget(&mut self, key: &FlowKey) -> Result<Option<FlowDelta>, XdpError> {
        self.reader.forget(key, &self.clock)
    }

    /// Hands every sample waiting in the ring buffer to `f`, at most one ring's worth per call
    /// (so a busy producer cannot keep the caller here), and returns how many it handed over.
    pub fn samples(&mut self, f: impl FnMut(Sample<'_>)) -> usize {
        self.reader.samples(&self.clock, f)
    }

    /// The program's outcome counters, summed over the CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        self.reader.counters()
    }
}

/// Linux interface names: 1 to 15 bytes, no `/`, `:`, whitespace or NUL (`dev_valid_name`).
fn validate_interface_name(name: &str) -> Result<(), XdpError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(XdpError::InvalidSetting {
            key: "interface",
            value: format!("{name:?}"),
            valid: "an interface name of 1 to 15 bytes without '/', ':', whitespace or NUL",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_valid_and_match_the_program_defaults() {
        let settings = XdpSettings::default();
        assert!(settings.validate().is_ok());
        assert_eq!(settings.program_config(), XdpConfig::DEFAULT);
    }

    #[test]
    fn out_of_range_settings_name_the_key() {
        let bad = XdpSettings { sample_len: 257, ..XdpSettings::default() };
        let err = bad.validate().expect_err("257 bytes is more than a sample holds");
        assert!(err.to_string().contains("sample_len = 257"), "{err}");
        let bad = XdpSettings { flow_map_entries: 0, ..XdpSettings::default() };
        assert!(matches!(bad.validate(), Err(XdpError::InvalidSetting { key: "flow_map_entries", .. })));
    }

    #[test]
    fn interface_names_are_checked_before_the_kernel_sees_them() {
        assert!(validate_interface_name("eth0").is_ok());
        for bad in ["", "a/b", "sixteen-chars-xx", "nul\0", "with space"] {
            assert!(validate_interface_name(bad).is_err(), "{bad:?}");
        }
    }
}
