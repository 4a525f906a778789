//! Types that cross the kernel/userspace boundary.
//!
//! Everything here is `#[repr(C)]`, built from fixed-width integers and byte
//! arrays, with explicit zeroed padding: the kernel hashes the raw bytes of map
//! keys, so two keys that compare equal must also be byte-for-byte equal. Each
//! type has a compile-time size assertion so that a layout change breaks the
//! build instead of silently corrupting map reads.
//!
//! The crate is `no_std` so that the XDP program can use it; userspace uses the
//! very same definitions.
#![no_std]

/// Name of the XDP program inside the embedded eBPF object.
pub const XDP_PROGRAM_NAME: &str = "nbad_xdp";

/// Name of the per-CPU array holding the XDP program's outcome counters.
pub const COUNTERS_MAP_NAME: &str = "NBAD_COUNTERS";

/// IP version tags stored in [`FlowKey::ip_version`].
pub const IP_V4: u8 = 4;
/// IP version tag for IPv6.
pub const IP_V6: u8 = 6;

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

/// Outcomes the XDP program counts, one slot each in [`COUNTERS_MAP_NAME`].
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum XdpCounter {
    /// Packets the program saw.
    Seen = 0,
    /// Packets parsed up to the transport header.
    Parsed = 1,
    /// Frames that carry no IP packet (ARP, LLDP, ...).
    NotIp = 2,
    /// Frames cut short before a header the program needed.
    Truncated = 3,
}

/// Number of slots in the counters map.
pub const XDP_COUNTER_SLOTS: u32 = 4;
