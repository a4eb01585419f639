//! What the agent reads: its own logs are skipped (its pod under the kubelet
//! layout, its container under Docker's), compressed rotated files are never
//! read, plain files are read as plain lines; and how often it looks when
//! nothing changes.

#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::time::Duration;

use crate::common::{Agent, Node, append, cri, delivered};

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
    let arrived = testkit::holds_within(Duration::from_secs(10), || async {
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
    assert_eq!(plain_line["node"], crate::common::NODE);
}

/// Docker Compose: the runtime writes the agent's stdout (the `stdout` sink)
/// into `containers/<id>/<id>-json.log`, which the agent's glob matches. Here
/// the test plays the runtime: each line the agent prints is appended to that
/// file as Docker's json-file driver would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_docker_the_agent_never_reads_its_own_output() {
    let own_id = "3f4e1b2c9d8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e";
    let other_id = "b".repeat(64);
    let node = Node::new();
    let json_log = |id: &str| {
        let dir = node.path(&format!("containers/{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("{id}-json.log"))
    };
    let (own_log, other_log) = (json_log(own_id), json_log(&other_id));
    let docker_line = |message: &str| {
        let line = serde_json::json!({
            "log": format!("{message}\n"),
            "stream": "stdout",
            "time": "2026-11-26T07:00:00.000000001Z",
        });
        format!("{line}\n")
    };
    append(&other_log, &docker_line("from another container"));
    let mut agent = Agent::start_piped(
        &node,
        &[
            (
                "COLLECTOR_PATHS",
                format!("{}/containers/*/*-json.log", node.dir.path().display()),
            ),
            ("COLLECTOR_SINK", "stdout".into()),
            ("COLLECTOR_OWN_CONTAINER_ID", own_id.into()),
        ],
    );
    let stdout = agent.take_stdout();
    let runtime_log = own_log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            append(&runtime_log, &docker_line(&line));
        }
    });
    let count = || {
        std::fs::read_to_string(&own_log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let shipped = testkit::holds_within(Duration::from_secs(10), || async { count() >= 1 }).await;
    assert!(shipped, "{}", agent.logs());
    // Long enough for a loop to go round many times (rescans every 100 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(),
        1,
        "the agent read its own output back:\n{}",
        std::fs::read_to_string(&own_log)
            .unwrap_or_default()
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// An idle agent evaluates its globs at `COLLECTOR_RESCAN_MS`. Its own scans
/// and reads open files and directories, which inotify reports too; taken
/// for changes, they brought every scan's successor forward, and an idle
/// agent rescanned ten times a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_rescans_at_its_period() {
    let node = Node::new();
    let out = node.path("out.jsonl");
    for pod in ["a", "b", "c"] {
        append(&node.container_dir(pod).join("0.log"), &cri(pod));
    }
    let agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "file".into()),
            ("COLLECTOR_FILE_PATH", out.display().to_string()),
            ("COLLECTOR_RESCAN_MS", "1000".into()),
        ],
    );
    testkit::eventually("the three lines shipped", || async {
        agent.metric("log_collector_lines_shipped_total").await >= 3.0
    })
    .await;
    let before = agent.metric("log_collector_rescans_total").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rescans = agent.metric("log_collector_rescans_total").await - before;
    assert!(
        rescans <= 4.0,
        "{rescans} rescans in 3 s of idling at one per second"
    );
}
