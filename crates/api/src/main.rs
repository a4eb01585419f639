//! The `api` binary: read the configuration, start logging, serve until
//! SIGTERM. Everything else lives in the library so that tests run the very
//! same code.

use std::sync::Arc;

use clap::Parser;

/// A request allocates and frees dozens of small blocks (hyper, tower,
/// serde, sqlx); mimalloc serves them with far fewer instructions than
/// glibc's allocator (measured in docs/decisions.md, record 13).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Parse first: a wrong variable stops the program with clap's message,
    // which names the variable, before anything else happens.
    let config = api::Config::parse();
    platform::telemetry::init("info,sqlx=warn");
    let application = api::Application::build(config, Arc::new(store::clock::SystemClock)).await?;
    application.run_until(platform::shutdown::signal()).await
}
