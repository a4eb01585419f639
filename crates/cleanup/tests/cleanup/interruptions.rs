//! The cleanup job interrupted or failing, against real Redis and SQLite:
//! the lock, the deadline, SIGTERM, a lost walk cursor, unreachable or
//! dying servers. Whatever happens, the summary reports exactly what was
//! done.

use std::process::Child;

use crate::common::{Fixture, Run, deletes_begin, many_stale_keys, stale_left};
use redis::AsyncCommands;
use testkit::Engine;

/// 20,000 stale keys, and a run started with `settings` that has begun
/// deleting them.
async fn run_under_way(fixture: &Fixture, settings: &[(&str, &str)]) -> Child {
    many_stale_keys(fixture, 20_000).await;
    let child = fixture.command(settings).spawn().unwrap();
    deletes_begin(fixture).await;
    child
}

/// Checks a run that stopped part way: exit 0, `partial` because of
/// `stopped_by`, and exactly the keys it reports deleted are gone. Returns
/// how many it deleted.
async fn stopped_part_way(fixture: &Fixture, run: &Run, stopped_by: &str) -> u64 {
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.summary["status"], "partial");
    assert_eq!(run.summary["stopped_by"], stopped_by);
    let deleted = run.count("keys_deleted");
    assert!(deleted > 0 && deleted < 20_000, "deleted {deleted}");
    assert_eq!(
        stale_left(fixture).await,
        20_000 - deleted,
        "reported = done"
    );
    deleted
}

#[tokio::test]
async fn two_concurrent_runs_one_works_the_other_exits_with_the_lock_code() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    many_stale_keys(&fixture, 3000).await;
    // The first run is slowed down so that it still holds the lock when the
    // second one starts.
    let first = fixture
        .command(&[("CLEANUP_RATE_LIMIT", "2000")])
        .spawn()
        .unwrap();
    let mut redis = fixture.connection().await;
    testkit::eventually("the first run takes the lock", || {
        let mut redis = redis.clone();
        async move { redis.exists("cleanup:lock").await.unwrap() }
    })
    .await;
    let second = fixture.run(&[]);
    assert_eq!(second.code, Some(3), "{}", second.output);
    assert!(
        second.output.contains("holds the lock"),
        "{}",
        second.output
    );

    let first = Run::from_output(&first.wait_with_output().unwrap());
    assert_eq!(first.code, Some(0), "{}", first.output);
    assert_eq!(first.count("keys_deleted"), 3000);
    let lock_left: bool = redis.exists("cleanup:lock").await.unwrap();
    assert!(!lock_left, "the lock is released");
}

#[tokio::test]
async fn the_deadline_stops_cleanly_and_the_next_run_finishes() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    many_stale_keys(&fixture, 20_000).await;

    let first = fixture.run(&[
        ("CLEANUP_DEADLINE_SECONDS", "1"),
        ("CLEANUP_RATE_LIMIT", "5000"),
    ]);
    let deleted = stopped_part_way(&fixture, &first, "deadline").await;

    let second = fixture.run(&[]);
    assert_eq!(second.code, Some(0), "{}", second.output);
    assert_eq!(second.summary["status"], "complete");
    assert_eq!(deleted + second.count("keys_deleted"), 20_000);
    assert_eq!(stale_left(&fixture).await, 0);
}

#[tokio::test]
async fn sigterm_stops_between_batches_like_the_deadline() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let child = run_under_way(&fixture, &[("CLEANUP_RATE_LIMIT", "5000")]).await;
    testkit::sigterm(child.id());
    let run = Run::from_output(&child.wait_with_output().unwrap());
    stopped_part_way(&fixture, &run, "signal").await;
    let mut redis = fixture.connection().await;
    let lock_left: bool = redis.exists("cleanup:lock").await.unwrap();
    assert!(!lock_left, "the lock is released on SIGTERM");
}

#[tokio::test]
async fn a_lost_walk_cursor_fails_the_run_instead_of_starting_over() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let child = run_under_way(&fixture, &[("CLEANUP_RATE_LIMIT", "5000")]).await;
    // What a FLUSHALL, or a Redis restarted without its data, does.
    let mut redis = fixture.connection().await;
    let removed: u64 = redis.del("cleanup:lock:cursor").await.unwrap();
    assert_eq!(removed, 1, "the run keeps its SCAN cursor in Redis");
    let run = Run::from_output(&child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert_eq!(run.summary["status"], "failed");
    assert!(
        run.output.contains("the walk cursor is gone"),
        "{}",
        run.output
    );
    let deleted = run.count("keys_deleted");
    assert_eq!(
        stale_left(&fixture).await,
        20_000 - deleted,
        "reported = done"
    );
}

#[tokio::test]
async fn unreachable_redis_or_store_fails_clearly() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let closed_port = testkit::free_port().to_string();
    let run = fixture.run(&[("REDIS_PORT", &closed_port)]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(run.output.contains("redis: "), "{}", run.output);
    assert!(
        run.output
            .contains(&format!("\"redis\":\"127.0.0.1:{closed_port}\"")),
        "{}",
        run.output
    );

    let run = fixture.run(&[(
        "DATABASE_URL",
        &format!("postgres://nobody:wrong@127.0.0.1:{closed_port}/none"),
    )]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(run.output.contains("store: "), "{}", run.output);
    assert!(
        run.output.contains(&format!(
            "\"database\":\"postgres://redacted@127.0.0.1:{closed_port}/none\""
        )),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("wrong@"),
        "the password leaked: {}",
        run.output
    );

    let run = fixture.run(&[("REDIS_HOST", "")]);
    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(run.output.contains("REDIS_HOST"), "{}", run.output);
}

#[tokio::test]
async fn redis_dying_mid_run_fails_with_only_reported_batches_done() {
    let mut fixture =
        Fixture::with_persistence(Engine::Sqlite, testkit::Persistence::AppendOnlyAlways).await;
    let child = run_under_way(
        &fixture,
        &[
            ("CLEANUP_RATE_LIMIT", "10000"),
            ("CLEANUP_SCAN_COUNT", "100"),
        ],
    )
    .await;
    // Redis dies once the job has deleted something.
    fixture.redis.kill();
    let run = Run::from_output(&child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert_eq!(run.summary["status"], "failed");
    let reported = run.count("keys_deleted");
    assert!(reported > 0, "{}", run.output);

    // Redis comes back with everything it executed (fsync always). Every
    // reported deletion happened; at most the walk steps in flight when
    // Redis died (2 of SCAN COUNT 100, a few keys more as SCAN's COUNT is a
    // hint), which unlink the keys without a TTL, may have been executed
    // without their reply arriving.
    fixture.redis.restart();
    let deleted = 20_000 - stale_left(&fixture).await;
    assert!(
        (reported..=reported + 2 * 150).contains(&deleted),
        "reported {reported}, deleted {deleted}"
    );
    // The lock could not be released; it expires by itself.
    let mut redis = fixture.connection().await;
    let lock_ttl: i64 = redis.pttl("cleanup:lock").await.unwrap();
    assert!(lock_ttl > 0, "the lock has a TTL: {lock_ttl}");
}

#[tokio::test]
async fn a_run_that_lost_its_lock_does_not_push_its_metrics() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let pushgateway = testkit::Pushgateway::start();
    let url = pushgateway.url();
    let child = run_under_way(
        &fixture,
        &[("CLEANUP_RATE_LIMIT", "5000"), ("PUSHGATEWAY_URL", &url)],
    )
    .await;
    // What a failover to a replica the lock had not reached does (or the
    // lock expiring under a run that overran it).
    let mut redis = fixture.connection().await;
    let removed: u64 = redis.del("cleanup:lock").await.unwrap();
    assert_eq!(removed, 1, "the run holds the lock");
    let run = Run::from_output(&child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(run.output.contains("metrics not pushed"), "{}", run.output);
    let exposition = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !exposition.contains("cleanup_job_runs_total"),
        "pushed without the lock:\n{exposition}"
    );
}
