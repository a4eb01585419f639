//! Cross-replica invalidation of L1, through Redis client-side caching in
//! broadcast mode: `CLIENT TRACKING ON BCAST PREFIX cache:` on a dedicated
//! RESP3 connection makes Redis push the name of every `cache:` key that
//! changes, whoever changed it: another replica's write or delete, the
//! cleanup job's UNLINK, an expiry, an eviction.
//!
//! While that connection is down, invalidations can be missed, so the L1
//! is cleared and stops taking entries; once tracking is re-armed it is
//! cleared again (so loads that started before are not inserted) and
//! resumes. Lost messages aside, staleness is bounded by the L1 TTL.

use std::sync::Arc;
use std::time::Duration;

use platform::config::RedisSettings;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use store::cache::KEY_PREFIX;
use tokio::sync::mpsc;

use super::l1::LocalCache;

/// How often the connection is checked (a dead peer sends no disconnect),
/// and how long to wait before reconnecting.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The `CLIENT SETNAME` prefix of tracking connections, so that operators
/// (and tests) can find them in `CLIENT LIST`.
pub const TRACKING_CONNECTION_NAME_PREFIX: &str = "api-l1-invalidation:";

/// Keeps the L1 coherent until the task is aborted.
pub async fn run(settings: RedisSettings, pod: String, l1: Arc<LocalCache>) {
    let mut reported = false;
    loop {
        match listen(&settings, &pod, &l1).await {
            Ok(()) => tracing::warn!("L1 invalidation connection lost; L1 paused"),
            Err(error) if !reported => {
                tracing::warn!(%error, "cannot arm L1 invalidation; L1 paused, retrying");
            }
            Err(error) => tracing::debug!(%error, "cannot arm L1 invalidation"),
        }
        reported = true;
        l1.set_armed(false);
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

/// Arms tracking and applies invalidations until the connection fails.
async fn listen(
    settings: &RedisSettings,
    pod: &str,
    l1: &LocalCache,
) -> Result<(), redis::RedisError> {
    let (pushes, mut received) = mpsc::unbounded_channel::<PushInfo>();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.timeout))
        .set_response_timeout(Some(settings.timeout))
        .set_push_sender(pushes);
    let mut connection = platform::redis::primary_client(settings, ProtocolVersion::RESP3)
        .await?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(format!("{TRACKING_CONNECTION_NAME_PREFIX}{pod}"))
        .exec_async(&mut connection)
        .await?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(KEY_PREFIX)
        .exec_async(&mut connection)
        .await?;
    l1.set_armed(true);
    tracing::info!("L1 invalidation armed");

    let mut check = tokio::time::interval(CHECK_INTERVAL);
    loop {
        tokio::select! {
            push = received.recv() => match push {
                Some(PushInfo { kind: PushKind::Invalidate, data }) => apply(l1, data).await,
                Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => return Ok(()),
                Some(_) => {}
            },
            _ = check.tick() => {
                redis::cmd("PING").exec_async(&mut connection).await?;
            }
        }
    }
}

/// An invalidation carries the changed keys, or nothing for a flush.
async fn apply(l1: &LocalCache, data: Vec<Value>) {
    for value in data {
        match value {
            Value::Array(keys) => {
                for key in keys {
                    if let Value::BulkString(bytes) = key
                        && let Some(key) = std::str::from_utf8(&bytes)
                            .ok()
                            .and_then(|key| key.strip_prefix(KEY_PREFIX))
                    {
                        l1.invalidate(key).await;
                    }
                }
            }
            // FLUSHALL / FLUSHDB
            Value::Nil => l1.clear(),
            _ => {}
        }
    }
}
