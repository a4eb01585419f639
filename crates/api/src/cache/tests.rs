//! The cache's health state against a real Sentinel group.

use std::sync::Arc;
use std::time::Duration;

use platform::config::{RedisSettings, RedisTarget, Secret};
use platform::sentinel::{SentinelGroup, parse_addresses};
use store::domain::Key;

use super::{CacheError, RedisCache};
use crate::metrics::Metrics;

const PASSWORD: &str = "group-secret";

/// A reply on a connection opened since the last repair takes Redis down,
/// and is not used: the connection may reach a primary found since, which
/// missed writes the outbox would have put back. Here a PING, which never
/// changes the health state, meets a connection the server closed; the GET
/// after it opens another connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_on_a_connection_newer_than_the_repair_takes_redis_down() {
    let group = tokio::task::spawn_blocking(|| testkit::SentinelGroup::start(Some(PASSWORD), None))
        .await
        .unwrap();
    let settings = RedisSettings {
        target: RedisTarget::Sentinel(SentinelGroup {
            sentinels: parse_addresses(&group.sentinel_addresses()).unwrap(),
            master: testkit::MASTER_NAME.to_owned(),
            sentinel_password: None,
        }),
        password: Some(Secret::new(PASSWORD)),
        timeout: Duration::from_secs(2),
    };
    let connection = platform::redis::primary_connection(&settings).unwrap();
    let metrics = Arc::new(Metrics::new("test-pod".to_owned()));
    let cache = RedisCache::new(
        connection.clone(),
        Duration::from_secs(2),
        Duration::from_secs(60),
        Duration::from_secs(10),
        metrics,
    );
    cache.ping().await.unwrap();
    cache.usage.resume_writes(connection.generation());
    assert!(cache.resume_reads());
    let key = Key::parse("k").unwrap();
    cache
        .get(&key)
        .await
        .expect("read on the repaired connection");

    let primary = redis::Client::open(format!(
        "redis://:{PASSWORD}@127.0.0.1:{}/",
        group.primary_port()
    ))
    .unwrap();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .exec(&mut primary.get_connection().unwrap())
        .unwrap();
    cache.ping().await.expect_err("the connection was closed");
    assert!(cache.is_usable(), "a failed PING leaves the state alone");

    let read = cache.get(&key).await;
    assert!(matches!(read, Err(CacheError::PrimaryChanged)), "{read:?}");
    assert!(!cache.is_usable());
}
