//! `PACKET_FANOUT`: several packet sockets on one interface sharing its traffic.
//!
//! With `capture.threads = N` the sensor opens N libpcap handles on the interface and joins
//! each handle's socket to one fanout group ([`FanoutGroup`]) once it is activated. The kernel
//! then hands every frame to exactly one member, chosen by the flow hash of the frame
//! (`PACKET_FANOUT_HASH`, the same symmetric hash RPS uses, so both directions of a connection
//! go to one member), after reassembling IP fragments for the hash
//! (`PACKET_FANOUT_FLAG_DEFRAG`, so a datagram's fragments go together; the member receives the
//! reassembled datagram). Each member has its own ring and its own kernel drop counter.
//!
//! What the reassembly changes: with more than one thread an IPv4 datagram that was fragmented
//! on the wire reaches the sensor whole, as one packet (the decoder's fragment counters do not
//! see it), and one whose fragments never all arrive is not seen at all. The flag is IPv4
//! only: IPv6 fragments arrive as they were sent. The spread is only as fine as the kernel's
//! hash: it follows GRE into the inner packet, but hashes VXLAN on the outer UDP header (whose
//! source port senders usually derive from the inner flow).
//!
//! Correctness does not rest on the kernel's hash: the capture threads dispatch into shared
//! flow workers by the sensor's own flow hash, so a packet that lands on another thread still
//! reaches its flow. What the hash buys is order (a flow's packets reach its worker in capture
//! order) and per-flow state local to one thread (first payloads, bursts, TLS flights, the
//! capture-loss tracker).
//!
//! The XDP path stays single: one program feeds one map that one poller reads, so there is
//! nothing to fan out; the configuration refuses `capture.threads` above one unless
//! `capture.mode = "pcap"` (with `"auto"` the key would be ignored whenever XDP attaches).
//!
//! The group id is 16 bits and names the group in the kernel's namespace-wide table: sockets of
//! another process that join the same id with the same mode would share this sensor's traffic.
//! It is derived from the process id ([`FanoutGroup::for_process`]), so two sensors on one host
//! (one per interface) get different groups. The kernel refuses a join whose mode or flags
//! differ from the group's (`EINVAL`) or whose interface differs (`EINVAL`), and a group is
//! limited to `PACKET_FANOUT_MAX` members (256 on current kernels, far above the 64 threads the
//! configuration allows).

use std::os::fd::AsFd;

use nix::libc;
use nix::sys::socket::setsockopt;
use nix::{setsockopt_impl, sockopt_impl};

/// `SOL_PACKET` (linux/socket.h).
const SOL_PACKET: libc::c_int = 263;
/// `PACKET_FANOUT` (linux/if_packet.h).
const PACKET_FANOUT: libc::c_int = 18;
/// `PACKET_FANOUT_HASH`: by the frame's flow hash.
const PACKET_FANOUT_HASH: u32 = 0;
/// `PACKET_FANOUT_FLAG_DEFRAG`: reassemble IP fragments before hashing.
const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;

sockopt_impl!(
    /// The `PACKET_FANOUT` socket option: group id in the low 16 bits, mode and flags above.
    PacketFanout,
    SetOnly,
    SOL_PACKET,
    PACKET_FANOUT,
    libc::c_int
);

/// One fanout group: the id every handle of this capture joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutGroup {
    id: u16,
}

impl FanoutGroup {
    /// The group of this process: its id is the low 16 bits of the process id.
    #[must_use]
    pub fn for_process() -> Self {
        Self::with_id((std::process::id() & 0xFFFF) as u16)
    }

    /// The group `id`.
    #[must_use]
    pub fn with_id(id: u16) -> Self {
        Self { id }
    }

    /// The group id.
    #[must_use]
    pub fn id(self) -> u16 {
        self.id
    }

    /// The option value: the id, hash mode with fragment reassembly.
    #[must_use]
    pub fn option_value(self) -> libc::c_int {
        let mode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG;
        // The mode and flags sit in bits 16..32; the defrag flag is the C int's sign bit, and
        // the kernel reads the bit pattern.
        i32::from_ne_bytes((u32::from(self.id) | (mode << 16)).to_ne_bytes())
    }

    /// Joins the packet socket `socket` (an activated libpcap handle) to the group.
    ///
    /// # Errors
    /// The kernel refused: not a packet socket, not bound, a group of that id with another
    /// mode or on another interface, or the group is full.
    pub fn join(self, socket: &impl AsFd) -> Result<(), nix::errno::Errno> {
        setsockopt(socket, PacketFanout, &self.option_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_value_puts_the_id_low_and_hash_mode_with_defrag_high() {
        let value = FanoutGroup::with_id(0x1234).option_value();
        assert_eq!(u32::from_ne_bytes(value.to_ne_bytes()), 0x8000_1234);
    }

    #[test]
    fn process_group_id_is_the_low_bits_of_the_pid() {
        assert_eq!(u32::from(FanoutGroup::for_process().id()), std::process::id() & 0xFFFF);
    }

    #[test]
    fn joining_a_socket_that_is_not_a_packet_socket_is_refused() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket on loopback");
        assert!(FanoutGroup::with_id(1).join(&udp).is_err());
    }
}
