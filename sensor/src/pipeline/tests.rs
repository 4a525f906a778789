//! Several capture threads ([`run_sharded`]) into one set of flow workers: the production
//! pipeline run over in-memory sources, with detection on, so that every capture thread is an
//! input of the analysis stage's merge.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde_json::Value;

use super::{RunOptions, run_sharded};
use crate::capture::{CaptureError, LinkType, Next, PacketSource, RawPacket};
use crate::detect::Engine;
use crate::flow::{EndReason, FlowHasher};
use crate::output::flow_json::FlowJsonWriter;

/// Frames handed over in order, then the end.
struct Frames {
    frames: Vec<(u64, Vec<u8>)>,
    next: usize,
}

impl PacketSource for Frames {
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        let Some((ts_ns, data)) = self.frames.get(self.next) else { return Ok(Next::End) };
        self.next += 1;
        let wire_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(Next::Packet(RawPacket { ts_ns: *ts_ns, wire_len, link: LinkType::Ethernet, data }))
    }
}

const FLOWS: u16 = 20;
const DATAGRAMS: u64 = 6;
const PAYLOAD: usize = 50;
const START_NS: u64 = 1_700_000_000_000_000_000;

/// A `Write` whose bytes the test reads back after the run.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Worse than any fanout would do: every flow's first half goes to one capture thread and its
/// second half to the other. The shared workers must still give one record per flow, with all
/// its packets, and each thread's share must be counted.
#[test]
fn a_flow_split_across_two_capture_threads_is_still_one_record_with_every_packet() {
    let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let server = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut halves = [Vec::new(), Vec::new()];
    for i in 0..DATAGRAMS {
        for port in 0..FLOWS {
            let ip = crate::synth::udp((client, 40_000 + port), (server, 53_000), &[b'x'; PAYLOAD]);
            let ts = START_NS + i * 10_000_000 + u64::from(port) * 1_000;
            halves[usize::from(i >= DATAGRAMS / 2)].push((ts, crate::synth::ethernet(&[], &ip)));
        }
    }
    let mut sources = halves.map(|frames| Frames { frames, next: 0 });

    let cfg = crate::config::from_str("[flows]\nworkers = 2\n", "<pipeline test>").expect("valid");
    let out = Shared::default();
    let opts = RunOptions {
        flows: Some(FlowJsonWriter::new(Box::new(out.clone()), "sharded")),
        stats: crate::config::OutputTarget::None,
        periodic_stats: None,
        tick: super::REPLAY_TICK,
        stop: Arc::default(),
        end_reason: EndReason::EndOfCapture,
        hasher: FlowHasher::with_seed(7),
        engine: Some(Engine::new(&cfg, None)),
        alerts: None,
        on_alerts: None,
        side_alerts: None,
        settings: None,
        export: None,
        control: None,
        respond: None,
        hub: None,
        hold: None,
    };
    let stats = run_sharded(&cfg, &mut sources, opts).expect("the run completes");

    let total = u64::from(FLOWS) * DATAGRAMS;
    assert_eq!(stats.capture.packets_read, total);
    let per_thread: Vec<u64> = stats.capture.threads.iter().map(|t| t.packets_read).collect();
    assert_eq!(per_thread, [total / 2, total / 2]);
    assert_eq!(stats.decode.parsed, total);
    assert_eq!(stats.flows.created, u64::from(FLOWS), "no flow created twice");

    let text = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default()).expect("UTF-8");
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(records.len(), usize::from(FLOWS), "one record per flow");
    let ip_bytes = DATAGRAMS * (20 + 8 + PAYLOAD as u64);
    for r in &records {
        let at = |p: &str| r.pointer(p).and_then(Value::as_u64);
        assert_eq!((at("/source/packets"), at("/source/bytes")), (Some(DATAGRAMS), Some(ip_bytes)), "{r}");
        assert_eq!(at("/destination/packets"), Some(0), "{r}");
    }
}
