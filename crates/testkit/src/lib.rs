//! Test-only helpers that start real servers: a `redis-server` per test
//! (own port, own data directory, killable and restartable), a fresh
//! PostgreSQL database per test, and a Prometheus Pushgateway.
//!
//! Nothing here mocks anything. A missing `redis-server` binary or an unset
//! `TEST_POSTGRES_URL` makes the test fail with a message saying how to fix
//! it (`scripts/test` sets everything up); it never skips.

mod postgres;
mod pushgateway;
mod redis_server;

pub use postgres::TestDatabase;
pub use pushgateway::Pushgateway;
pub use redis_server::{Persistence, RedisServer};

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
