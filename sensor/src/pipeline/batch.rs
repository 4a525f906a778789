//! Batches: how packets travel from the capture thread to a worker.
//!
//! A batch is a reusable vector of [`PacketMeta`]; workers hand emptied
//! batches back through a return channel, so in steady state the capture
//! path allocates nothing and sends one channel message per batch, not per
//! packet.

use crate::decode::PacketMeta;
use crate::flow::EndReason;

/// Packets for one worker, plus the capture clock when the batch was sent.
#[derive(Debug)]
pub struct Batch {
    /// The packets, in capture order.
    pub packets: Vec<PacketMeta>,
    /// The pipeline clock (latest packet timestamp, or the wall clock when
    /// live and idle) at send time, ns since the epoch.
    pub now_ns: u64,
}

impl Batch {
    /// An empty batch with room for `capacity` packets.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { packets: Vec::with_capacity(capacity), now_ns: 0 }
    }
}

/// A message to a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Packets to account.
    Batch(Batch),
    /// No more packets: flush every flow with this reason and stop.
    Finish(EndReason),
}
