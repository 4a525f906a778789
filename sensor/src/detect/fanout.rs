//! A host's traffic with other inside hosts in the bucket in progress: the inside hosts it opened
//! connections to (how many, how much it sent them, which of them on administrative services),
//! and the clients it answered. The outside-facing accumulators of [`super::host::HostBucket`]
//! do not see any of this; `host_outlier` ([`super::outlier`]) takes its inside fan-out features
//! from here and `lateral_movement` ([`super::lateral`]) its administrative connections.
//!
//! Bounded like the rest of the bucket: sets stop growing at their caps (the plain counters
//! stay exact), and at most [`MAX_ADMIN_USES`] administrative connections are kept in detail.

use std::net::IpAddr;

use super::host::{FlowRef, Set};

/// Inside peers tracked per host per bucket.
pub const MAX_INSIDE_PEERS: usize = 1_024;
/// Clients tracked per host per bucket.
pub const MAX_SERVED_CLIENTS: usize = 1_024;
/// Administrative connections kept in detail per host per bucket.
pub const MAX_ADMIN_USES: usize = 64;

/// One connection the host opened to an inside host on an administrative service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminUse {
    /// The inside host it reached.
    pub peer: IpAddr,
    /// The service's port.
    pub port: u16,
    /// IANA transport number.
    pub proto: u8,
    /// The host had never used this service with this peer.
    pub new_pair: bool,
    /// Distinct clients the peer had served on this port before (its learned role).
    pub peer_clients: usize,
    /// The flow.
    pub flow: FlowRef,
    /// When the connection started, ns.
    pub ts_ns: u64,
}

/// What a host did with other inside hosts in the bucket.
#[derive(Debug, Clone, Default)]
pub struct InsideAcc {
    /// Inside hosts it opened connections to.
    pub peers: Set<IpAddr>,
    /// Connections it opened to inside hosts.
    pub connections: u64,
    /// Bytes it sent in those connections.
    pub bytes_out: u64,
    /// Administrative connections it opened to inside hosts, in detail.
    pub admin: Vec<AdminUse>,
    /// Administrative connections it opened to inside hosts, all of them.
    pub admin_connections: u64,
    /// Distinct inside peers it used an administrative service with for the first time.
    pub new_admin_peers: Set<IpAddr>,
    /// Clients (inside or outside) it answered.
    pub served: Set<IpAddr>,
}

impl InsideAcc {
    /// Empties the accumulators, keeping their memory.
    pub fn clear(&mut self) {
        self.peers.clear();
        self.connections = 0;
        self.bytes_out = 0;
        self.admin.clear();
        self.admin_connections = 0;
        self.new_admin_peers.clear();
        self.served.clear();
    }

    /// Notes a connection the host opened to inside host `peer`.
    pub fn opened(&mut self, peer: IpAddr, bytes_out: u64) {
        self.connections += 1;
        self.bytes_out += bytes_out;
        if self.peers.len() < MAX_INSIDE_PEERS {
            self.peers.insert(peer);
        }
    }

    /// Notes an administrative connection.
    pub fn admin(&mut self, used: AdminUse) {
        self.admin_connections += 1;
        if used.new_pair && self.new_admin_peers.len() < MAX_INSIDE_PEERS {
            self.new_admin_peers.insert(used.peer);
        }
        if self.admin.len() < MAX_ADMIN_USES {
            self.admin.push(used);
        }
    }

    /// Notes a client the host answered.
    pub fn answered(&mut self, client: IpAddr) {
        if self.served.len() < MAX_SERVED_CLIENTS {
            self.served.insert(client);
        }
    }
}
