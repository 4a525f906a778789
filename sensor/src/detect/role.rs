//! Asset roles learned from behaviour: which services an inside host serves, and whether it
//! opens connections itself. Alerts show the result as `nbad.host.role` and
//! `nbad.host.services`, beside the configured criticality and owner; `lateral_movement` asks
//! whether a target is an established server of the service it was reached on.
//!
//! A service is a (port, transport) on which the host answered a connection (a completed TCP
//! handshake, or a UDP or other flow with an answer). Per service the role keeps the distinct
//! clients seen (up to [`MAX_CLIENTS`] address keys), the connections and when it was last
//! used; per host at most [`MAX_SERVICES`] services (a new one replaces the least used when
//! full). A host *serves* a service from [`SERVER_MIN_CLIENTS`] distinct clients on, so one
//! stray answer does not make a server. Saved with the baseline.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::seen::addr_key;
use crate::alert::HostRole;

/// Services remembered per host.
pub const MAX_SERVICES: usize = 16;
/// Distinct clients remembered per service (more still count as this many).
pub const MAX_CLIENTS: usize = 32;
/// Distinct clients from which a port counts as a service the host serves.
pub const SERVER_MIN_CLIENTS: usize = 2;

/// One service a host answered on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// The port.
    pub port: u16,
    /// IANA transport number.
    pub proto: u8,
    /// Keys of the distinct clients seen (at most [`MAX_CLIENTS`]).
    pub clients: Vec<u64>,
    /// Connections answered.
    pub connections: u64,
    /// Last connection, ns since the epoch.
    pub last_ns: u64,
}

/// What a host does, as learned so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Services it answered on.
    pub services: Vec<Served>,
    /// Connections it opened (saturating).
    pub opened: u64,
}

impl Role {
    /// The host answered a connection from `client` on `port`/`proto`.
    pub fn answered(&mut self, port: u16, proto: u8, client: IpAddr, ts_ns: u64) {
        let key = addr_key(client);
        let at = match self.services.iter().position(|s| s.port == port && s.proto == proto) {
            Some(i) => i,
            None => {
                let fresh = Served { port, proto, clients: Vec::new(), connections: 0, last_ns: ts_ns };
                if self.services.len() < MAX_SERVICES {
                    self.services.push(fresh);
                    self.services.len() - 1
                } else {
                    // Full: the least used (then the oldest) makes room.
                    let i = self
                        .services
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| (s.clients.len(), s.connections, s.last_ns))
                        .map_or(0, |(i, _)| i);
                    self.services[i] = fresh;
                    i
                }
            }
        };
        let s = &mut self.services[at];
        s.connections = s.connections.saturating_add(1);
        s.last_ns = s.last_ns.max(ts_ns);
        if s.clients.len() < MAX_CLIENTS && !s.clients.contains(&key) {
            s.clients.push(key);
        }
    }

    /// The host opened a connection.
    pub fn opened_one(&mut self) {
        self.opened = self.opened.saturating_add(1);
    }

    /// Distinct clients seen on `port`/`proto` (capped at [`MAX_CLIENTS`]).
    #[must_use]
    pub fn clients_of(&self, port: u16, proto: u8) -> usize {
        self.services.iter().find(|s| s.port == port && s.proto == proto).map_or(0, |s| s.clients.len())
    }

    /// The services it serves, most clients first.
    fn serving(&self) -> Vec<&Served> {
        let mut v: Vec<&Served> =
            self.services.iter().filter(|s| s.clients.len() >= SERVER_MIN_CLIENTS).collect();
        v.sort_by_key(|s| (std::cmp::Reverse(s.clients.len()), s.port, s.proto));
        v
    }

    /// The role as alerts show it; `peer_group` from `host_outlier`.
    #[must_use]
    pub fn describe(&self, peer_group: Option<String>) -> HostRole {
        let serving = self.serving();
        let kind = match (serving.is_empty(), self.opened == 0) {
            (false, false) => "server_and_client",
            (false, true) => "server",
            (true, false) => "client",
            (true, true) => "quiet",
        };
        let services = serving
            .iter()
            .map(|s| {
                let more = if s.clients.len() >= MAX_CLIENTS { "+" } else { "" };
                format!("{}/{} ({}{more} clients)", service_name(s.port, s.proto), s.port, s.clients.len())
            })
            .collect();
        HostRole { kind: kind.to_owned(), services, peer_group }
    }
}

/// A short name for a service port: the administrative ones by name, others by the port
/// registry's service name, else `tcp`/`udp`.
#[must_use]
pub fn service_name(port: u16, proto: u8) -> String {
    if let Some(s) = super::lateral::admin_service(port, proto) {
        return s.to_owned();
    }
    let transport = match proto {
        6 => crate::protocol::Transport::Tcp,
        17 => crate::protocol::Transport::Udp,
        _ => return format!("proto{proto}"),
    };
    match crate::protocol::registry::global().service(port, transport) {
        Some(name) => name.to_owned(),
        None => if proto == 6 { "tcp" } else { "udp" }.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_answered_to_several_clients_makes_a_server() {
        let mut r = Role::default();
        r.answered(445, 6, IpAddr::from([10, 0, 0, 7]), 1);
        assert_eq!(r.describe(None).kind, "quiet", "one client is not yet a service");
        r.answered(445, 6, IpAddr::from([10, 0, 0, 8]), 2);
        r.answered(445, 6, IpAddr::from([10, 0, 0, 8]), 3);
        r.opened_one();
        let role = r.describe(Some("1 (servers, 3 hosts)".into()));
        assert_eq!(role.kind, "server_and_client");
        assert_eq!(role.services, ["smb/445 (2 clients)"]);
        assert_eq!(r.clients_of(445, 6), 2);
    }

    #[test]
    fn services_stay_bounded() {
        let mut r = Role::default();
        for port in 1..=100u16 {
            r.answered(port, 6, IpAddr::from([10, 0, 0, 7]), u64::from(port));
        }
        assert_eq!(r.services.len(), MAX_SERVICES);
        assert!(r.services.iter().any(|s| s.port == 100), "the newest got a place");
    }
}
