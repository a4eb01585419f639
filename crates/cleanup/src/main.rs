//! The `cleanup` binary: one run of the job, then exit with a code the
//! CronJob understands (see `cleanup::ExitCode`).

use std::sync::Arc;

use clap::Parser;
use store::clock::SystemClock;

/// One worker thread (the walk itself runs on the main thread): the job
/// mostly waits for Redis, which works through the walk one step at a
/// time, and a second worker only takes CPU from Redis when both share a
/// node. In the CronJob (CPU limit 200m) the runtime would pick one anyway,
/// from the cgroup's quota. docs/decisions.md, record 12, has the measurements.
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::process::ExitCode {
    let config = cleanup::Config::parse();
    platform::telemetry::init("info,sqlx=warn");
    cleanup::run(config, Arc::new(SystemClock)).await.into()
}
