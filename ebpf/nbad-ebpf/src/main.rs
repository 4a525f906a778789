//! The nbad XDP program: counts what arrives on an interface and passes every frame.
//!
//! This crate owns the kernel side of XDP capture and nothing else. It parses just enough of
//! each frame (Ethernet, up to two 802.1Q/802.1ad tags, the fixed IPv4 or IPv6 header) to
//! classify it, bumps one per-CPU counter for the outcome, and returns `XDP_PASS`.
//!
//! Invariants:
//! - It fails open: every path, including a frame it cannot parse, returns `XDP_PASS`.
//! - Packet memory is addressed only through [`ptr_at`], which checks the read against
//!   `data_end` before it hands out a pointer; this is also what the verifier needs to see.
//! - Map and program names come from `nbad-common`; the attribute macros take only literals,
//!   so the literals here are checked against those constants at compile time.
//!
//! Anything worth unit-testing lives in userspace code that also builds for the host; this
//! program stays small enough to read in one sitting.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use nbad_common::{COUNTERS_MAP_NAME, XDP_COUNTER_SLOTS, XDP_PROGRAM_NAME, XdpCounter};

/// Outcome counters, one `u64` per [`XdpCounter`] slot and CPU; userspace sums the CPUs.
///
/// The static's name is the map name (see the compile-time check below).
#[map]
static NBAD_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(XDP_COUNTER_SLOTS, 0);

// The `#[map]` and `#[xdp]` macros name the map and program after their items and accept only
// literals, so a rename in nbad-common must break this build rather than the loader at runtime.
const _: () = assert!(str_eq(COUNTERS_MAP_NAME, "NBAD_COUNTERS"));
const _: () = assert!(str_eq(XDP_PROGRAM_NAME, "nbad_xdp"));
// Every counter this program bumps has a slot in the map.
const _: () = {
    let used = [
        XdpCounter::Seen,
        XdpCounter::Parsed,
        XdpCounter::NotIp,
        XdpCounter::Truncated,
    ];
    let mut i = 0;
    while i < used.len() {
        assert!((used[i] as u32) < XDP_COUNTER_SLOTS);
        i += 1;
    }
};

/// License string the kernel reads from the object's `license` section.
///
/// The program calls only helpers that are not GPL-only (map lookups), so it declares the
/// project's own license. A GPL-only helper (`bpf_trace_printk`, `bpf_perf_event_output`, ...)
/// would need a GPL-compatible string here, and a licensing decision first.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 11] = *b"Apache-2.0\0";

const ETH_HDR_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const IPV4_MIN_HDR_LEN: usize = 20;
const IPV6_HDR_LEN: usize = 40;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// Pre-standard QinQ outer tag, still emitted by some switches.
const ETH_P_QINQ_LEGACY: u16 = 0x9100;

/// Tags the program looks through: outer and inner, matching `FlowKey::vlan_outer/inner`.
const MAX_VLAN_TAGS: usize = 2;

/// Ethernet II header. Byte arrays only, so the type has alignment 1 and any offset is valid.
#[repr(C)]
struct EthHdr {
    dst: [u8; 6],
    src: [u8; 6],
    ether_type: [u8; 2],
}

/// The part of an 802.1Q/802.1ad tag that follows the tag's own EtherType.
#[repr(C)]
struct VlanTag {
    tci: [u8; 2],
    ether_type: [u8; 2],
}

const _: () = assert!(size_of::<EthHdr>() == ETH_HDR_LEN);
const _: () = assert!(size_of::<VlanTag>() == VLAN_TAG_LEN);

/// The frame ended before a header the program needed.
struct Truncated;

/// Counts and passes every frame; see the module docs.
#[xdp]
pub fn nbad_xdp(ctx: XdpContext) -> u32 {
    count(XdpCounter::Seen);
    let outcome = try_nbad_xdp(&ctx).unwrap_or(XdpCounter::Truncated);
    count(outcome);
    xdp_action::XDP_PASS
}

/// Classifies one frame as [`XdpCounter::Parsed`] or [`XdpCounter::NotIp`].
#[inline(always)]
fn try_nbad_xdp(ctx: &XdpContext) -> Result<XdpCounter, Truncated> {
    let eth: *const EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: `ptr_at` checked that the header lies inside the packet; the type has alignment 1.
    let mut ether_type = u16::from_be_bytes(unsafe { (*eth).ether_type });
    let mut offset = ETH_HDR_LEN;

    // A constant bound keeps the loop acceptable to the verifier (LLVM unrolls it).
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(ether_type, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_LEGACY) {
            break;
        }
        let tag: *const VlanTag = ptr_at(ctx, offset)?;
        // SAFETY: as above, `ptr_at` bounds-checked this tag.
        ether_type = u16::from_be_bytes(unsafe { (*tag).ether_type });
        offset += VLAN_TAG_LEN;
    }

    // Reaching the transport header needs the fixed L3 header; IPv4 options and IPv6
    // extension headers are left to userspace.
    match ether_type {
        ETH_P_IPV4 => {
            let _: *const [u8; IPV4_MIN_HDR_LEN] = ptr_at(ctx, offset)?;
            Ok(XdpCounter::Parsed)
        }
        ETH_P_IPV6 => {
            let _: *const [u8; IPV6_HDR_LEN] = ptr_at(ctx, offset)?;
            Ok(XdpCounter::Parsed)
        }
        _ => Ok(XdpCounter::NotIp),
    }
}

/// Returns a pointer to a `T` at `offset` bytes into the frame, or [`Truncated`] when the frame
/// is too short to hold it. The only way this program addresses packet memory.
///
/// The pointer is valid to read for the rest of the program run; `T` must have alignment 1
/// (byte arrays), because frames carry no alignment guarantee.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Truncated> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(Truncated);
    }
    Ok((start + offset) as *const T)
}

/// Adds one to `counter`'s slot for this CPU.
#[inline(always)]
fn count(counter: XdpCounter) {
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
