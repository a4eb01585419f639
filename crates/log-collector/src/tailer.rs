//! One open file being read: cuts its bytes into lines (bounded by the line
//! limit, so a huge line never stalls the file), hands them to the parser,
//! and knows the offset a restart may resume from.
//!
//! The file stays open while it is read, even after it was renamed or
//! deleted: the open descriptor is what lets a rotated file be read to its
//! end.
//!
//! Memory: between reads a file holds only its unfinished last line (and
//! the parser's partial lines). When the harvester's budget for those runs
//! out it calls [`Tailer::release_memory`]: the unfinished line is dropped
//! from memory and read again from the file once the file grows, since the
//! file itself keeps it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::{FileId, Position, Tail};
use crate::event::Event;
use crate::kubernetes::ContainerMetadata;
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::parse::{LineParser, RawLine};

const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct Tailer {
    pub id: FileId,
    pub fingerprint: u64,
    /// The path the file is at now (it changes when a rename keeps it
    /// inside the globs).
    pub path: PathBuf,
    pub origin: Arc<Origin>,
    file: File,
    /// Offset of the next byte to read.
    offset: u64,
    /// Offset of the first byte of `pending` (a line without its newline yet).
    line_start: u64,
    /// The bytes before `line_start`, when known (see [`Position::tail`]).
    tail: Option<Tail>,
    pending: Vec<u8>,
    /// Inside a line longer than the limit whose head was already emitted.
    skipping: bool,
    /// The unfinished line was released from memory when the file was this
    /// long: nothing to read until it grows.
    released_at_len: Option<u64>,
    /// Offset of the first byte never read before (bytes read again after a
    /// release are not counted twice).
    read_up_to: u64,
    parser: LineParser,
    max_line_bytes: usize,
    /// When the file last grew (or was opened).
    pub last_growth: Instant,
    /// The file left the globs (renamed away or deleted): read it to its end,
    /// then release it.
    pub orphaned: bool,
    /// The container's metadata from the API server, for a container log
    /// when the metadata source is on.
    kubernetes: Option<ContainerMetadata>,
}

/// What one call to [`Tailer::read`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOutcome {
    pub bytes: usize,
    pub at_end: bool,
}

impl Tailer {
    pub fn open(
        id: FileId,
        fingerprint: u64,
        path: PathBuf,
        origin: Arc<Origin>,
        mut file: File,
        offset: u64,
        max_line_bytes: usize,
    ) -> std::io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        let tail = Tail::read_before(&file, offset);
        Ok(Self {
            id,
            fingerprint,
            path,
            parser: LineParser::new(Arc::clone(&origin), max_line_bytes),
            origin,
            file,
            offset,
            line_start: offset,
            tail,
            pending: Vec::new(),
            skipping: false,
            released_at_len: None,
            read_up_to: offset,
            max_line_bytes,
            last_growth: Instant::now(),
            orphaned: false,
            kubernetes: None,
        })
    }

    /// Gives the lines read from now on the container's metadata.
    pub fn with_kubernetes(mut self, kubernetes: Option<ContainerMetadata>) -> Self {
        self.kubernetes = kubernetes;
        self
    }

    /// The position to save once every event emitted so far is shipped.
    pub fn position(&self) -> Position {
        let offset = self.parser.resume_offset(self.line_start);
        Position {
            id: self.id,
            fingerprint: self.fingerprint,
            path: self.path.clone(),
            offset,
            // Known for the end of the last whole line only.
            tail: self.tail.filter(|_| offset == self.line_start),
        }
    }

    /// Reads up to `budget` bytes and emits the events they complete.
    pub fn read(
        &mut self,
        budget: usize,
        read_time: &str,
        metrics: &Metrics,
        emit: &mut impl FnMut(Event),
    ) -> std::io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        // A change of the pod shows from the next read on. A pod whose
        // metadata is not complete yet (the pod, its namespace or the node
        // not listed) holds its file back a little, the other files being
        // read meanwhile; a file that left its path is read at once.
        if let Some(kubernetes) = &mut self.kubernetes {
            let current = kubernetes.current();
            if !self.orphaned && kubernetes.should_wait(current.as_deref()) {
                return Ok(outcome);
            }
            self.parser.kubernetes = current;
        }
        if let Some(len) = self.released_at_len {
            if self.file.metadata()?.len() <= len {
                outcome.at_end = true;
                return Ok(outcome);
            }
            self.released_at_len = None;
        }
        while outcome.bytes < budget {
            let kept = self.pending.len();
            // Never more than the budget: the caller's batch has that room.
            let want = READ_CHUNK.min(budget - outcome.bytes);
            self.pending.resize(kept + want, 0);
            let read = match self.file.read(&mut self.pending[kept..]) {
                Ok(read) => read,
                Err(error) => {
                    self.pending.truncate(kept);
                    return Err(error);
                }
            };
            self.pending.truncate(kept + read);
            if read == 0 {
                outcome.at_end = true;
                break;
            }
            self.offset += read as u64;
            outcome.bytes += read;
            self.cut_lines(kept, read_time, metrics, emit);
        }
        if self.offset > self.read_up_to {
            self.last_growth = Instant::now();
            metrics.bytes_read.inc_by(self.offset - self.read_up_to);
            self.read_up_to = self.offset;
        }
        // Keep what the unfinished line needs, not the read buffer's room.
        if self.pending.capacity() - self.pending.len() > READ_CHUNK / 4 {
            self.pending.shrink_to_fit();
        }
        Ok(outcome)
    }

    /// Bytes this file holds in memory between reads: its unfinished line
    /// and the parser's partial lines.
    pub fn held_bytes(&self) -> usize {
        self.pending.len() + self.parser.held_bytes()
    }

    /// Gives back the memory of unfinished lines. The file's unfinished
    /// last line is read again from the file once the file grows. Partial
    /// lines (runtime `P` parts waiting for their end) cannot be read again
    /// without reading what followed them twice: they are shipped as they
    /// are and counted (`log_collector_split_lines_total`); their last part
    /// follows as a line of its own.
    pub fn release_memory(
        &mut self,
        metrics: &Metrics,
        emit: &mut impl FnMut(Event),
    ) -> std::io::Result<()> {
        for event in self.parser.finish(metrics) {
            metrics.split_lines.inc();
            emit(event);
        }
        if self.pending.is_empty() || self.skipping {
            return Ok(());
        }
        let len = self.file.metadata()?.len();
        // Read to its end: nothing to do until it grows. Stopped in the
        // middle (its turn was over): the next turn reads on.
        self.released_at_len = (self.offset >= len).then_some(len);
        self.file.seek(SeekFrom::Start(self.line_start))?;
        self.offset = self.line_start;
        self.pending = Vec::new();
        Ok(())
    }

    /// Emits every whole line in `pending` (new bytes start at `scan_from`),
    /// keeps the unfinished rest, and cuts a line that outgrew the limit.
    fn cut_lines(
        &mut self,
        scan_from: usize,
        read_time: &str,
        metrics: &Metrics,
        emit: &mut impl FnMut(Event),
    ) {
        let mut consumed = 0;
        let mut scan = scan_from;
        while let Some(found) = memchr::memchr(b'\n', &self.pending[scan..]) {
            let end = scan + found;
            if self.skipping {
                // The tail of an over-long line whose head went out already.
                self.skipping = false;
            } else {
                let line = RawLine {
                    bytes: &self.pending[consumed..end],
                    start: self.line_start,
                    truncated: false,
                };
                emit_line(&mut self.parser, line, read_time, metrics, emit);
            }
            consumed = end + 1;
            scan = consumed;
            self.line_start = self.offset - (self.pending.len() - consumed) as u64;
        }
        if consumed > 0 {
            self.tail = Some(Tail::of(&self.pending[..consumed]));
        }
        if self.skipping {
            consumed = self.pending.len();
        } else if self.pending.len() - consumed > self.max_line_bytes {
            let head_end = consumed + self.max_line_bytes;
            let line = RawLine {
                bytes: &self.pending[consumed..head_end],
                start: self.line_start,
                truncated: true,
            };
            emit_line(&mut self.parser, line, read_time, metrics, emit);
            self.skipping = true;
            consumed = self.pending.len();
        }
        self.pending.drain(..consumed);
    }

    /// Whether the file is now shorter than what was read: it was truncated
    /// in place (copytruncate). The caller then calls [`Self::restart`].
    pub fn was_truncated(&self) -> std::io::Result<bool> {
        Ok(self.file.metadata()?.len() < self.offset)
    }

    /// Reads the file again from its start (after a truncation).
    pub fn restart(&mut self, fingerprint: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.offset = 0;
        self.line_start = 0;
        self.tail = None;
        self.pending.clear();
        self.skipping = false;
        self.released_at_len = None;
        self.read_up_to = 0;
        self.fingerprint = fingerprint;
        self.parser = LineParser::new(Arc::clone(&self.origin), self.max_line_bytes);
        Ok(())
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file will not grow again: ship what is left, even a last line
    /// without its newline.
    pub fn finish(&mut self, read_time: &str, metrics: &Metrics, emit: &mut impl FnMut(Event)) {
        if !self.pending.is_empty() && !self.skipping {
            let pending = std::mem::take(&mut self.pending);
            self.tail = Some(Tail::of(&pending));
            let line = RawLine {
                bytes: &pending,
                start: self.line_start,
                truncated: false,
            };
            emit_line(&mut self.parser, line, read_time, metrics, emit);
        }
        self.pending.clear();
        self.line_start = self.offset;
        for event in self.parser.finish(metrics) {
            emit(event);
        }
    }
}

fn emit_line(
    parser: &mut LineParser,
    line: RawLine<'_>,
    read_time: &str,
    metrics: &Metrics,
    emit: &mut impl FnMut(Event),
) {
    metrics.lines_read.inc();
    if let Some(event) = parser.parse(line, read_time, metrics) {
        emit(event);
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests;
