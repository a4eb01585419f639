//! The `log-collector` binary: configuration, logging, then the agent until
//! SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = log_collector::Config::parse();
    // Logs go to stderr: stdout may be the `stdout` sink's output.
    platform::telemetry::init_to_stderr("info");
    log_collector::run(config).await
}
