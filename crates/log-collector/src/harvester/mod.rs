//! The reading side, on its own thread: finds files, follows them through
//! rotation and truncation, reads them in turns, and fills batches for the
//! shipper. When the shipper is behind (the sink is slow or down), the full
//! batch waits and reading pauses (backpressure) instead of buffering
//! without limit; discovery goes on, so that files rotated meanwhile are
//! found and held open (up to `COLLECTOR_MAX_OPEN_FILES`, see
//! [`waiting`]).
//!
//! Rules that keep every line:
//! - a file that leaves the globs (renamed away or deleted) stays open and is
//!   read to its end; it is closed only once it has been idle for
//!   `COLLECTOR_ROTATE_WAIT_MS` and its last batch was acknowledged;
//! - a file shorter than what was read was truncated in place: it is read
//!   again from 0, and a new file with the same first line (the copy that
//!   copytruncate made) continues from where the original was;
//! - rotated siblings of matched files (`0.log.20261126-070000`) are read
//!   too, so a file created and rotated away while the agent was down or
//!   busy is not skipped; one read to its end is remembered (and its final
//!   position kept in the checkpoint) until it leaves the disk;
//! - at start, a checkpointed file that the globs no longer find is looked
//!   for by inode beside its old path (a rotation under another name).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

mod identity;
mod scan;
mod waiting;

use identity::{Truncated, truncate};
use waiting::Waiting;

use crate::batch::Batch;
use crate::checkpoint::{FileId, Position};
use crate::config::Settings;
use crate::event::Event;
use crate::kubernetes::{ContainerMetadata, Metadata};
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::tailer::Tailer;

/// Bytes read from one file before the next file gets its turn.
const READ_TURN: usize = 256 * 1024;
/// Longest sleep when there is nothing to read (the polling backstop).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Shortest time between two rescans triggered by inotify.
const MIN_RESCAN: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Harvester {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    tailers: BTreeMap<FileId, Tailer>,
    /// The checkpoint as loaded at start; an entry is used when its file is
    /// opened.
    saved: HashMap<FileId, Position>,
    truncated: Vec<Truncated>,
    /// Files found by the first scan start at their end (no usable
    /// checkpoint, and the operator chose to skip what they hold).
    start: Start,
    /// New files that look like a copy of a file still being read, and when
    /// they were first seen.
    copy_candidates: HashMap<FileId, Instant>,
    /// Rotated files read to their end, until they are deleted. Each keeps a
    /// descriptor open only to tell when that happens (a link count of 0):
    /// the file may have been renamed where no scan looks.
    done: HashMap<FileId, File>,
    batch: Batch,
    /// Files whose last lines are in batch `seq`: closed once it is acked.
    closing: Vec<(u64, Tailer)>,
    out: Sender<Batch>,
    acks: Receiver<u64>,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
    last_rescan: Instant,
    /// When the globs are evaluated next: `COLLECTOR_RESCAN_MS` after the
    /// last time, or sooner when inotify reports a change.
    next_rescan: Instant,
    /// Counts reading rounds (which file goes first).
    round: usize,
    kubernetes: Option<Metadata>,
    /// Sum of the tailers' [`Tailer::held_bytes`].
    line_memory: usize,
    /// Files found while every open-file slot was taken.
    waiting: Waiting,
}

/// Where the files found at start begin when the checkpoint has no position
/// for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At 0: they are new since the checkpoint.
    FromCheckpoint,
    /// At the end of their last whole line: the checkpoint was lost.
    AtEnd,
}

/// What became of a batch offered to the shipper.
enum Shipped {
    Yes,
    /// A batch is queued already: this one waits (and reading pauses).
    ChannelFull,
    ShipperGone,
}

/// The channels that connect the harvester to the rest of the agent.
#[derive(Debug)]
pub struct Links {
    pub out: Sender<Batch>,
    pub acks: Receiver<u64>,
    pub wake: Receiver<()>,
    pub stop: Arc<AtomicBool>,
    /// The Kubernetes metadata source, when it is on.
    pub kubernetes: Option<Metadata>,
}

impl Harvester {
    /// The metadata a container log's lines carry, when the source is on.
    fn kubernetes_for(&self, origin: &Origin) -> Option<ContainerMetadata> {
        let pod = origin.pod.as_ref()?;
        let metadata = self.kubernetes.clone()?;
        let wait = self.settings.kubernetes.as_ref()?.wait;
        Some(ContainerMetadata::new(
            metadata,
            &pod.pod_uid,
            &pod.container,
            wait,
        ))
    }

    pub fn new(
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
        saved: HashMap<FileId, Position>,
        start: Start,
        links: Links,
    ) -> Self {
        Self {
            settings,
            metrics,
            tailers: BTreeMap::new(),
            saved,
            truncated: Vec::new(),
            start,
            copy_candidates: HashMap::new(),
            done: HashMap::new(),
            batch: Batch::new(1),
            closing: Vec::new(),
            out: links.out,
            acks: links.acks,
            wake: links.wake,
            stop: links.stop,
            kubernetes: links.kubernetes,
            last_rescan: Instant::now(),
            next_rescan: Instant::now(),
            round: 0,
            line_memory: 0,
            waiting: Waiting::default(),
        }
    }

    /// Runs until `stop` is set or the shipper is gone; ships what was read.
    pub fn run(mut self) {
        self.rescan();
        // Only the files there at start were covered by the lost checkpoint.
        self.start = Start::FromCheckpoint;
        self.recover_rotated();
        while !self.stop.load(Ordering::Relaxed) {
            self.take_acks();
            if self.rescan_due() {
                self.rescan();
            }
            let mut stalled = false;
            if self.batch.is_due(&self.settings.batch) {
                match self.try_ship() {
                    Shipped::Yes => {}
                    Shipped::ChannelFull => stalled = true,
                    Shipped::ShipperGone => return,
                }
            }
            let read = if self.batch.is_full(&self.settings.batch) {
                0
            } else {
                self.read_turns()
            };
            if read == 0 {
                self.wait(stalled);
            }
        }
        self.ship_waiting();
    }

    fn rescan_due(&self) -> bool {
        Instant::now() >= self.next_rescan
    }

    /// Sleeps until something may have changed. `stalled`: the batch is due
    /// but the channel has no room; it is offered again when the shipper
    /// takes the batch queued there (which wakes this thread).
    fn wait(&mut self, stalled: bool) {
        let mut timeout = IDLE_POLL;
        if let Some(opened) = self.batch.opened_at
            && !stalled
        {
            timeout = timeout.min(self.settings.batch.wait.saturating_sub(opened.elapsed()));
        }
        timeout = timeout.min(self.next_rescan.saturating_duration_since(Instant::now()));
        if self.wake.recv_timeout(timeout).is_ok() {
            // Something changed under the globs: look again soon (a new
            // file, a rename), but not on every write.
            self.next_rescan = self.next_rescan.min(self.last_rescan + MIN_RESCAN);
        }
    }

    /// One turn for every file; returns the bytes read. Each round starts
    /// one file further, so that a full batch never starves the same files.
    fn read_turns(&mut self) -> usize {
        let read_time = now_rfc3339();
        let mut order: Vec<FileId> = self.tailers.keys().copied().collect();
        if !order.is_empty() {
            self.round = self.round.wrapping_add(1);
            let first = self.round % order.len();
            order.rotate_left(first);
        }
        let mut total = 0;
        let mut finished = Vec::new();
        let kubernetes_on = self.kubernetes.is_some();
        for id in order {
            let Some(tailer) = self.tailers.get_mut(&id) else {
                continue;
            };
            let held_before = tailer.held_bytes();
            let budget = READ_TURN.min(self.batch.room(&self.settings.batch).max(1));
            let batch = &mut self.batch;
            let metrics = &self.metrics;
            let outcome = match tailer.read(
                budget,
                &read_time,
                metrics,
                &mut into_batch(batch, metrics, kubernetes_on),
            ) {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::warn!(file = %tailer.path.display(), %error, "read failed; will retry");
                    continue;
                }
            };
            total += outcome.bytes;
            if outcome.bytes > 0 {
                batch.note_position(tailer.position());
            }
            if outcome.at_end {
                if tailer.orphaned {
                    if tailer.last_growth.elapsed() >= self.settings.rotate_wait {
                        finished.push(id);
                    }
                } else if tailer.was_truncated().unwrap_or(false) {
                    truncate(tailer, &mut self.truncated, metrics, batch);
                }
            }
            self.line_memory = self.line_memory - held_before + tailer.held_bytes();
            if self.line_memory > self.settings.line_buffer_bytes {
                let held = tailer.held_bytes();
                if let Err(error) =
                    tailer.release_memory(metrics, &mut into_batch(batch, metrics, kubernetes_on))
                {
                    tracing::warn!(file = %tailer.path.display(), %error, "cannot rewind; will retry");
                }
                self.line_memory = self.line_memory - held + tailer.held_bytes();
            }
            if self.batch.is_full(&self.settings.batch) {
                break;
            }
        }
        for id in finished {
            self.release(id, &read_time);
        }
        self.metrics.line_buffer_bytes.set(self.line_memory as i64);
        total
    }

    /// A rotated or deleted file was read to its end and stayed idle: ship
    /// what is left of it and close it once that is acknowledged.
    fn release(&mut self, id: FileId, read_time: &str) {
        let Some(mut tailer) = self.tailers.remove(&id) else {
            return;
        };
        self.line_memory -= tailer.held_bytes();
        let batch = &mut self.batch;
        let metrics = &self.metrics;
        let kubernetes_on = self.kubernetes.is_some();
        tailer.finish(
            read_time,
            metrics,
            &mut into_batch(batch, metrics, kubernetes_on),
        );
        // The final position stays in the checkpoint while the file exists,
        // so that a restart does not read it again.
        batch.note_position(tailer.position());
        if let Ok(watch) = tailer.file().try_clone() {
            self.done.insert(id, watch);
        }
        tracing::info!(file = %tailer.path.display(), offset = tailer.offset(),
            "rotated file read to its end");
        self.closing.push((batch.seq, tailer));
        self.metrics.files_watched.set(self.tailers.len() as i64);
    }

    /// Offers the batch to the shipper without waiting.
    fn try_ship(&mut self) -> Shipped {
        if self.batch.is_empty() {
            return Shipped::Yes;
        }
        let next = Batch::new(self.batch.seq + 1);
        let batch = std::mem::replace(&mut self.batch, next);
        match self.out.try_send(batch) {
            Ok(()) => Shipped::Yes,
            Err(TrySendError::Full(batch)) => {
                self.batch = batch;
                Shipped::ChannelFull
            }
            Err(TrySendError::Closed(_)) => Shipped::ShipperGone,
        }
    }

    /// At shutdown: hands over the last batch, waiting for room (the
    /// shipper gives up at its own deadline).
    fn ship_waiting(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = Batch::new(self.batch.seq + 1);
        let last = std::mem::replace(&mut self.batch, next);
        // The shipper may be gone already; the lines are read again then.
        let _ = self.out.blocking_send(last);
    }

    /// Closes the files whose last batch was acknowledged. (A file waits
    /// for the batch being filled, later than any acknowledged one.)
    fn take_acks(&mut self) {
        if let Some(acked) = self.acks.try_iter().max() {
            self.closing.retain(|(seq, _)| *seq > acked);
        }
    }
}

/// Where read events go: into the batch, counted as buffered until the
/// shipper has them acknowledged. Lines of excluded pods and containers go
/// nowhere; with the Kubernetes metadata source on, container lines that
/// go out without metadata are counted.
fn into_batch<'a>(
    batch: &'a mut Batch,
    metrics: &'a Metrics,
    kubernetes_on: bool,
) -> impl FnMut(Event) + 'a {
    move |event| {
        match &event.kubernetes {
            Some(kubernetes) if kubernetes.excluded => {
                metrics.excluded_lines.inc();
                return;
            }
            None if kubernetes_on && event.origin.pod.is_some() => {
                metrics.lines_without_metadata.inc();
            }
            _ => {}
        }
        metrics.buffered_bytes.inc_by(event.size() as i64);
        batch.push(event);
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
