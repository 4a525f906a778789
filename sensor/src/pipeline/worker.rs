//! A worker owns one shard of the flow table: it accounts the batches it is
//! sent, advances its clock with them, and passes emitted records on in
//! bounded chunks.

use crossbeam_channel::{Receiver, Sender};

use crate::flow::{EndReason, FlowRecord, FlowTable, RecordSink};
use crate::pipeline::batch::{Batch, WorkerMsg};
use crate::stats::StatsHub;

/// Records per message to the output stage. A burst of expiries (a whole
/// second's worth of flows) goes out in pieces of this size, so neither the
/// worker nor the queue to the output stage ever holds more than a bounded
/// number of records.
const RECORD_CHUNK: usize = 1024;

/// Collects records and sends them to the output stage chunk by chunk,
/// blocking when the output stage is behind (backpressure).
struct ChunkedSender<'a> {
    chunk: Vec<FlowRecord>,
    tx: &'a Sender<Vec<FlowRecord>>,
    /// The output stage hung up (it failed and reported why).
    closed: bool,
}

impl ChunkedSender<'_> {
    fn flush(&mut self) {
        if self.chunk.is_empty() || self.closed {
            self.chunk.clear();
            return;
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(RECORD_CHUNK));
        self.closed = self.tx.send(full).is_err();
    }
}

impl RecordSink for ChunkedSender<'_> {
    fn emit(&mut self, record: FlowRecord) {
        self.chunk.push(record);
        if self.chunk.len() >= RECORD_CHUNK {
            self.flush();
        }
    }
}

/// Runs until the dispatcher sends `Finish` or hangs up.
pub fn run(
    id: usize,
    mut table: FlowTable,
    inbox: &Receiver<WorkerMsg>,
    recycle: &Sender<Batch>,
    records: &Sender<Vec<FlowRecord>>,
    stats: &StatsHub,
) {
    let mut out = ChunkedSender { chunk: Vec::with_capacity(RECORD_CHUNK), tx: records, closed: false };
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
                table.drain(EndReason::Shutdown, &mut out);
                true
            }
        };
        out.flush();
        stats.publish_worker(id, &table.counters, finished);
        if finished || out.closed {
            break;
        }
    }
}
