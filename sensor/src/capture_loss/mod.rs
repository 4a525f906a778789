//! Capture-loss self-measurement: how much of the traffic on the wire the sensor did not see.
//!
//! Two independent estimates:
//!
//! - **Kernel drops**: packets the capture buffer had no room for, as libpcap reports them
//!   (`capture.kernel_dropped`). Exact, but blind to loss before the kernel: a SPAN port
//!   oversubscribed at the switch, a tap's full buffer, a NIC ring overrun.
//! - **ACKs for unseen data** (Zeek's `capture-loss` idea): a TCP receiver acknowledges only
//!   bytes that reached it, so an ACK beyond the highest sequence number the sensor saw from
//!   the sender means the sensor missed data that the network delivered. [`AckTracker`] keeps
//!   the highest sequence number seen per flow direction in a small bounded table on the
//!   capture thread; the share of ACK events that acknowledge unseen data estimates the
//!   fraction of traffic lost wherever it was lost.
//!
//! [`LossMonitor`] turns cumulative counters into a windowed ratio (the larger of the two
//! estimates) and raises a `capture_loss` [`Alert`](crate::alert::Alert) above a threshold
//! (by default 10 % over 15 minutes). The pipeline publishes the counters; [`LossWatch`]
//! samples them in a live sensor; routing the alert into the alert path is the alert stage's
//! job.
//!
//! What is not measured: TCP inside GRE or VXLAN tunnels (the outer packet is not TCP), and
//! the XDP path, which hands the pipeline per-flow aggregates without sequence numbers; there
//! the kernel counters are the only estimate.

mod ack_tracker;
mod monitor;
mod watch;

pub use ack_tracker::{AckTracker, MAX_TRACKED_FLOWS, TcpSegment};
pub use monitor::{LossMonitor, LossPolicy, LossRatio, LossSample, capture_loss_alert};
pub use watch::LossWatch;

/// Counters of the ACK-based estimate, published by the capture thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureLossCounters {
    /// ACKs that acknowledged new data of a direction the sensor had seen data from.
    pub ack_events: u64,
    /// Of those, ACKs that acknowledged data the sensor never saw.
    pub unseen_ack_events: u64,
    /// Flows in the tracking table now.
    pub tracked_flows: u64,
    /// Times the table was full and was emptied (see [`MAX_TRACKED_FLOWS`]).
    pub table_resets: u64,
}
