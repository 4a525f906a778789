//! Types that cross the kernel/userspace boundary.
//!
//! Everything here is `#[repr(C)]`, built from fixed-width integers and byte
//! arrays, with explicit zeroed padding: the kernel hashes the raw bytes of map
//! keys, so two keys that compare equal must also be byte-for-byte equal. Each
//! type has a compile-time size assertion so that a layout change breaks the
//! build instead of silently corrupting map reads.
//!
//! Userspace never reinterprets memory as these types (the workspace denies
//! `unsafe`): each type that userspace reads or writes has `to_bytes`/`from_bytes`
//! in the host's byte order, checked field by field against the `#[repr(C)]`
//! layout with `offset_of!` at compile time. The maps are therefore declared in
//! userspace with byte-array keys and values (`[u8; FlowKey::LEN]`, ...).
//!
//! The crate is `no_std` so that the XDP program can use it; userspace uses the
//! very same definitions.
#![no_std]

use core::mem::offset_of;

/// Name of the XDP program inside the embedded eBPF object.
pub const XDP_PROGRAM_NAME: &str = "nbad_xdp";

/// Name of the one-shot XDP program that reads the kernel's monotonic clock into
/// [`CLOCK_MAP_NAME`]. Userspace runs it with `BPF_PROG_TEST_RUN` (it is never attached) to
/// measure the offset between `bpf_ktime_get_ns` and the wall clock.
pub const CLOCK_PROGRAM_NAME: &str = "nbad_clock";

/// Name of the per-CPU array holding the XDP program's outcome counters.
pub const COUNTERS_MAP_NAME: &str = "NBAD_COUNTERS";

/// Name of the LRU per-CPU hash `FlowKey` → [`FlowCounters`].
pub const FLOWS_MAP_NAME: &str = "NBAD_FLOWS";

/// Name of the ring buffer carrying [`SampleRecord`]s to userspace.
pub const SAMPLES_MAP_NAME: &str = "NBAD_SAMPLES";

/// Names of the two hashes `FlowKey` → epoch (`u32`) that hold the flows marked active, one per
/// epoch parity: the program inserts into `ACTIVE_MAP_NAMES[epoch % 2]`, and
/// [`COLLECT_PROGRAM_NAME`] reads and empties the other one once its epoch has closed.
pub const ACTIVE_MAP_NAMES: [&str; 2] = ["NBAD_ACTIVE_0", "NBAD_ACTIVE_1"];

/// Name of the ring buffer carrying [`ReadRecord`]s from [`COLLECT_PROGRAM_NAME`] to userspace.
pub const READS_MAP_NAME: &str = "NBAD_READS";

/// Name of the XDP program userspace runs with `BPF_PROG_TEST_RUN` at every poll (it is never
/// attached): it walks the one of [`ACTIVE_MAP_NAMES`] that belongs to the epoch before
/// [`XdpConfig::epoch`], writes the totals of each flow in it to [`READS_MAP_NAME`] and removes
/// the flow from it. It returns [`COLLECT_DONE`] or [`COLLECT_RING_FULL`].
pub const COLLECT_PROGRAM_NAME: &str = "nbad_collect";

/// [`COLLECT_PROGRAM_NAME`]'s return value when every active flow was written.
pub const COLLECT_DONE: u32 = 0;
/// Its return value when [`READS_MAP_NAME`] filled up: userspace drains it and runs it again.
pub const COLLECT_RING_FULL: u32 = 1;
/// Most CPUs whose copies [`COLLECT_PROGRAM_NAME`] sums; the loader refuses more.
pub const COLLECT_MAX_CPUS: u32 = 256;

/// Name of the one-slot array holding the [`XdpConfig`].
pub const CONFIG_MAP_NAME: &str = "NBAD_CONFIG";

/// Name of the per-CPU one-slot array holding the sampling token bucket (kernel-private).
pub const RATE_MAP_NAME: &str = "NBAD_RATE";

/// Name of the one-slot array [`CLOCK_PROGRAM_NAME`] writes `bpf_ktime_get_ns` into.
pub const CLOCK_MAP_NAME: &str = "NBAD_CLOCK";

/// `max_entries` of [`FLOWS_MAP_NAME`] in the object; the loader overrides it from settings.
pub const FLOWS_DEFAULT_MAX_ENTRIES: u32 = 65_536;

/// Size of [`SAMPLES_MAP_NAME`] in the object, in bytes (a power-of-two number of pages);
/// the loader overrides it from settings.
pub const SAMPLES_DEFAULT_BYTES: u32 = 1 << 20;

/// Size of [`READS_MAP_NAME`], in bytes: 32 768 records of 128 bytes.
pub const READS_BYTES: u32 = 1 << 22;

/// Most bytes of a frame a sample carries; the size of [`SampleRecord::data`].
pub const SAMPLE_MAX_LEN: usize = 256;

/// IP version tags stored in [`FlowKey::ip_version`].
pub const IP_V4: u8 = 4;
/// IP version tag for IPv6.
pub const IP_V6: u8 = 6;

/// Index into the `[_; 2]` arrays of [`FlowCounters`]: packets sent by the key's lower endpoint.
pub const DIR_FROM_LO: usize = 0;
/// Index for packets sent by the key's higher endpoint.
pub const DIR_FROM_HI: usize = 1;

/// A direction-free (canonical) flow key: the endpoint that sorts lower by
/// `(address, port)` is stored first.
///
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`) so that one key
/// type serves both families; `ip_version` tells them apart. For ICMP the
/// "ports" are the ICMP type and the Community-ID counterpart type (or code),
/// so an echo request and its reply land in the same flow.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct FlowKey {
    /// Lower endpoint address (16 bytes, IPv4-mapped for IPv4).
    pub addr_lo: [u8; 16],
    /// Higher endpoint address.
    pub addr_hi: [u8; 16],
    /// Port of the lower endpoint, host byte order.
    pub port_lo: u16,
    /// Port of the higher endpoint, host byte order.
    pub port_hi: u16,
    /// Outer 802.1Q VLAN id (0 when untagged).
    pub vlan_outer: u16,
    /// Inner VLAN id of a QinQ frame (0 when absent).
    pub vlan_inner: u16,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// [`IP_V4`] or [`IP_V6`].
    pub ip_version: u8,
    /// Explicit padding; always zero.
    pub pad: [u8; 2],
}

const _: () = assert!(size_of::<FlowKey>() == 44);
const _: () = assert!(align_of::<FlowKey>() == 2);
const _: () = {
    assert!(offset_of!(FlowKey, addr_lo) == 0);
    assert!(offset_of!(FlowKey, addr_hi) == 16);
    assert!(offset_of!(FlowKey, port_lo) == 32);
    assert!(offset_of!(FlowKey, port_hi) == 34);
    assert!(offset_of!(FlowKey, vlan_outer) == 36);
    assert!(offset_of!(FlowKey, vlan_inner) == 38);
    assert!(offset_of!(FlowKey, proto) == 40);
    assert!(offset_of!(FlowKey, ip_version) == 41);
    assert!(offset_of!(FlowKey, pad) == 42);
};

impl FlowKey {
    /// Size of the key in map memory.
    pub const LEN: usize = size_of::<Self>();

    /// The key's bytes as the kernel stores them (host byte order, zero padding).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..16].copy_from_slice(&self.addr_lo);
        out[16..32].copy_from_slice(&self.addr_hi);
        out[32..34].copy_from_slice(&self.port_lo.to_ne_bytes());
        out[34..36].copy_from_slice(&self.port_hi.to_ne_bytes());
        out[36..38].copy_from_slice(&self.vlan_outer.to_ne_bytes());
        out[38..40].copy_from_slice(&self.vlan_inner.to_ne_bytes());
        out[40] = self.proto;
        out[41] = self.ip_version;
        out
    }

    /// Reads a key from its map bytes. The padding is dropped (set to zero).
    #[must_use]
    pub fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        Self {
            addr_lo: arr(b, 0),
            addr_hi: arr(b, 16),
            port_lo: u16::from_ne_bytes(arr(b, 32)),
            port_hi: u16::from_ne_bytes(arr(b, 34)),
            vlan_outer: u16::from_ne_bytes(arr(b, 36)),
            vlan_inner: u16::from_ne_bytes(arr(b, 38)),
            proto: b[40],
            ip_version: b[41],
            pad: [0; 2],
        }
    }
}

/// Per-flow counters the XDP program keeps, one copy per CPU, indexed by direction
/// ([`DIR_FROM_LO`], [`DIR_FROM_HI`]). Userspace sums the CPUs.
///
/// Timestamps are `bpf_ktime_get_ns` (CLOCK_MONOTONIC) nanoseconds; 0 means "no packet in
/// that direction on this CPU yet".
///
/// `marked_epoch` is the program's own bookkeeping, not a counter: the [`XdpConfig::epoch`] in
/// which this CPU last marked the flow in [`ACTIVE_MAP_NAMES`]. A new entry starts at 0, which
/// no epoch ever is, so its first packet always marks it.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FlowCounters {
    /// Packets per direction.
    pub packets: [u64; 2],
    /// IP-layer bytes per direction (IPv4 total length, IPv6 payload length + 40).
    pub bytes: [u64; 2],
    /// Monotonic time of the first packet per direction.
    pub first_ns: [u64; 2],
    /// Monotonic time of the latest packet per direction.
    pub last_ns: [u64; 2],
    /// TCP flags seen per direction, OR-ed (0 for other protocols).
    pub tcp_flags: [u8; 2],
    /// Explicit padding; always zero.
    pub pad: [u8; 2],
    /// The epoch in which this CPU last marked the flow in [`ACTIVE_MAP_NAMES`] (0: never).
    pub marked_epoch: u32,
}

const _: () = assert!(size_of::<FlowCounters>() == 72);
const _: () = assert!(align_of::<FlowCounters>() == 8);
const _: () = {
    assert!(offset_of!(FlowCounters, packets) == 0);
    assert!(offset_of!(FlowCounters, bytes) == 16);
    assert!(offset_of!(FlowCounters, first_ns) == 32);
    assert!(offset_of!(FlowCounters, last_ns) == 48);
    assert!(offset_of!(FlowCounters, tcp_flags) == 64);
    assert!(offset_of!(FlowCounters, pad) == 66);
    assert!(offset_of!(FlowCounters, marked_epoch) == 68);
};

impl FlowCounters {
    /// Size of the value in map memory (per CPU).
    pub const LEN: usize = size_of::<Self>();

    /// All zeros: the value the XDP program inserts for a new flow.
    pub const ZERO: Self = Self {
        packets: [0; 2],
        bytes: [0; 2],
        first_ns: [0; 2],
        last_ns: [0; 2],
        tcp_flags: [0; 2],
        pad: [0; 2],
        marked_epoch: 0,
    };

    /// Adds one CPU's counters for the same flow: packets and bytes add, the first stamp is the
    /// earliest non-zero one, the last stamp the latest, flags OR. `marked_epoch` is left alone.
    /// Both the collector program and userspace sum CPUs with this.
    #[inline(always)]
    pub fn accumulate(&mut self, c: &Self) {
        for d in 0..2 {
            self.packets[d] += c.packets[d];
            self.bytes[d] += c.bytes[d];
            self.tcp_flags[d] |= c.tcp_flags[d];
            if c.first_ns[d] != 0 && (self.first_ns[d] == 0 || c.first_ns[d] < self.first_ns[d]) {
                self.first_ns[d] = c.first_ns[d];
            }
            if c.last_ns[d] > self.last_ns[d] {
                self.last_ns[d] = c.last_ns[d];
            }
        }
    }

    /// Reads one CPU's counters from their map bytes.
    #[must_use]
    pub fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        let pair = |at: usize| [u64::from_ne_bytes(arr(b, at)), u64::from_ne_bytes(arr(b, at + 8))];
        Self {
            packets: pair(0),
            bytes: pair(16),
            first_ns: pair(32),
            last_ns: pair(48),
            tcp_flags: [b[64], b[65]],
            pad: [0; 2],
            marked_epoch: u32::from_ne_bytes(arr(b, 68)),
        }
    }

    /// The value's bytes as the kernel stores them.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        let fields = [self.packets, self.bytes, self.first_ns, self.last_ns];
        let mut at = 0;
        for pair in fields {
            for v in pair {
                out[at..at + 8].copy_from_slice(&v.to_ne_bytes());
                at += 8;
            }
        }
        out[64] = self.tcp_flags[0];
        out[65] = self.tcp_flags[1];
        out[68..72].copy_from_slice(&self.marked_epoch.to_ne_bytes());
        out
    }
}

/// Sampling settings the XDP program reads from [`CONFIG_MAP_NAME`] slot 0.
///
/// The array starts zeroed; `configured == 0` makes the program use [`XdpConfig::DEFAULT`],
/// so an object loaded without a config still samples sensibly.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XdpConfig {
    /// Non-zero once userspace has written this slot.
    pub configured: u32,
    /// Packets sampled at the start of each flow direction (counted per CPU, see the program).
    pub samples_per_direction: u32,
    /// Bytes of each sampled frame copied, at most [`SAMPLE_MAX_LEN`].
    pub sample_len: u32,
    /// Token-bucket refill rate for always-sampled packets (DNS, ICMP echo), per CPU and second.
    pub rate_per_sec: u32,
    /// Token-bucket depth: always-sampled packets allowed in a burst, per CPU.
    pub burst: u32,
    /// The current epoch, bumped by userspace at every poll; never 0. The first packet of a
    /// flow on a CPU in an epoch marks it in [`ACTIVE_MAP_NAMES`] (see
    /// [`FlowCounters::marked_epoch`]).
    pub epoch: u32,
}

const _: () = assert!(size_of::<XdpConfig>() == 24);
const _: () = assert!(offset_of!(XdpConfig, epoch) == 20);

impl XdpConfig {
    /// Size of the value in map memory.
    pub const LEN: usize = size_of::<Self>();
    /// Largest `rate_per_sec` the program honours (it clamps larger values), which keeps the
    /// token arithmetic inside `u64`.
    pub const MAX_RATE_PER_SEC: u32 = 1_000_000;

    /// The program's defaults: 8 samples per direction, 256 bytes, 200/s with a burst of 64.
    pub const DEFAULT: Self = Self {
        configured: 1,
        samples_per_direction: 8,
        sample_len: 256,
        rate_per_sec: 200,
        burst: 64,
        epoch: 1,
    };

    /// The value's bytes as the kernel stores them.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        let fields = [
            self.configured,
            self.samples_per_direction,
            self.sample_len,
            self.rate_per_sec,
            self.burst,
            self.epoch,
        ];
        for (i, v) in fields.into_iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        out
    }
}

/// One record in [`READS_MAP_NAME`]: a flow's counters summed over the CPUs (packets and bytes
/// added, first stamps the earliest non-zero, last stamps the latest, flags OR-ed;
/// `marked_epoch` is 0).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReadRecord {
    /// The flow.
    pub key: FlowKey,
    /// Explicit padding; always zero.
    pub pad: [u8; 4],
    /// The totals.
    pub totals: FlowCounters,
}

const _: () = assert!(size_of::<ReadRecord>() == 120);
const _: () = {
    assert!(offset_of!(ReadRecord, key) == 0);
    assert!(offset_of!(ReadRecord, totals) == 48);
};

impl ReadRecord {
    /// Size of the record in the ring (without the ring's own 8-byte header).
    pub const LEN: usize = size_of::<Self>();

    /// Reads a record from the start of its ring bytes; `None` when they are too short.
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b = prefix::<{ Self::LEN }>(b)?;
        Some(Self {
            key: FlowKey::from_bytes(&arr(b, 0)),
            pad: [0; 4],
            totals: FlowCounters::from_bytes(&arr(b, 48)),
        })
    }
}

/// Why a packet was sampled; [`SampleHeader::reason`].
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SampleReason {
    /// One of the first `samples_per_direction` packets of its flow direction (on its CPU).
    FlowStart = 0,
    /// A DNS packet (UDP or TCP port 53), sampled under the token bucket.
    Dns = 1,
    /// An ICMP or ICMPv6 echo request/reply, sampled under the token bucket.
    IcmpEcho = 2,
}

impl SampleReason {
    /// The reason for a wire value, `None` for an unknown one.
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::FlowStart),
            1 => Some(Self::Dns),
            2 => Some(Self::IcmpEcho),
            _ => None,
        }
    }
}

/// The fixed part of a sample in [`SAMPLES_MAP_NAME`].
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SampleHeader {
    /// `bpf_ktime_get_ns` when the packet was seen.
    pub ts_ns: u64,
    /// Length of the frame as the program saw it.
    pub wire_len: u32,
    /// Bytes of the frame in [`SampleRecord::data`] (≤ [`SAMPLE_MAX_LEN`]).
    pub cap_len: u32,
    /// The packet's flow.
    pub key: FlowKey,
    /// [`DIR_FROM_LO`] or [`DIR_FROM_HI`].
    pub direction: u8,
    /// A [`SampleReason`].
    pub reason: u8,
    /// Explicit padding; always zero.
    pub pad: [u8; 2],
}

const _: () = assert!(size_of::<SampleHeader>() == 64);
const _: () = {
    assert!(offset_of!(SampleHeader, ts_ns) == 0);
    assert!(offset_of!(SampleHeader, wire_len) == 8);
    assert!(offset_of!(SampleHeader, cap_len) == 12);
    assert!(offset_of!(SampleHeader, key) == 16);
    assert!(offset_of!(SampleHeader, direction) == 60);
    assert!(offset_of!(SampleHeader, reason) == 61);
};

impl SampleHeader {
    /// Size of the header at the start of each ring buffer record.
    pub const LEN: usize = size_of::<Self>();

    /// Reads the header from the start of a ring buffer record; `None` when it is too short.
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b = prefix::<{ Self::LEN }>(b)?;
        Some(Self {
            ts_ns: u64::from_ne_bytes(arr(b, 0)),
            wire_len: u32::from_ne_bytes(arr(b, 8)),
            cap_len: u32::from_ne_bytes(arr(b, 12)),
            key: FlowKey::from_bytes(&arr(b, 16)),
            direction: b[60],
            reason: b[61],
            pad: [0; 2],
        })
    }
}

/// One ring buffer record: the header and the first `cap_len` bytes of the frame. The program
/// reserves the whole record, whatever `cap_len`, because the verifier needs a constant size.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SampleRecord {
    /// The fixed part.
    pub header: SampleHeader,
    /// The frame's first bytes; only `header.cap_len` of them are meaningful.
    pub data: [u8; SAMPLE_MAX_LEN],
}

const _: () = assert!(size_of::<SampleRecord>() == SampleHeader::LEN + SAMPLE_MAX_LEN);
const _: () = assert!(align_of::<SampleRecord>() == 8);

/// Outcomes the XDP program counts, one slot each in [`COUNTERS_MAP_NAME`].
///
/// Every frame bumps `Seen` and exactly one of `Parsed`, `NotIp`, `Truncated`, `Malformed`.
/// A parsed packet may further bump `FlowMapFull` (not accounted), and `Sampled`, `RingFull`
/// or `RateLimited` (sampling outcome, at most one). `ActiveReported` and `ActiveFull` count
/// the flow's mark in [`ACTIVE_MAP_NAMES`] (at most one per packet, most packets neither).
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum XdpCounter {
    /// Packets the program saw.
    Seen = 0,
    /// Packets parsed up to the transport header (or to an IP payload it does not look into).
    Parsed = 1,
    /// Frames that carry no IP packet (ARP, LLDP, more than 4 VLAN tags, ...).
    NotIp = 2,
    /// Frames cut short before a header the program needed.
    Truncated = 3,
    /// Parsed packets that could not be accounted: inserting the flow failed.
    FlowMapFull = 4,
    /// Samples lost because the ring buffer was full.
    RingFull = 5,
    /// Always-sampled packets (DNS, ICMP echo) refused by the token bucket.
    RateLimited = 6,
    /// Samples written to the ring buffer.
    Sampled = 7,
    /// IP packets with an impossible header (IPv4 IHL < 5, TCP data offset < 5, wrong version).
    Malformed = 8,
    /// Flows marked active for an epoch in [`ACTIVE_MAP_NAMES`].
    ActiveReported = 9,
    /// Marks lost because the epoch's active set was full; userspace then walks the whole flow
    /// map instead (and the flow's next packet tries again).
    ActiveFull = 10,
}

impl XdpCounter {
    /// Every counter, in slot order.
    pub const ALL: [Self; XDP_COUNTER_SLOTS as usize] = [
        Self::Seen,
        Self::Parsed,
        Self::NotIp,
        Self::Truncated,
        Self::FlowMapFull,
        Self::RingFull,
        Self::RateLimited,
        Self::Sampled,
        Self::Malformed,
        Self::ActiveReported,
        Self::ActiveFull,
    ];

    /// The counter's name in statistics (snake case, stable).
    #[must_use]
    pub const fn name(self) -> &'static str {
        XDP_COUNTER_NAMES[self as usize]
    }
}

/// Statistic names of the counters, indexed by slot.
pub const XDP_COUNTER_NAMES: [&str; XDP_COUNTER_SLOTS as usize] = [
    "seen",
    "parsed",
    "not_ip",
    "truncated",
    "flow_map_full",
    "ring_full",
    "rate_limited",
    "sampled",
    "malformed",
    "active_reported",
    "active_full",
];

/// Number of slots in the counters map.
pub const XDP_COUNTER_SLOTS: u32 = 11;

const _: () = {
    let mut i = 0;
    while i < XdpCounter::ALL.len() {
        assert!(XdpCounter::ALL[i] as usize == i);
        i += 1;
    }
};

/// The ICMP (`v6 == false`) or ICMPv6 type that answers `icmp_type`, for the request/reply
/// pairs that Community ID treats as one two-way flow; `None` for one-way types.
///
/// The same table as the sensor's `flow::community_id::icmp_port_equivalents` (Zeek's
/// `ICMP4_counterpart`/`ICMP6_counterpart`); the XDP program uses this copy, and a sensor test
/// checks the two agree for every type.
#[must_use]
pub const fn icmp_counterpart(v6: bool, icmp_type: u8) -> Option<u8> {
    let counterpart = if v6 {
        match icmp_type {
            128 => 129,
            129 => 128,
            130 => 131,
            131 => 130,
            133 => 134,
            134 => 133,
            135 => 136,
            136 => 135,
            139 => 140,
            140 => 139,
            144 => 145,
            145 => 144,
            _ => return None,
        }
    } else {
        match icmp_type {
            8 => 0,
            0 => 8,
            10 => 9,
            9 => 10,
            13 => 14,
            14 => 13,
            15 => 16,
            16 => 15,
            17 => 18,
            18 => 17,
            _ => return None,
        }
    };
    Some(counterpart)
}

/// The first `N` bytes of `b`, `None` when it is shorter.
fn prefix<const N: usize>(b: &[u8]) -> Option<&[u8; N]> {
    b.get(..N)?.try_into().ok()
}

/// `N` bytes of `b` from `at`. Callers pass constant offsets inside `b`.
fn arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_key_bytes_round_trip_and_keep_padding_zero() {
        let key = FlowKey {
            addr_lo: [1; 16],
            addr_hi: [2; 16],
            port_lo: 0x1234,
            port_hi: 53,
            vlan_outer: 100,
            vlan_inner: 200,
            proto: 17,
            ip_version: IP_V6,
            pad: [0; 2],
        };
        let bytes = key.to_bytes();
        assert_eq!(&bytes[42..], &[0, 0]);
        assert_eq!(FlowKey::from_bytes(&bytes), key);
    }

    #[test]
    fn flow_counters_bytes_round_trip() {
        let c = FlowCounters {
            packets: [1, 2],
            bytes: [3, 4],
            first_ns: [5, 6],
            last_ns: [7, 8],
            tcp_flags: [0x12, 0x18],
            pad: [0; 2],
            marked_epoch: 9,
        };
        assert_eq!(FlowCounters::from_bytes(&c.to_bytes()), c);
    }

    #[test]
    fn read_record_is_read_from_its_ring_bytes() {
        let key = FlowKey { port_lo: 53, proto: 17, ip_version: IP_V4, ..FlowKey::default() };
        let totals = FlowCounters { packets: [1, 2], bytes: [60, 120], ..FlowCounters::ZERO };
        let mut bytes = [0u8; ReadRecord::LEN];
        bytes[..FlowKey::LEN].copy_from_slice(&key.to_bytes());
        bytes[48..].copy_from_slice(&totals.to_bytes());
        assert_eq!(ReadRecord::from_bytes(&bytes), Some(ReadRecord { key, pad: [0; 4], totals }));
        assert_eq!(ReadRecord::from_bytes(&bytes[..100]), None);
    }

    #[test]
    fn sample_header_is_read_from_a_record_prefix() {
        let mut record = [0u8; SampleHeader::LEN + 4];
        record[..8].copy_from_slice(&42u64.to_ne_bytes());
        record[8..12].copy_from_slice(&60u32.to_ne_bytes());
        record[12..16].copy_from_slice(&60u32.to_ne_bytes());
        record[16 + 40] = 17;
        record[60] = 1;
        record[61] = SampleReason::Dns as u8;
        let h = SampleHeader::from_bytes(&record).expect("a record longer than the header");
        assert_eq!((h.ts_ns, h.wire_len, h.cap_len, h.key.proto, h.direction), (42, 60, 60, 17, 1));
        assert_eq!(SampleReason::from_u8(h.reason), Some(SampleReason::Dns));
        assert!(SampleHeader::from_bytes(&record[..10]).is_none());
    }

    #[test]
    fn counter_names_follow_slot_order() {
        assert_eq!(XdpCounter::RateLimited.name(), "rate_limited");
        assert_eq!(XdpCounter::ALL.len(), XDP_COUNTER_NAMES.len());
    }
}
