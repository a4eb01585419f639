//! Which files to tail: the configured globs, evaluated again on every
//! rescan, plus inotify (through `notify`) on the directories they start
//! from, so that a change wakes the agent at once. The periodic rescan stays
//! as the backstop for what inotify misses (overflowing queues, directories
//! created later, network file systems).

use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};

/// Rotated-and-compressed files never hold lines to read, nor do the
/// files a compression is still writing: kubelet compresses a rotated log
/// into `0.log.<time>.tmp` and renames it to `0.log.<time>.gz`.
const NOT_TEXT: [&str; 7] = ["gz", "zst", "bz2", "xz", "lz4", "zip", "tmp"];

/// How compressed files begin (gzip, zstd, bzip2, xz), whatever their name.
const COMPRESSED_MAGIC: [&[u8]; 4] = [
    &[0x1f, 0x8b],
    &[0x28, 0xb5, 0x2f, 0xfd],
    b"BZh",
    &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
];

/// A file to tail.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub metadata: std::fs::Metadata,
    /// Not named by a glob, but a rotated sibling of a file that is
    /// (`0.log.20261126-070000`, `app.log.1`, `app.log-20261126`): it may
    /// hold lines written before a rotation the agent did not see (it was
    /// down, or busy), so it is read to its end too.
    pub rotated: bool,
}

/// Every regular file a pattern names (symlinks followed, as
/// `/var/log/containers` is made of them), then their rotated siblings.
pub fn scan(patterns: &[glob::Pattern]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for pattern in patterns {
        let Ok(paths) = glob::glob(pattern.as_str()) else {
            continue;
        };
        // Unreadable directories are skipped: they are someone else's.
        for path in paths.flatten() {
            if holds_no_text(&path) {
                continue;
            }
            if let Ok(metadata) = std::fs::metadata(&path)
                && metadata.is_file()
            {
                found.push(Found {
                    path,
                    metadata,
                    rotated: false,
                });
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    let siblings = rotated_siblings(&found);
    found.extend(siblings);
    found
}

/// Files beside the found ones whose name is a found name plus `.` or `-`
/// and a suffix, and not compressed.
fn rotated_siblings(found: &[Found]) -> Vec<Found> {
    let mut dirs: Vec<&Path> = found.iter().filter_map(|f| f.path.parent()).collect();
    dirs.dedup();
    let mut siblings = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if found.iter().any(|f| f.path == path) || holds_no_text(&path) {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_sibling = found
                .iter()
                .filter(|f| f.path.parent() == Some(dir))
                .any(|f| {
                    f.path.file_name().is_some_and(|base| {
                        let base = base.to_string_lossy();
                        name.strip_prefix(base.as_ref()).is_some_and(|rest| {
                            rest.len() > 1 && (rest.starts_with('.') || rest.starts_with('-'))
                        })
                    })
                });
            if is_sibling
                && let Ok(metadata) = std::fs::metadata(&path)
                && metadata.is_file()
            {
                siblings.push(Found {
                    path,
                    metadata,
                    rotated: true,
                });
            }
        }
    }
    siblings
}

/// A compressed file, or one being compressed, by its name or its first
/// bytes: shipping its bytes as lines would send junk.
fn holds_no_text(path: &Path) -> bool {
    let named = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| NOT_TEXT.contains(&extension));
    named || starts_compressed(path)
}

fn starts_compressed(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0; 6];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    COMPRESSED_MAGIC
        .iter()
        .any(|magic| head[..read].starts_with(magic))
}

/// The directory a glob starts from: its components before the first one
/// with a wildcard.
fn literal_prefix(pattern: &str) -> PathBuf {
    let mut prefix = PathBuf::new();
    for component in Path::new(pattern).components() {
        let is_wild = matches!(component, Component::Normal(part)
            if part.to_string_lossy().contains(['*', '?', '[']));
        if is_wild {
            break;
        }
        prefix.push(component);
    }
    if prefix.as_os_str() == pattern {
        // A plain file name: watch its directory.
        prefix.pop();
    }
    prefix
}

/// Keeps the inotify watches alive; dropping it stops them.
pub struct Wakeups {
    _watcher: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups")
            .field("watching", &self._watcher.is_some())
            .finish()
    }
}

/// Watches the glob roots; every change sends one wakeup on `wake` (at most
/// one waits: a burst of writes is one wakeup).
pub fn watch(patterns: &[glob::Pattern], wake: SyncSender<()>) -> Wakeups {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|event| changes_nothing(event.kind)) {
            return;
        }
        match wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "inotify unavailable; relying on periodic rescans");
            return Wakeups { _watcher: None };
        }
    };
    for pattern in patterns {
        let root = literal_prefix(pattern.as_str());
        if let Err(error) = watcher.watch(&root, RecursiveMode::Recursive) {
            tracing::warn!(root = %root.display(), %error,
                "cannot watch; changes there are found by periodic rescans");
        }
    }
    Wakeups {
        _watcher: Some(watcher),
    }
}

/// Whether the event is a read: a file or directory opened, read, or closed
/// without writing. The agent's own scans and reads are such events, and
/// waking for them made every scan bring the next one forward.
fn changes_nothing(kind: EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if access != AccessKind::Close(AccessMode::Write))
}

/// A wakeup channel: one pending wakeup at most.
pub fn wake_channel() -> (SyncSender<()>, Receiver<()>) {
    std::sync::mpsc::sync_channel(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_start_from_their_literal_directory() {
        assert_eq!(
            literal_prefix("/var/log/pods/*/*/*.log"),
            Path::new("/var/log/pods")
        );
        assert_eq!(literal_prefix("/var/log/syslog"), Path::new("/var/log"));
        assert_eq!(literal_prefix("/data/app-[0-9]/x.log"), Path::new("/data"));
    }

    #[test]
    fn scans_find_regular_files_and_skip_compressed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a")).unwrap();
        for name in ["a/0.log", "a/1.log", "a/0.log.gz", "b.log"] {
            std::fs::write(root.join(name), "x\n").unwrap();
        }
        std::fs::create_dir_all(root.join("a/dir.log")).unwrap();
        let patterns = [
            glob::Pattern::new(&format!("{}/a/*", root.display())).unwrap(),
            glob::Pattern::new(&format!("{}/a/0.log", root.display())).unwrap(),
        ];
        let found: Vec<_> = scan(&patterns)
            .into_iter()
            .map(|found| {
                (
                    found.path.strip_prefix(root).unwrap().to_owned(),
                    found.rotated,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (PathBuf::from("a/0.log"), false),
                (PathBuf::from("a/1.log"), false)
            ]
        );
    }

    /// Kubelet's compression of a rotated log, step by step, beside the live
    /// file: neither the `.tmp` it writes nor the `.gz` it renames it to is
    /// ever read as text, nor a compressed file under another name.
    #[test]
    fn files_being_compressed_or_compressed_are_never_tailed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("0.log"), "2026-11-29T07:00:00Z stdout F live\n").unwrap();
        std::fs::write(root.join("0.log.20261129-070000"), "rotated line\n").unwrap();
        let status = std::process::Command::new("gzip")
            .arg("--keep")
            .arg(root.join("0.log.20261129-070000"))
            .status()
            .unwrap();
        assert!(status.success(), "gzip writes a real compressed file");
        let gzip = root.join("0.log.20261129-070000.gz");
        let tmp = root.join("0.log.20261129-070000.tmp");
        std::fs::rename(&gzip, &tmp).unwrap();
        std::fs::remove_file(root.join("0.log.20261129-070000")).unwrap();
        let patterns = [glob::Pattern::new(&format!("{}/0.log", root.display())).unwrap()];
        let names = |patterns: &[glob::Pattern]| -> Vec<String> {
            scan(patterns)
                .into_iter()
                .map(|found| {
                    found
                        .path
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        assert_eq!(names(&patterns), ["0.log"], "while compressing");
        std::fs::rename(&tmp, &gzip).unwrap();
        assert_eq!(names(&patterns), ["0.log"], "once compressed");
        std::fs::copy(&gzip, root.join("0.log.old")).unwrap();
        assert_eq!(names(&patterns), ["0.log"], "compressed, whatever its name");
    }

    #[test]
    fn rotated_siblings_are_found_beside_matched_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "0.log",
            "0.log.20261126-070000",
            "0.log.20261125-070000.gz",
            "0.logx",
            "1.log-old",
        ] {
            std::fs::write(root.join(name), "x\n").unwrap();
        }
        let patterns = [glob::Pattern::new(&format!("{}/0.log", root.display())).unwrap()];
        let found: Vec<_> = scan(&patterns)
            .into_iter()
            .map(|found| (found.path.file_name().unwrap().to_owned(), found.rotated))
            .collect();
        assert_eq!(
            found,
            [
                ("0.log".into(), false),
                ("0.log.20261126-070000".into(), true)
            ]
        );
    }
}
