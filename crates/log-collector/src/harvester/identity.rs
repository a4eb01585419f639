//! How the harvester decides where a newly found file starts: its saved
//! position, the position of the file it is a copy of (copytruncate), or 0;
//! and how files rotated while the agent was down are found again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Harvester;
use crate::batch::Batch;
use crate::checkpoint::{self, FileId, Position, Tail, fingerprint};
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::tailer::Tailer;

/// How long a truncated file's old position waits for its copy to show up.
const COPY_MATCH_WINDOW: Duration = Duration::from_secs(60);

/// The position a file had when it was found truncated: its copy, if one
/// appears, resumes from there. A copy is a file with the same first line
/// that also holds the same bytes right before the position: a first line
/// alone (a banner, a CSV header) is shared by unrelated files.
#[derive(Debug)]
pub(super) struct Truncated {
    fingerprint: u64,
    offset: u64,
    tail: Option<Tail>,
    at: Instant,
}

impl Truncated {
    pub(super) fn of(position: &Position) -> Self {
        Self {
            fingerprint: position.fingerprint,
            offset: position.offset,
            tail: position.tail,
            at: Instant::now(),
        }
    }

    /// Whether `file` (whose first line has `fingerprint`) is a copy of this
    /// file as it was up to its position.
    fn is_copied_in(&self, fingerprint: u64, file: &File) -> bool {
        self.fingerprint == fingerprint
            && self
                .tail
                .is_some_and(|tail| tail.is_before(file, self.offset))
    }

    /// Whether a copy showing up now may still be this file's.
    pub(super) fn is_recent(&self) -> bool {
        self.at.elapsed() < COPY_MATCH_WINDOW
    }
}

impl Harvester {
    /// Where a newly found file starts; `None` to decide later.
    pub(super) fn start_offset(
        &mut self,
        id: FileId,
        fingerprint: u64,
        file: &File,
    ) -> Option<u64> {
        if let Some(saved) = self.saved.remove(&id) {
            if saved.fingerprint == fingerprint {
                return Some(saved.offset);
            }
            // Same inode, other first line: truncated and rewritten (or a
            // reused inode) while the agent was down. A copy may show up.
            self.truncated.push(Truncated::of(&saved));
        }
        if let Some(at) = self
            .truncated
            .iter()
            .position(|truncated| truncated.is_copied_in(fingerprint, file))
        {
            let copy_of = self.truncated.swap_remove(at);
            self.copy_candidates.remove(&id);
            return Some(copy_of.offset);
        }
        let live_twin = self
            .tailers
            .values()
            .any(|tailer| tailer.fingerprint == fingerprint && !tailer.orphaned);
        if live_twin {
            // Probably copytruncate's copy, made just before the original is
            // truncated: wait a little for the truncation to tell.
            let first_seen = *self.copy_candidates.entry(id).or_insert_with(Instant::now);
            if first_seen.elapsed() < self.settings.rotate_wait {
                return None;
            }
        }
        self.copy_candidates.remove(&id);
        Some(0)
    }

    /// Files in the checkpoint that the first scan did not find: rotated
    /// while the agent was down. They are looked for by inode in their old
    /// directory and read to their end.
    pub(super) fn recover_rotated(&mut self) {
        let missing: Vec<Position> = self.saved.drain().map(|(_, position)| position).collect();
        for position in missing {
            match find_by_id(&position.path, position.id, Some(position.fingerprint)) {
                Some((path, file)) => {
                    let origin = Arc::new(Origin::new(&self.settings.node, &position.path));
                    let kubernetes = self.kubernetes_for(&origin);
                    let opened = Tailer::open(
                        position.id,
                        position.fingerprint,
                        path.clone(),
                        origin,
                        file,
                        position.offset,
                        self.settings.max_line_bytes,
                    )
                    .map(|tailer| tailer.with_kubernetes(kubernetes));
                    match opened {
                        Ok(mut tailer) => {
                            tracing::info!(file = %path.display(), offset = position.offset,
                                "reading a file rotated while the agent was down");
                            tailer.orphaned = true;
                            self.tailers.insert(position.id, tailer);
                        }
                        Err(error) => tracing::warn!(file = %path.display(), %error,
                            "cannot read a file rotated while the agent was down"),
                    }
                }
                None => {
                    tracing::warn!(file = %position.path.display(), offset = position.offset,
                        "a checkpointed file is gone; lines after its offset, if any, were not read");
                    self.batch.note_forget(position.id);
                }
            }
        }
        self.metrics.files_watched.set(self.tailers.len() as i64);
    }
}

/// The file was truncated in place: read it again from its start, and
/// remember where it was so that its copy can continue from there.
pub(super) fn truncate(
    tailer: &mut Tailer,
    truncated: &mut Vec<Truncated>,
    metrics: &Metrics,
    batch: &mut Batch,
) {
    metrics.file_truncations.inc();
    tracing::info!(file = %tailer.path.display(), offset = tailer.offset(),
        "file truncated (copytruncate); reading it again from the start");
    truncated.push(Truncated::of(&tailer.position()));
    // Until the new content has a first line, no fingerprint: 0 matches none.
    let fingerprint = fingerprint(tailer.file()).ok().flatten().unwrap_or(0);
    match tailer.restart(fingerprint) {
        Ok(()) => batch.note_position(tailer.position()),
        Err(error) => tracing::warn!(file = %tailer.path.display(), %error, "cannot rewind"),
    }
}

/// The offset just past the file's last newline: where a file starts when
/// what it holds now is to be skipped. A last line without its newline yet
/// is read when it is finished. (Past the last 64 KiB, a line that long is
/// entered where the file ends.)
pub(super) fn end_of_last_line(file: &File) -> u64 {
    const LOOK_BACK: u64 = 64 * 1024;
    let Ok(len) = file.metadata().map(|metadata| metadata.len()) else {
        return 0;
    };
    let from = len.saturating_sub(LOOK_BACK);
    let mut tail = vec![0_u8; usize::try_from(len - from).unwrap_or(0)];
    if std::os::unix::fs::FileExt::read_exact_at(file, &mut tail, from).is_err() {
        return len;
    }
    match memchr::memrchr(b'\n', &tail) {
        Some(newline) => from + newline as u64 + 1,
        None if from == 0 => 0,
        None => len,
    }
}

/// The file with this device and inode in the directory of `near` (where it
/// was last seen), if its first line still has `fingerprint` (any first line,
/// or none yet, when `fingerprint` is `None`).
pub(super) fn find_by_id(
    near: &Path,
    id: FileId,
    fingerprint: Option<u64>,
) -> Option<(PathBuf, File)> {
    let dir = near.parent()?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        if FileId::of(&metadata) != id {
            continue;
        }
        let file = File::open(&path).ok()?;
        let matches = match fingerprint {
            Some(expected) => checkpoint::fingerprint(&file).ok()?? == expected,
            None => true,
        };
        return matches.then_some((path, file));
    }
    None
}
