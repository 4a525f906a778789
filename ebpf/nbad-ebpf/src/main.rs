//! The nbad XDP program: per-flow counters and packet samples for what arrives on an
//! interface, and every frame passed on.
//!
//! This crate owns the kernel side of XDP capture and nothing else. For each frame [`parse`]
//! builds the same canonical [`FlowKey`] as the sensor's userspace decoder
//! (`sensor/src/decode/mod.rs`); [`account`] adds the packet to the flow's per-CPU
//! [`FlowCounters`] in `NBAD_FLOWS` and, on the flow's first packet on this CPU in the current
//! epoch, adds the flow to that epoch's active set ([`mark_active`]); [`sample`] may copy the frame's
//! first bytes to the `NBAD_SAMPLES` ring buffer. Two more programs are never attached:
//! userspace runs [`nbad_clock`] to read the kernel clock, and [`collect::nbad_collect`] at every
//! poll to read the flows marked since it last ran.
//!
//! Invariants:
//! - It fails open: every path, including a frame it cannot parse or account, returns
//!   `XDP_PASS`. Every frame bumps `Seen` and one parse outcome in `NBAD_COUNTERS`; a parsed one
//!   may bump one accounting and one sampling outcome (see `nbad_common::XdpCounter`).
//! - Packet memory is addressed only through [`parse::ptr_at`], which checks the read against
//!   `data_end` before it hands out a pointer; this is also what the verifier needs to see.
//!   The one exception is the sample copy, done by the `bpf_xdp_load_bytes` helper, which
//!   checks its own bounds.
//! - Map and program names come from `nbad-common`; the attribute macros take only literals,
//!   so the literals here are checked against those constants at compile time.
//! - Only helpers that are not GPL-only are called (see [`LICENSE`]).
//! - The active mark costs one compare per packet: it is written only when the entry's
//!   `marked_epoch` differs from the epoch in `NBAD_CONFIG` (userspace bumps it at every poll),
//!   so at most once per flow, CPU and poll interval. A mark that cannot be stored is counted as
//!   `ActiveFull`; the entry stays unmarked, so the flow's next packet tries again, and userspace
//!   reads the whole flow map when it sees the counter move.
//!
//! Where the key can differ from userspace's (documented so nobody is surprised):
//! - later IPv4/IPv6 fragments are accounted with ports 0 (userspace remembers the first
//!   fragment's ports; the program keeps no fragment table);
//! - an IPv6 packet with more extension headers than the parser looks through is accounted
//!   under the last header reached, with ports 0.
#![no_std]
#![no_main]

mod collect;
mod parse;
mod sample;

use aya_ebpf::{
    bindings::{BPF_NOEXIST, xdp_action},
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use nbad_common::{
    ACTIVE_MAP_NAMES, CLOCK_MAP_NAME, CLOCK_PROGRAM_NAME, COLLECT_PROGRAM_NAME, CONFIG_MAP_NAME,
    COUNTERS_MAP_NAME, FLOWS_DEFAULT_MAX_ENTRIES, FLOWS_MAP_NAME, FlowCounters, FlowKey, RATE_MAP_NAME,
    READS_BYTES, READS_MAP_NAME, SAMPLES_DEFAULT_BYTES, SAMPLES_MAP_NAME, XDP_COUNTER_SLOTS,
    XDP_PROGRAM_NAME, XdpConfig, XdpCounter,
};

use parse::{Packet, Skip, parse};
use sample::{TokenBucket, config, sample};

/// Outcome counters, one `u64` per [`XdpCounter`] slot and CPU; userspace sums the CPUs.
///
/// Each static's name is its map name (see the compile-time checks below).
#[map]
static NBAD_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(XDP_COUNTER_SLOTS, 0);

/// Per-flow, per-CPU counters. LRU: when full, the least recently used flow is evicted (its
/// counts are lost unless userspace polled them), so an insert fails only in corner cases.
#[map]
pub(crate) static NBAD_FLOWS: LruPerCpuHashMap<FlowKey, FlowCounters> =
    LruPerCpuHashMap::with_max_entries(FLOWS_DEFAULT_MAX_ENTRIES, 0);

/// Samples for userspace, one fixed-size [`nbad_common::SampleRecord`] each.
#[map]
pub(crate) static NBAD_SAMPLES: RingBuf = RingBuf::with_byte_size(SAMPLES_DEFAULT_BYTES, 0);

/// The flows marked in even epochs (key → epoch); the loader sizes it like `NBAD_FLOWS`.
/// [`collect::nbad_collect`] empties it while odd epochs run.
#[map]
pub(crate) static NBAD_ACTIVE_0: HashMap<FlowKey, u32> =
    HashMap::with_max_entries(FLOWS_DEFAULT_MAX_ENTRIES, 0);

/// The flows marked in odd epochs.
#[map]
pub(crate) static NBAD_ACTIVE_1: HashMap<FlowKey, u32> =
    HashMap::with_max_entries(FLOWS_DEFAULT_MAX_ENTRIES, 0);

/// Flow totals from [`collect::nbad_collect`] to userspace.
#[map]
pub(crate) static NBAD_READS: RingBuf = RingBuf::with_byte_size(READS_BYTES, 0);

/// Slot 0: the [`XdpConfig`] written by userspace before it attaches the program, and again
/// at every poll with the next epoch.
#[map]
pub(crate) static NBAD_CONFIG: Array<XdpConfig> = Array::with_max_entries(1, 0);

/// Slot 0: this CPU's token bucket for always-sampled packets.
#[map]
pub(crate) static NBAD_RATE: PerCpuArray<TokenBucket> = PerCpuArray::with_max_entries(1, 0);

/// Slot 0: the monotonic clock as last read by [`nbad_clock`].
#[map]
static NBAD_CLOCK: Array<u64> = Array::with_max_entries(1, 0);

// The `#[map]` and `#[xdp]` macros name maps and programs after their items and accept only
// literals, so a rename in nbad-common must break this build rather than the loader at runtime.
const _: () = assert!(str_eq(COUNTERS_MAP_NAME, "NBAD_COUNTERS"));
const _: () = assert!(str_eq(FLOWS_MAP_NAME, "NBAD_FLOWS"));
const _: () = assert!(str_eq(SAMPLES_MAP_NAME, "NBAD_SAMPLES"));
const _: () = assert!(str_eq(ACTIVE_MAP_NAMES[0], "NBAD_ACTIVE_0"));
const _: () = assert!(str_eq(ACTIVE_MAP_NAMES[1], "NBAD_ACTIVE_1"));
const _: () = assert!(str_eq(READS_MAP_NAME, "NBAD_READS"));
const _: () = assert!(str_eq(COLLECT_PROGRAM_NAME, "nbad_collect"));
const _: () = assert!(str_eq(CONFIG_MAP_NAME, "NBAD_CONFIG"));
const _: () = assert!(str_eq(RATE_MAP_NAME, "NBAD_RATE"));
const _: () = assert!(str_eq(CLOCK_MAP_NAME, "NBAD_CLOCK"));
const _: () = assert!(str_eq(XDP_PROGRAM_NAME, "nbad_xdp"));
const _: () = assert!(str_eq(CLOCK_PROGRAM_NAME, "nbad_clock"));

/// License string the kernel reads from the object's `license` section.
///
/// The helpers used (map access, `bpf_ktime_get_ns`, `bpf_ringbuf_*`, `bpf_xdp_load_bytes`,
/// `bpf_xdp_get_buff_len`, and in the collector `bpf_for_each_map_elem`, `bpf_loop` and
/// `bpf_map_lookup_percpu_elem`) are not GPL-only, so the program declares the project's own
/// license. A GPL-only helper (`bpf_trace_printk`, `bpf_perf_event_output`, ...) would need a
/// GPL-compatible string here, and a licensing decision first.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 11] = *b"Apache-2.0\0";

/// The value inserted for a new flow. A static (in `.rodata`) rather than a stack temporary:
/// zeroing 72 stack bytes compiles to a `memset` call, a byte loop the verifier must walk.
static FLOW_ZERO: FlowCounters = FlowCounters::ZERO;

/// Accounts and maybe samples every frame, then passes it; see the module docs.
#[xdp]
pub fn nbad_xdp(ctx: XdpContext) -> u32 {
    count(XdpCounter::Seen);
    if let Err(skip) = try_nbad_xdp(&ctx) {
        count(skip.counter());
    }
    xdp_action::XDP_PASS
}

/// Stores the monotonic clock in `NBAD_CLOCK`. Never attached: userspace runs it with
/// `BPF_PROG_TEST_RUN` between two wall-clock reads to convert `bpf_ktime_get_ns` stamps.
#[xdp]
pub fn nbad_clock(_ctx: XdpContext) -> u32 {
    if let Some(slot) = NBAD_CLOCK.get_ptr_mut(0) {
        // SAFETY: the slot is a valid u64 in map memory; a racing writer would only be another
        // clock read, which is equally good.
        unsafe { *slot = bpf_ktime_get_ns() };
    }
    xdp_action::XDP_PASS
}

#[inline(always)]
fn try_nbad_xdp(ctx: &XdpContext) -> Result<(), Skip> {
    let packet = parse(ctx)?;
    count(XdpCounter::Parsed);
    account(ctx, &packet);
    Ok(())
}

/// Adds the packet to its flow (creating the flow if needed), reports the flow active if this
/// CPU has not yet done so in the current epoch, and samples the packet if due.
#[inline(always)]
fn account(ctx: &XdpContext, packet: &Packet) {
    // SAFETY: reads the monotonic clock; no memory is involved.
    let now = unsafe { bpf_ktime_get_ns() };
    let config = config();
    let Some(counters) = flow_counters(&packet.key) else {
        count(XdpCounter::FlowMapFull);
        return;
    };
    // The verifier must see that `dir` indexes a 2-element array. LLVM knows a `bool` is 0 or 1
    // and drops any mask on it, but the verifier sees a byte reloaded from the stack: 0..=255.
    // A volatile read hides the range from LLVM, so the mask survives for the verifier.
    let dir = usize::from(!packet.from_lo);
    // SAFETY: reads a local through a valid reference.
    let dir = unsafe { core::ptr::read_volatile(&dir) } & 1;
    // SAFETY: the value is this CPU's copy in a per-CPU map, and an XDP program is not
    // preempted or nested on its CPU, so nothing else writes it while we do. (Userspace may
    // read it concurrently and see a half-updated flow; it polls again later.)
    let (local_packets, marked) = unsafe {
        let c = &mut *counters;
        c.packets[dir] += 1;
        c.bytes[dir] += u64::from(packet.ip_len);
        if c.first_ns[dir] == 0 {
            c.first_ns[dir] = now;
        }
        c.last_ns[dir] = now;
        c.tcp_flags[dir] |= packet.tcp_flags;
        (c.packets[dir], c.marked_epoch == config.epoch)
    };
    if !marked {
        mark_active(&packet.key, config.epoch, counters);
    }
    sample(ctx, packet, dir, now, local_packets, &config);
}

/// Adds `key` to the active set of `epoch` and marks this CPU's entry, so that the flow's later
/// packets in the same epoch skip this. A full set leaves the entry unmarked.
#[inline(always)]
fn mark_active(key: &FlowKey, epoch: u32, counters: *mut FlowCounters) {
    let set = if epoch & 1 == 0 { &NBAD_ACTIVE_0 } else { &NBAD_ACTIVE_1 };
    // Another CPU may have added the flow in this epoch already (EEXIST): it is in the set.
    match set.insert(key, epoch, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        Err(err) if err == -EEXIST => {}
        Err(_) => {
            count(XdpCounter::ActiveFull);
            return;
        }
    }
    // SAFETY: this CPU's copy in a per-CPU map, as in `account`.
    unsafe { (*counters).marked_epoch = epoch };
    count(XdpCounter::ActiveReported);
}

/// `EEXIST` from `errno.h`: the key is already in the map.
const EEXIST: i32 = 17;

/// This CPU's counters for `key`, inserting zeroed counters for a new flow.
#[inline(always)]
fn flow_counters(key: &FlowKey) -> Option<*mut FlowCounters> {
    if let Some(counters) = NBAD_FLOWS.get_ptr_mut(key) {
        return Some(counters);
    }
    // Another CPU may insert the same flow between our lookup and insert (EEXIST): the second
    // lookup then finds it. Any other failure leaves the packet unaccounted.
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "by value, the static is copied to the stack through a `memset` call (see FLOW_ZERO)"
    )]
    let _ = NBAD_FLOWS.insert(key, &FLOW_ZERO, u64::from(BPF_NOEXIST));
    NBAD_FLOWS.get_ptr_mut(key)
}

/// Adds one to `counter`'s slot for this CPU.
#[inline(always)]
pub(crate) fn count(counter: XdpCounter) {
    if let Some(slot) = NBAD_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the slot belongs to this CPU, and an XDP program is not preempted or nested
        // on its CPU, so nothing else writes it while we do.
        unsafe { *slot = (*slot).wrapping_add(1) };
    }
}

/// `a == b` for `const` contexts, where `PartialEq` for `str` is not available.
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The verifier rejects any program in which a panic path survives (it would be an endless
/// loop), so this handler only has to exist; it is never reached by a loaded program.
#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
