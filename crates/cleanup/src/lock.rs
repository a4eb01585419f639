//! A Redis lock so that two runs never overlap: `SET key token NX PX ttl`,
//! released only by its holder (a check-and-delete script), and expiring by
//! itself if the holder dies.
//!
//! Under Sentinel the lock lives on the primary and reaches the replicas
//! asynchronously, so a failover may or may not carry it over. A run never
//! goes on across a failover unaware: its connection to the old primary
//! breaks, so its next command fails and the run ends `failed` (exit 1).
//! Before pushing its metrics it checks the lock is still its own, and it
//! keeps trying to release the lock while the Sentinels elect the new
//! primary, so that the next run is not turned away by a lock nobody holds
//! (docs/cleanup.md, "Redis with Sentinel").

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use platform::redis::PrimaryConnection;
use redis::Script;

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// How long a release waits between tries.
const RELEASE_RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// A held lock. Release it with [`Lock::release`]; if the process dies, it
/// expires after its TTL.
#[derive(Debug)]
pub struct Lock {
    key: String,
    token: String,
}

impl Lock {
    /// `Ok(None)` when another run holds it.
    pub async fn acquire(
        connection: &mut PrimaryConnection,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Self>, redis::RedisError> {
        let token = uuid::Uuid::new_v4().to_string();
        let acquired: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(store::cache::millis(ttl))
            .query_async(connection)
            .await?;
        Ok(acquired.map(|_| Self {
            key: key.to_owned(),
            token,
        }))
    }

    /// Whether the lock in Redis is still this run's: not expired, and not
    /// lost in a failover that promoted a replica it had not reached.
    pub async fn is_held(
        &self,
        connection: &mut PrimaryConnection,
    ) -> Result<bool, redis::RedisError> {
        let holder: Option<String> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(connection)
            .await?;
        Ok(holder.as_deref() == Some(self.token.as_str()))
    }

    /// Deletes the lock if this run still holds it. Returns whether it did.
    ///
    /// While a failover is under way (no primary answers, or the Sentinels
    /// still name the one that is gone) the release is tried again for up to
    /// `patience`.
    pub async fn release(
        self,
        connection: &mut PrimaryConnection,
        patience: Duration,
    ) -> Result<bool, redis::RedisError> {
        let give_up = Instant::now() + patience;
        loop {
            let outcome: Result<i64, _> = RELEASE
                .key(&self.key)
                .arg(&self.token)
                .invoke_async(connection)
                .await;
            match outcome {
                Ok(deleted) => return Ok(deleted == 1),
                Err(error)
                    if platform::redis::may_pass_after_failover(&error)
                        && Instant::now() < give_up =>
                {
                    tracing::info!(%error, "cannot release the lock yet; trying again");
                    tokio::time::sleep(RELEASE_RETRY_INTERVAL).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}
