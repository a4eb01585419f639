//! The Lua scripts that make cache writes version-checked.
//!
//! Every write into a cache key goes through one of these, atomically inside
//! Redis, so that no interleaving of readers and writers can put an older
//! version over a newer one: a slow reader that loaded version 5 from the
//! store cannot overwrite the version 6 a writer has just cached, nor the
//! tombstone a delete left behind.

use std::sync::LazyLock;

use redis::Script;

/// Sets the entry unless the key holds a newer version.
/// KEYS[1] cache key; ARGV[1] version; ARGV[2] entry; ARGV[3] TTL in ms.
/// Returns 1 when written, 0 when refused.
pub static SET_UNLESS_NEWER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then
  local held = tonumber(string.match(current, '^%d+'))
  if held and held > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
",
    )
});

/// Makes sure the key holds nothing older than a version: anything older (or
/// unreadable, or nothing) is replaced by a tombstone of that version, which
/// in turn refuses fills older than it.
/// KEYS[1] cache key; ARGV[1] version; ARGV[2] tombstone; ARGV[3] TTL in ms.
/// Returns 1 when a tombstone was written, 0 when the key was up to date.
pub static RAISE_FLOOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then
  local held = tonumber(string.match(current, '^%d+'))
  if held and held >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
",
    )
});
