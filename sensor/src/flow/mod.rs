//! The flow table: bidirectional flows keyed by the canonical 5-tuple plus
//! VLAN, per-direction counters, TCP state, idle/active/close expiry on a
//! timer wheel, and a hard cap with an emergency mode.

pub mod community_id;
mod entry;
mod hash;
pub mod record;
pub mod table;
mod wheel;

pub use hash::FlowHasher;
pub use record::{EndReason, FlowRecord, RecordSink};
pub use table::{FlowCounters, FlowTable, Timeouts};

/// Bytes of one tracked flow's entry (the memory budget counts it per `flows.max_flows`).
pub const FLOW_ENTRY_BYTES: usize = size_of::<entry::FlowEntry>();
