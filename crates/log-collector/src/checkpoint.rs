//! Where each file was read up to, as acknowledged by the sink: one JSON
//! file in `COLLECTOR_CHECKPOINT_DIR`, replaced atomically (temp file,
//! fsync, rename, fsync of the directory) so that a crash at any instant
//! leaves the old or the new version, never a mix.
//!
//! A file is known by device and inode plus a fingerprint of its first line
//! (see [`fingerprint`]): the inode alone would confuse a new file with a
//! deleted one whose inode was reused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's place on disk: stable across renames, not across copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub inode: u64,
}

impl FileId {
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// One file's acknowledged position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(flatten)]
    pub id: FileId,
    pub fingerprint: u64,
    /// Where the file was last seen (a rotated file is looked for beside it).
    pub path: PathBuf,
    /// Every line before this offset was acknowledged by the sink.
    pub offset: u64,
}

/// How many leading bytes identify a file: its first line, up to this.
pub const FINGERPRINT_BYTES: usize = 256;

/// FNV-1a of the file's first line (or first [`FINGERPRINT_BYTES`]); `None`
/// while the file holds neither a whole line nor that many bytes, because
/// the fingerprint would still change.
pub fn fingerprint(file: &File) -> std::io::Result<Option<u64>> {
    let mut head = [0_u8; FINGERPRINT_BYTES];
    let mut filled = 0;
    // Positional reads: the caller's file position is left alone.
    while filled < head.len() {
        let read = std::os::unix::fs::FileExt::read_at(file, &mut head[filled..], filled as u64)?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    let end = match memchr::memchr(b'\n', &head[..filled]) {
        Some(newline) => newline + 1,
        None if filled == head.len() => filled,
        None => return Ok(None),
    };
    Ok(Some(fnv1a(&head[..end])))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    files: Vec<Position>,
}

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read checkpoint {path}: {message}")]
    Read { path: PathBuf, message: String },
}

/// The checkpoint file of one agent.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
    temp_path: PathBuf,
}

impl CheckpointStore {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("checkpoints.json"),
            temp_path: dir.join("checkpoints.json.tmp"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved positions; none when there is no checkpoint yet. A corrupt
    /// or unreadable file is an error for the caller to report: it then
    /// starts from scratch rather than refusing to run.
    pub fn load(&self) -> Result<HashMap<FileId, Position>, CheckpointError> {
        let read_error = |message: String| CheckpointError::Read {
            path: self.path.clone(),
            message,
        };
        let mut raw = Vec::new();
        match File::open(&self.path) {
            Ok(mut file) => file
                .read_to_end(&mut raw)
                .map_err(|error| read_error(error.to_string()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(error) => return Err(read_error(error.to_string())),
        };
        let saved: CheckpointFile =
            serde_json::from_slice(&raw).map_err(|error| read_error(error.to_string()))?;
        if saved.version != FORMAT_VERSION {
            return Err(read_error(format!(
                "unknown format version {}",
                saved.version
            )));
        }
        Ok(saved
            .files
            .into_iter()
            .map(|position| (position.id, position))
            .collect())
    }

    pub fn save(&self, positions: &HashMap<FileId, Position>) -> Result<(), CheckpointError> {
        let mut files: Vec<Position> = positions.values().cloned().collect();
        files.sort_by_key(|position| position.id);
        let document = CheckpointFile {
            version: FORMAT_VERSION,
            files,
        };
        self.write_atomically(&document)
            .map_err(|source| CheckpointError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn write_atomically(&self, document: &CheckpointFile) -> std::io::Result<()> {
        let body = serde_json::to_vec(document).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut temp = File::create(&self.temp_path)?;
        temp.write_all(&body)?;
        temp.sync_all()?;
        std::fs::rename(&self.temp_path, &self.path)?;
        // The rename itself is durable only once the directory is synced.
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(inode: u64, offset: u64) -> Position {
        Position {
            id: FileId { dev: 7, inode },
            fingerprint: 42,
            path: PathBuf::from(format!("/logs/{inode}.log")),
            offset,
        }
    }

    #[test]
    fn positions_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(&dir.path().join("nested"));
        assert!(store.load().unwrap().is_empty(), "no checkpoint yet");
        let positions: HashMap<_, _> = [position(1, 10), position(2, 20)]
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        store.save(&positions).unwrap();
        assert_eq!(store.load().unwrap(), positions);
        assert!(!dir.path().join("nested/checkpoints.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        for garbage in [
            &b"{\"version\":1,\"files\":[{"[..],
            b"\xff\xfe",
            b"{\"version\":99,\"files\":[]}",
        ] {
            std::fs::write(store.path(), garbage).unwrap();
            let error = store.load().unwrap_err();
            assert!(error.to_string().contains("checkpoints.json"), "{error}");
        }
    }

    #[test]
    fn fingerprints_wait_for_a_whole_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "partial").unwrap();
        assert_eq!(fingerprint(&File::open(&path).unwrap()).unwrap(), None);
        std::fs::write(&path, "first line\nsecond").unwrap();
        let first = fingerprint(&File::open(&path).unwrap()).unwrap().unwrap();
        std::fs::write(&path, "first line\nother second line\n").unwrap();
        assert_eq!(
            fingerprint(&File::open(&path).unwrap()).unwrap(),
            Some(first)
        );
        std::fs::write(&path, "other first\n").unwrap();
        assert_ne!(
            fingerprint(&File::open(&path).unwrap()).unwrap(),
            Some(first)
        );
        std::fs::write(&path, "x".repeat(300)).unwrap();
        assert!(fingerprint(&File::open(&path).unwrap()).unwrap().is_some());
    }
}
