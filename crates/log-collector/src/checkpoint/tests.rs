//! Saved positions: a save and a load, the previous version when the last
//! is unreadable, and fingerprints.

use super::*;

fn position(inode: u64, offset: u64) -> Position {
    Position {
        id: FileId { dev: 7, inode },
        fingerprint: 42,
        path: PathBuf::from(format!("/logs/{inode}.log")),
        offset,
        tail: inode.is_multiple_of(2).then_some(Tail { len: 4, hash: 9 }),
    }
}

#[test]
fn positions_survive_a_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(&dir.path().join("nested"));
    let loaded = store.load().unwrap();
    assert!(loaded.positions.is_empty(), "no checkpoint yet");
    assert!(loaded.fell_back.is_none());
    let positions = positions(&[(1, 10), (2, 20)]);
    store.save(&positions).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.positions, positions);
    assert!(loaded.fell_back.is_none());
    assert!(!dir.path().join("nested/checkpoints.json.tmp").exists());
}

fn positions(files: &[(u64, u64)]) -> Positions {
    files
        .iter()
        .map(|&(inode, offset)| position(inode, offset))
        .map(|p| (p.id, p))
        .collect()
}

const GARBAGE: [&[u8]; 3] = [
    b"{\"version\":1,\"files\":[{",
    b"\xff\xfe",
    b"{\"version\":99,\"files\":[]}",
];

#[test]
fn an_unreadable_checkpoint_falls_back_to_its_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path());
    let older = positions(&[(1, 10)]);
    store.save(&older).unwrap();
    store.save(&positions(&[(1, 30), (2, 5)])).unwrap();
    for garbage in GARBAGE {
        std::fs::write(&store.path, garbage).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.positions, older);
        let why = loaded.fell_back.unwrap().to_string();
        assert!(why.contains("checkpoints.json"), "{why}");
    }
    // Set aside, the unreadable file is not the next previous version.
    store.set_aside().unwrap();
    assert!(dir.path().join("checkpoints.json.unreadable").exists());
    store.save(&older).unwrap();
    std::fs::write(&store.path, GARBAGE[0]).unwrap();
    assert_eq!(store.load().unwrap().positions, older);
}

#[test]
fn neither_version_readable_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path());
    for garbage in GARBAGE {
        // Only a current file, unreadable.
        std::fs::write(&store.path, garbage).unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(error.contains("checkpoints.json:"), "{error}");
        assert!(error.contains("checkpoints.json.prev: missing"), "{error}");
        // Both unreadable.
        std::fs::write(store.previous_path(), garbage).unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(error.contains("checkpoints.json.prev:"), "{error}");
        std::fs::remove_file(store.previous_path()).unwrap();
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
