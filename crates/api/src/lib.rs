//! The `api` service: an HTTP API doing cache-aside over a durable SQL store,
//! with Redis as the shared cache.
//!
//! - [`config`]: environment variables and flags.
//! - [`service`]: the read and write rules (cache-aside, version checks).
//! - [`cache`]: the Redis level, its health and its repair after outages.
//! - [`routes`]: the HTTP surface, errors in [`error`], metrics in [`metrics`].
//! - [`startup`]: wiring it all together and running until shutdown, on
//!   the connection loop of [`server`].

mod cache;
mod config;
mod error;
mod metrics;
mod routes;
mod server;
mod service;
mod startup;

pub use cache::tracking::TRACKING_CONNECTION_NAME_PREFIX;
pub use config::Config;
pub use startup::Application;
