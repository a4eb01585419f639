//! Shared helpers of the agent's integration tests: the real `log-collector`
//! binary as a child process (killable with SIGKILL, stoppable with
//! SIGTERM), log writers, and readers of what the sinks received.

pub mod loki;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const NODE: &str = "test-node";

/// A temporary node: `pods/` in the kubelet layout, a checkpoint directory,
/// and the agent's own log files.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("collector-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `pods/<ns>_<pod>_<uid>/<container>/`, created.
    pub fn container_dir(&self, pod: &str) -> PathBuf {
        let dir = self.path(&format!("pods/default_{pod}_uid-{pod}/app"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn pods_glob(&self) -> String {
        format!("{}/pods/*/*/*.log", self.dir.path().display())
    }
}

/// The agent binary, running.
pub struct Agent {
    child: Option<Child>,
    pub port: u16,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
    starts: usize,
    pipe_stdout: bool,
}

impl Agent {
    /// Starts the agent with test-friendly timings plus `env` (which wins).
    pub fn start(node: &Node, env: &[(&str, String)]) -> Self {
        Self::start_with(node, env, false)
    }

    /// As [`Agent::start`], with the agent's stdout readable through
    /// [`Agent::take_stdout`] (the `stdout` sink's output).
    pub fn start_piped(node: &Node, env: &[(&str, String)]) -> Self {
        Self::start_with(node, env, true)
    }

    fn start_with(node: &Node, env: &[(&str, String)], pipe_stdout: bool) -> Self {
        let mut all = vec![
            ("NODE_NAME".to_owned(), NODE.to_owned()),
            ("COLLECTOR_PATHS".to_owned(), node.pods_glob()),
            (
                "COLLECTOR_CHECKPOINT_DIR".to_owned(),
                node.path("checkpoints").display().to_string(),
            ),
            ("COLLECTOR_BIND_ADDRESS".to_owned(), "127.0.0.1".to_owned()),
            ("COLLECTOR_BATCH_WAIT_MS".to_owned(), "50".to_owned()),
            ("COLLECTOR_RESCAN_MS".to_owned(), "100".to_owned()),
            ("COLLECTOR_ROTATE_WAIT_MS".to_owned(), "300".to_owned()),
            ("COLLECTOR_RETRY_MAX_MS".to_owned(), "400".to_owned()),
            (
                "COLLECTOR_SHUTDOWN_TIMEOUT_SECONDS".to_owned(),
                "5".to_owned(),
            ),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        for (name, value) in env {
            all.retain(|(existing, _)| existing != name);
            all.push(((*name).to_owned(), value.clone()));
        }
        let mut agent = Self {
            child: None,
            port: 0,
            env: all,
            log_dir: node.path("agent-logs"),
            starts: 0,
            pipe_stdout,
        };
        std::fs::create_dir_all(&agent.log_dir).unwrap();
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        self.port = testkit::free_port();
        self.starts += 1;
        let stderr =
            std::fs::File::create(self.log_dir.join(format!("{}.log", self.starts))).unwrap();
        let child = testkit::program(env!("CARGO_BIN_EXE_log-collector"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("COLLECTOR_PORT", self.port.to_string())
            .stdout(if self.pipe_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(stderr)
            .spawn()
            .expect("cannot start log-collector");
        self.child = Some(child);
    }

    /// SIGKILL, then a fresh start with the same configuration.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        self.spawn();
    }

    /// SIGTERM and the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("agent not running");
        testkit::sigterm(child.id());
        child.wait().unwrap()
    }

    /// The running agent's stdout, once (see [`Agent::start_piped`]).
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        let child = self.child.as_mut().expect("agent not running");
        child
            .stdout
            .take()
            .expect("started with start_piped, taken once")
    }

    /// Waits up to `limit` for the agent to exit by itself.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("agent not running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the agent logged, over all its starts.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|start| {
                std::fs::read_to_string(self.log_dir.join(format!("{start}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    pub async fn metrics(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        reqwest::get(url).await.ok()?.text().await.ok()
    }

    /// The value of an unlabelled metric (0 when the agent is not up yet).
    pub async fn metric(&self, name: &str) -> f64 {
        let Some(body) = self.metrics().await else {
            return 0.0;
        };
        testkit::sample(&body, name).unwrap_or(0.0)
    }

    /// Peak resident memory of the current process, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("agent not running").id();
        testkit::peak_rss_bytes(pid) / 1024
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The settings of the `file` sink, appending to `out`.
pub fn file_sink(out: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("COLLECTOR_SINK", "file".to_owned()),
        ("COLLECTOR_FILE_PATH", out.display().to_string()),
    ]
}

/// The settings of the `redis` sink, to a Redis on `port` without a password.
pub fn redis_sink(port: u16, stream: &str) -> Vec<(&'static str, String)> {
    vec![
        ("COLLECTOR_SINK", "redis".to_owned()),
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", port.to_string()),
        ("COLLECTOR_REDIS_STREAM", stream.to_owned()),
    ]
}

/// A CRI line carrying `message`.
pub fn cri(message: &str) -> String {
    format!("2026-11-26T07:00:00.000000001Z stdout F {message}\n")
}

/// Appends `lines` to `path` in one write.
pub fn append(path: &Path, lines: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(lines.as_bytes()).unwrap();
}

/// The `file` sink's output: messages by how often they arrived, and the
/// number of torn lines (a kill in the middle of a write).
pub fn delivered(out: &Path) -> (HashMap<String, usize>, usize) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut counts = HashMap::new();
    let mut torn = 0;
    for line in text.lines().filter(|line| !line.is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(value) => {
                let message = value["message"].as_str().unwrap().to_owned();
                *counts.entry(message).or_insert(0) += 1;
            }
            Err(_) => torn += 1,
        }
    }
    (counts, torn)
}

/// Waits up to `limit` until `loki` has received `count` lines; fails the
/// test with the agent's log otherwise.
pub async fn expect_lines(loki: &loki::LokiReceiver, count: usize, limit: Duration, agent: &Agent) {
    let arrived = testkit::holds_within(limit, || async { loki.messages().len() >= count }).await;
    assert!(
        arrived,
        "{} of {count} lines reached Loki; agent log:\n{}",
        loki.messages().len(),
        agent.logs()
    );
}

/// Lines missing from `counts` among `expected`, and lines seen twice or
/// more (counting the extra copies).
pub fn losses_and_duplicates(
    counts: &HashMap<String, usize>,
    expected: &[String],
) -> (Vec<String>, usize) {
    let missing = expected
        .iter()
        .filter(|line| !counts.contains_key(*line))
        .cloned()
        .collect();
    let duplicates = counts.values().map(|count| count.saturating_sub(1)).sum();
    (missing, duplicates)
}

/// The fields of every entry of a Redis Stream, oldest first.
pub async fn stream_entries(
    redis: &testkit::RedisServer,
    stream: &str,
) -> Vec<HashMap<String, String>> {
    let mut connection = redis.connection().await;
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    entries.into_iter().map(|(_, fields)| fields).collect()
}

/// The messages in a Redis Stream, by how often they arrived.
pub async fn stream_messages(redis: &testkit::RedisServer, stream: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for fields in stream_entries(redis, stream).await {
        *counts.entry(fields["message"].clone()).or_insert(0) += 1;
    }
    counts
}
