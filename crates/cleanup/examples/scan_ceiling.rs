//! The ceiling for the cleanup benchmark: a bare `SCAN ... MATCH ... COUNT`
//! loop over the same keyspace, doing nothing with the keys.
//!
//! Usage: `scan_ceiling REDIS_PORT [PATTERN] [COUNT]`; prints
//! `keys=<n> seconds=<s> keys_per_second=<r>`.

#![allow(clippy::print_stdout)]

use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().unwrap_or_else(|| "6379".into()).parse()?;
    let pattern = args.next().unwrap_or_else(|| "cache:*".into());
    let count: u64 = args.next().unwrap_or_else(|| "500".into()).parse()?;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut connection = client.get_multiplexed_async_connection().await?;

    let started = Instant::now();
    let mut cursor: u64 = 0;
    let mut keys_seen: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut connection)
            .await?;
        keys_seen += keys.len() as u64;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "keys={keys_seen} seconds={seconds:.3} keys_per_second={:.0}",
        keys_seen as f64 / seconds
    );
    Ok(())
}
