//! The plumbing every program of the stack stands on.
//!
//! The binaries (`api`, `log-collector`, `cleanup`) share one way to read
//! configuration, log, expose metrics, stop, and reach Redis. Keeping those
//! here means a fix to, say, Redis timeouts lands in every program at once.
//! The data layer (domain types, the SQL store, the cache format) is the
//! `store` crate, which the collector does not need.

pub mod config;
pub mod hash;
pub mod json;
pub mod metrics;
pub mod ready_batch;
pub mod redis;
pub mod sentinel;
pub mod shutdown;
pub mod single_flight;
pub mod telemetry;
pub mod timestamp;
