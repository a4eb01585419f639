//! The `api` service: an HTTP API doing cache-aside over a durable SQL store,
//! with Redis as the shared cache.
//!
//! - [`config`]: environment variables and flags.
//! - [`service`]: the read and write rules (cache-aside, version checks).
//! - [`cache`]: the Redis level, its health and its repair after outages.
//! - [`routes`]: the HTTP surface, errors in [`error`], metrics in [`metrics`].
//! - [`startup`]: wiring it all together and running until shutdown, on
//!   the connection loop of [`server`].

pub mod cache;
pub mod config;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod service;
pub mod startup;

pub use config::Config;
pub use startup::Application;
