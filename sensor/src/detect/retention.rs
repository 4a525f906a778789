//! The retention bound of the saved state (`privacy.state_retention_s`).
//!
//! A host whose baseline learned nothing for longer than the bound is left out of the state
//! the engine saves, and out of a state it loads (the bound counted back from the time the
//! file was saved). A service of the inventory goes with it when the inventory first saw it
//! longer ago than the bound and its server has no baseline left: the inventory keeps no
//! last-seen time, so a service of a server that is still around is kept however old.
//!
//! What a kept host remembers about others stays with it: the Bloom filters of peers and
//! domains it contacted hold no addresses or names in the clear and forget by themselves
//! (`seen.rs`); its administrative pairs name the inside hosts it used administrative
//! services with.

use std::time::Duration;

use super::state::State;

/// What [`prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Hosts whose baselines were dropped.
    pub hosts: usize,
    /// Services dropped from the inventory.
    pub services: usize,
}

/// Removes from `state` what was not seen within `retention` before `now_ns`.
pub fn prune(state: &mut State, now_ns: u64, retention: Duration) -> Pruned {
    let cutoff = now_ns.saturating_sub(u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX));
    let (hosts, services) = (state.hosts.len(), state.services.len());
    state.hosts.retain(|_, b| b.last_ns >= cutoff);
    let kept = &state.hosts;
    state.services.retain(|s| s.first_ns >= cutoff || kept.contains_key(&s.server));
    Pruned { hosts: hosts - state.hosts.len(), services: services - state.services.len() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use super::*;
    use crate::detect::baseline::HostBaseline;
    use crate::detect::state::ServiceEntry;

    const DAY: u64 = 86_400_000_000_000;

    fn host(last_day: u64) -> HostBaseline {
        let mut b = HostBaseline::new(0);
        b.last_ns = last_day * DAY;
        b
    }

    fn service(server: IpAddr, first_day: u64) -> ServiceEntry {
        ServiceEntry { server, port: 80, transport: 6, protocol: "http".into(), first_ns: first_day * DAY }
    }

    #[test]
    fn hosts_and_services_unseen_past_the_bound_are_dropped() {
        let (old, recent, gone) =
            (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 3]));
        let hosts = BTreeMap::from([(old, host(5)), (recent, host(95))]);
        let services = vec![service(old, 1), service(recent, 1), service(gone, 2), service(gone, 99)];
        let mut state = State::new(100 * DAY, hosts, services);
        let pruned = prune(&mut state, 100 * DAY, Duration::from_secs(90 * 86_400));
        assert_eq!(pruned, Pruned { hosts: 1, services: 2 });
        assert_eq!(state.hosts.keys().copied().collect::<Vec<_>>(), [recent]);
        let left: Vec<(IpAddr, u64)> = state.services.iter().map(|s| (s.server, s.first_ns / DAY)).collect();
        assert_eq!(left, [(recent, 1), (gone, 99)]);
    }

    #[test]
    fn the_engine_loads_and_saves_only_hosts_seen_within_the_retention() {
        let (old, recent) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let mut cfg = crate::config::default();
        cfg.privacy.state_retention = Some(Duration::from_secs(90 * 86_400));
        let hosts = || BTreeMap::from([(old, host(5)), (recent, host(95))]);

        // Saved on day 100: the host last seen on day 5 is not loaded.
        let engine = crate::detect::Engine::new(&cfg, Some(State::new(100 * DAY, hosts(), Vec::new())));
        assert_eq!(engine.state().hosts.keys().copied().collect::<Vec<_>>(), [recent]);

        // Saved on day 50, both load; by day 100 (packet time) the old one is not saved.
        let mut engine = crate::detect::Engine::new(&cfg, Some(State::new(50 * DAY, hosts(), Vec::new())));
        assert_eq!(engine.state().hosts.len(), 2);
        engine.advance(100 * DAY);
        assert_eq!(engine.state().hosts.keys().copied().collect::<Vec<_>>(), [recent]);
    }
}
