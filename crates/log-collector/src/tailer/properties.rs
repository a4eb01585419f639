//! The reading path as a whole, by property: however a runtime splits lines
//! into `P`/`F` parts (at any byte for CRI, at any character for docker
//! json-file, which can only carry text), however it interleaves stdout and
//! stderr, and however the file arrives in writes and reads, the events are
//! those of the whole lines.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;

use super::Tailer;
use crate::checkpoint::FileId;
use crate::event::Stream;
use crate::metrics::Metrics;
use crate::origin::Origin;

#[derive(Debug, Clone, Copy)]
enum Runtime {
    Cri,
    Docker,
}

#[derive(Debug, Clone)]
struct Line {
    stderr: bool,
    message: Vec<u8>,
    /// Where the runtime cut the line into parts.
    cuts: Vec<Index>,
}

/// What the file must read as: `(timestamp, stream, message)` per line.
type Expected = Vec<(String, Stream, String)>;

fn line(runtime: Runtime) -> impl Strategy<Value = Line> {
    let text = "\\PC{0,40}".prop_map(String::into_bytes);
    let message = match runtime {
        Runtime::Docker => text.boxed(),
        // CRI carries any bytes but a newline, valid UTF-8 or not.
        Runtime::Cri => prop_oneof![
            text,
            proptest::collection::vec(any::<u8>().prop_filter("newline", |b| *b != b'\n'), 0..40),
        ]
        .boxed(),
    };
    (
        any::<bool>(),
        message,
        proptest::collection::vec(any::<Index>(), 0..4),
    )
        .prop_map(|(stderr, message, cuts)| Line {
            stderr,
            message,
            cuts,
        })
}

fn stream(stderr: bool) -> Stream {
    if stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    }
}

/// The line's parts, as the runtime writes them (each with its newline).
fn parts(runtime: Runtime, line: &Line, timestamp: &str) -> Vec<Vec<u8>> {
    let len = line.message.len();
    let mut cuts: Vec<usize> = line.cuts.iter().map(|cut| cut.index(len + 1)).collect();
    if let Runtime::Docker = runtime {
        // Text only: a cut falls before the character it lands in.
        for cut in &mut cuts {
            while std::str::from_utf8(&line.message[..*cut]).is_err() {
                *cut -= 1;
            }
        }
    }
    cuts.sort_unstable();
    cuts.push(len);
    let stream = stream(line.stderr).as_str();
    let mut start = 0;
    let mut parts = Vec::new();
    for (at, &cut) in cuts.iter().enumerate() {
        let last = at + 1 == cuts.len();
        let body = &line.message[start..cut];
        start = cut;
        let mut part = match runtime {
            Runtime::Cri => {
                let tag = if last { "F" } else { "P" };
                [format!("{timestamp} {stream} {tag} ").as_bytes(), body].concat()
            }
            Runtime::Docker => {
                let mut log = String::from_utf8(body.to_vec()).expect("cut on a character");
                if last {
                    log.push('\n');
                }
                serde_json::json!({"log": log, "stream": stream, "time": timestamp})
                    .to_string()
                    .into_bytes()
            }
        };
        part.push(b'\n');
        parts.push(part);
    }
    parts
}

/// The file's bytes, stdout and stderr parts interleaved as `turns` say,
/// and the events its lines must give, in the order their last parts come.
fn file_of(runtime: Runtime, lines: &[Line], turns: &[bool]) -> (Vec<u8>, Expected) {
    // Per stream: the parts in order, the last one of a line carrying its event.
    let mut queues: [std::collections::VecDeque<(Vec<u8>, Option<usize>)>; 2] = Default::default();
    for (number, line) in lines.iter().enumerate() {
        let parts = parts(runtime, line, &timestamp(number));
        let count = parts.len();
        for (at, part) in parts.into_iter().enumerate() {
            let completes = (at + 1 == count).then_some(number);
            queues[usize::from(line.stderr)].push_back((part, completes));
        }
    }
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    let mut turns = turns.iter().cycle();
    while !queues[0].is_empty() || !queues[1].is_empty() {
        let mut side = usize::from(*turns.next().unwrap_or(&false));
        if queues[side].is_empty() {
            side = 1 - side;
        }
        let (part, completes) = queues[side].pop_front().expect("not empty");
        bytes.extend_from_slice(&part);
        if let Some(number) = completes {
            let line = &lines[number];
            let message = String::from_utf8_lossy(&line.message).into_owned();
            expected.push((timestamp(number), stream(line.stderr), message));
        }
    }
    (bytes, expected)
}

fn timestamp(number: usize) -> String {
    format!("2026-11-26T07:00:00.{number:09}Z")
}

/// Writes `bytes` to a container log in `writes` pieces, reading after each
/// with read budgets from `reads`; returns every event.
fn tail(dir: &Path, bytes: &[u8], writes: &[usize], reads: &[usize]) -> Expected {
    let path = dir.join("pods/ns_pod_uid/app/0.log");
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    let mut writer = std::fs::File::create(&path).expect("create");
    let file = std::fs::File::open(&path).expect("open");
    let id = FileId::of(&file.metadata().expect("metadata"));
    let origin = Arc::new(Origin::new("n", &path));
    let mut tailer = Tailer::open(id, 1, path, origin, file, 0, 1 << 20).expect("tailer");
    let metrics = Metrics::default();
    let mut events = Vec::new();
    let mut emit = |event: crate::event::Event| {
        let stream = event.stream.expect("container lines have a stream");
        events.push((
            event.timestamp().to_owned(),
            stream,
            event.message().to_owned(),
        ));
    };
    let mut reads = reads.iter().cycle();
    let mut written = 0;
    for &size in writes.iter().cycle() {
        if written == bytes.len() {
            break;
        }
        let end = (written + size).min(bytes.len());
        writer.write_all(&bytes[written..end]).expect("write");
        written = end;
        loop {
            let budget = *reads.next().unwrap_or(&usize::MAX);
            let outcome = tailer
                .read(budget, "read-time", &metrics, &mut emit)
                .expect("read");
            if outcome.at_end {
                break;
            }
        }
    }
    tailer.finish("read-time", &metrics, &mut emit);
    assert_eq!(
        metrics.malformed_lines.get(),
        0,
        "every part is a runtime line"
    );
    events
}

fn case() -> impl Strategy<Value = (Runtime, Vec<Line>, Vec<bool>, Vec<usize>, Vec<usize>)> {
    prop_oneof![Just(Runtime::Cri), Just(Runtime::Docker)].prop_flat_map(|runtime| {
        (
            Just(runtime),
            proptest::collection::vec(line(runtime), 0..8),
            proptest::collection::vec(any::<bool>(), 1..16),
            proptest::collection::vec(1_usize..200, 1..8),
            proptest::collection::vec(1_usize..100, 1..8),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_split_and_any_chunking_give_the_whole_lines(
        (runtime, lines, turns, writes, reads) in case()
    ) {
        let (bytes, expected) = file_of(runtime, &lines, &turns);
        let dir = tempfile::tempdir().expect("tempdir");
        prop_assert_eq!(tail(dir.path(), &bytes, &writes, &reads), expected);
    }
}
