//! Sinks under failure: a Loki outage (503, then 429) with bounded memory,
//! the Redis Stream sink across a Redis restart, unreadable checkpoints, and
//! credentials in the sink's URL.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::loki::LokiReceiver;
use crate::common::{
    Agent, Node, append, cri, delivered, expect_lines, file_sink, losses_and_duplicates,
    redis_sink, stream_entries, stream_messages,
};
use testkit::{Persistence, RedisServer};

const BATCH_BYTES: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loki_outage_loses_nothing_and_memory_stays_bounded() {
    let node = Node::new();
    let loki = LokiReceiver::start().await;
    let dir = node.container_dir("chatty");
    let agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "loki".into()),
            ("COLLECTOR_LOKI_URL", loki.base_url.clone()),
            ("COLLECTOR_BATCH_BYTES", BATCH_BYTES.to_string()),
        ],
    );
    let mut expected = Vec::new();
    let mut write = |round: usize| {
        let lines: Vec<String> = (0..200)
            .map(|i| format!("round{round}-{i:04}-{}", "x".repeat(60)))
            .collect();
        append(
            &dir.join("0.log"),
            &lines.iter().map(|line| cri(line)).collect::<String>(),
        );
        expected.extend(lines);
    };
    let mut round = 0;
    let mut max_buffered = 0.0_f64;
    for status in [503, 429] {
        loki.answer(status);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            write(round);
            round += 1;
            max_buffered = max_buffered.max(agent.metric("log_collector_buffered_bytes").await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let read_during_outage = agent.metric("log_collector_lines_read_total").await;
    loki.answer(204);
    let total = expected.len();
    assert!(
        read_during_outage < total as f64 / 2.0,
        "reading should pause while the sink is down ({read_during_outage} of {total} read)"
    );
    expect_lines(&loki, total, Duration::from_secs(30), &agent).await;
    let counts = loki.message_counts();
    let (missing, duplicates) = losses_and_duplicates(&counts, &expected);
    assert!(missing.is_empty(), "lost {} lines", missing.len());
    assert_eq!(duplicates, 0);
    // One batch filling, one queued, one being retried.
    let bound = 3.0 * BATCH_BYTES as f64;
    assert!(
        max_buffered <= bound,
        "buffered {max_buffered} bytes, bound {bound}"
    );
    let rss = agent.peak_rss_kib();
    println!(
        "{total} lines through 10 s of 503/429: {} send errors, {} retries, \
         at most {max_buffered} bytes buffered, peak RSS {rss} KiB",
        agent.metric("log_collector_send_errors_total").await,
        agent.metric("log_collector_retries_total").await,
    );
    assert!(agent.metric("log_collector_retries_total").await >= 2.0);
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_413_splits_batches_and_400_drops_with_a_count() {
    let node = Node::new();
    let loki = LokiReceiver::start().await;
    loki.limit_body(16 * 1024);
    let dir = node.container_dir("big");
    let agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "loki".into()),
            ("COLLECTOR_LOKI_URL", loki.base_url.clone()),
        ],
    );
    // ~60 KiB of small lines in one batch, and one line no split can shrink.
    let lines: Vec<String> = (0..1000)
        .map(|i| format!("small-{i:04}-{}", "y".repeat(40)))
        .collect();
    let mut text: String = lines.iter().map(|line| cri(line)).collect();
    text.push_str(&cri(&"z".repeat(20 * 1024)));
    append(&dir.join("0.log"), &text);
    expect_lines(&loki, lines.len(), Duration::from_secs(15), &agent).await;
    let metrics = agent.metrics().await.unwrap();
    assert!(
        metrics.contains("log_collector_dropped_lines_total{reason=\"too_large\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        loki.messages(),
        lines,
        "split batches keep every line, in order"
    );

    // A 400 is final: the batch is dropped, counted, and the agent goes on.
    loki.answer(400);
    append(&dir.join("0.log"), &cri("refused"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent
        .metrics()
        .await
        .is_some_and(|m| m.contains("{reason=\"rejected\"} 1"))
    {
        assert!(
            Instant::now() < deadline,
            "no rejected line counted:\n{}",
            agent.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loki.answer(204);
    append(&dir.join("0.log"), &cri("accepted again"));
    let arrived = testkit::holds_within(Duration::from_secs(10), || async {
        loki.messages().last().map(String::as_str) == Some("accepted again")
    })
    .await;
    assert!(arrived);
    assert!(!loki.messages().contains(&"refused".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_stream_sink_survives_a_redis_restart() {
    let password = "collector-secret";
    let mut redis = RedisServer::start_with(Some(password), Persistence::AppendOnlyAlways);
    let node = Node::new();
    let password_file = node.path("redis-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let dir = node.container_dir("api");
    let agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "redis".into()),
            ("REDIS_HOST", "127.0.0.1".into()),
            ("REDIS_PORT", redis.port().to_string()),
            ("REDIS_PASSWORD_FILE", password_file.display().to_string()),
            ("COLLECTOR_REDIS_STREAM", "logs:test".into()),
        ],
    );
    let mut expected = Vec::new();
    for round in 0..40 {
        let lines: Vec<String> = (0..250).map(|i| format!("r{round}-{i}")).collect();
        append(
            &dir.join("0.log"),
            &lines.iter().map(|line| cri(line)).collect::<String>(),
        );
        expected.extend(lines);
        if round == 15 {
            redis.kill();
        }
        if round == 25 {
            redis.restart();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let entries = loop {
        let entries = stream_entries(&redis, "logs:test").await;
        if entries.len() >= expected.len() || Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut counts = HashMap::new();
    for entry in &entries {
        let fields = entry;
        assert_eq!(fields["node"], crate::common::NODE);
        assert_eq!(fields["pod"], "api");
        assert_eq!(fields["stream"], "stdout");
        *counts.entry(fields["message"].clone()).or_insert(0) += 1;
    }
    let (missing, duplicates) = losses_and_duplicates(&counts, &expected);
    assert!(
        missing.is_empty(),
        "lost {} lines:\n{}",
        missing.len(),
        agent.logs()
    );
    println!(
        "{} lines through a Redis restart: {duplicates} duplicates",
        expected.len()
    );
    assert!(
        !agent.logs().contains(password),
        "the password leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_redis_applied_but_answered_late_is_not_written_twice() {
    let redis = RedisServer::start();
    let node = Node::new();
    let dir = node.container_dir("api");
    let mut env = redis_sink(redis.port(), "logs:late");
    env.push(("COLLECTOR_REDIS_BATCH_TIMEOUT_MS", "200".into()));
    let agent = Agent::start(&node, &env);
    append(&dir.join("0.log"), &cri("warm-up"));
    testkit::eventually("the first line in the stream", || async {
        stream_messages(&redis, "logs:late")
            .await
            .contains_key("warm-up")
    })
    .await;
    // Redis holds writes for longer than the agent waits for an answer, then
    // applies them: the agent sees a time-out for a batch that was written.
    let mut control = redis.connection().await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query_async(&mut control)
        .await
        .unwrap();
    let expected: Vec<String> = (0..500).map(|i| format!("late-{i}")).collect();
    append(
        &dir.join("0.log"),
        &expected.iter().map(|line| cri(line)).collect::<String>(),
    );
    testkit::eventually("every line in the stream", || async {
        let counts = stream_messages(&redis, "logs:late").await;
        expected.iter().all(|line| counts.contains_key(line))
    })
    .await;
    // Retries after the pause have had time to land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = stream_messages(&redis, "logs:late").await;
    let (missing, duplicates) = losses_and_duplicates(&counts, &expected);
    assert!(missing.is_empty());
    assert_eq!(
        duplicates,
        0,
        "a late answer made the agent write again:\n{}",
        agent.logs()
    );
    assert!(
        agent.metric("log_collector_retries_total").await >= 1.0,
        "{}",
        agent.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_capped_near_its_maxlen() {
    let redis = RedisServer::start();
    let node = Node::new();
    let dir = node.container_dir("api");
    let mut env = redis_sink(redis.port(), "logs:capped");
    env.push(("COLLECTOR_REDIS_MAXLEN", "1000".into()));
    let _agent = Agent::start(&node, &env);
    for round in 0..10 {
        let lines: String = (0..1000).map(|i| cri(&format!("r{round}-{i}"))).collect();
        append(&dir.join("0.log"), &lines);
    }
    testkit::eventually("the last line in the stream", || async {
        stream_messages(&redis, "logs:capped")
            .await
            .contains_key("r9-999")
    })
    .await;
    let mut connection = redis.connection().await;
    let length: u64 = redis::cmd("XLEN")
        .arg("logs:capped")
        .query_async(&mut connection)
        .await
        .unwrap();
    // `MAXLEN ~` trims whole stream nodes (100 entries each by default).
    assert!((1000..1100).contains(&length), "XLEN {length}");
}

/// An agent on the `file` sink, its checkpoint in `checkpoints/`.
fn file_agent(node: &Node, extra: &[(&'static str, String)]) -> Agent {
    let mut env = file_sink(&node.path("out.jsonl"));
    env.extend(extra.iter().cloned());
    Agent::start(node, &env)
}

async fn expect_delivered(node: &Node, agent: &Agent, message: &str) {
    let out = node.path("out.jsonl");
    let arrived = testkit::holds_within(Duration::from_secs(10), || async {
        delivered(&out).0.contains_key(message)
    })
    .await;
    assert!(arrived, "{message:?} not delivered:\n{}", agent.logs());
}

const CORRUPT: &str = "{\"version\":1,\"files\":[{";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_checkpoint_resumes_from_its_previous_version() {
    let node = Node::new();
    let log = node.container_dir("app").join("0.log");
    let mut agent = file_agent(&node, &[]);
    // Two acknowledged batches: two saves, so a previous version exists.
    append(&log, &cri("first"));
    expect_delivered(&node, &agent, "first").await;
    append(&log, &cri("second"));
    expect_delivered(&node, &agent, "second").await;
    assert!(agent.terminate().success());

    std::fs::write(node.path("checkpoints/checkpoints.json"), CORRUPT).unwrap();
    agent.kill_and_restart();
    append(&log, &cri("third"));
    expect_delivered(&node, &agent, "third").await;
    let (counts, _) = delivered(&node.path("out.jsonl"));
    assert_eq!(
        counts["first"],
        1,
        "re-shipped from the start:\n{}",
        agent.logs()
    );
    assert!(counts["second"] <= 2);
    assert_eq!(counts["third"], 1);
    assert_eq!(
        agent.metric("log_collector_checkpoint_errors_total").await,
        1.0
    );
    assert!(
        agent.logs().contains("resuming from its previous version"),
        "{}",
        agent.logs()
    );
    assert!(
        node.path("checkpoints/checkpoints.json.unreadable")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_readable_checkpoint_the_agent_refuses_or_starts_at_the_end() {
    let node = Node::new();
    std::fs::create_dir_all(node.path("checkpoints")).unwrap();
    std::fs::write(node.path("checkpoints/checkpoints.json"), CORRUPT).unwrap();
    let log = node.container_dir("app").join("0.log");
    append(&log, &cri("before the start"));

    let mut refused = file_agent(&node, &[]);
    let status = refused.exited_within(Duration::from_secs(10)).await;
    let logs = refused.logs();
    assert!(status.is_some_and(|status| !status.success()), "{logs}");
    assert!(logs.contains("refusing to start"), "{logs}");
    assert!(
        logs.contains("COLLECTOR_UNREADABLE_CHECKPOINT=start-at-end"),
        "{logs}"
    );

    let mut agent = file_agent(
        &node,
        &[("COLLECTOR_UNREADABLE_CHECKPOINT", "start-at-end".into())],
    );
    // The agent is up once it serves metrics; then the file grows.
    let up = testkit::holds_within(Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", agent.port)).is_ok()
    })
    .await;
    assert!(up, "{}", agent.logs());
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, &cri("after the start"));
    expect_delivered(&node, &agent, "after the start").await;
    assert!(agent.terminate().success());
    let (counts, _) = delivered(&node.path("out.jsonl"));
    assert!(!counts.contains_key("before the start"), "{counts:?}");
    // The agent wrote a good checkpoint in its place.
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(node.path("checkpoints/checkpoints.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["files"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_credentials_never_show_in_help_or_messages() {
    const SECRET: &str = "s3cret-token";
    let binary = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_log-collector"));
        command.env_clear().env("NODE_NAME", crate::common::NODE);
        command
    };
    let help = binary()
        .arg("--help")
        .env(
            "COLLECTOR_LOKI_URL",
            format!("http://user:{SECRET}@loki:3100"),
        )
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[env: COLLECTOR_LOKI_URL"), "{help}");
    assert!(!help.contains(SECRET), "{help}");

    // A URL that does not parse is named without its credentials.
    let refused = binary()
        .env("COLLECTOR_SINK", "loki")
        .env("COLLECTOR_LOKI_URL", format!("http://user:{SECRET}@[loki"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("COLLECTOR_LOKI_URL"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");

    // An unreachable Loki: the retries say where, without the credentials.
    let node = Node::new();
    append(&node.container_dir("app").join("0.log"), &cri("a line"));
    let closed = testkit::free_port();
    let agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "loki".into()),
            (
                "COLLECTOR_LOKI_URL",
                format!("http://user:{SECRET}@127.0.0.1:{closed}"),
            ),
        ],
    );
    let retried = testkit::holds_within(Duration::from_secs(10), || async {
        agent.logs().contains("loki unreachable")
    })
    .await;
    let logs = agent.logs();
    assert!(retried, "{logs}");
    assert!(
        logs.contains(&format!("http://redacted@127.0.0.1:{closed}")),
        "{logs}"
    );
    assert!(!logs.contains(SECRET), "{logs}");
}
