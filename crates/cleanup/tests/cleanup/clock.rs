//! The job's clock decides which records have expired, as the API's does,
//! so a test moves time instead of waiting for it: the job run in this
//! process with a clock the test holds.

use std::sync::Arc;
use std::time::Duration;

use cleanup::ExitCode;
use redis::AsyncCommands;
use store::cache::cache_key;
use store::clock::{Clock, ManualClock};
use testkit::Engine;

use crate::common::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_and_its_cache_entry_go_once_the_clock_passes_its_ttl() {
    let fixture = Fixture::new(Engine::Sqlite).await;
    let clock = ManualClock::default();
    fixture.cached_record("lapsing", Some(60)).await;
    let mut redis = fixture.connection().await;
    let expired = || async { fixture.store.count_expired(clock.now_ms()).await.unwrap() };

    let code = cleanup::run(fixture.config(), Arc::new(clock.clone())).await;
    assert_eq!(code, ExitCode::Done);
    assert_eq!(expired().await, 0, "not expired yet");
    let cached: bool = redis.exists(cache_key("lapsing")).await.unwrap();
    assert!(cached, "a live record keeps its cache entry");

    clock.advance(Duration::from_secs(61));
    assert_eq!(expired().await, 1, "expired by the test's clock");
    let code = cleanup::run(fixture.config(), Arc::new(clock.clone())).await;
    assert_eq!(code, ExitCode::Done);
    assert_eq!(expired().await, 0, "the expired record was reclaimed");
    let cached: bool = redis.exists(cache_key("lapsing")).await.unwrap();
    assert!(!cached, "the cache entry of an expired record goes with it");
}
