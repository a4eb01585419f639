//! Files found while every slot for an open file is taken
//! (`COLLECTOR_MAX_OPEN_FILES`): typically during a long sink outage, when
//! reading pauses but rotations go on and every rotated file is held open so
//! that none of its lines is lost. A file that waits is opened as soon as a
//! slot frees. Its lines are counted meanwhile (read without being kept), so
//! that if it leaves the disk before it could be opened (kubelet compresses
//! and deletes rotated files) the loss is known exactly: counted in
//! `log_collector_lost_lines_total` and logged with the file.
//!
//! No descriptor is held, so a deleted file's inode may be reused at once by
//! the next file kubelet creates: a waiting file is known by its inode *and*
//! the fingerprint of its first line, and an inode that shows another first
//! line is another file (the one that waited is gone).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::identity::find_by_id;
use crate::checkpoint::{FileId, fingerprint};
use crate::metrics::Metrics;

#[derive(Debug, Default)]
pub(super) struct Waiting {
    files: HashMap<FileId, Unopened>,
}

#[derive(Debug)]
struct Unopened {
    path: PathBuf,
    /// Of the first line, once the file has one.
    fingerprint: Option<u64>,
    /// Bytes whose lines are counted.
    counted_to: u64,
    /// Whole lines in them.
    lines: u64,
    /// The last counted byte is not a newline: one more line has begun.
    unfinished: bool,
}

impl Unopened {
    /// Counts the lines of what `file` gained since the last look.
    fn count(&mut self, file: &File) {
        let mut chunk = vec![0_u8; 64 * 1024];
        loop {
            let read = match file.read_at(&mut chunk, self.counted_to) {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            let bytes = &chunk[..read];
            self.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
            self.unfinished = bytes.last() != Some(&b'\n');
            self.counted_to += read as u64;
        }
    }

    fn lines_lost(&self) -> u64 {
        self.lines + u64::from(self.unfinished)
    }

    fn report_lost(&self, metrics: &Metrics) {
        let lines = self.lines_lost();
        metrics.lost_lines.inc_by(lines);
        tracing::error!(file = %self.path.display(), lines,
            "a file left the disk before a slot to read it freed; its lines are lost \
             (raise COLLECTOR_MAX_OPEN_FILES, or shorten sink outages)");
    }
}

/// The file at `path` if it still is `id`, with its first line's
/// fingerprint (`None` while it has no whole first line).
fn open_as(path: &Path, id: FileId) -> Option<(File, Option<u64>)> {
    let file = File::open(path).ok()?;
    if FileId::of(&file.metadata().ok()?) != id {
        // Renamed or replaced since the scan: the next scan looks again.
        return None;
    }
    let fingerprint = fingerprint(&file).ok()?;
    Some((file, fingerprint))
}

impl Waiting {
    /// `id` was found at `path` and cannot be opened now.
    pub(super) fn see(&mut self, id: FileId, path: &Path, metrics: &Metrics) {
        let Some((file, fingerprint)) = open_as(path, id) else {
            return;
        };
        self.forget_if_replaced(id, fingerprint, metrics);
        let waiting = self.files.entry(id).or_insert_with(|| {
            tracing::warn!(file = %path.display(),
                "every open-file slot is taken (COLLECTOR_MAX_OPEN_FILES); the file waits for one");
            Unopened {
                path: path.to_owned(),
                fingerprint,
                counted_to: 0,
                lines: 0,
                unfinished: false,
            }
        });
        path.clone_into(&mut waiting.path);
        waiting.fingerprint = waiting.fingerprint.or(fingerprint);
        waiting.count(&file);
        metrics.files_waiting.set(self.files.len() as i64);
    }

    /// `id`, now at `path`, got a slot and is read from here on.
    pub(super) fn opened(&mut self, id: FileId, path: &Path, metrics: &Metrics) {
        if !self.files.contains_key(&id) {
            return;
        }
        if let Some((_, fingerprint)) = open_as(path, id) {
            self.forget_if_replaced(id, fingerprint, metrics);
        }
        self.files.remove(&id);
        metrics.files_waiting.set(self.files.len() as i64);
    }

    /// The file waiting as `id` is gone if `id` now has another first line.
    fn forget_if_replaced(&mut self, id: FileId, fingerprint: Option<u64>, metrics: &Metrics) {
        let replaced = self.files.get(&id).is_some_and(|waiting| {
            waiting.fingerprint.is_some()
                && fingerprint.is_some()
                && waiting.fingerprint != fingerprint
        });
        if replaced && let Some(gone) = self.files.remove(&id) {
            gone.report_lost(metrics);
        }
    }

    /// Files that waited and are gone from the disk: their lines are lost.
    /// One the scan missed is looked for in its directory first: a scan
    /// racing a rotation can miss a file that was only being renamed.
    pub(super) fn forget_gone(&mut self, seen: &HashSet<FileId>, metrics: &Metrics) {
        self.files.retain(|id, file| {
            if seen.contains(id) {
                return true;
            }
            if let Some((path, _)) = find_by_id(&file.path, *id, file.fingerprint) {
                file.path = path;
                return true;
            }
            file.report_lost(metrics);
            false
        });
        metrics.files_waiting.set(self.files.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_as_the_file_grows_and_reported_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log.1");
        std::fs::write(&path, "one\ntwo\nthr").unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        let metrics = Metrics::default();
        let mut waiting = Waiting::default();
        waiting.see(id, &path, &metrics);
        std::fs::write(&path, "one\ntwo\nthree\nfour\nfi").unwrap();
        waiting.see(id, &path, &metrics);
        assert_eq!(metrics.files_waiting.get(), 1);
        waiting.forget_gone(&HashSet::from([id]), &metrics);
        assert_eq!(metrics.lost_lines.get(), 0, "seen by the scan");
        std::fs::rename(&path, dir.path().join("0.log.2")).unwrap();
        waiting.forget_gone(&HashSet::new(), &metrics);
        assert_eq!(
            metrics.lost_lines.get(),
            0,
            "renamed, found beside its old name"
        );
        std::fs::remove_file(dir.path().join("0.log.2")).unwrap();
        waiting.forget_gone(&HashSet::new(), &metrics);
        assert_eq!(
            metrics.lost_lines.get(),
            5,
            "four whole lines and a begun one"
        );
        assert_eq!(metrics.files_waiting.get(), 0);

        std::fs::write(&path, "again\n").unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        waiting.see(id, &path, &metrics);
        waiting.opened(id, &path, &metrics);
        std::fs::remove_file(&path).unwrap();
        waiting.forget_gone(&HashSet::new(), &metrics);
        assert_eq!(metrics.lost_lines.get(), 5, "an opened file is not lost");
    }

    #[test]
    fn an_inode_reused_by_another_file_reports_the_first_one_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "first file\nsecond line\n").unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        let metrics = Metrics::default();
        let mut waiting = Waiting::default();
        waiting.see(id, &path, &metrics);
        // Same inode, rewritten in place: what the scan sees after kubelet
        // deleted the file and its inode went to the next one.
        std::fs::write(&path, "another file\n").unwrap();
        waiting.see(id, &path, &metrics);
        assert_eq!(metrics.lost_lines.get(), 2);
        assert_eq!(metrics.files_waiting.get(), 1, "the new file waits");
        std::fs::write(&path, "a third file\n").unwrap();
        waiting.opened(id, &path, &metrics);
        assert_eq!(metrics.lost_lines.get(), 3);
        assert_eq!(metrics.files_waiting.get(), 0);
    }
}
