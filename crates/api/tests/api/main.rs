//! The integration tests of `api`, one binary with a module per
//! subject (linking one test binary per file dominated the suite's time).

#![allow(clippy::unwrap_used)]

mod bad_input;
mod cache_aside;
mod coalesced_reads;
mod common;
mod fills;
mod history;
mod keys_and_values;
mod limits;
mod methods;
mod outbox_replay;
mod process;
mod readiness;
mod redis_outage;
mod replicas;
mod request_ids;
mod request_metrics;
mod sentinel;
mod stale_fill;
