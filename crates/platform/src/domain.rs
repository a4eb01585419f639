//! Domain types, parsed once at the edge so that the rest of the code can
//! trust them: a [`Key`] is always valid, a [`Ttl`] always in range.

use std::fmt;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Longest record lifetime: ten years. Anything longer is almost certainly a
/// unit mistake (milliseconds sent as seconds) and would overflow timestamps.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A record key: 1 to 256 bytes of printable UTF-8 without whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key must not be empty")]
    Empty,
    #[error("key is {len} bytes long; the limit is {MAX_KEY_BYTES}")]
    TooLong { len: usize },
    #[error(
        "key contains {found:?} at byte {at}; whitespace and control characters are not allowed"
    )]
    Forbidden { found: char, at: usize },
}

impl Key {
    pub fn parse(raw: impl Into<String>) -> Result<Self, KeyError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong { len: raw.len() });
        }
        // Printable ASCII is by far the common case; only look closer at the
        // rest.
        if !raw.bytes().all(|byte| byte.is_ascii_graphic())
            && let Some((at, found)) = raw
                .char_indices()
                .find(|(_, c)| c.is_whitespace() || c.is_control() || is_invisible_format(*c))
        {
            return Err(KeyError::Forbidden { found, at });
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that render as nothing (zero-width space and friends); a key
/// made of them cannot be read back by a person.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record lifetime in whole seconds, 1 to [`MAX_TTL_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ttl must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}, got {0}")]
pub struct TtlError(pub i128);

impl Ttl {
    pub fn from_seconds(seconds: i128) -> Result<Self, TtlError> {
        u64::try_from(seconds)
            .ok()
            .filter(|s| (1..=MAX_TTL_SECONDS).contains(s))
            .map(Self)
            .ok_or(TtlError(seconds))
    }

    pub fn seconds(self) -> u64 {
        self.0
    }

    pub fn millis(self) -> i64 {
        // MAX_TTL_SECONDS * 1000 fits in an i64 by a wide margin.
        i64::try_from(self.0 * 1000).unwrap_or(i64::MAX)
    }
}

/// A stored record, as the store and the cache both know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    /// Grows with every write of the key, across deletes too; the cache uses
    /// it to refuse an older value over a newer one.
    pub version: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

impl Record {
    pub fn is_live_at(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|expires| expires > now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_printable_text() {
        for raw in ["user:123", "a", "ключ", "日本語", "x".repeat(256).as_str()] {
            assert!(Key::parse(raw).is_ok(), "{raw:?} should be a valid key");
        }
    }

    #[test]
    fn keys_reject_bad_input_with_a_reason() {
        assert_eq!(Key::parse(""), Err(KeyError::Empty));
        assert_eq!(
            Key::parse("x".repeat(257)),
            Err(KeyError::TooLong { len: 257 })
        );
        // 86 three-byte characters = 258 bytes, although only 86 characters.
        assert_eq!(
            Key::parse("語".repeat(86)),
            Err(KeyError::TooLong { len: 258 })
        );
        for (raw, found, at) in [
            ("a b", ' ', 1),
            ("a\tb", '\t', 1),
            ("\nab", '\n', 0),
            ("ab\u{7f}", '\u{7f}', 2),
            ("a\u{a0}b", '\u{a0}', 1),
            ("a\u{200b}", '\u{200b}', 1),
        ] {
            assert_eq!(Key::parse(raw), Err(KeyError::Forbidden { found, at }));
        }
    }

    #[test]
    fn ttl_range_is_enforced() {
        assert_eq!(Ttl::from_seconds(1).map(Ttl::seconds), Ok(1));
        assert!(Ttl::from_seconds(MAX_TTL_SECONDS.into()).is_ok());
        for bad in [0, -1, i128::from(MAX_TTL_SECONDS) + 1, i128::MAX] {
            assert_eq!(Ttl::from_seconds(bad), Err(TtlError(bad)));
        }
    }

    #[test]
    fn record_liveness_follows_expiry() {
        let record = Record {
            value: "v".into(),
            version: 1,
            updated_at_ms: 0,
            expires_at_ms: Some(100),
        };
        assert!(record.is_live_at(99));
        assert!(!record.is_live_at(100));
        assert!(
            Record {
                expires_at_ms: None,
                ..record
            }
            .is_live_at(i64::MAX)
        );
    }
}
