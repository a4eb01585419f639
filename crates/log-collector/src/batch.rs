//! A batch: the unit the sink acknowledges. Besides its events it carries
//! the file positions that become safe to save once it is acknowledged, and
//! the files gone from the disk whose positions can be dropped.

use std::collections::HashMap;
use std::time::Instant;

use crate::checkpoint::{FileId, Position};
use crate::config::BatchLimits;
use crate::event::Event;

#[derive(Debug)]
pub struct Batch {
    /// Batches are numbered in the order they are shipped and acknowledged.
    pub seq: u64,
    /// Random, so that a sink can tell a retry of this batch from any other
    /// batch, of this run of the agent or another.
    pub token: u64,
    pub events: Vec<Event>,
    /// Sum of [`Event::size`], for the memory bound.
    pub bytes: usize,
    /// Positions to save once this batch (and every earlier one) is shipped.
    pub positions: HashMap<FileId, Position>,
    /// Files gone from the disk: their positions leave the checkpoint.
    pub forgotten: Vec<FileId>,
    /// When the first event went in.
    pub opened_at: Option<Instant>,
}

impl Batch {
    pub fn new(seq: u64) -> Self {
        Self {
            seq,
            token: fastrand::u64(..),
            events: Vec::new(),
            bytes: 0,
            positions: HashMap::new(),
            forgotten: Vec::new(),
            opened_at: None,
        }
    }

    pub fn push(&mut self, event: Event) {
        self.bytes += event.size();
        self.opened_at.get_or_insert_with(Instant::now);
        self.events.push(event);
    }

    /// Saves `position` with this batch (replacing an older one of the file).
    pub fn note_position(&mut self, position: Position) {
        self.opened_at.get_or_insert_with(Instant::now);
        self.positions.insert(position.id, position);
    }

    pub fn note_forget(&mut self, id: FileId) {
        self.opened_at.get_or_insert_with(Instant::now);
        self.positions.remove(&id);
        self.forgotten.push(id);
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.positions.is_empty() && self.forgotten.is_empty()
    }

    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.events.len() >= limits.lines || self.bytes >= limits.bytes
    }

    /// Whether the batch should go now: full, or what went in first has
    /// waited long enough.
    pub fn is_due(&self, limits: &BatchLimits) -> bool {
        self.is_full(limits)
            || self
                .opened_at
                .is_some_and(|opened| opened.elapsed() >= limits.wait)
    }

    /// Bytes that still fit before the batch is full.
    pub fn room(&self, limits: &BatchLimits) -> usize {
        limits.bytes.saturating_sub(self.bytes)
    }
}
