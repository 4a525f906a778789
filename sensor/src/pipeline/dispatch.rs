//! The dispatcher: hashes each packet's flow key once, picks the worker that
//! owns the key's shard, and appends the packet to that worker's open batch.
//! A batch is sent when full, and every open batch is sent when the capture
//! clock enters a new second, so that idle workers still see time pass and
//! expire their flows.

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::decode::PacketMeta;
use crate::flow::{EndReason, FlowHasher};
use crate::pipeline::batch::{Batch, WorkerMsg};
use crate::stats::DispatchCounters;

/// A worker has stopped taking batches.
#[derive(Debug, thiserror::Error)]
#[error("flow worker {0} stopped unexpectedly")]
pub struct WorkerGone(pub usize);

#[derive(Debug)]
struct Shard {
    tx: Sender<WorkerMsg>,
    recycled: Receiver<Batch>,
    open: Batch,
}

/// Splits packets into per-worker batches.
#[derive(Debug)]
pub struct Dispatcher {
    shards: Vec<Shard>,
    hasher: FlowHasher,
    batch_size: usize,
    now_ns: u64,
    /// The current tick, and the tick's length.
    tick: u64,
    tick_ns: u64,
    /// What the dispatcher has done.
    pub counters: DispatchCounters,
}

impl Dispatcher {
    /// A dispatcher over workers' inboxes and their batch-return channels, which sends every
    /// worker a batch (empty or not) whenever the clock enters a new tick of `tick_ns`.
    pub fn new(
        workers: Vec<(Sender<WorkerMsg>, Receiver<Batch>)>,
        hasher: FlowHasher,
        batch_size: usize,
        tick_ns: u64,
    ) -> Self {
        let shards = workers
            .into_iter()
            .map(|(tx, recycled)| Shard { tx, recycled, open: Batch::with_capacity(batch_size) })
            .collect();
        let tick_ns = tick_ns.max(1);
        Self {
            shards,
            hasher,
            batch_size,
            now_ns: 0,
            tick: 0,
            tick_ns,
            counters: DispatchCounters::default(),
        }
    }

    /// The pipeline clock: the latest timestamp seen.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The flow hash of `key`, as [`Dispatcher::push`] computes it.
    #[inline]
    pub fn hash(&self, key: &nbad_common::FlowKey) -> u64 {
        self.hasher.hash(key)
    }

    /// Queues one packet for its worker (hashing its key unless `meta.hash`
    /// is already set).
    #[inline]
    pub fn push(&mut self, mut meta: PacketMeta) -> Result<(), WorkerGone> {
        if meta.hash == 0 {
            meta.hash = self.hasher.hash(&meta.key);
        }
        self.tick(meta.ts_ns)?;
        // Multiply-shift maps the hash's high half onto the shard range.
        let shard = (((meta.hash >> 32) * self.shards.len() as u64) >> 32) as usize;
        let open = &mut self.shards[shard].open;
        open.packets.push(meta);
        if open.packets.len() >= self.batch_size {
            self.send(shard)?;
        }
        Ok(())
    }

    /// Moves the clock forward (never back); on entering a new tick, sends
    /// every open batch so that all workers advance.
    pub fn tick(&mut self, now_ns: u64) -> Result<(), WorkerGone> {
        if now_ns <= self.now_ns {
            return Ok(());
        }
        self.now_ns = now_ns;
        let tick = now_ns / self.tick_ns;
        if tick != self.tick {
            self.tick = tick;
            for shard in 0..self.shards.len() {
                self.send(shard)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, shard: usize) -> Result<(), WorkerGone> {
        let s = &mut self.shards[shard];
        let fresh = s.recycled.try_recv().unwrap_or_else(|_| Batch::with_capacity(self.batch_size));
        let mut batch = std::mem::replace(&mut s.open, fresh);
        batch.now_ns = self.now_ns;
        self.counters.batches += 1;
        match s.tx.try_send(WorkerMsg::Batch(batch)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(msg)) => {
                self.counters.channel_full_waits += 1;
                s.tx.send(msg).map_err(|_| WorkerGone(shard))
            }
            Err(TrySendError::Disconnected(_)) => Err(WorkerGone(shard)),
        }
    }

    /// Sends every batch that holds packets (a capture thread that ends before the others).
    pub fn send_open(&mut self) -> Result<(), WorkerGone> {
        for shard in 0..self.shards.len() {
            if !self.shards[shard].open.packets.is_empty() {
                self.send(shard)?;
            }
        }
        Ok(())
    }

    /// Sends what is open and tells every worker to flush with `reason`.
    /// Returns the final counters.
    pub fn finish(mut self, reason: EndReason) -> Result<DispatchCounters, WorkerGone> {
        for shard in 0..self.shards.len() {
            self.send(shard)?;
            self.shards[shard].tx.send(WorkerMsg::Finish(reason)).map_err(|_| WorkerGone(shard))?;
        }
        Ok(self.counters)
    }
}
