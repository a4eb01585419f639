//! The sending side: takes batches in order, delivers each to the sink
//! (retrying with exponential backoff and jitter, splitting on 413, dropping
//! with a count only on an explicit refusal), and only then saves the
//! checkpoint. A batch is never skipped because it failed: the next one
//! waits, and so does reading (backpressure).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Sender, SyncSender};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::batch::Batch;
use crate::checkpoint::{CheckpointStore, FileId, Position};
use crate::metrics::Metrics;
use crate::sinks::{DeliveryId, SendError, Sink};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Shipper {
    pub sink: Sink,
    pub store: CheckpointStore,
    /// Every file's acknowledged position: what the checkpoint file holds.
    pub positions: HashMap<FileId, Position>,
    pub metrics: Arc<Metrics>,
    /// Tells the harvester which batch was acknowledged last.
    pub acks: Sender<u64>,
    /// Wakes the harvester, which sleeps while its next batch has no room
    /// in the channel.
    pub wake_harvester: SyncSender<()>,
    pub retry_max: Duration,
    /// Set on shutdown: the instant after which the shipper stops retrying.
    pub give_up_at: watch::Receiver<Option<Instant>>,
}

impl Shipper {
    /// Ships batches until the harvester is done, or until shutdown's
    /// deadline passes while the sink still refuses.
    pub async fn run(mut self, mut batches: mpsc::Receiver<Batch>) {
        while let Some(batch) = batches.recv().await {
            // The channel has room again: the harvester's next batch can be
            // handed over while this one is delivered. (A wakeup already
            // pending is as good as this one.)
            let _ = self.wake_harvester.try_send(());
            if !self.deliver(&batch).await {
                tracing::warn!(
                    lines = batch.events.len(),
                    "shutdown deadline reached with the sink unavailable; \
                     unshipped lines will be read again at the next start"
                );
                return;
            }
            self.acknowledge(batch).await;
        }
    }

    /// `false` when shutdown's deadline passed before the sink took it.
    async fn deliver(&mut self, batch: &Batch) -> bool {
        let events = &batch.events;
        // Ranges still to send, the next one last: a 413 splits a range in two.
        let mut pending: Vec<Range<usize>> = Vec::new();
        pending.push(0..events.len());
        let mut backoff = FIRST_BACKOFF;
        while let Some(range) = pending.pop() {
            if range.is_empty() {
                continue;
            }
            let delivery = DeliveryId {
                batch: batch.token,
                first: range.start,
            };
            match self.sink.send(&events[range.clone()], delivery).await {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    self.metrics.lines_shipped.inc_by(range.len() as u64);
                }
                Err(SendError::TooLarge) if range.len() > 1 => {
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
                Err(SendError::TooLarge) => {
                    tracing::error!(file = %events[range.start].origin.path.display(),
                        "the sink refuses a single line as too large (413); dropped");
                    self.metrics.dropped("too_large", 1);
                }
                Err(SendError::Rejected(detail)) => {
                    tracing::error!(lines = range.len(), %detail, "the sink rejected lines (400); dropped");
                    self.metrics.dropped("rejected", range.len());
                }
                Err(SendError::Retry(detail)) => {
                    self.metrics.send_errors.inc();
                    tracing::warn!(lines = range.len(), %detail, retry_in_ms = backoff.as_millis() as u64,
                        "cannot ship; retrying");
                    if !self.pause(backoff).await {
                        return false;
                    }
                    self.metrics.retries.inc();
                    backoff = (backoff * 2).min(self.retry_max);
                    pending.push(range);
                }
            }
        }
        true
    }

    /// Sleeps `backoff` with jitter (50 to 100 %, so that many agents that
    /// failed together do not retry together); `false` once the shutdown
    /// deadline passed.
    async fn pause(&mut self, backoff: Duration) -> bool {
        let jittered = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
        let wake_at = Instant::now() + jittered;
        loop {
            let deadline = *self.give_up_at.borrow_and_update();
            if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                return false;
            }
            let until = deadline.map_or(wake_at, |deadline| deadline.min(wake_at));
            tokio::select! {
                () = tokio::time::sleep_until(until) => {
                    if Instant::now() >= wake_at {
                        return true;
                    }
                }
                changed = self.give_up_at.changed() => {
                    if changed.is_err() {
                        // Nobody can ask for shutdown any more: keep going.
                        tokio::time::sleep_until(wake_at).await;
                        return true;
                    }
                }
            }
        }
    }

    /// The batch is in the sink: its positions become the checkpoint.
    async fn acknowledge(&mut self, batch: Batch) {
        self.metrics.batches_shipped.inc();
        self.metrics.buffered_bytes.dec_by(batch.bytes as i64);
        let changed = !batch.positions.is_empty() || !batch.forgotten.is_empty();
        self.positions.extend(batch.positions);
        for id in &batch.forgotten {
            self.positions.remove(id);
        }
        if changed {
            self.save().await;
        }
        // The harvester may be gone at shutdown; nothing to tell then.
        let _ = self.acks.send(batch.seq);
    }

    async fn save(&mut self) {
        let store = self.store.clone();
        let positions = self.positions.clone();
        let saved = tokio::task::spawn_blocking(move || store.save(&positions)).await;
        match saved {
            Ok(Ok(())) => {
                self.metrics.checkpoint_writes.inc();
            }
            Ok(Err(error)) => {
                self.metrics.checkpoint_errors.inc();
                tracing::error!(%error, "checkpoint not saved; lines may be shipped twice after a restart");
            }
            Err(error) => {
                self.metrics.checkpoint_errors.inc();
                tracing::error!(%error, "checkpoint task failed");
            }
        }
    }
}
