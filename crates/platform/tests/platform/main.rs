//! The platform crate against real servers: a Redis group under Sentinel.

#![allow(clippy::unwrap_used)]

mod sentinel;
