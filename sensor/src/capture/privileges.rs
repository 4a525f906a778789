//! Dropping what capture no longer needs once it is open.
//!
//! Opening a capture needs `CAP_NET_RAW` (the packet socket), `CAP_BPF` and `CAP_PERFMON`
//! (loading the XDP program and its maps). Once the socket is open and the program attached,
//! libpcap needs none of these, and the XDP path needs only `CAP_BPF`: with
//! `kernel.unprivileged_bpf_disabled` set (Debian's default), every `bpf(2)` call, map reads
//! on an open descriptor included, wants it. The rest go from the effective, permitted,
//! inheritable and ambient sets, so that a bug later in the process cannot open another raw
//! socket or (with libpcap) load a program. `CAP_NET_ADMIN` stays: a promiscuous interface is
//! set back at exit, an XDP program attached through netlink is detached with it, and
//! automated response's local `nft` inherits it.
//!
//! A process that never had them (an unprivileged replay, a test) has nothing to drop; a
//! kernel or a seccomp filter that refuses the change leaves the process as it was, and the
//! caller logs it.

use caps::{CapSet, Capability};

/// What goes once capture is open (`CAP_BPF` only when the capture is not XDP's).
pub const DROPPED: [Capability; 3] = [Capability::CAP_NET_RAW, Capability::CAP_PERFMON, Capability::CAP_BPF];

/// Drops [`DROPPED`] (all but `CAP_BPF` when `xdp`) from every set of the calling thread, which
/// every thread it starts afterwards inherits; returns the names of those it held.
///
/// # Errors
/// The kernel refused to change a set.
pub fn drop_after_open(xdp: bool) -> Result<Vec<&'static str>, caps::errors::CapsError> {
    let held = caps::read(None, CapSet::Permitted)?;
    let mut dropped = Vec::new();
    for cap in DROPPED {
        if !held.contains(&cap) || (xdp && cap == Capability::CAP_BPF) {
            continue;
        }
        // Ambient first: it must stay a subset of permitted and inheritable.
        for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
            caps::drop(None, set, cap)?;
        }
        dropped.push(name(cap));
    }
    Ok(dropped)
}

fn name(cap: Capability) -> &'static str {
    match cap {
        Capability::CAP_NET_RAW => "CAP_NET_RAW",
        Capability::CAP_BPF => "CAP_BPF",
        Capability::CAP_PERFMON => "CAP_PERFMON",
        _ => "other",
    }
}
