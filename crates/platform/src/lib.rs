//! What every program of the stack stands on.
//!
//! The binaries (`api`, and later `log-collector` and `cleanup`) share one way
//! to read configuration, log, expose metrics, stop, and reach Redis and the
//! SQL store. Keeping those here means a fix to, say, Redis timeouts lands in
//! every program at once.

pub mod cache;
pub mod clock;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod redis;
pub mod shutdown;
pub mod store;
pub mod telemetry;
