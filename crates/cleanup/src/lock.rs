//! A Redis lock so that two runs never overlap: `SET key token NX PX ttl`,
//! released only by its holder (a check-and-delete script), and expiring by
//! itself if the holder dies.

use std::sync::LazyLock;
use std::time::Duration;

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

    /// Deletes the lock if this run still holds it. Returns whether it did.
    pub async fn release(
        self,
        connection: &mut PrimaryConnection,
    ) -> Result<bool, redis::RedisError> {
        let deleted: i64 = RELEASE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(connection)
            .await?;
        Ok(deleted == 1)
    }
}
