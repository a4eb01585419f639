//! The cleanup job against real Redis and both store engines: exactly the
//! right keys go, everything else stays byte for byte; dry runs, the
//! outbox, the Pushgateway and `--help`. Stops and failures are in
//! interruptions.rs.

use crate::common::{Fixture, Run, many_stale_keys};
use redis::AsyncCommands;
use store::clock::{Clock, SystemClock};
use testkit::Engine;

/// The mixed keyspace of the issue. Returns the keys that must go.
async fn mixed_keyspace(fixture: &Fixture) -> Vec<&'static [u8]> {
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
    // Names that are not UTF-8, which Redis allows: with a TTL the key
    // names no record (goes), without one it goes as well.
    let _: () = redis.pset_ex(b"cache:\xff", "x", 60_000).await.unwrap();
    let _: () = redis.set(b"cache:\xfe", "x").await.unwrap();
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
    let _: () = redis.set(b"session:\xff", "binary").await.unwrap();
    vec![
        b"cache:user:forever",
        b"cache:orphan-no-ttl",
        b"cache:\xfe",
        b"cache:user:expired",
        b"cache:ghost",
        b"cache:bad key",
        b"cache:\xff",
    ]
}

async fn exactly_the_right_keys_go_and_a_second_run_deletes_nothing(engine: Engine) {
    let run = exactly_the_right_keys_go(engine, &[]).await;
    assert!(
        run.output
            .contains("read the live record keys into an index"),
        "{}",
        run.output
    );
}

/// The same keyspace, with more live records than the index may hold: the
/// store is asked about every cache key, batch by batch.
async fn the_same_keys_go_when_the_store_is_asked_batch_by_batch(engine: Engine) {
    let run = exactly_the_right_keys_go(engine, &[("CLEANUP_INDEX_MAX_RECORDS", "1")]).await;
    assert!(
        run.output
            .contains("more live records than the index may hold"),
        "{}",
        run.output
    );
}

/// Runs the job twice over the mixed keyspace with `extra` settings: the
/// first run removes exactly the doomed keys, the second nothing. Returns the
/// first run.
async fn exactly_the_right_keys_go(engine: Engine, extra: &[(&str, &str)]) -> Run {
    let fixture = Fixture::new(engine).await;
    let doomed = mixed_keyspace(&fixture).await;
    let before = fixture.snapshot().await;

    let run = fixture.run(extra);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.summary["status"], "complete");
    assert_eq!(run.count("deleted_no_ttl"), 3);
    assert_eq!(run.count("deleted_record_gone"), 4);
    assert_eq!(run.count("keys_deleted"), 7);
    assert_eq!(run.count("rows_deleted"), 1);
    assert!(
        run.output.contains("cleanup done, deleted 7 expired keys"),
        "{}",
        run.output
    );

    let after = fixture.snapshot().await;
    let mut expected = before.clone();
    for key in &doomed {
        assert!(
            expected.remove(*key).is_some(),
            "{} was in the keyspace",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(after, expected, "only the doomed keys changed");
    // The expired record is gone from the store as well.
    let left = fixture
        .store
        .count_expired(SystemClock.now_ms())
        .await
        .unwrap();
    assert_eq!(left, 0);

    let again = fixture.run(extra);
    assert_eq!(again.code, Some(0), "{}", again.output);
    assert_eq!(again.count("keys_deleted"), 0);
    assert_eq!(again.count("rows_deleted"), 0);
    assert_eq!(fixture.snapshot().await, after);
    run
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
            .contains("cleanup done, would delete 7 expired keys"),
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

/// A run applies the outbox in write order up to the first entry younger
/// than its cutoff, and a dry run counts the same: an old entry behind a
/// young one (written by a clock behind) waits, in both.
async fn a_dry_run_counts_the_outbox_entries_a_run_applies(engine: Engine) {
    let fixture = Fixture::new(engine).await;
    let now_ms = SystemClock.now_ms();
    fixture.record("user:old", None, now_ms - 600_000).await;
    fixture.record("user:young", None, now_ms).await;
    fixture.record("user:behind", None, now_ms - 600_000).await;

    let dry = fixture.run(&[("CLEANUP_DRY_RUN", "1")]);
    let run = fixture.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(dry.count("outbox_applied"), 1, "{}", dry.output);
    assert_eq!(run.count("outbox_applied"), 1, "{}", run.output);
    assert_eq!(fixture.store.outbox_count(i64::MAX).await.unwrap(), 2);
}

testkit::on_both_engines!(
    outbox_leftovers_are_applied_and_cleared,
    a_dry_run_counts_the_outbox_entries_a_run_applies,
    exactly_the_right_keys_go_and_a_second_run_deletes_nothing,
    the_same_keys_go_when_the_store_is_asked_batch_by_batch,
    a_dry_run_deletes_nothing_and_counts_what_a_real_run_deletes,
);

#[tokio::test]
async fn metrics_accumulate_in_a_real_pushgateway() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let pushgateway = testkit::Pushgateway::start();
    mixed_keyspace(&fixture).await;
    let url = pushgateway.url();

    assert_eq!(fixture.run(&[("PUSHGATEWAY_URL", &url)]).code, Some(0));
    many_stale_keys(&fixture, 7).await;
    assert_eq!(fixture.run(&[("PUSHGATEWAY_URL", &url)]).code, Some(0));

    let exposition = exposition(&url).await;
    let sample = |name: &str| -> f64 {
        testkit::sample_labelled(&exposition, name, "job=\"cleanup\"")
            .unwrap_or_else(|| panic!("{name} not in the pushgateway:\n{exposition}"))
    };
    assert_eq!(sample("cleanup_job_runs_total"), 2.0);
    assert_eq!(sample("cleanup_keys_deleted_total"), 7.0 + 7.0);
    assert_eq!(sample("cleanup_records_deleted_total"), 1.0);
    assert!(sample("cleanup_job_duration_seconds") > 0.0);
    assert!(sample("cleanup_job_last_success_timestamp_seconds") > 1.7e9);
}

/// What the Pushgateway at `url` exposes now.
async fn exposition(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_total_the_job_cannot_have_pushed_is_a_clear_error_not_a_crash() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let pushgateway = testkit::Pushgateway::start();
    let url = pushgateway.url();
    let absurd = "cleanup_job_runs_total 1e+30\n";
    let pushed = reqwest::Client::new()
        .put(format!("{url}/metrics/job/cleanup"))
        .body(absurd)
        .send()
        .await
        .unwrap();
    assert!(pushed.status().is_success(), "{}", pushed.status());

    let run = fixture.run(&[("PUSHGATEWAY_URL", &url)]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(
        run.output.contains("cannot push metrics")
            && run.output.contains("cleanup_job_runs_total")
            && run.output.contains("Delete the group"),
        "{}",
        run.output
    );
    // The group is left as it was, for a person to look at.
    let exposition = exposition(&url).await;
    assert!(exposition.contains("1e+30"), "{exposition}");
}

/// A stand-in Pushgateway that answers every request with 200 and records,
/// for each, whether the cleanup lock was held in Redis when it arrived.
async fn lock_observing_pushgateway(
    fixture: &Fixture,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, bool)>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (seen, observed) = tokio::sync::mpsc::unbounded_channel();
    let redis = fixture.connection().await;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mut redis = redis.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).await.unwrap();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).await.unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                let held: bool = redis.exists("cleanup:lock").await.unwrap();
                let _ = seen.send((request_line.trim().to_owned(), held));
                let response = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                reader
                    .get_mut()
                    .write_all(response.as_bytes())
                    .await
                    .unwrap();
            });
        }
    });
    (url, observed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_held_until_the_metrics_are_pushed() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let (url, mut observed) = lock_observing_pushgateway(&fixture).await;

    let run = fixture.run(&[("PUSHGATEWAY_URL", &url)]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    let mut requests = Vec::new();
    while let Ok(request) = observed.try_recv() {
        requests.push(request);
    }
    let methods: Vec<&str> = requests
        .iter()
        .map(|(line, _)| line.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(methods, ["GET", "PUT"], "{requests:?}");
    assert!(
        requests.iter().all(|(_, held)| *held),
        "the lock was free while the job read or wrote the totals: {requests:?}"
    );
    let mut redis = fixture.connection().await;
    let held: bool = redis.exists("cleanup:lock").await.unwrap();
    assert!(!held, "released at the end");
}

#[test]
fn help_lists_every_variable_and_the_exit_codes() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cleanup"))
        .arg("--help")
        .env_clear()
        .env("REDIS_PASSWORD", "hunter2-secret")
        .env(
            "PUSHGATEWAY_URL",
            "https://job:hunter2-token@pushgateway:9091",
        )
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
        "CLEANUP_INDEX_MAX_RECORDS",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "--help lacks {variable}:\n{help}"
        );
    }
    assert!(help.contains("3 another run holds the lock"), "{help}");
    assert!(!help.contains("hunter2-secret"), "{help}");
    assert!(!help.contains("hunter2-token"), "{help}");
    // The job opens a pool of its own size: the API's setting is not offered.
    assert!(!help.contains("DATABASE_MAX_CONNECTIONS"), "{help}");
}

#[tokio::test]
async fn pushgateway_credentials_never_show_in_messages() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let closed = testkit::free_port();
    let url = format!("http://job:hunter2-token@127.0.0.1:{closed}");
    let run = fixture.run(&[("PUSHGATEWAY_URL", &url)]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(run.output.contains("cannot push metrics"), "{}", run.output);
    assert!(
        run.output
            .contains(&format!("http://redacted@127.0.0.1:{closed}")),
        "{}",
        run.output
    );
    assert!(!run.output.contains("hunter2-token"), "{}", run.output);
}
