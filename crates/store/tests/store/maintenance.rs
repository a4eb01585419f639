//! What the cleanup job asks of the store: dead keys, live keys page by
//! page, expired rows reclaimed.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use store::domain::Ttl;
use testkit::Engine;

use crate::{NOW, TestStore, key, open};

async fn maintenance_finds_dead_keys_and_reclaims_expired_rows(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let ttl = Ttl::from_seconds(10).unwrap();
    store.put(&key("live"), "v", None, NOW).await.unwrap();
    store
        .put(&key("lasting"), "v", Some(ttl), NOW)
        .await
        .unwrap();
    for i in 0..25 {
        store
            .put(&key(&format!("old:{i}")), "v", Some(ttl), NOW - 60_000)
            .await
            .unwrap();
    }

    let dead = store
        .keys_without_live_record(
            &["live", "lasting", "old:3", "never", "it's \"quoted\""],
            NOW,
        )
        .await
        .unwrap();
    let mut dead: Vec<_> = dead.into_iter().collect();
    dead.sort();
    assert_eq!(dead, ["it's \"quoted\"", "never", "old:3"]);
    // A batch as large as the job sends.
    let many: Vec<String> = (0..500).map(|i| format!("old:{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        store
            .keys_without_live_record(&many, NOW)
            .await
            .unwrap()
            .len(),
        500
    );
    assert!(
        store
            .keys_without_live_record(&[], NOW)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.count_expired(NOW).await.unwrap(), 25);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 10);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 10);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 5);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 0);
    assert!(store.get(&key("live"), NOW).await.unwrap().is_some());
    assert!(store.get(&key("lasting"), NOW).await.unwrap().is_some());
}

/// Rows written with plain SQL, as another program might: many at once,
/// and keys the API would refuse.
async fn insert_rows(test: &TestStore, sql: &str) {
    let pool = sqlx::AnyPool::connect(test.database.url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn live_keys_are_read_page_by_page(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    // More live records than one page holds (10,000), and some that are not
    // live.
    insert_rows(
        &test,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10050) \
             INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) \
             SELECT 'page:' || i, 'v', 1, {NOW}, NULL FROM n"
        ),
    )
    .await;
    let ttl = Ttl::from_seconds(10).unwrap();
    store
        .put(&key("lasting"), "v", Some(ttl), NOW)
        .await
        .unwrap();
    store
        .put(&key("expired"), "v", Some(ttl), NOW - 60_000)
        .await
        .unwrap();
    let newline = match engine {
        Engine::Sqlite => "'odd' || char(10) || 'key'",
        Engine::Postgres => "'odd' || chr(10) || 'key'",
    };
    insert_rows(
        &test,
        &format!(
            "INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) \
             VALUES ({newline}, 'v', 1, {NOW}, NULL)"
        ),
    )
    .await;

    let mut seen = Vec::new();
    store
        .for_each_live_key(NOW, |key| {
            seen.push(key.to_owned());
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    let read = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(read, seen.len(), "no key is read twice");
    let mut expected: Vec<String> = (1..=10_050).map(|i| format!("page:{i}")).collect();
    expected.push("lasting".to_owned());
    expected.sort();
    // Neither the expired record nor the key holding a newline.
    assert_eq!(seen, expected);

    let mut visited = 0;
    store
        .for_each_live_key(NOW, |_| {
            visited += 1;
            if visited == 3 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .await
        .unwrap();
    assert_eq!(visited, 3, "Break stops the read");
}

/// Records written with a 1 s TTL and long expired, re-written without a
/// TTL by concurrent clients while the cleanup's reclaim runs batch after
/// batch: a re-written record is live, and no batch may take it.
async fn reclaiming_expired_records_spares_those_rewritten_meanwhile(engine: Engine) {
    const EXPIRED: i64 = 100_000;
    const WRITERS: usize = 8;
    const REWRITES_PER_WRITER: usize = 400;
    let test = open(engine).await;
    let seed = sqlx::AnyPool::connect(test.database.url()).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) \
         SELECT 'expired:' || i, 'old', i, $2, $3 FROM n",
    )
    .bind(EXPIRED)
    .bind(NOW - 61_000)
    .bind(NOW - 60_000)
    .execute(&seed)
    .await
    .unwrap();
    seed.close().await;

    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reclaim = {
        let store = test.store.clone();
        let writing = writing.clone();
        tokio::spawn(async move {
            let mut reclaimed = 0;
            loop {
                let done = store.delete_expired_batch(NOW, 10_000).await.unwrap();
                reclaimed += done;
                if done == 0 && !writing.load(std::sync::atomic::Ordering::Acquire) {
                    return reclaimed;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = test.store.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(writer as u64);
            let mut rewritten = Vec::new();
            for _ in 0..REWRITES_PER_WRITER {
                let k = key(&format!("expired:{}", rng.i64(1..=EXPIRED)));
                store.put(&k, "rewritten", None, NOW).await.unwrap();
                rewritten.push(k);
            }
            rewritten
        }));
    }
    let mut rewritten = Vec::new();
    for writer in writers {
        rewritten.extend(writer.await.unwrap());
    }
    writing.store(false, std::sync::atomic::Ordering::Release);
    let reclaimed = reclaim.await.unwrap();

    let mut lost = Vec::new();
    for k in &rewritten {
        match test.store.get(k, NOW).await.unwrap() {
            Some(record) if record.value == "rewritten" => {}
            other => lost.push(format!("{k}: {other:?}")),
        }
    }
    rewritten.sort();
    rewritten.dedup();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged rewrites gone, e.g. {:?}",
        lost.len(),
        WRITERS * REWRITES_PER_WRITER,
        &lost[..lost.len().min(5)]
    );
    // Everything else went, once.
    let rewritten = u64::try_from(rewritten.len()).unwrap();
    assert!(reclaimed >= u64::try_from(EXPIRED).unwrap() - rewritten);
    assert_eq!(test.store.count_expired(NOW).await.unwrap(), 0);
}

/// PostgreSQL: a writer's batch holds the first of two expired rows, in
/// key order as the writer takes them, while the reclaim runs, then asks
/// for the second. The reclaim must neither wait for the held row while
/// holding the other (a deadlock, one side rolled back after a second) nor
/// delete the row the writer makes live.
#[tokio::test]
async fn reclaiming_expired_records_leaves_rows_a_writer_holds_without_a_deadlock() {
    let test = open(Engine::Postgres).await;
    let store = &test.store;
    let ttl = Ttl::from_seconds(10).unwrap();
    // The table's order: the reclaim's scan meets "b" first.
    for raw in ["b", "a"] {
        store
            .put(&key(raw), "old", Some(ttl), NOW - 60_000)
            .await
            .unwrap();
    }

    let mut writer = PgConnection::connect(test.database.url()).await.unwrap();
    let rewrite = "UPDATE records SET value = 'rewritten', expires_at_ms = NULL WHERE key = $1";
    sqlx::query("BEGIN").execute(&mut writer).await.unwrap();
    sqlx::query(rewrite)
        .bind("a")
        .execute(&mut writer)
        .await
        .unwrap();
    let reclaim = {
        let store = store.clone();
        tokio::spawn(async move { store.delete_expired_batch(NOW, 10).await })
    };
    // Time for the reclaim to take "b" and reach "a".
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = sqlx::query(rewrite).bind("b").execute(&mut writer).await;
    let committed = sqlx::query("COMMIT").execute(&mut writer).await;
    let reclaimed = reclaim.await.unwrap();

    assert!(second.is_ok(), "the writer's second row: {second:?}");
    assert!(committed.is_ok(), "the writer's commit: {committed:?}");
    assert_eq!(reclaimed.unwrap(), 1, "the reclaim takes the row it can");
    let a = store.get(&key("a"), NOW).await.unwrap();
    assert_eq!(a.map(|record| record.value), Some("rewritten".to_owned()));
    assert_eq!(store.get(&key("b"), NOW).await.unwrap(), None);
    // The row the reclaim skipped is live now: nothing is left to reclaim.
    assert_eq!(store.count_expired(NOW).await.unwrap(), 0);
}

/// PostgreSQL: the rows a batch skips because a writer holds them do not
/// count towards its limit. The cleanup job stops at the first batch that
/// comes back short, so a batch that counted them would end a run while
/// expired rows it could take were left.
#[tokio::test]
async fn a_reclaim_batch_fills_its_limit_past_rows_a_writer_holds() {
    let test = open(Engine::Postgres).await;
    let store = &test.store;
    let ttl = Ttl::from_seconds(10).unwrap();
    // The table's order: the reclaim's scan meets the held row first.
    for raw in ["a", "b", "c"] {
        store
            .put(&key(raw), "old", Some(ttl), NOW - 60_000)
            .await
            .unwrap();
    }

    let mut writer = PgConnection::connect(test.database.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut writer).await.unwrap();
    sqlx::query("SELECT key FROM records WHERE key = 'a' FOR UPDATE")
        .execute(&mut writer)
        .await
        .unwrap();
    let reclaimed =
        tokio::time::timeout(Duration::from_secs(5), store.delete_expired_batch(NOW, 2))
            .await
            .expect("the reclaim does not wait for the held row");
    sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();

    assert_eq!(reclaimed.unwrap(), 2, "a full batch: the two free rows");
    assert_eq!(
        store.count_expired(NOW).await.unwrap(),
        1,
        "the held row is left"
    );
}

testkit::on_both_engines!(
    maintenance_finds_dead_keys_and_reclaims_expired_rows,
    live_keys_are_read_page_by_page,
    reclaiming_expired_records_spares_those_rewritten_meanwhile,
);
