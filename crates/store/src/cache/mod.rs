//! The shape of the Redis cache, shared by the API (which reads and writes
//! it) and the cleanup job (which prunes it): key names, the entry format,
//! and the Lua scripts that keep writes version-checked.

pub mod entry;
mod outbox;
pub mod scripts;

use std::time::Duration;

pub use entry::{MalformedEntry, RedisEntry};
pub use outbox::{ReplayError, ReplayWindow, replay_outbox};

/// The prefix of every cache key; `cleanup` walks `cache:*`.
pub const KEY_PREFIX: &str = "cache:";

/// How long a tombstone refuses older fills. It must outlast any request
/// (a reader loads from the store and fills within one request, bounded by
/// the API's `REQUEST_TIMEOUT_SECONDS`, at most 50 s).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// `cache:{key}`.
pub fn cache_key(key: &str) -> String {
    let mut cache_key = String::with_capacity(KEY_PREFIX.len() + key.len());
    cache_key.push_str(KEY_PREFIX);
    cache_key.push_str(key);
    cache_key
}

/// Milliseconds, saturating, for Redis `PX` arguments.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
