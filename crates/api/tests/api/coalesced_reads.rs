//! Read-your-writes through coalesced loads: a read that starts after a
//! write or delete completed never receives a store load that began before
//! it, even though concurrent misses of one key share one load.
//!
//! The race is made deterministic on PostgreSQL: a row-level security
//! policy on `records` makes the first read of the key wait for an advisory
//! lock the test holds, so the first reader's store load is parked inside
//! the store while the test writes or deletes the key and starts a second
//! reader.

use std::time::Duration;

use crate::common::{Engine, Options, TestApp, spawn_app};
use sqlx::{Connection, Executor, PgConnection};
use store::cache::cache_key;

const KEY: &str = "held";
/// The advisory lock the first read of [`KEY`] waits for.
const GATE: i64 = 7_160_001;

/// Makes the next store read of [`KEY`] wait until the test lets it go;
/// reads after it pass. Returns the connection holding the gate.
async fn hold_next_read(app: &TestApp) -> PgConnection {
    let mut admin = PgConnection::connect(&app.database_url).await.unwrap();
    let setup = format!(
        "CREATE SEQUENCE held_reads;
         CREATE FUNCTION hold_first_read() RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
           IF nextval('held_reads') = 1 THEN
             PERFORM pg_advisory_lock_shared({GATE});
             PERFORM pg_advisory_unlock_shared({GATE});
           END IF;
           RETURN true;
         END $$;
         CREATE POLICY hold_first_read ON records
           USING (key <> '{KEY}' OR hold_first_read());
         ALTER TABLE records ENABLE ROW LEVEL SECURITY;
         ALTER TABLE records FORCE ROW LEVEL SECURITY;
         SELECT pg_advisory_lock({GATE});"
    );
    // Safe to splice: the only values are this file's constants.
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(setup)))
        .await
        .unwrap();
    admin
}

/// Waits until a session of this test's database waits for the gate: the
/// first read is parked. (Advisory locks belong to a database; other tests
/// park readers in theirs.)
async fn wait_until_parked(admin: &mut PgConnection) {
    for _ in 0..1500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 15 s: the first read waits inside the store");
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Write,
    Delete,
}

async fn a_read_after_a_change_never_gets_a_load_from_before_it(redis: bool, change: Change) {
    let mut options = Options::new(Engine::Postgres);
    if !redis {
        options.redis = None;
    }
    let app = spawn_app(options).await;
    app.put(KEY, "old", None).await;
    if redis {
        // The first reader must miss Redis to reach the store.
        let mut connection = app.redis_connection().await;
        let _: () = redis::cmd("DEL")
            .arg(cache_key(KEY))
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    let mut admin = hold_next_read(&app).await;

    let first = tokio::spawn({
        let http = app.http.clone();
        let url = app.url(&format!("/api/v1/data/{KEY}"));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    });
    wait_until_parked(&mut admin).await;

    let expected = match change {
        Change::Write => {
            app.put(KEY, "new", None).await;
            (200, Some("new".to_owned()))
        }
        Change::Delete => {
            assert_eq!(app.delete(KEY).await, 204);
            (404, None)
        }
    };
    // Started after the change completed. Given two seconds to answer while
    // the first load is still parked; the first load is let go after that
    // either way, so a reader that joined it gets its answer then.
    let second = tokio::spawn({
        let http = app.http.clone();
        let url = app.url(&format!("/api/v1/data/{KEY}"));
        async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body["value"].as_str().map(str::to_owned))
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while !second.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(GATE)
        .execute(&mut admin)
        .await
        .unwrap();

    let second = second.await.unwrap();
    assert_eq!(
        second, expected,
        "a read started after the {change:?} completed (redis: {redis})"
    );
    // The first read began before the change: the old value is its answer.
    assert_eq!(first.await.unwrap(), 200);
}

#[tokio::test]
async fn a_read_after_a_delete_never_gets_a_load_from_before_it() {
    a_read_after_a_change_never_gets_a_load_from_before_it(true, Change::Delete).await;
    a_read_after_a_change_never_gets_a_load_from_before_it(false, Change::Delete).await;
}

#[tokio::test]
async fn a_read_after_a_write_never_gets_a_load_from_before_it() {
    a_read_after_a_change_never_gets_a_load_from_before_it(true, Change::Write).await;
    a_read_after_a_change_never_gets_a_load_from_before_it(false, Change::Write).await;
}
