//! Where each file was read up to, as acknowledged by the sink: one JSON
//! file in `COLLECTOR_CHECKPOINT_DIR`, replaced atomically (temp file,
//! fsync, rename, fsync of the directory) so that a crash at any instant
//! leaves the old or the new version, never a mix.
//!
//! The version it replaces is kept beside it (`checkpoints.json.prev`, a hard
//! link made before the rename): when the current file cannot be read (a bad
//! disk block, a hand edit), the agent resumes from the previous version and
//! ships again at most what was acknowledged between the two, instead of
//! every line on the node.
//!
//! A file is known by device and inode plus a fingerprint of its first line
//! (see [`fingerprint`]): the inode alone would confuse a new file with a
//! deleted one whose inode was reused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use platform::hash::fnv1a;
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
    /// The bytes just before `offset`: a file that claims to be a copy of
    /// this one (copytruncate) continues from `offset` only if it holds them
    /// there too. `None` when unknown (then a copy is read from its start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<Tail>,
}

/// How many bytes before a position identify what the file held there.
pub const TAIL_BYTES: usize = 256;

/// A hash of the (up to [`TAIL_BYTES`]) bytes that end at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    pub len: u16,
    pub hash: u64,
}

impl Tail {
    /// The tail of `before`, the bytes that end at the position.
    pub fn of(before: &[u8]) -> Self {
        let start = before.len().saturating_sub(TAIL_BYTES);
        Self {
            len: u16::try_from(before.len() - start).unwrap_or(u16::MAX),
            hash: fnv1a(&before[start..]),
        }
    }

    /// The tail of what `file` holds before `offset`.
    pub fn read_before(file: &File, offset: u64) -> Option<Self> {
        let start = offset.saturating_sub(TAIL_BYTES as u64);
        let mut bytes = vec![0; usize::try_from(offset - start).ok()?];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, start).ok()?;
        (!bytes.is_empty()).then(|| Self::of(&bytes))
    }

    /// Whether `file` holds these bytes right before `offset`.
    pub fn is_before(&self, file: &File, offset: u64) -> bool {
        let len = u64::from(self.len);
        let Some(start) = offset.checked_sub(len) else {
            return false;
        };
        let mut bytes = vec![0; usize::from(self.len)];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, start).is_ok()
            && fnv1a(&bytes) == self.hash
    }
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
    #[error("{current}; and its previous version: {previous}")]
    Unreadable {
        current: Box<CheckpointError>,
        previous: Box<CheckpointError>,
    },
}

/// Positions by file.
pub type Positions = HashMap<FileId, Position>;

/// What [`CheckpointStore::load`] found.
#[derive(Debug)]
pub struct Loaded {
    pub positions: Positions,
    /// Why the current file was not used, when the positions come from the
    /// previous version.
    pub fell_back: Option<CheckpointError>,
}

/// The checkpoint file of one agent.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
    temp_path: PathBuf,
    previous_path: PathBuf,
    previous_temp_path: PathBuf,
}

impl CheckpointStore {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("checkpoints.json"),
            temp_path: dir.join("checkpoints.json.tmp"),
            previous_path: dir.join("checkpoints.json.prev"),
            previous_temp_path: dir.join("checkpoints.json.prev.tmp"),
        }
    }

    pub fn previous_path(&self) -> &Path {
        &self.previous_path
    }

    /// The saved positions: from the current file, else from the previous
    /// version (saying why), else none when there was never a checkpoint.
    /// An error when a checkpoint exists but neither version can be read:
    /// starting from scratch would ship every line on the node again, so
    /// the caller decides.
    pub fn load(&self) -> Result<Loaded, CheckpointError> {
        let current = match read(&self.path) {
            Ok(Some(positions)) => {
                return Ok(Loaded {
                    positions,
                    fell_back: None,
                });
            }
            Ok(None) => None,
            Err(error) => Some(error),
        };
        match (read(&self.previous_path), current) {
            (Ok(Some(positions)), fell_back) => Ok(Loaded {
                positions,
                fell_back: Some(fell_back.unwrap_or_else(|| CheckpointError::Read {
                    path: self.path.clone(),
                    message: "missing beside its previous version".into(),
                })),
            }),
            (Ok(None), None) => Ok(Loaded {
                positions: Positions::new(),
                fell_back: None,
            }),
            (previous, Some(current)) => Err(CheckpointError::Unreadable {
                current: Box::new(current),
                previous: Box::new(previous.err().unwrap_or_else(|| CheckpointError::Read {
                    path: self.previous_path.clone(),
                    message: "missing".into(),
                })),
            }),
            (Err(previous), None) => Err(previous),
        }
    }

    /// Moves an unreadable current file aside (`checkpoints.json.unreadable`,
    /// for a person to look at), so that the next save does not make it the
    /// previous version.
    pub fn set_aside(&self) -> std::io::Result<()> {
        match std::fs::rename(&self.path, self.path.with_extension("json.unreadable")) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    pub fn save(&self, positions: &Positions) -> Result<(), CheckpointError> {
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
        // The version being replaced becomes the previous one: linked under a
        // temporary name and renamed over the older one, so that a crash
        // leaves some previous version in place at every instant.
        let _ = std::fs::remove_file(&self.previous_temp_path);
        match std::fs::hard_link(&self.path, &self.previous_temp_path) {
            Ok(()) => std::fs::rename(&self.previous_temp_path, &self.previous_path)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        std::fs::rename(&self.temp_path, &self.path)?;
        // The rename itself is durable only once the directory is synced.
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// The positions in the checkpoint file at `path`; `None` if there is none.
fn read(path: &Path) -> Result<Option<Positions>, CheckpointError> {
    let read_error = |message: String| CheckpointError::Read {
        path: path.to_owned(),
        message,
    };
    let mut raw = Vec::new();
    match File::open(path) {
        Ok(mut file) => file
            .read_to_end(&mut raw)
            .map_err(|error| read_error(error.to_string()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
    Ok(Some(
        saved
            .files
            .into_iter()
            .map(|position| (position.id, position))
            .collect(),
    ))
}

#[cfg(test)]
mod tests;
