//! The collector: a program userspace runs with `BPF_PROG_TEST_RUN` once per poll (never
//! attached), which reads in the kernel what would otherwise cost userspace one `bpf()` syscall
//! per flow.
//!
//! It reads the active set of the epoch before the current one (`NBAD_ACTIVE_0` or
//! `NBAD_ACTIVE_1` by parity), which userspace has just closed: the program adds to the other
//! one. It walks it with `bpf_for_each_map_elem`; for each flow it sums the per-CPU counters
//! from `NBAD_FLOWS` with `bpf_map_lookup_percpu_elem`, writes a [`ReadRecord`] to the
//! `NBAD_READS` ring buffer, which userspace drains through shared memory, and removes the flow
//! from the set. When the ring is full the walk stops and returns [`COLLECT_RING_FULL`]; the
//! flows not yet read are still in the set, and userspace drains the ring and runs it again.
//!
//! Removing the current element while walking is safe for a hash map (the walk holds no bucket
//! lock); a removed element could only be reused by an insert into this set, which the program
//! makes only in this set's epochs.

use core::ffi::c_void;
use core::ptr::{addr_of, addr_of_mut};

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_for_each_map_elem, bpf_loop, bpf_map_delete_elem, bpf_map_lookup_percpu_elem},
    macros::xdp,
    programs::XdpContext,
};
use nbad_common::{COLLECT_DONE, COLLECT_MAX_CPUS, COLLECT_RING_FULL, FlowCounters, FlowKey, ReadRecord};

use crate::sample::config;
use crate::{NBAD_ACTIVE_0, NBAD_ACTIVE_1, NBAD_FLOWS, NBAD_READS};

/// What the walk shares with its callback (on the collector's stack).
#[repr(C)]
struct Walk {
    ring_full: u32,
}

/// Reads and empties one active set; see the module docs.
#[xdp]
pub fn nbad_collect(_ctx: XdpContext) -> u32 {
    let which = config().epoch.wrapping_sub(1);
    // aya-ebpf's maps are `repr(transparent)` over the kernel's `bpf_map_def`, so a map static's
    // address is what the helpers take as the map (aya-ebpf is pinned, see Cargo.toml).
    let set = if which & 1 == 0 {
        addr_of!(NBAD_ACTIVE_0).cast::<c_void>()
    } else {
        addr_of!(NBAD_ACTIVE_1).cast()
    };
    let mut walk = Walk { ring_full: 0 };
    let callback: unsafe extern "C" fn(*mut c_void, *const FlowKey, *mut u32, *mut Walk) -> i64 = read_flow;
    // SAFETY: the callback has the signature the helper expects for a hash map, and `walk`
    // lives on this stack for the whole call.
    unsafe { bpf_for_each_map_elem(set.cast_mut(), callback as *mut c_void, addr_of_mut!(walk).cast(), 0) };
    if walk.ring_full != 0 { COLLECT_RING_FULL } else { COLLECT_DONE }
}

/// One flow's counters being summed over the CPUs (on the walk callback's stack).
#[repr(C)]
struct Sum {
    key: FlowKey,
    totals: FlowCounters,
    cpus: u32,
}

/// `bpf_loop`'s callback: adds CPU `cpu`'s counters; 1 (stop) past the last CPU, or when the
/// flow left NBAD_FLOWS (evicted or pruned).
unsafe extern "C" fn add_cpu(cpu: u64, sum: *mut Sum) -> i64 {
    // SAFETY: the helper passes our context, valid for the duration of the call.
    let sum = unsafe { &mut *sum };
    let flows = addr_of!(NBAD_FLOWS).cast_mut().cast::<c_void>();
    // SAFETY: `sum.key` is a key of the same size as NBAD_FLOWS's keys.
    let per_cpu = unsafe { bpf_map_lookup_percpu_elem(flows, addr_of!(sum.key).cast(), cpu as u32) }
        .cast::<FlowCounters>();
    if per_cpu.is_null() {
        return 1;
    }
    // SAFETY: a non-null result points to this CPU's copy of the value.
    sum.totals.accumulate(unsafe { &*per_cpu });
    sum.cpus += 1;
    0
}

/// The walk's callback: 0 to go on, 1 to stop (the ring is full).
unsafe extern "C" fn read_flow(
    set: *mut c_void,
    key: *const FlowKey,
    _epoch: *mut u32,
    walk: *mut Walk,
) -> i64 {
    let Some(mut slot) = NBAD_READS.reserve::<ReadRecord>(0) else {
        // SAFETY: the helper passes our context, valid for the duration of the call.
        unsafe { (*walk).ring_full = 1 };
        return 1;
    };
    // SAFETY: `key` is the walked element's key, valid for reads.
    let mut sum = Sum { key: unsafe { *key }, totals: FlowCounters::ZERO, cpus: 0 };
    let callback: unsafe extern "C" fn(u64, *mut Sum) -> i64 = add_cpu;
    // A helper loop rather than a bounded `while`: the verifier checks its body once, not
    // COLLECT_MAX_CPUS times, which made loading the program take a tenth of a second or more.
    // SAFETY: the callback has the signature the helper expects, and `sum` lives on this stack
    // for the whole call.
    unsafe { bpf_loop(COLLECT_MAX_CPUS, callback as *mut c_void, addr_of_mut!(sum).cast(), 0) };
    let (t, cpu) = (sum.totals, sum.cpus);
    if cpu == 0 {
        slot.discard(u64::from(BPF_RB_NO_WAKEUP));
    } else {
        // SAFETY: `slot` is a reserved ring slot of `size_of::<ReadRecord>()` bytes, and `key`
        // is valid for reads.
        unsafe { slot.as_mut_ptr().write(ReadRecord { key: *key, pad: [0; 4], totals: t }) };
        // Userspace drains the ring right after this run; a wake-up would be wasted work.
        slot.submit(u64::from(BPF_RB_NO_WAKEUP));
    }
    // SAFETY: `set` is the map being walked and `key` its current element's key.
    unsafe { bpf_map_delete_elem(set, key.cast()) };
    0
}
