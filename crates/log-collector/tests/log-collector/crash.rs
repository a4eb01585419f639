//! `kill -9` of the agent at random points of a 200,000-line run: after the
//! restarts nothing is lost, and each kill duplicates at most one batch.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use crate::common::{Agent, Node, append, cri, delivered, losses_and_duplicates};

const FILES: usize = 4;
const LINES_PER_FILE: usize = 50_000;
const BATCH_LINES: usize = 1000;
const KILLS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_no_line() {
    let node = Node::new();
    let out = node.path("out.jsonl");
    let dirs: Vec<_> = (0..FILES)
        .map(|i| node.container_dir(&format!("pod{i}")))
        .collect();
    let mut agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "file".into()),
            ("COLLECTOR_FILE_PATH", out.display().to_string()),
            ("COLLECTOR_BATCH_LINES", BATCH_LINES.to_string()),
        ],
    );

    // The writer keeps going while the agent is killed and restarted.
    let writer = std::thread::spawn(move || {
        let mut expected = Vec::with_capacity(FILES * LINES_PER_FILE);
        for chunk in 0..LINES_PER_FILE / 500 {
            for (file, dir) in dirs.iter().enumerate() {
                let lines: Vec<String> = (0..500)
                    .map(|i| format!("f{file}-{}", chunk * 500 + i))
                    .collect();
                append(
                    &dir.join("0.log"),
                    &lines.iter().map(|line| cri(line)).collect::<String>(),
                );
                expected.extend(lines);
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        expected
    });
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + fastrand::u64(0..350))).await;
        agent.kill_and_restart();
    }
    let expected = writer.join().unwrap();

    let complete = testkit::holds_within(Duration::from_secs(60), || async {
        let (counts, _) = delivered(&out);
        counts.len() >= expected.len()
    })
    .await;
    let (counts, torn) = delivered(&out);
    let (missing, duplicates) = losses_and_duplicates(&counts, &expected);
    assert!(
        complete && missing.is_empty(),
        "lost {} lines:\n{}",
        missing.len(),
        agent.logs()
    );
    println!(
        "{} lines, {KILLS} kills: {duplicates} duplicates, {torn} torn lines",
        expected.len()
    );
    assert!(
        duplicates <= KILLS * BATCH_LINES,
        "{duplicates} duplicates for {KILLS} kills of {BATCH_LINES}-line batches"
    );
    assert!(torn <= KILLS, "{torn} torn lines");
    assert!(agent.terminate().success());
}
