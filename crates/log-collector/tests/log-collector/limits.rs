//! The agent's bounds: memory for unfinished lines across a thousand files,
//! open files through a long sink outage while kubelet rotates and
//! compresses logs, and a backlog that ships at the sink's pace.

#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::loki::LokiReceiver;
use crate::common::{Agent, Node, append, cri, file_sink, redis_sink, stream_messages};
use testkit::{Persistence, RedisServer};

const FILES: usize = 1000;
const LINE: usize = 200 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_files_ending_in_unfinished_long_lines_stay_within_56_mb() {
    let node = Node::new();
    let logs = node.path("plain");
    std::fs::create_dir_all(&logs).unwrap();
    let unfinished = "u".repeat(LINE);
    for file in 0..FILES {
        append(&logs.join(format!("f{file:04}.log")), &unfinished);
    }
    let mut env = file_sink(Path::new("/dev/null"));
    env.push(("COLLECTOR_PATHS", format!("{}/*.log", logs.display())));
    let mut agent = Agent::start(&node, &env);
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
    // The debug build the tests run: its own code (the Kubernetes client's
    // included) is a good part of it, the 16 MiB line buffer and three
    // batches the rest (docs/log-collector.md has the measurements).
    assert!(peak < 56 * 1024, "peak RSS {peak} KiB");
    assert!(agent.terminate().success());
}

/// Waits up to a minute for a counter to reach `value`.
/// A backlog of many batches: the reading thread hands each batch over as
/// soon as the shipper has taken the one before, instead of sleeping until
/// its idle poll (a quarter of a second) ends: waiting for the poll at each
/// batch would hold a backlog to a few batches a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_ships_batch_after_batch_without_waiting_for_the_poll() {
    const LINES: usize = 1000;
    const IDLE_POLL: Duration = Duration::from_millis(250);
    let node = Node::new();
    let log = node.container_dir("backlog").join("0.log");
    let lines: String = (0..LINES)
        .map(|i| cri(&format!("backlog line {i:05}")))
        .collect();
    append(&log, &lines);
    let mut env = file_sink(Path::new("/dev/null"));
    // The smallest batches: about ten of these lines each.
    env.push(("COLLECTOR_BATCH_BYTES", "1024".into()));
    // No periodic rescan to wake the reading thread meanwhile.
    env.push(("COLLECTOR_RESCAN_MS", "600000".into()));
    let agent = Agent::start(&node, &env);
    metric_reaches(&agent, "log_collector_lines_shipped_total", 1.0).await;
    let started = Instant::now();
    metric_reaches(&agent, "log_collector_lines_shipped_total", LINES as f64).await;
    let took = started.elapsed();
    let batches = agent.metric("log_collector_batches_shipped_total").await;
    println!("{batches} batches shipped in {took:?}");
    assert!(batches >= 50.0, "{batches} batches");
    // Waiting for the poll at every other batch would take
    // `batches / 2 * IDLE_POLL`.
    let bound = IDLE_POLL.mul_f64(batches / 8.0);
    assert!(
        took < bound,
        "{batches} batches took {took:?}: the reading thread waits for its poll between batches"
    );
}

async fn metric_reaches(agent: &Agent, name: &str, value: f64) {
    let what = format!("{name} reaching {value}");
    testkit::eventually_within(&what, Duration::from_secs(60), || async {
        agent.metric(name).await >= value
    })
    .await;
}

/// A container that logs steadily while kubelet rotates its log: `0.log`
/// renamed to `0.log.<n>`, the rotated file before it compressed (written
/// to `.tmp`, renamed to `.gz`, the uncompressed one deleted), at most four
/// compressed files kept. Lines in a file deleted before the agent opened
/// it exist nowhere else.
struct Kubelet {
    written: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const ROTATE_EVERY: Duration = Duration::from_secs(3);
const WRITE_EVERY: Duration = Duration::from_millis(300);
const LINES_PER_WRITE: usize = 20;

impl Kubelet {
    fn start(dir: PathBuf, name: &'static str) -> Self {
        let written = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (written, stop) = (Arc::clone(&written), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rotation = 0;
                while !stop.load(Ordering::Relaxed) {
                    let rotate_at = Instant::now() + ROTATE_EVERY;
                    while Instant::now() < rotate_at && !stop.load(Ordering::Relaxed) {
                        let lines: Vec<String> = {
                            let count = written.lock().unwrap().len();
                            (count..count + LINES_PER_WRITE)
                                .map(|i| format!("{name}-{i:07}"))
                                .collect()
                        };
                        append(
                            &dir.join("0.log"),
                            &lines.iter().map(|line| cri(line)).collect::<String>(),
                        );
                        written.lock().unwrap().extend(lines);
                        std::thread::sleep(WRITE_EVERY);
                    }
                    rotate(&dir, rotation);
                    rotation += 1;
                }
            })
        };
        Self {
            written,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops writing; every line written.
    fn stop(&mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.written.lock().unwrap().clone()
    }
}

fn rotate(dir: &Path, rotation: usize) {
    std::fs::rename(dir.join("0.log"), dir.join(format!("0.log.{rotation:05}"))).unwrap();
    if let Some(previous) = rotation.checked_sub(1) {
        let rotated = dir.join(format!("0.log.{previous:05}"));
        let tmp = dir.join(format!("0.log.{previous:05}.tmp"));
        let gzip = std::process::Command::new("gzip")
            .arg("-c")
            .arg(&rotated)
            .stdout(std::fs::File::create(&tmp).unwrap())
            .status()
            .unwrap();
        assert!(gzip.success());
        std::fs::rename(&tmp, dir.join(format!("0.log.{previous:05}.gz"))).unwrap();
        std::fs::remove_file(&rotated).unwrap();
    }
    if let Some(oldest) = rotation.checked_sub(5) {
        let _ = std::fs::remove_file(dir.join(format!("0.log.{oldest:05}.gz")));
    }
}

/// How long the sinks stay down: five minutes, unless
/// `COLLECTOR_OUTAGE_TEST_SECONDS` says otherwise (for a quick local run).
/// At least a minute: a shorter outage rotates too few files for the tight
/// agent to run out of its slots, and the test would fail for that.
fn outage() -> Duration {
    let Ok(raw) = std::env::var("COLLECTOR_OUTAGE_TEST_SECONDS") else {
        return Duration::from_secs(300);
    };
    let seconds: u64 = raw.parse().unwrap_or_else(|_| {
        panic!("COLLECTOR_OUTAGE_TEST_SECONDS={raw:?} is not a number of seconds")
    });
    assert!(
        seconds >= 60,
        "COLLECTOR_OUTAGE_TEST_SECONDS={seconds}: at least 60, or the tight agent never runs out of slots"
    );
    Duration::from_secs(seconds)
}

/// How long the agents get to ship what the outage held back.
const RECOVERY: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_of_both_sinks_loses_no_rotated_line_or_counts_each_one_it_loses() {
    let outage = outage();
    let (loki, tight_loki) = (LokiReceiver::start().await, LokiReceiver::start().await);
    let mut redis = RedisServer::start_with(None, Persistence::AppendOnlyAlways);
    let nodes = [Node::new(), Node::new(), Node::new()];
    // Small batches: reading pauses a few seconds into the outage, not
    // after the 2,000 lines a default batch holds.
    let batch = ("COLLECTOR_BATCH_LINES", "200".to_owned());
    let mut to_redis_env = redis_sink(redis.port(), "logs:outage");
    to_redis_env.push(batch.clone());
    let loki_sink = |receiver: &LokiReceiver| {
        vec![
            batch.clone(),
            ("COLLECTOR_SINK", "loki".to_owned()),
            ("COLLECTOR_LOKI_URL", receiver.base_url.clone()),
        ]
    };
    let to_loki = Agent::start(&nodes[0], &loki_sink(&loki));
    let to_redis = Agent::start(&nodes[1], &to_redis_env);
    // Rotations outnumber its open-file slots: it must count what it loses.
    let mut tight_env = loki_sink(&tight_loki);
    tight_env.push(("COLLECTOR_MAX_OPEN_FILES", "10".into()));
    let tight = Agent::start(&nodes[2], &tight_env);
    let mut kubelets = [
        Kubelet::start(nodes[0].container_dir("to-loki"), "loki"),
        Kubelet::start(nodes[1].container_dir("to-redis"), "redis"),
        Kubelet::start(nodes[2].container_dir("tight"), "tight"),
    ];
    for agent in [&to_loki, &to_redis, &tight] {
        metric_reaches(agent, "log_collector_lines_shipped_total", 1.0).await;
    }

    loki.answer(503);
    tight_loki.answer(503);
    redis.kill();
    tokio::time::sleep(outage).await;
    let read_during_outage = to_loki.metric("log_collector_lines_read_total").await;
    let held = to_loki.metric("log_collector_files_watched").await;
    loki.answer(204);
    tight_loki.answer(204);
    redis.restart();
    tokio::time::sleep(ROTATE_EVERY).await;
    let [to_loki_lines, to_redis_lines, tight_lines] = kubelets.each_mut().map(Kubelet::stop);

    testkit::eventually_within("every line of the Loki agent in Loki", RECOVERY, || async {
        let got: HashSet<String> = loki.messages().into_iter().collect();
        to_loki_lines.iter().all(|line| got.contains(line))
    })
    .await;
    testkit::eventually_within(
        "every line of the Redis agent in the stream",
        RECOVERY,
        || async {
            let got = stream_messages(&redis, "logs:outage").await;
            to_redis_lines.iter().all(|line| got.contains_key(line))
        },
    )
    .await;
    for agent in [&to_loki, &to_redis] {
        assert_eq!(agent.metric("log_collector_lost_lines_total").await, 0.0);
    }

    // The tight agent: what it did not ship, it counted, line for line.
    // Once every line is shipped or counted, no count changes any more (the
    // writers have stopped), so the figures read after the wait are final.
    let shipped_and_lost = async || {
        let got: HashSet<String> = tight_loki.messages().into_iter().collect();
        let shipped = tight_lines
            .iter()
            .filter(|line| got.contains(*line))
            .count();
        let lost = tight.metric("log_collector_lost_lines_total").await;
        (shipped, lost)
    };
    testkit::eventually_within(
        "the tight agent shipped or counted every line",
        RECOVERY,
        || async {
            let (shipped, lost) = shipped_and_lost().await;
            shipped + lost as usize == tight_lines.len()
        },
    )
    .await;
    let (shipped, lost) = shipped_and_lost().await;
    assert_eq!(shipped + lost as usize, tight_lines.len());
    assert!(lost > 0.0, "the tight agent should have run out of slots");
    assert!(tight.logs().contains("its lines are lost"));
    println!(
        "{}-second outage, a rotation every {} s: {} and {} lines through Loki and Redis, \
         nothing lost ({held} files held open at its end, {read_during_outage} lines read \
         during it); with 10 open-file slots, {shipped} of {} lines shipped, {lost} lost and counted",
        outage.as_secs(),
        ROTATE_EVERY.as_secs(),
        to_loki_lines.len(),
        to_redis_lines.len(),
        tight_lines.len(),
    );
}
