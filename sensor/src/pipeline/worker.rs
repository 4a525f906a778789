//! A worker owns one shard of the flow table: it accounts the batches it is
//! sent, advances its clock with them, and passes emitted records on in
//! bounded chunks.

use crossbeam_channel::{Receiver, Sender};

use crate::flow::{EndReason, FlowRecord, FlowTable, RecordSink};
use crate::pipeline::analysis::AnalysisMsg;
use crate::pipeline::batch::{Batch, WorkerMsg};
use crate::stats::StatsHub;

/// Records per message to the output stage. A burst of expiries (a whole
/// second's worth of flows) goes out in pieces of this size, so neither the
/// worker nor the queue to the output stage ever holds more than a bounded
/// number of records.
pub const RECORD_CHUNK: usize = 1024;

/// Collects records and sends them to the analysis stage chunk by chunk,
/// blocking when that stage is behind (backpressure). Every message carries
/// the worker's clock; a worker whose clock entered a new second sends one
/// even without records, so the analysis stage knows it has seen all of that
/// worker's records up to then.
struct ChunkedSender<'a> {
    id: usize,
    chunk: Vec<FlowRecord>,
    tx: &'a Sender<AnalysisMsg>,
    /// The clock of the batch being accounted, ns.
    clock_ns: u64,
    /// The tick of the last message sent, and the tick's length.
    sent_tick: u64,
    tick_ns: u64,
    /// The analysis stage hung up (it failed and reported why).
    closed: bool,
}

impl ChunkedSender<'_> {
    fn flush(&mut self) {
        let tick = self.clock_ns / self.tick_ns;
        if self.closed || (self.chunk.is_empty() && tick == self.sent_tick) {
            self.chunk.clear();
            return;
        }
        self.sent_tick = tick;
        let records = std::mem::replace(&mut self.chunk, Vec::with_capacity(RECORD_CHUNK));
        let msg = AnalysisMsg::Records { input: self.id, clock_ns: self.clock_ns, records };
        self.closed = self.tx.send(msg).is_err();
    }

    fn done(&mut self) {
        self.flush();
        if !self.closed {
            self.closed = self.tx.send(AnalysisMsg::Done { input: self.id }).is_err();
        }
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
    records: &Sender<AnalysisMsg>,
    stats: &StatsHub,
    tick_ns: u64,
) {
    let mut out = ChunkedSender {
        id,
        chunk: Vec::with_capacity(RECORD_CHUNK),
        tx: records,
        clock_ns: 0,
        sent_tick: 0,
        tick_ns: tick_ns.max(1),
        closed: false,
    };
    loop {
        let finished = match inbox.recv() {
            Ok(WorkerMsg::Batch(mut batch)) => {
                out.clock_ns = out.clock_ns.max(batch.now_ns);
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
        if finished {
            out.done();
        } else {
            out.flush();
        }
        stats.publish_worker(id, &table.counters, finished);
        if finished || out.closed {
            break;
        }
    }
}
