//! One file through the tailer: lines cut across reads, over-long lines,
//! a last line without a newline, truncation.

use std::io::Write;

use super::*;
use crate::checkpoint::fingerprint;

fn tailer(path: &std::path::Path, offset: u64, max_line_bytes: usize) -> Tailer {
    let file = File::open(path).unwrap();
    let metadata = file.metadata().unwrap();
    let fp = fingerprint(&file).unwrap().unwrap_or(0);
    Tailer::open(
        FileId::of(&metadata),
        fp,
        path.to_owned(),
        Arc::new(Origin::new("n", path)),
        file,
        offset,
        max_line_bytes,
    )
    .unwrap()
}

fn read_all(tailer: &mut Tailer, metrics: &Metrics) -> Vec<String> {
    let mut lines = Vec::new();
    tailer
        .read(usize::MAX, "now", metrics, &mut |event| {
            lines.push(event.message().to_owned())
        })
        .unwrap();
    lines
}

#[test]
fn lines_are_cut_across_reads_and_positions_stop_at_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut writer = File::create(&path).unwrap();
    writer.write_all(b"one\ntw").unwrap();
    let metrics = Metrics::default();
    let mut tailer = tailer(&path, 0, 1024);
    assert_eq!(read_all(&mut tailer, &metrics), ["one"]);
    assert_eq!(
        tailer.position().offset,
        4,
        "the unfinished line is not passed"
    );
    writer.write_all(b"o\nthree\n").unwrap();
    assert_eq!(read_all(&mut tailer, &metrics), ["two", "three"]);
    assert_eq!(tailer.position().offset, 14);

    // A restart from the saved position reads nothing twice.
    let mut resumed = self::tailer(&path, 4, 1024);
    assert_eq!(read_all(&mut resumed, &metrics), ["two", "three"]);
}

#[test]
fn over_long_lines_are_cut_without_stalling_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let huge = "x".repeat(200_000);
    std::fs::write(&path, format!("before\n{huge}\nafter\n")).unwrap();
    let metrics = Metrics::default();
    let mut tailer = tailer(&path, 0, 1000);
    let lines = read_all(&mut tailer, &metrics);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1], "x".repeat(1000));
    assert_eq!(lines[2], "after");
    assert_eq!(metrics.truncated_lines.get(), 1);
    assert_eq!(tailer.position().offset, 7 + 200_001 + 6);
}

#[test]
fn finish_ships_a_last_line_without_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, "whole\nno newline").unwrap();
    let metrics = Metrics::default();
    let mut tailer = tailer(&path, 0, 1024);
    assert_eq!(read_all(&mut tailer, &metrics), ["whole"]);
    let mut rest = Vec::new();
    tailer.finish("now", &metrics, &mut |event| {
        rest.push(event.message().to_owned())
    });
    assert_eq!(rest, ["no newline"]);
    assert_eq!(tailer.position().offset, 16);
}

#[test]
fn truncation_is_noticed_and_the_file_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, "old one\nold two\n").unwrap();
    let metrics = Metrics::default();
    let mut tailer = tailer(&path, 0, 1024);
    read_all(&mut tailer, &metrics);
    assert!(!tailer.was_truncated().unwrap());
    std::fs::write(&path, "new\n").unwrap();
    assert!(tailer.was_truncated().unwrap());
    tailer.restart(1).unwrap();
    assert_eq!(read_all(&mut tailer, &metrics), ["new"]);
}
