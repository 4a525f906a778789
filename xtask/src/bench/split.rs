//! Cutting long flows into sub-flows, so that the capture reaches its flow target without
//! multiplying packets. The corpus captures are few long conversations (about 1 700 5-tuples in
//! 200 000 packets), while a flow-table benchmark wants around ten packets per flow: copies
//! alone would need ~50 M packets to reach 300 000 flows.
//!
//! A TCP or UDP flow longer than N packets is cut, in time order, into chunks of N packets.
//! Chunk 0 keeps its 5-tuple; chunk c > 0 gets a new client port (the client being the endpoint
//! with the higher port, the ephemeral side), chosen so that no other flow of the template uses
//! the resulting 5-tuple. Hosts, server ports, timing and payloads are unchanged; a later chunk
//! starts mid-connection, as a flow does when capture starts mid-stream. N is the largest chunk
//! size that still reaches the flow target, so flows stay as long as the target allows. Flows
//! of other protocols, flows of at most N packets and flows that are the same in every copy (both
//! ends in kept address space) stay whole.

use std::collections::{HashMap, HashSet};

use anyhow::{Result, bail};

use super::corpus::Template;
use super::rewrite::{self, Tuple};

#[derive(Debug)]
struct Flow {
    packets: u32,
    /// TCP/UDP with ports: may be cut.
    renumberable: bool,
    /// Both ends kept: identical in every copy.
    fixed: bool,
    /// The first packet's tuple, oriented client (higher port) → server.
    client_to_server: Tuple,
}

/// The template's flows, and each packet's flow and position in it.
#[derive(Debug)]
pub struct FlowAnalysis {
    flows: Vec<Flow>,
    /// (flow index, ordinal within the flow) per template packet.
    packets: Vec<(u32, u32)>,
    keys: HashSet<u128>,
}

/// Per template packet: renumber the source port (`true`) or the destination port, to this.
pub type PortRewrite = Option<(bool, u16)>;

pub fn analyse(template: &Template) -> FlowAnalysis {
    let mut index: HashMap<u128, u32> = HashMap::new();
    let mut flows: Vec<Flow> = Vec::new();
    let mut packets = Vec::with_capacity(template.packets.len());
    for p in &template.packets {
        let t = rewrite::tuple(template.frame(p), usize::from(p.ip_offset));
        let id = *index.entry(t.key()).or_insert_with(|| {
            flows.push(Flow {
                packets: 0,
                renumberable: t.renumberable,
                fixed: rewrite::is_kept_address(t.src) && rewrite::is_kept_address(t.dst),
                client_to_server: if t.dport > t.sport { swap(t) } else { t },
            });
            (flows.len() - 1) as u32
        });
        let flow = &mut flows[id as usize];
        packets.push((id, flow.packets));
        flow.packets += 1;
    }
    FlowAnalysis { flows, packets, keys: index.into_keys().collect() }
}

fn swap(t: Tuple) -> Tuple {
    Tuple { src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, ..t }
}

impl FlowAnalysis {
    /// Distinct 5-tuples of the template as captured.
    pub fn flows(&self) -> u64 {
        self.flows.len() as u64
    }

    /// Flows that are the same in every copy.
    pub fn fixed_flows(&self) -> u64 {
        self.flows.iter().filter(|f| f.fixed).count() as u64
    }

    /// Flows per copy that differ between copies, when cut into chunks of `chunk` packets.
    pub fn copied_flows(&self, chunk: u32) -> u64 {
        self.flows
            .iter()
            .filter(|f| !f.fixed)
            .map(|f| if f.renumberable { u64::from(f.packets.div_ceil(chunk)) } else { 1 })
            .sum()
    }

    /// The largest chunk size that gives at least `needed` copied flows (or the longest flow's
    /// length, i.e. no cutting, if that is already enough). `copied_flows` does not grow with the
    /// chunk size, so a binary search finds it.
    pub fn chunk_size_for(&self, needed: u64) -> u32 {
        let longest = self.flows.iter().map(|f| f.packets).max().unwrap_or(1).max(1);
        let (mut lo, mut hi) = (1u32, longest);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.copied_flows(mid) >= needed { lo = mid } else { hi = mid - 1 }
        }
        lo
    }

    /// The port rewrite of each template packet when flows are cut at `chunk` packets.
    pub fn port_rewrites(&self, template: &Template, chunk: u32) -> Result<Vec<PortRewrite>> {
        let mut used = self.keys.clone();
        // Next candidate client port per (client address, server address, server port, proto).
        let mut cursors: HashMap<(u32, u32, u16, u8), u32> = HashMap::new();
        let mut current: Vec<Option<u16>> = vec![None; self.flows.len()];
        let mut rewrites = Vec::with_capacity(self.packets.len());
        for (p, &(id, ordinal)) in template.packets.iter().zip(&self.packets) {
            let flow = &self.flows[id as usize];
            if !flow.renumberable || flow.fixed || ordinal < chunk {
                rewrites.push(None);
                continue;
            }
            let c = flow.client_to_server;
            if ordinal % chunk == 0 {
                let cursor = cursors.entry((c.src, c.dst, c.dport, c.proto)).or_insert(1024);
                let port = loop {
                    let Ok(port) = u16::try_from(*cursor) else {
                        bail!("no free client port left to cut flows to {chunk} packets");
                    };
                    *cursor += 1;
                    if used.insert(Tuple { sport: port, ..c }.key()) {
                        break port;
                    }
                };
                current[id as usize] = Some(port);
            }
            let t = rewrite::tuple(template.frame(p), usize::from(p.ip_offset));
            let client_is_source = (t.src, t.sport) == (c.src, c.sport);
            rewrites.push(current[id as usize].map(|port| (client_is_source, port)));
        }
        Ok(rewrites)
    }
}
