//! The flow-key hash, shared by the dispatcher (to pick a shard) and by each
//! shard's table (to index), so a key is hashed once per packet.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;
use nbad_common::FlowKey;

/// Hashes canonical flow keys. The seed makes bucket placement unpredictable
/// to someone crafting packets; it does not affect any output.
#[derive(Debug, Clone)]
pub struct FlowHasher {
    state: FixedState,
}

impl FlowHasher {
    /// A hasher with the given seed.
    pub fn with_seed(seed: u64) -> Self {
        Self { state: FixedState::with_seed(seed) }
    }

    /// A hasher seeded from the operating system's randomness (via std's
    /// per-process hash keys).
    pub fn random() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x6e62_6164_u64);
        Self::with_seed(seed)
    }

    /// The hash of `key`, read as three machine words.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        let mut h = self.state.build_hasher();
        h.write_u128(u128::from_ne_bytes(key.addr_lo));
        h.write_u128(u128::from_ne_bytes(key.addr_hi));
        h.write_u64(
            u64::from(key.port_lo)
                | u64::from(key.port_hi) << 16
                | u64::from(key.vlan_outer) << 32
                | u64::from(key.vlan_inner) << 48,
        );
        h.write_u16(u16::from(key.proto) | u16::from(key.ip_version) << 8);
        h.finish()
    }
}
