//! The Lua scripts, and the one plain command, that make cache writes
//! version-checked.
//!
//! Every write into a cache key goes through one of these, atomically inside
//! Redis, so that no interleaving of readers and writers can put an older
//! version over a newer one: a slow reader that loaded version 5 from the
//! store cannot overwrite the version 6 a writer has just cached, nor the
//! tombstone a delete left behind.
//!
//! The version leads every entry (see [`super::entry`]), so the scripts read
//! only the entry's first 20 bytes, enough for any `i64`, rather than copy a
//! value of up to a mebibyte into Lua. A missing key reads as an empty
//! string, which holds no version.

use std::sync::LazyLock;

use redis::{Cmd, Script};

/// Sets the entry unless the key holds a newer version.
/// `KEYS[1]` cache key; `ARGV[1]` version; `ARGV[2]` entry; `ARGV[3]` TTL in ms.
/// Returns 1 when written, 0 when refused.
pub static SET_UNLESS_NEWER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local head = redis.call('GETRANGE', KEYS[1], 0, 19)
local held = tonumber(string.match(head, '^%d+'))
if held and held > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
",
    )
});

/// [`SET_UNLESS_NEWER`] as one `EVALSHA` command, to send in a pipeline.
/// Redis answers `NOSCRIPT` when its script cache lacks the script (after a
/// restart or a `SCRIPT FLUSH`); the caller then loads the script and
/// sends the command again.
pub fn set_unless_newer(cache_key: &str, version: i64, entry: &str, ttl_ms: u64) -> Cmd {
    let mut command = redis::cmd("EVALSHA");
    command
        .arg(SET_UNLESS_NEWER.get_hash())
        .arg(1)
        .arg(cache_key)
        .arg(version)
        .arg(entry)
        .arg(ttl_ms);
    command
}

/// Sets the entry only if the key holds nothing: the fill of a reader whose
/// own GET found the key empty (docs/decisions.md, record 32). It never
/// replaces anything, so it cannot put an older version over a newer one,
/// and it costs Redis no script; a key that holds a tombstone or an older
/// entry takes [`SET_UNLESS_NEWER`] instead. Replies `OK` when written, nil
/// when refused.
pub fn set_if_empty(cache_key: String, entry: &str, ttl_ms: u64) -> Cmd {
    let mut command = redis::cmd("SET");
    command
        .arg(cache_key)
        .arg(entry)
        .arg("PX")
        .arg(ttl_ms)
        .arg("NX");
    command
}

/// Makes sure each key holds nothing older than its version: anything
/// older (or unreadable, or nothing) is replaced by a tombstone of that
/// version, which in turn refuses fills older than it.
/// KEYS the cache keys; `ARGV[1]` TTL in ms, then per key its version and its
/// tombstone. Returns how many tombstones were written.
pub static RAISE_FLOORS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local raised = 0
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[2 * i])
  local head = redis.call('GETRANGE', key, 0, 19)
  local held = tonumber(string.match(head, '^%d+'))
  if not (held and held >= version) then
    redis.call('SET', key, ARGV[2 * i + 1], 'PX', ARGV[1])
    raised = raised + 1
  end
end
return raised
",
    )
});

/// KEYS: the cache keys of one batch whose record is gone; `ARGV[1]` `1` for
/// a dry run. Returns, per key, 1 when it was (or would be) unlinked: a key
/// gone since, or a delete tombstone, is left alone.
///
/// The cleanup job's: it must recognise the tombstones [`super::entry`]
/// writes, so it lives beside them. One call per batch rather than per key:
/// Redis's fixed cost of a script call dominated the job when called per key
/// (docs/decisions.md, record 10).
pub static UNLINK_IF_STILL_STALE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local dry_run = ARGV[1] == '1'
local removed = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key).ok
  local stale = 1
  if kind == 'none' then
    stale = 0
  elseif kind == 'string' then
    -- A delete tombstone refuses stale fills for a minute; keep it.
    local head = redis.call('GETRANGE', key, 0, 31)
    if string.match(head, '^%d+ T$') then stale = 0 end
  end
  if stale == 1 and not dry_run then redis.call('UNLINK', key) end
  removed[i] = stale
end
return removed
",
    )
});
