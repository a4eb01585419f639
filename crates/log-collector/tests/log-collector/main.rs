//! The integration tests of `log-collector`, one binary with a module per
//! subject (linking one test binary per file dominated the suite's time).

#![allow(clippy::unwrap_used)]

mod common;
mod crash;
mod discovery;
mod enrichment;
mod kubernetes;
mod limits;
mod rotation;
mod sinks;
