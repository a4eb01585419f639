//! The agent's bounds: memory for unfinished lines across a thousand files.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{Agent, Node, append};

const FILES: usize = 1000;
const LINE: usize = 200 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_files_ending_in_unfinished_long_lines_stay_within_48_mb() {
    let node = Node::new();
    let logs = node.path("plain");
    std::fs::create_dir_all(&logs).unwrap();
    let unfinished = "u".repeat(LINE);
    for file in 0..FILES {
        append(&logs.join(format!("f{file:04}.log")), &unfinished);
    }
    let mut agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_PATHS", format!("{}/*.log", logs.display())),
            ("COLLECTOR_SINK", "file".into()),
            ("COLLECTOR_FILE_PATH", "/dev/null".into()),
        ],
    );
    let everything = (FILES * LINE) as f64;
    metric_reaches(&agent, "log_collector_bytes_read_total", everything).await;
    let held = agent.metric("log_collector_line_buffer_bytes").await;
    let peak_while_holding = agent.peak_rss_kib();

    // Every line gets its end: all of them arrive whole.
    for file in 0..FILES {
        append(&logs.join(format!("f{file:04}.log")), "\nnext\n");
    }
    metric_reaches(
        &agent,
        "log_collector_lines_shipped_total",
        (2 * FILES) as f64,
    )
    .await;
    let peak = agent.peak_rss_kib();
    println!(
        "{FILES} files x {LINE} B unfinished: {held} B held, peak RSS {peak_while_holding} KiB \
         while holding, {peak} KiB after finishing them"
    );
    assert_eq!(
        agent.metric("log_collector_truncated_lines_total").await,
        0.0
    );
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB");
    assert!(agent.terminate().success());
}

/// Waits up to a minute for a counter to reach `value`.
async fn metric_reaches(agent: &Agent, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = agent.metric(name).await;
        if now >= value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {now}, not {value}:\n{}",
            agent.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
