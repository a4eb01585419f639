//! Which files the harvester holds: each rescan opens what the globs (and
//! rotated siblings) newly show, orphans what left them (read to its end,
//! then released), and forgets what left the disk.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::identity::{self, Truncated};
use super::{Harvester, Start};
use crate::checkpoint::{FileId, fingerprint};
use crate::discover;
use crate::origin::Origin;
use crate::tailer::Tailer;

impl Harvester {
    /// Evaluates the globs: new files are opened, files that left them are
    /// orphaned (read to their end, then released), files gone from the disk
    /// are forgotten.
    pub(super) fn rescan(&mut self) {
        self.metrics.rescans.inc();
        self.last_rescan = Instant::now();
        self.next_rescan = self.last_rescan + self.settings.rescan;
        self.truncated.retain(Truncated::is_recent);
        let mut seen = HashSet::new();
        let mut matched = HashSet::new();
        for found in discover::scan(&self.settings.paths) {
            let id = FileId::of(&found.metadata);
            seen.insert(id);
            if !found.rotated {
                matched.insert(id);
            }
            if let Some(tailer) = self.tailers.get_mut(&id) {
                tailer.path = found.path;
                if tailer.fingerprint == 0 {
                    // Truncated earlier; its new first line is known now.
                    tailer.fingerprint = fingerprint(tailer.file()).ok().flatten().unwrap_or(0);
                }
                continue;
            }
            if self.done.contains_key(&id) {
                continue;
            }
            if self.tailers.len() >= self.settings.max_open_files {
                self.waiting.see(id, &found.path, &self.metrics);
                continue;
            }
            self.waiting.opened(id, &found.path, &self.metrics);
            self.open_new(id, &found.path, found.rotated);
        }
        self.waiting.forget_gone(&seen, &self.metrics);
        for (id, tailer) in &mut self.tailers {
            let orphaned = !matched.contains(id);
            if orphaned && !tailer.orphaned {
                self.metrics.rotations.inc();
                tracing::info!(file = %tailer.path.display(),
                    "file left its path (rotated or deleted); reading it to its end");
            }
            tailer.orphaned = orphaned;
        }
        let gone: Vec<FileId> = self
            .done
            .iter()
            .filter(|(_, file)| file.metadata().is_ok_and(|metadata| metadata.nlink() == 0))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.done.remove(&id);
            self.batch.note_forget(id);
        }
        self.copy_candidates.retain(|id, _| seen.contains(id));
        self.metrics.files_watched.set(self.tailers.len() as i64);
    }

    fn open_new(&mut self, id: FileId, path: &Path, rotated: bool) {
        let origin = Origin::new(&self.settings.node, path);
        if self.settings.own.wrote(&origin) {
            return;
        }
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot open; will retry");
                return;
            }
        };
        // A file without a whole first line yet is looked at again later.
        let Ok(Some(fingerprint)) = fingerprint(&file) else {
            return;
        };
        let offset = match self.start {
            Start::AtEnd => identity::end_of_last_line(&file),
            Start::FromCheckpoint => match self.start_offset(id, fingerprint, &file) {
                Some(offset) => offset,
                None => return,
            },
        };
        let kubernetes = self.kubernetes_for(&origin);
        match Tailer::open(
            id,
            fingerprint,
            path.to_owned(),
            Arc::new(origin),
            file,
            offset,
            self.settings.max_line_bytes,
        )
        .map(|tailer| tailer.with_kubernetes(kubernetes))
        {
            Ok(mut tailer) => {
                tracing::info!(file = %path.display(), offset, rotated, "tailing");
                if rotated {
                    // Rotated before the agent saw it under its first name.
                    self.metrics.rotations.inc();
                }
                tailer.orphaned = rotated;
                self.batch.note_position(tailer.position());
                self.tailers.insert(id, tailer);
            }
            Err(error) => tracing::warn!(file = %path.display(), %error, "cannot read; will retry"),
        }
    }
}
