//! Files that move under the agent: rename rotation (also while the sink is
//! down), copytruncate, delete-then-recreate. Every line must arrive.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use crate::common::loki::LokiReceiver;
use crate::common::{
    Agent, Node, append, cri, delivered, expect_lines, file_sink, losses_and_duplicates,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_delivers_every_line_exactly_once_even_while_the_sink_is_down() {
    let node = Node::new();
    let loki = LokiReceiver::start().await;
    let dir = node.container_dir("writer");
    let mut agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "loki".into()),
            ("COLLECTOR_LOKI_URL", loki.base_url.clone()),
        ],
    );

    let mut expected = Vec::new();
    for rotation in 1..=5 {
        if rotation == 3 {
            // The sink is down while this file is written and rotated.
            loki.answer(503);
        }
        for chunk in 0..30 {
            let lines: Vec<String> = (0..100)
                .map(|i| format!("r{rotation}-c{chunk}-l{i}"))
                .collect();
            append(
                &dir.join("0.log"),
                &lines.iter().map(|line| cri(line)).collect::<String>(),
            );
            expected.extend(lines);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        // What the kubelet does: rename, then a new file under the old name.
        std::fs::rename(
            dir.join("0.log"),
            dir.join(format!("0.log.2026112607{rotation:04}")),
        )
        .unwrap();
        if rotation == 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            loki.answer(204);
        }
    }
    append(&dir.join("0.log"), &cri("last"));
    expected.push("last".into());

    expect_lines(&loki, expected.len(), Duration::from_secs(30), &agent).await;
    // Anything late would show up as a duplicate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = loki.message_counts();
    let (missing, duplicates) = losses_and_duplicates(&counts, &expected);
    assert!(
        missing.is_empty(),
        "lost {} lines, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        duplicates,
        0,
        "lines delivered twice in a clean run:\n{}",
        agent.logs()
    );
    assert!(loki.violations().is_empty(), "{:?}", loki.violations());
    assert!(agent.metric("log_collector_rotations_total").await >= 5.0);
    assert!(
        agent.metric("log_collector_send_errors_total").await >= 1.0,
        "the outage was seen"
    );
    let labels = &loki.lines()[0].0;
    assert_eq!(labels["node"], crate::common::NODE);
    assert_eq!(labels["namespace"], "default");
    assert_eq!(labels["pod"], "writer");
    assert_eq!(labels["container"], "app");
    println!(
        "{} lines over 5 rotations, {} pushes",
        expected.len(),
        loki.requests()
    );

    // SIGTERM: clean exit, and a restart resumes where it stopped.
    assert!(agent.terminate().success());
    let before = loki.messages().len();
    let agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "loki".into()),
            ("COLLECTOR_LOKI_URL", loki.base_url.clone()),
        ],
    );
    append(&dir.join("0.log"), &cri("after restart"));
    let arrived = testkit::holds_within(Duration::from_secs(10), || async {
        loki.messages().len() > before
    })
    .await;
    assert!(
        arrived,
        "the line written after the restart never arrived:\n{}",
        agent.logs()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        loki.messages()[before..],
        ["after restart".to_owned()],
        "nothing read twice"
    );
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_and_delete_then_recreate_lose_nothing() {
    let node = Node::new();
    let logs = node.path("plain");
    std::fs::create_dir_all(&logs).unwrap();
    let out = node.path("out.jsonl");
    let mut env = file_sink(&out);
    env.push(("COLLECTOR_PATHS", format!("{}/*.log*", logs.display())));
    let agent = Agent::start(&node, &env);
    let (app, web) = (logs.join("app.log"), logs.join("web.log"));
    let mut expected = Vec::new();
    let write = |round: usize, expected: &mut Vec<String>| {
        for name in ["app", "web"] {
            let lines: Vec<String> = (0..500)
                .map(|i| format!("{name}-round{round}-{i}"))
                .collect();
            let path = logs.join(format!("{name}.log"));
            append(
                &path,
                &lines
                    .iter()
                    .map(|line| format!("{line}\n"))
                    .collect::<String>(),
            );
            expected.extend(lines);
        }
    };
    for round in 0..3 {
        write(round, &mut expected);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // logrotate's copytruncate: copy, then truncate in place.
        std::fs::copy(&app, logs.join(format!("app.log.{round}"))).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&app)
            .unwrap()
            .set_len(0)
            .unwrap();
        // And the other way: delete, then create anew.
        std::fs::remove_file(&web).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    write(3, &mut expected);

    let arrived = testkit::holds_within(Duration::from_secs(20), || async {
        let (counts, _) = delivered(&out);
        expected.iter().all(|line| counts.contains_key(line))
    })
    .await;
    assert!(
        arrived,
        "lines missing from the file sink; agent log:\n{}",
        agent.logs()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (counts, torn) = delivered(&out);
    let (missing, duplicates) = losses_and_duplicates(&counts, &expected);
    assert!(missing.is_empty(), "lost {missing:?}");
    assert_eq!(torn, 0);
    let web_duplicates: usize = counts
        .iter()
        .filter(|(line, _)| line.starts_with("web"))
        .map(|(_, n)| n - 1)
        .sum();
    assert_eq!(web_duplicates, 0, "delete-then-recreate never duplicates");
    assert!(agent.metric("log_collector_file_truncations_total").await >= 3.0);
    println!(
        "copytruncate x3, delete-recreate x3: {} lines, {duplicates} duplicates",
        expected.len()
    );
}

/// Files are told apart by more than their first line: a new file that
/// starts with the same banner as a file just truncated is not its copy
/// (copytruncate's copy also holds the same bytes where reading stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_sharing_a_truncated_files_first_line_is_read_whole() {
    const BANNER: &str = "=== service started ===\n";
    let node = Node::new();
    let logs = node.path("plain");
    std::fs::create_dir_all(&logs).unwrap();
    let out = node.path("out.jsonl");
    let mut env = file_sink(&out);
    env.push(("COLLECTOR_PATHS", format!("{}/*.log", logs.display())));
    let agent = Agent::start(&node, &env);
    let lines = |name: &str, count: usize| -> Vec<String> {
        (0..count).map(|i| format!("{name}-{i:04}")).collect()
    };
    let write = |path: &std::path::Path, lines: &[String]| {
        let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
        append(path, &format!("{BANNER}{body}"));
    };
    let first = lines("first", 100);
    write(&logs.join("first.log"), &first);
    let read = testkit::holds_within(Duration::from_secs(10), || async {
        delivered(&out).0.contains_key("first-0099")
    })
    .await;
    assert!(read, "{}", agent.logs());
    std::fs::OpenOptions::new()
        .write(true)
        .open(logs.join("first.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let noticed = testkit::holds_within(Duration::from_secs(10), || async {
        agent.logs().contains("file truncated")
    })
    .await;
    assert!(noticed, "{}", agent.logs());

    let second = lines("second", 300);
    write(&logs.join("second.log"), &second);
    let arrived = testkit::holds_within(Duration::from_secs(10), || async {
        delivered(&out).0.contains_key("second-0299")
    })
    .await;
    assert!(arrived, "{}", agent.logs());
    let (counts, _) = delivered(&out);
    let (missing, _) = losses_and_duplicates(&counts, &second);
    assert!(
        missing.is_empty(),
        "{} lines of the new file skipped, from {:?}",
        missing.len(),
        missing.first()
    );
}
