//! How a record is written into a Redis string, and read back.
//!
//! `"<version> L <updated_at_ms> <expires_at_ms or -> <value>"` for a value,
//! `"<version> T"` for a tombstone (a marker that refuses older values; see
//! [`super::scripts`]). The version comes first so that the Lua scripts can compare
//! it without decoding the rest.

use crate::domain::Record;

/// What Redis holds under a cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisEntry {
    Live(Record),
    Tombstone { version: i64 },
}

impl RedisEntry {
    /// The version the entry holds Redis at: a value's, or a tombstone's.
    pub fn version(&self) -> i64 {
        match self {
            Self::Live(record) => record.version,
            Self::Tombstone { version } => *version,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cache entry")]
pub struct MalformedEntry;

pub fn encode_live(record: &Record) -> String {
    // Every fill and write encodes an entry: `itoa` formats the numbers
    // without allocating, faster than `to_string()` or `write!`
    // (benches/hot_paths.rs; figures in docs/decisions.md, record 19).
    let mut digits = itoa::Buffer::new();
    let mut entry = String::with_capacity(record.value.len() + 48);
    entry.push_str(digits.format(record.version));
    entry.push_str(" L ");
    entry.push_str(digits.format(record.updated_at_ms));
    entry.push(' ');
    match record.expires_at_ms {
        Some(expires) => entry.push_str(digits.format(expires)),
        None => entry.push('-'),
    }
    entry.push(' ');
    entry.push_str(&record.value);
    entry
}

pub fn encode_tombstone(version: i64) -> String {
    format!("{version} T")
}

pub fn decode(raw: &str) -> Result<RedisEntry, MalformedEntry> {
    let (version, rest) = raw.split_once(' ').ok_or(MalformedEntry)?;
    let version = version.parse().map_err(|_| MalformedEntry)?;
    if rest == "T" {
        return Ok(RedisEntry::Tombstone { version });
    }
    let rest = rest.strip_prefix("L ").ok_or(MalformedEntry)?;
    let mut fields = rest.splitn(3, ' ');
    let updated_at_ms = fields
        .next()
        .and_then(|field| field.parse().ok())
        .ok_or(MalformedEntry)?;
    let expires_at_ms = match fields.next().ok_or(MalformedEntry)? {
        "-" => None,
        field => Some(field.parse().map_err(|_| MalformedEntry)?),
    };
    let value = fields.next().ok_or(MalformedEntry)?.to_owned();
    Ok(RedisEntry::Live(Record {
        value,
        version,
        updated_at_ms,
        expires_at_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str, expires_at_ms: Option<i64>) -> Record {
        Record {
            value: value.into(),
            version: 1_732_000_000_000_123,
            updated_at_ms: 1_732_000_000_000,
            expires_at_ms,
        }
    }

    #[test]
    fn live_entries_round_trip_whatever_the_value() {
        for value in ["", "John Doe", "a b  c ", "multi\nline", "- L T 12", "日本"] {
            for expires in [None, Some(1_732_000_360_000)] {
                let record = record(value, expires);
                assert_eq!(decode(&encode_live(&record)), Ok(RedisEntry::Live(record)));
            }
        }
    }

    #[test]
    fn tombstones_round_trip() {
        assert_eq!(
            decode(&encode_tombstone(42)),
            Ok(RedisEntry::Tombstone { version: 42 })
        );
    }

    #[test]
    fn foreign_strings_are_malformed_not_panics() {
        for raw in [
            "",
            "hello",
            "12",
            "12 X",
            "x L 1 - v",
            "1 L x - v",
            "1 L 1 y v",
            "1 L 1",
        ] {
            assert_eq!(decode(raw), Err(MalformedEntry), "{raw:?}");
        }
    }
}
