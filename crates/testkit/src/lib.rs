//! Test-only helpers that start real servers: a `redis-server` per test
//! (own port, own data directory, killable and restartable), a fresh
//! PostgreSQL database per test, and a Prometheus Pushgateway; and the
//! history checker for the data path ([`history`]).
//!
//! Nothing here mocks anything. A missing `redis-server` binary or an unset
//! `TEST_POSTGRES_URL` makes the test fail with a message saying how to fix
//! it (`scripts/test` sets everything up); it never skips.

pub mod history;
mod postgres;
mod pushgateway;
mod redis_server;

pub use postgres::TestDatabase;
pub use pushgateway::Pushgateway;
pub use redis_server::{Persistence, RedisServer};

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

/// The value of the sample `series` (a name, with its labels as the
/// exposition writes them) in Prometheus text `exposition`, if present.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
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
    eventually_within(what, std::time::Duration::from_secs(15), check).await;
}

/// Polls `check` until it holds, first every 10 ms, then less often (up to
/// every 200 ms, so that a costly check does not load the machine); fails
/// the test, naming `what`, if it does not hold within `limit`.
pub async fn eventually_within<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_millis(10);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {} s: {what}",
            limit.as_secs()
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    }
}

/// Declares one multi-threaded `#[tokio::test]` per store engine for each
/// `async fn(Engine)` named, in modules `sqlite` and `postgres`, so that the
/// same test body runs against both. `$engine` is the engine enum (any type
/// with `Sqlite` and `Postgres` variants).
///
/// ```text
/// testkit::on_both_engines!(store::Engine; reads_what_it_wrote, expires);
/// ```
#[macro_export]
macro_rules! on_both_engines {
    ($engine:ty; $($name:ident),+ $(,)?) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(<$engine>::Sqlite).await;
                }
            )+
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(<$engine>::Postgres).await;
                }
            )+
        }
    };
}
