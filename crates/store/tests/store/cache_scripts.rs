//! The cache format's Lua scripts, run in a real Redis on entries the
//! format's encoder wrote.

use store::cache::{cache_key, entry, scripts};
use store::domain::Record;

use crate::NOW;

/// The cleanup job's deletion script reads the entry format this crate
/// writes: entries and tombstones encoded by [`store::cache::entry`], run
/// through the script in a real Redis.
#[tokio::test]
async fn the_cleanup_script_keeps_tombstones_the_entry_format_writes() {
    let redis = testkit::RedisServer::start();
    let mut connection = redis.connection().await;
    let live = Record {
        value: "a value that ends in T".into(),
        version: 7,
        updated_at_ms: NOW,
        expires_at_ms: None,
    };
    let keys = [
        cache_key("live"),
        cache_key("tombstone"),
        cache_key("gone"),
        cache_key("a-list"),
    ];
    let _: () = redis::pipe()
        .set(&keys[0], entry::encode_live(&live))
        .set(&keys[1], entry::encode_tombstone(9))
        .rpush(&keys[3], "not a string")
        .query_async(&mut connection)
        .await
        .unwrap();
    // Three keys exist ("gone" does not); a real run leaves the tombstone.
    for (dry_run, expected_left) in [("1", 3), ("0", 1)] {
        let unlinked: Vec<i64> = scripts::UNLINK_IF_STILL_STALE
            .key(&keys)
            .arg(dry_run)
            .invoke_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(unlinked, [1, 0, 0, 1], "dry run {dry_run}");
        let left: i64 = redis::cmd("EXISTS")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(left, expected_left, "dry run {dry_run}");
    }
}
