//! The integration tests of `cleanup`, one binary with a module per
//! subject (linking one test binary per file dominated the suite's time).

#![allow(clippy::unwrap_used)]

mod cleanup_job;
mod clock;
mod common;
mod failover;
mod interruptions;
