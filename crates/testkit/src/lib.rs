//! The workspace's test kit. Real servers: a `redis-server` per test (own
//! port, own data directory, killable and restartable) or a group of them
//! under Redis Sentinel ([`SentinelGroup`]), an empty database for either
//! engine (an SQLite file or a fresh PostgreSQL database), a Prometheus
//! Pushgateway. The programs under test run as processes with a cleared
//! environment ([`mod@program`]), their metrics read as a scraper reads them
//! ([`sample`]), conditions polled with a limit ([`eventually`]), and the
//! history checker for the data path ([`history`]).
//!
//! Nothing here mocks a server the machine can run. A missing
//! `redis-server` binary or an unset `TEST_POSTGRES_URL` makes the test fail
//! with a message saying how to fix it (`scripts/test` sets everything up);
//! it never skips. The one stand-in is for what no test machine has, a
//! Kubernetes API server: [`KubeApiServer`] speaks its list/watch protocol
//! over HTTP, driven by each test.

mod database;
mod exposition;
pub mod history;
mod kube_api;
mod postgres;
mod program;
mod pushgateway;
mod redis_server;
mod sentinel_group;

use std::time::{Duration, Instant};

pub use database::{EmptyDatabase, Engine};
pub use exposition::{sample, sample_labelled};
pub use kube_api::{KubeApiServer, Resource};
pub use postgres::TestDatabase;
pub use program::{output_text, program, sigterm};
pub use pushgateway::Pushgateway;
pub use redis_server::{Persistence, RedisServer};
pub use sentinel_group::{MASTER_NAME, SentinelGroup};

/// The peak resident memory of process `pid` so far (`VmHWM` in
/// `/proc/<pid>/status`), in bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("cannot read /proc/{pid}/status: {error}"));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"));
    kib * 1024
}

/// A free TCP port on the loopback interface.
///
/// The port is free when this returns; another process could take it before
/// the caller binds, which the callers detect and retry.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap_or_else(|error| panic!("cannot bind a loopback port: {error}"));
    listener
        .local_addr()
        .unwrap_or_else(|error| panic!("cannot read the bound port: {error}"))
        .port()
}

/// Polls `check` until it holds; fails the test, naming `what`, if it does
/// not within 15 s.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(15), check).await;
}

/// Polls `check` until it holds; fails the test, naming `what`, if it does
/// not within `limit`.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        holds_within(limit, check).await,
        "not within {} s: {what}",
        limit.as_secs()
    );
}

/// Polls `check` until it holds, first every 10 ms, then less often (up to
/// every 200 ms, so that a costly check does not load the machine);
/// `false` if it does not hold within `limit`, for callers that fail with
/// details of their own.
pub async fn holds_within<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    while !check().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
    true
}

/// Declares one multi-threaded `#[tokio::test]` per store engine for each
/// `async fn(Engine)` named, in modules `sqlite` and `postgres`, so that the
/// same test body runs against both.
///
/// ```text
/// testkit::on_both_engines!(reads_what_it_wrote, expires);
/// ```
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Engine::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Engine::Postgres).await;
                }
            )+
        }
    };
}
