//! What the agent reads: its own pod's logs are skipped, compressed rotated
//! files are never read, plain files are read as plain lines.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use common::{Agent, Node, append, cri, delivered, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_own_pod_and_compressed_files_are_skipped() {
    let node = Node::new();
    let out = node.path("out.jsonl");
    let own = node.container_dir("collector-x1");
    let other = node.container_dir("web");
    let plain = node.path("plain");
    std::fs::create_dir_all(&plain).unwrap();
    append(&own.join("0.log"), &cri("from the agent itself"));
    append(&other.join("0.log"), &cri("from another pod"));
    append(&other.join("0.log.20261126-070000.gz"), &cri("compressed"));
    append(&plain.join("app.log"), "a plain line\n");
    let agent = Agent::start(
        &node,
        &[
            (
                "COLLECTOR_PATHS",
                format!("{},{}/*.log", node.pods_glob(), plain.display()),
            ),
            ("COLLECTOR_SINK", "file".into()),
            ("COLLECTOR_FILE_PATH", out.display().to_string()),
            ("POD_NAMESPACE", "default".into()),
            ("POD_NAME", "collector-x1".into()),
        ],
    );
    let arrived = wait_until(Duration::from_secs(10), || {
        let (counts, _) = delivered(&out);
        counts.contains_key("from another pod") && counts.contains_key("a plain line")
    })
    .await;
    assert!(arrived, "{}", agent.logs());
    // Give a skipped file every chance to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (counts, _) = delivered(&out);
    assert!(
        !counts.contains_key("from the agent itself"),
        "the agent shipped its own logs"
    );
    assert!(!counts.contains_key("compressed"), "a .gz file was read");
    assert_eq!(counts.len(), 2, "{counts:?}");

    let lines = std::fs::read_to_string(&out).unwrap();
    let plain_line: serde_json::Value = lines
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["message"] == "a plain line")
        .unwrap();
    assert!(
        plain_line["pod"].is_null() && plain_line["stream"].is_null(),
        "{plain_line}"
    );
    assert_eq!(plain_line["node"], common::NODE);
}
