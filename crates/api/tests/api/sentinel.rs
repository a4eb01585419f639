//! Two replicas on a Redis group under Sentinel, under the history
//! checker's load (concurrent writes, reads and deletes through both): the
//! primary SIGKILLed five times, each time a replica promoted and the old
//! primary started again as a replica. No request fails, the API writes to
//! each new primary within seconds, and the recorded history shows no stale
//! or invented read and no lost write (`testkit::history`).
//! `SENTINEL_FAILOVERS` sets the number of failovers (5 by default).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use store::clock::{Clock, SystemClock};
use testkit::SentinelGroup;
use testkit::history::{self, Outcome};

use crate::common::{Engine, Options, TestApp, spawn_app_on_sentinels};
use crate::history::{CLIENTS, L1_TTL_MS, check_final_states, client, tick};

const PASSWORD: &str = "group-secret";
/// The clients' budget of operations: more than a run does, and far enough
/// from `usize::MAX` that counting on from it cannot wrap around.
const UNBOUNDED: usize = usize::MAX / 2;
/// Between one client's operations: enough load to have requests in flight
/// at every moment of a failover, few enough operations (about 15,000 in
/// the whole run) for the checker to go through quickly.
const PAUSE: Duration = Duration::from_millis(10);

fn failovers() -> usize {
    std::env::var("SENTINEL_FAILOVERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5)
}

/// Whether the primary on `port` holds the cache entry of `key`.
fn cached_on(port: u16, key: &str) -> bool {
    let client = redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{port}/")).unwrap();
    let Ok(mut connection) = client.get_connection() else {
        return false;
    };
    redis::cmd("EXISTS")
        .arg(format!("{}{key}", store::cache::KEY_PREFIX))
        .query::<bool>(&mut connection)
        .unwrap_or(false)
}

/// When one failover's steps happened, since the start of the run: printed
/// with a violation, to place it.
struct Failover {
    /// The primary's port, and the promoted replica's.
    ports: (u16, u16),
    killed: Duration,
    /// When a Sentinel first named the new primary.
    promoted: Duration,
    /// When a write through each replica had reached the new primary.
    back: Duration,
    /// When the old primary was in sync again as a replica.
    rejoined: Duration,
}

impl Failover {
    /// One line of the run's timeline.
    fn describe(&self) -> String {
        format!(
            "primary {} killed at {:?}, {} named at {:?}, the API wrote to it by {:?}, \
             {} back as a replica at {:?}",
            self.ports.0,
            self.killed,
            self.ports.1,
            self.promoted,
            self.back,
            self.ports.0,
            self.rejoined
        )
    }

    /// From the kill until the API wrote to the new primary.
    fn recovery(&self) -> Duration {
        self.back - self.killed
    }
}

/// Kills the primary, waits until a write through each replica has
/// reached the new primary's cache, and has the old primary rejoin.
async fn fail_over(
    group: &mut SentinelGroup,
    replicas: &[TestApp; 2],
    round: usize,
    started: Instant,
) -> Failover {
    tokio::task::block_in_place(|| group.wait_until_failover_possible());
    let killed = started.elapsed();
    let (old, new) = tokio::task::block_in_place(|| group.fail_over());
    let promoted = started.elapsed();
    for (at, app) in replicas.iter().enumerate() {
        let key = format!("probe-{round}-{at}");
        testkit::eventually("a write through the API reaches the new primary", || {
            let key = key.clone();
            async move {
                app.put(&key, "after the failover", None).await;
                cached_on(new, &key)
            }
        })
        .await;
    }
    let back = started.elapsed();
    tokio::task::block_in_place(|| group.rejoin(old));
    Failover {
        ports: (old, new),
        killed,
        promoted,
        back,
        rejoined: started.elapsed(),
    }
}

/// `/api/v1/config` names the Sentinels and the group, not a host, and no
/// password.
async fn says_where_redis_is(app: &TestApp, group: &SentinelGroup) {
    let (status, config) = app.get_json("/api/v1/config").await;
    assert_eq!(status, 200);
    assert_eq!(config["redis_host"], serde_json::Value::Null, "{config}");
    assert_eq!(config["redis_sentinel_master"], testkit::MASTER_NAME);
    let sentinels: Vec<String> = group
        .sentinel_addresses()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(config["redis_sentinels"], serde_json::json!(sentinels));
    assert!(!config.to_string().contains(PASSWORD), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failovers_under_load_fail_no_request_and_leave_no_stale_read() {
    let mut group = tokio::task::spawn_blocking(|| SentinelGroup::start(Some(PASSWORD), None))
        .await
        .unwrap();
    let mut options = Options::new(Engine::Sqlite);
    options.l1_ttl_ms = L1_TTL_MS;
    options.max_requests_in_flight = 10_000;
    options.pod_name = "replica-a";
    let a = spawn_app_on_sentinels(&options, &group, PASSWORD, None).await;
    options.pod_name = "replica-b";
    let b = spawn_app_on_sentinels(&options, &group, PASSWORD, Some(&a.database_url)).await;
    let replicas = Arc::new([a, b]);
    says_where_redis_is(&replicas[0], &group).await;
    let ticking = tick(&replicas);

    let started = Instant::now();
    let started_at = SystemClock.now_ms();
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let replicas = replicas.clone();
            tokio::spawn(client(
                id,
                replicas,
                started,
                done.clone(),
                UNBOUNDED,
                PAUSE,
            ))
        })
        .collect();
    let mut failovers_done = Vec::new();
    // Under way before the first failover.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for round in 0..failovers() {
        failovers_done.push(fail_over(&mut group, &replicas, round, started).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every client stops after the operation it is on.
    done.store(UNBOUNDED, Ordering::Relaxed);
    let mut operations = Vec::new();
    for client in clients {
        operations.extend(client.await.unwrap());
    }

    let failed: Vec<_> = operations
        .iter()
        .filter(|operation| {
            matches!(
                operation.outcome,
                Outcome::Unknown { .. } | Outcome::ReadFailed
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, the first: {:?}",
        failed.len(),
        operations.len(),
        failed.first()
    );

    // Both replicas' invalidations flow from the last primary; another
    // replica's view may lag a change by L1's TTL at most.
    for app in replicas.iter() {
        app.wait_for_l1_armed().await;
    }
    let bound = Duration::from_millis(L1_TTL_MS + 250);
    tokio::time::sleep(bound + Duration::from_millis(100)).await;
    let mut report = history::check(&operations, bound);
    check_final_states(&replicas, &operations, &mut report).await;
    ticking.abort();
    assert!(report.reads_checked > 0);
    if !report.violations.is_empty() {
        // The nodes' and Sentinels' logs carry wall-clock times.
        eprintln!(
            "the run started at {}; the group's logs:\n{}",
            platform::timestamp::rfc3339(started_at),
            group.logs()
        );
    }
    assert!(
        report.violations.is_empty(),
        "{} violations, the first: {:?}; the failovers: {:#?}",
        report.violations.len(),
        report.violations.iter().take(10).collect::<Vec<_>>(),
        failovers_done
            .iter()
            .map(Failover::describe)
            .collect::<Vec<_>>()
    );

    let mut recoveries: Vec<_> = failovers_done.iter().map(Failover::recovery).collect();
    recoveries.sort_unstable();
    eprintln!(
        "{} failovers: the API wrote to the new primary after p50 {:?}, max {:?}; \
         {} operations, {} reads checked, no request failed, no violation",
        recoveries.len(),
        recoveries[recoveries.len() / 2],
        recoveries[recoveries.len() - 1],
        report.operations,
        report.reads_checked,
    );
}
