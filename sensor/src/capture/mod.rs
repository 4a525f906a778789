//! Packet sources: capture files and live interfaces.
//!
//! Every source yields [`RawPacket`]s — a timestamp, the captured bytes and the
//! link type they start with — through the one [`PacketSource`] trait, so the
//! pipeline behind it does not know whether it is replaying a file or reading
//! an interface. Timestamps are nanoseconds since the Unix epoch and drive all
//! time inside the pipeline.

pub mod fanout;
pub mod file;
pub mod link;
pub mod live;
pub mod privileges;
pub mod xdp;

pub use link::LinkType;

/// One captured frame, borrowed from the source until the next call.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length of the frame on the wire (may exceed `data.len()` with a snaplen).
    pub wire_len: u32,
    /// The link-layer type `data` starts with.
    pub link: LinkType,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// What a source has for the pipeline next.
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(RawPacket<'a>),
    /// Traffic already decoded and aggregated in the kernel (the XDP
    /// path): per-flow, per-direction deltas, in time order.
    Decoded(&'a [crate::decode::PacketMeta]),
    /// No packet within the source's read timeout (live capture only); the
    /// pipeline uses the pause to advance its clock and publish statistics.
    Idle,
    /// The source is exhausted.
    End,
}

/// Counters a source keeps about itself (kernel drops for live capture).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SourceStats {
    /// Packets the kernel dropped because the capture buffer was full.
    pub kernel_dropped: u64,
    /// Packets the interface (driver) dropped.
    pub interface_dropped: u64,
    /// Capture files that ended inside a record.
    pub truncated_files: u64,
    /// Counters of the source's own machinery (the XDP program's outcomes),
    /// by name.
    pub extra: Vec<(&'static str, u64)>,
}

/// A source of packets for the pipeline.
pub trait PacketSource {
    /// Returns the next packet, an idle tick, or the end of the input.
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError>;

    /// Called once when the pipeline stops (end of input or a stop signal):
    /// hands over what the source still holds. The XDP source polls its map
    /// a last time here, so a shutdown loses none of the last interval's
    /// packets. Sources that hold nothing return `End`.
    fn flush(&mut self) -> Result<Next<'_>, CaptureError> {
        Ok(Next::End)
    }

    /// Current drop counters; sources without a kernel behind them return zeros.
    fn source_stats(&mut self) -> SourceStats {
        SourceStats::default()
    }

    /// The current time for idle ticks; live sources return the wall clock.
    fn idle_clock_ns(&self) -> Option<u64> {
        None
    }

    /// Hands over the packet samples taken since the last call (time, frame
    /// from its link header on) and forgets them. A source whose packets are
    /// already aggregated (XDP) samples the few that detectors read whole: the
    /// first packets of each flow direction, DNS, ICMP echo. Sources that hand
    /// over every packet have none.
    fn take_samples(&mut self, _f: &mut dyn FnMut(u64, &[u8])) {}
}

/// Errors of packet sources. Each names the file or interface it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The capture file could not be opened or mapped.
    #[error("{path}: cannot read capture file: {reason}")]
    Open {
        /// The file.
        path: String,
        /// The I/O error (part of the message, not a separate source, so
        /// that it is printed once).
        reason: std::io::Error,
    },
    /// The file does not start with a pcap or pcapng magic number.
    #[error(
        "{path}: not a capture file: magic number {magic:#010x} is neither classic pcap \
         (0xa1b2c3d4, 0xa1b23c4d, either byte order) nor pcapng (0x0a0d0d0a)"
    )]
    UnknownFormat {
        /// The file.
        path: String,
        /// The first four bytes, little-endian.
        magic: u32,
    },
    /// The capture uses a link type the decoder cannot read.
    #[error("{path}: link type {linktype} ({name}) is not supported; supported link types: {supported}")]
    UnsupportedLinkType {
        /// The file or interface.
        path: String,
        /// The numeric LINKTYPE_ value.
        linktype: i32,
        /// Its name, where known.
        name: &'static str,
        /// The supported link types, for the message.
        supported: &'static str,
    },
    /// The file is cut or corrupt at a given offset.
    #[error("{path}: corrupt capture at byte offset {offset}: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// Byte offset of the damaged record or block.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
    /// The XDP program's maps could not be read.
    #[error("{interface}: XDP capture failed: {reason}")]
    Xdp {
        /// The interface.
        interface: String,
        /// What went wrong.
        reason: String,
    },
    /// The kernel refused to join a capture handle to the `PACKET_FANOUT` group
    /// (`capture.threads` above one).
    #[error(
        "{interface}: joining capture handle {member} to PACKET_FANOUT group {group} failed: {reason} \
         (capture.threads needs a kernel with PACKET_FANOUT hash mode, and no other process may \
         use the same group id on another interface)"
    )]
    Fanout {
        /// The interface.
        interface: String,
        /// The group id.
        group: u16,
        /// The handle (0-based).
        member: usize,
        /// The kernel's error.
        reason: nix::errno::Errno,
    },
    /// libpcap refused an operation on a live interface.
    #[error("{interface}: {action} failed: {reason}")]
    Live {
        /// The interface.
        interface: String,
        /// What the sensor tried to do.
        action: &'static str,
        /// libpcap's error.
        reason: pcap::Error,
    },
}
