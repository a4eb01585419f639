//! The `cleanup` binary: one run of the job, then exit with a code the
//! CronJob understands (see `cleanup::ExitCode`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = cleanup::Config::parse();
    platform::telemetry::init("info,sqlx=warn");
    cleanup::run(config).await.into()
}
