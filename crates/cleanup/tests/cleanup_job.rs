//! The cleanup job against real Redis and both store engines: exactly the
//! right keys go, everything else stays byte for byte; dry runs, the lock,
//! the deadline, failures and the Pushgateway.

#![allow(clippy::unwrap_used)]

mod common;

use common::Fixture;
use platform::clock::{Clock, SystemClock};
use platform::store::Engine;
use redis::AsyncCommands;

/// The mixed keyspace of the issue. Returns the keys that must go.
async fn mixed_keyspace(fixture: &Fixture) -> Vec<&'static str> {
    let now = SystemClock.now_ms();
    let mut redis = fixture.connection().await;
    // Live records, cached with a TTL: stay.
    for key in ["user:1", "user:2", "user:3"] {
        fixture.cached_record(key, None).await;
    }
    fixture.cached_record("user:ttl", Some(3600)).await;
    // A cache key without TTL, although its record is live: goes.
    fixture.record("user:forever", None, now).await;
    let _: () = redis
        .set("cache:user:forever", "1 L 0 - value")
        .await
        .unwrap();
    // A cache key without TTL and no record: goes.
    let _: () = redis.set("cache:orphan-no-ttl", "x").await.unwrap();
    // A record that expired ten seconds ago, still cached: record and key go.
    fixture.record("user:expired", Some(1), now - 11_000).await;
    let _: () = redis
        .pset_ex("cache:user:expired", "5 L 0 1 value", 60_000)
        .await
        .unwrap();
    // A cache key whose record vanished: goes.
    let _: () = redis
        .pset_ex("cache:ghost", "7 L 0 - value", 60_000)
        .await
        .unwrap();
    // A key the API could never have written (whitespace): goes.
    let _: () = redis.pset_ex("cache:bad key", "x", 60_000).await.unwrap();
    // A delete tombstone: no record, but the API relies on it; stays.
    let _: () = redis
        .pset_ex("cache:buried", "1795670057375001 T", 60_000)
        .await
        .unwrap();
    // Not cache keys: never read or touched.
    let _: () = redis.set("session:1", "token").await.unwrap();
    let _: () = redis.pset_ex("session:2", "token", 600_000).await.unwrap();
    let _: () = redis.hset("stats:hits", "total", 42).await.unwrap();
    let _: () = redis::cmd("XADD")
        .arg("events")
        .arg("*")
        .arg("k")
        .arg("v")
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis
        .set("cachex:1", "looks close, is not cache:*")
        .await
        .unwrap();
    let _: () = redis.set("CACHE:1", "other case").await.unwrap();
    vec![
        "cache:user:forever",
        "cache:orphan-no-ttl",
        "cache:user:expired",
        "cache:ghost",
        "cache:bad key",
    ]
}

async fn exactly_the_right_keys_go_and_a_second_run_deletes_nothing(engine: Engine) {
    let fixture = Fixture::new(engine).await;
    let doomed = mixed_keyspace(&fixture).await;
    let before = fixture.snapshot().await;

    let run = fixture.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.summary["status"], "complete");
    assert_eq!(run.count("deleted_no_ttl"), 2);
    assert_eq!(run.count("deleted_record_gone"), 3);
    assert_eq!(run.count("keys_deleted"), 5);
    assert_eq!(run.count("rows_deleted"), 1);
    assert!(
        run.output.contains("cleanup done, deleted 5 expired keys"),
        "{}",
        run.output
    );

    let after = fixture.snapshot().await;
    let mut expected = before.clone();
    for key in &doomed {
        assert!(expected.remove(*key).is_some(), "{key} was in the keyspace");
    }
    assert_eq!(after, expected, "only the doomed keys changed");
    // The expired record is gone from the store as well.
    let left = fixture
        .store
        .count_expired(SystemClock.now_ms())
        .await
        .unwrap();
    assert_eq!(left, 0);

    let again = fixture.run(&[]);
    assert_eq!(again.code, Some(0), "{}", again.output);
    assert_eq!(again.count("keys_deleted"), 0);
    assert_eq!(again.count("rows_deleted"), 0);
    assert_eq!(fixture.snapshot().await, after);
}

async fn a_dry_run_deletes_nothing_and_counts_what_a_real_run_deletes(engine: Engine) {
    let fixture = Fixture::new(engine).await;
    mixed_keyspace(&fixture).await;
    let before = fixture.snapshot().await;

    let dry = fixture.run(&[("CLEANUP_DRY_RUN", "true")]);
    assert_eq!(dry.code, Some(0), "{}", dry.output);
    assert_eq!(dry.summary["dry_run"], true);
    assert!(
        dry.output
            .contains("cleanup done, would delete 5 expired keys"),
        "{}",
        dry.output
    );
    assert_eq!(fixture.snapshot().await, before, "a dry run changed Redis");
    assert_eq!(
        fixture
            .store
            .count_expired(SystemClock.now_ms())
            .await
            .unwrap(),
        1
    );

    let real = fixture.run(&[]);
    for field in [
        "deleted_no_ttl",
        "deleted_record_gone",
        "keys_deleted",
        "rows_deleted",
    ] {
        assert_eq!(dry.count(field), real.count(field), "{field}");
    }
}

async fn outbox_leftovers_are_applied_and_cleared(engine: Engine) {
    let fixture = Fixture::new(engine).await;
    // A write ten minutes ago whose Redis update never happened (the
    // replica died): Redis still holds an older version.
    let written = fixture
        .record("user:left", None, SystemClock.now_ms() - 600_000)
        .await;
    let mut redis = fixture.connection().await;
    let _: () = redis
        .pset_ex("cache:user:left", "5 L 0 - older value", 60_000)
        .await
        .unwrap();

    let dry = fixture.run(&[("CLEANUP_DRY_RUN", "1")]);
    assert_eq!(dry.count("outbox_applied"), 1, "{}", dry.output);
    let held: String = redis.get("cache:user:left").await.unwrap();
    assert_eq!(held, "5 L 0 - older value", "a dry run changes nothing");

    let run = fixture.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.count("outbox_applied"), 1);
    let held: String = redis.get("cache:user:left").await.unwrap();
    assert_eq!(
        held,
        format!("{} T", written.version),
        "the older value is fenced off"
    );
    assert_eq!(fixture.store.outbox_count(i64::MAX).await.unwrap(), 0);
}

testkit::on_both_engines!(
    Engine;
    outbox_leftovers_are_applied_and_cleared,
    exactly_the_right_keys_go_and_a_second_run_deletes_nothing,
    a_dry_run_deletes_nothing_and_counts_what_a_real_run_deletes,
);

/// `count` cache keys without TTL, written in pipelines.
async fn many_stale_keys(fixture: &Fixture, count: usize) {
    let mut redis = fixture.connection().await;
    for chunk in (0..count).collect::<Vec<_>>().chunks(5000) {
        let mut pipeline = redis::pipe();
        for i in chunk {
            pipeline.set(format!("cache:stale:{i}"), "x").ignore();
        }
        let _: () = pipeline.query_async(&mut redis).await.unwrap();
    }
}

/// Waits until a running job has deleted some of the 20,000 stale keys.
async fn deletes_begin(fixture: &Fixture) {
    testkit::eventually("the job deletes something", || async {
        stale_left(fixture).await < 20_000
    })
    .await;
}

/// How many `cache:stale:*` keys are left.
async fn stale_left(fixture: &Fixture) -> u64 {
    let mut redis = fixture.connection().await;
    let keys: Vec<String> = redis.keys("cache:stale:*").await.unwrap();
    keys.len() as u64
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

    let first = common::Run::from_output(&first.wait_with_output().unwrap());
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
    assert_eq!(first.code, Some(0), "{}", first.output);
    assert_eq!(first.summary["status"], "partial");
    assert_eq!(first.summary["stopped_by"], "deadline");
    let deleted = first.count("keys_deleted");
    assert!(deleted > 0 && deleted < 20_000, "deleted {deleted}");
    assert_eq!(
        stale_left(&fixture).await,
        20_000 - deleted,
        "reported = done"
    );

    let second = fixture.run(&[]);
    assert_eq!(second.code, Some(0), "{}", second.output);
    assert_eq!(second.summary["status"], "complete");
    assert_eq!(deleted + second.count("keys_deleted"), 20_000);
    assert_eq!(stale_left(&fixture).await, 0);
}

#[tokio::test]
async fn sigterm_stops_between_batches_like_the_deadline() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    many_stale_keys(&fixture, 20_000).await;
    let child = fixture
        .command(&[("CLEANUP_RATE_LIMIT", "5000")])
        .spawn()
        .unwrap();
    deletes_begin(&fixture).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = common::Run::from_output(&child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.summary["status"], "partial");
    assert_eq!(run.summary["stopped_by"], "signal");
    let deleted = run.count("keys_deleted");
    assert!(deleted > 0 && deleted < 20_000, "deleted {deleted}");
    assert_eq!(
        stale_left(&fixture).await,
        20_000 - deleted,
        "reported = done"
    );
    let mut redis = fixture.connection().await;
    let lock_left: bool = redis.exists("cleanup:lock").await.unwrap();
    assert!(!lock_left, "the lock is released on SIGTERM");
}

#[tokio::test]
async fn unreachable_redis_or_store_fails_clearly() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let closed_port = testkit::free_port().to_string();
    let run = fixture.run(&[("REDIS_PORT", &closed_port)]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(
        run.output
            .contains(&format!("redis at 127.0.0.1:{closed_port}")),
        "{}",
        run.output
    );

    let run = fixture.run(&[(
        "DATABASE_URL",
        &format!("postgres://nobody:wrong@127.0.0.1:{closed_port}/none"),
    )]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(run.output.contains("DATABASE_URL"), "{}", run.output);
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
    many_stale_keys(&fixture, 20_000).await;
    let child = fixture
        .command(&[
            ("CLEANUP_RATE_LIMIT", "10000"),
            ("CLEANUP_SCAN_COUNT", "100"),
        ])
        .spawn()
        .unwrap();
    // Kill Redis once the job has deleted something.
    deletes_begin(&fixture).await;
    fixture.redis.kill();
    let run = common::Run::from_output(&child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert_eq!(run.summary["status"], "failed");
    let reported = run.count("keys_deleted");
    assert!(reported > 0, "{}", run.output);

    // Redis comes back with everything it executed (fsync always). Every
    // reported deletion happened; at most the batches in flight when Redis
    // died (3 of SCAN COUNT 100, a few keys more as SCAN's COUNT is a hint)
    // may have been executed without their reply arriving.
    fixture.redis.restart();
    let deleted = 20_000 - stale_left(&fixture).await;
    assert!(
        (reported..=reported + 3 * 150).contains(&deleted),
        "reported {reported}, deleted {deleted}"
    );
    // The lock could not be released; it expires by itself.
    let mut redis = fixture.connection().await;
    let lock_ttl: i64 = redis.pttl("cleanup:lock").await.unwrap();
    assert!(lock_ttl > 0, "the lock has a TTL: {lock_ttl}");
}

#[tokio::test]
async fn metrics_accumulate_in_a_real_pushgateway() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let pushgateway = testkit::Pushgateway::start();
    mixed_keyspace(&fixture).await;
    let url = pushgateway.url();

    assert_eq!(fixture.run(&[("PUSHGATEWAY_URL", &url)]).code, Some(0));
    many_stale_keys(&fixture, 7).await;
    assert_eq!(fixture.run(&[("PUSHGATEWAY_URL", &url)]).code, Some(0));

    let exposition = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |name: &str| -> f64 {
        exposition
            .lines()
            .find(|line| line.starts_with(name) && line.contains("job=\"cleanup\""))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in the pushgateway:\n{exposition}"))
    };
    assert_eq!(sample("cleanup_job_runs_total"), 2.0);
    assert_eq!(sample("cleanup_keys_deleted_total"), 5.0 + 7.0);
    assert_eq!(sample("cleanup_records_deleted_total"), 1.0);
    assert!(sample("cleanup_job_duration_seconds") > 0.0);
    assert!(sample("cleanup_job_last_success_timestamp_seconds") > 1.7e9);
}

#[test]
fn help_lists_every_variable_and_the_exit_codes() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cleanup"))
        .arg("--help")
        .env_clear()
        .env("REDIS_PASSWORD", "hunter2-secret")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "REDIS_PASSWORD_FILE",
        "DATABASE_URL",
        "CLEANUP_PATTERN",
        "CLEANUP_DEADLINE_SECONDS",
        "CLEANUP_DRY_RUN",
        "PUSHGATEWAY_URL",
        "CLEANUP_RATE_LIMIT",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "--help lacks {variable}:\n{help}"
        );
    }
    assert!(help.contains("3 another run holds the lock"), "{help}");
    assert!(!help.contains("hunter2-secret"), "{help}");
}
