//! A worker owns one shard of the flow table: it accounts the batches it is
//! sent, advances its clock with them, and passes emitted records on.

use crossbeam_channel::{Receiver, Sender};

use crate::flow::{FlowRecord, FlowTable};
use crate::pipeline::batch::{Batch, WorkerMsg};
use crate::stats::StatsHub;

/// Runs until the dispatcher sends `Finish` or hangs up.
pub fn run(
    id: usize,
    mut table: FlowTable,
    inbox: &Receiver<WorkerMsg>,
    recycle: &Sender<Batch>,
    records: &Sender<Vec<FlowRecord>>,
    stats: &StatsHub,
) {
    let mut out: Vec<FlowRecord> = Vec::new();
    loop {
        let finished = match inbox.recv() {
            Ok(WorkerMsg::Batch(mut batch)) => {
                for meta in &batch.packets {
                    table.observe(meta, &mut out);
                }
                table.advance(batch.now_ns, &mut out);
                batch.packets.clear();
                // The pool is bounded; a surplus batch is simply dropped.
                let _ = recycle.try_send(batch);
                false
            }
            Ok(WorkerMsg::Finish(reason)) => {
                table.drain(reason, &mut out);
                true
            }
            Err(_) => {
                table.drain(crate::flow::EndReason::Shutdown, &mut out);
                true
            }
        };
        if !out.is_empty() && records.send(std::mem::take(&mut out)).is_err() {
            // The output stage is gone (it failed and reported why); nothing
            // more can be delivered.
            break;
        }
        stats.publish_worker(id, &table.counters, finished);
        if finished {
            break;
        }
    }
}
