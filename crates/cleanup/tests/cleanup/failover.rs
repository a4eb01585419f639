//! The job on a Redis group under Sentinel (real processes): the primary
//! killed in the middle of a run. The run ends `failed` with an error that
//! says where it was looking, leaves no lock behind on the new primary, and
//! the next run completes there.

use std::process::Command;

use redis::AsyncCommands;
use testkit::{EmptyDatabase, Engine, SentinelGroup};

use crate::common::Run;

const STALE_KEYS: usize = 20_000;

/// The job, as the CronJob runs it against the group.
fn command(group: &SentinelGroup, database: &EmptyDatabase, extra: &[(&str, &str)]) -> Command {
    let mut command = testkit::program(env!("CARGO_BIN_EXE_cleanup"));
    command
        .env("REDIS_SENTINELS", group.sentinel_addresses())
        .env("REDIS_SENTINEL_MASTER", testkit::MASTER_NAME)
        .env("DATABASE_URL", database.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in extra {
        command.env(name, value);
    }
    command
}

async fn stale_left(connection: &mut redis::aio::MultiplexedConnection) -> usize {
    let keys: Vec<String> = connection.keys("cache:stale:*").await.unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_cut_by_a_failover_fails_clearly_and_the_next_run_completes() {
    let mut group = tokio::task::spawn_blocking(|| SentinelGroup::start(None, None))
        .await
        .unwrap();
    let database = EmptyDatabase::create(Engine::Sqlite).await;
    let old = group.primary_port();
    let mut primary = group.node(old).connection().await;
    for chunk in (0..STALE_KEYS).collect::<Vec<_>>().chunks(5000) {
        let mut pipeline = redis::pipe();
        for i in chunk {
            pipeline.set(format!("cache:stale:{i}"), "x").ignore();
        }
        let _: () = pipeline.query_async(&mut primary).await.unwrap();
    }
    // Both replicas have every key before the run starts.
    let acknowledged: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(10_000)
        .query_async(&mut primary)
        .await
        .unwrap();
    assert_eq!(acknowledged, 2);

    // Slowed down so that the walk is under way when the primary dies.
    let child = command(&group, &database, &[("CLEANUP_RATE_LIMIT", "4000")])
        .spawn()
        .unwrap();
    testkit::eventually("the run deletes something", || {
        let mut primary = primary.clone();
        async move { stale_left(&mut primary).await < STALE_KEYS }
    })
    .await;
    let (_, new) = tokio::task::block_in_place(|| group.fail_over());

    let run = Run::from_output(&child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert_eq!(run.summary["status"], "failed", "{}", run.output);
    assert!(
        run.output.contains(&format!(
            "the primary of {} via Sentinels",
            testkit::MASTER_NAME
        )),
        "the error names where the job was looking: {}",
        run.output
    );
    let mut new_primary = group.node(new).connection().await;
    let lock_left: bool = new_primary.exists("cleanup:lock").await.unwrap();
    assert!(
        !lock_left,
        "the lock was left on the new primary: {}",
        run.output
    );

    let next = Run::from_output(&command(&group, &database, &[]).output().unwrap());
    assert_eq!(next.code, Some(0), "{}", next.output);
    assert_eq!(next.summary["status"], "complete", "{}", next.output);
    assert_eq!(stale_left(&mut new_primary).await, 0);
}
