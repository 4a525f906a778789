//! Sampling: which packets are copied to the `NBAD_SAMPLES` ring buffer, and the copy.
//!
//! The first `samples_per_direction` packets of each flow direction are sampled. The count is
//! this CPU's copy of the flow's counters: per-CPU values cannot be summed in the kernel, so a
//! direction whose packets arrive on k CPUs yields up to k × N samples (RSS normally keeps a
//! direction on one queue, hence one CPU). A flow evicted from the LRU map or forgotten by
//! userspace starts counting again. Beyond that, DNS (UDP/TCP port 53) and ICMP echo packets
//! are sampled while this CPU's token bucket has tokens (`rate_per_sec`, `burst`; the limit is
//! per CPU). A full ring drops the sample, never the packet.

use core::ptr::addr_of_mut;

use aya_ebpf::{
    helpers::{bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use nbad_common::{SAMPLE_MAX_LEN, SampleHeader, SampleReason, SampleRecord, XdpConfig, XdpCounter};

use crate::parse::{Class, Packet};
use crate::{NBAD_CONFIG, NBAD_RATE, NBAD_SAMPLES, count};

const NS_PER_SEC: u64 = 1_000_000_000;
/// Longest idle time the token bucket refills for; keeps `elapsed × rate` inside `u64`
/// (1000 s × [`XdpConfig::MAX_RATE_PER_SEC`] ≈ 1e18).
const MAX_REFILL_NS: u64 = 1_000 * NS_PER_SEC;

/// A per-CPU token bucket, in billionths of a token so that refills need no division.
#[repr(C)]
pub(crate) struct TokenBucket {
    nano_tokens: u64,
    last_ns: u64,
}

/// Copies the frame's first bytes to the ring buffer if the packet is due a sample.
#[inline(always)]
pub(crate) fn sample(
    ctx: &XdpContext,
    packet: &Packet,
    dir: usize,
    now: u64,
    local_packets: u64,
    config: &XdpConfig,
) {
    let reason = if local_packets <= u64::from(config.samples_per_direction) {
        SampleReason::FlowStart
    } else {
        match packet.class {
            Class::Plain => return,
            Class::Dns => SampleReason::Dns,
            Class::IcmpEcho => SampleReason::IcmpEcho,
        }
    };
    if reason != SampleReason::FlowStart && !take_token(now, config) {
        count(XdpCounter::RateLimited);
        return;
    }
    let Some(mut entry) = NBAD_SAMPLES.reserve::<SampleRecord>(0) else {
        count(XdpCounter::RingFull);
        return;
    };
    // SAFETY: the helper only reads the XDP buffer's length.
    let wire_len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    // Kept in u64 up to the helper call: truncating to u32 first makes LLVM zero-extend the
    // value into a fresh register, and the verifier loses the `cap_len > 0` it had proven
    // ("R4 invalid zero-sized read").
    let mut cap_len = u64::from(config.sample_len);
    if cap_len > wire_len {
        cap_len = wire_len;
    }
    if cap_len > SAMPLE_MAX_LEN as u64 {
        cap_len = SAMPLE_MAX_LEN as u64;
    }
    let record = entry.as_mut_ptr();
    if cap_len > 0 {
        // SAFETY: `record` is a reserved ring buffer slot of `size_of::<SampleRecord>()` bytes
        // and `cap_len <= SAMPLE_MAX_LEN`, the size of `data`; the helper bounds-checks the
        // packet side itself and fails (leaving `data` unwritten) if the frame is shorter.
        let copied =
            unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, addr_of_mut!((*record).data).cast(), cap_len as u32) };
        if copied < 0 {
            cap_len = 0;
        }
    }
    let header = SampleHeader {
        ts_ns: now,
        wire_len: wire_len as u32,
        cap_len: cap_len as u32,
        key: packet.key,
        direction: dir as u8,
        reason: reason as u8,
        pad: [0; 2],
    };
    // SAFETY: `record` points to the reserved slot; `write` initialises the header (including
    // its padding, so no stale ring bytes leak into it).
    unsafe { addr_of_mut!((*record).header).write(header) };
    entry.submit(0);
    count(XdpCounter::Sampled);
}

/// The settings userspace wrote, or the defaults when it wrote none.
#[inline(always)]
pub(crate) fn config() -> XdpConfig {
    match NBAD_CONFIG.get(0) {
        Some(config) if config.configured != 0 => *config,
        _ => XdpConfig::DEFAULT,
    }
}

/// Takes one token from this CPU's bucket, refilling it for the time since the last call.
#[inline(always)]
fn take_token(now: u64, config: &XdpConfig) -> bool {
    let Some(bucket) = NBAD_RATE.get_ptr_mut(0) else {
        return false;
    };
    let rate = u64::from(if config.rate_per_sec > XdpConfig::MAX_RATE_PER_SEC {
        XdpConfig::MAX_RATE_PER_SEC
    } else {
        config.rate_per_sec
    });
    let capacity = u64::from(config.burst) * NS_PER_SEC;
    // SAFETY: this CPU's slot of a per-CPU map; XDP does not nest or get preempted on a CPU.
    let bucket = unsafe { &mut *bucket };
    let mut elapsed = now.wrapping_sub(bucket.last_ns);
    if bucket.last_ns == 0 || elapsed > MAX_REFILL_NS {
        elapsed = MAX_REFILL_NS;
    }
    let mut tokens = bucket.nano_tokens + elapsed * rate;
    if tokens > capacity {
        tokens = capacity;
    }
    bucket.last_ns = now;
    if tokens >= NS_PER_SEC {
        bucket.nano_tokens = tokens - NS_PER_SEC;
        true
    } else {
        bucket.nano_tokens = tokens;
        false
    }
}
