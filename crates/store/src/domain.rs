//! Domain types, parsed once at the edge so that the rest of the code can
//! trust them: a [`Key`] is always valid, a [`Ttl`] always in range.

use std::fmt;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Longest record lifetime: ten years. Anything longer is almost certainly a
/// unit mistake (milliseconds sent as seconds) and would overflow timestamps.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A record key: 1 to 256 bytes of printable UTF-8 without whitespace,
/// control or format characters, and not `.` or `..`: every key can be
/// written into a URL path, percent-encoded, and read back by any client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key must not be empty")]
    Empty,
    #[error("key is {len} bytes long; the limit is {MAX_KEY_BYTES}")]
    TooLong { len: usize },
    #[error(
        "key contains {found:?} at byte {at}; whitespace, control and invisible format \
         characters are not allowed"
    )]
    Forbidden { found: char, at: usize },
    /// URL clients and proxies resolve `.` and `..` path segments before
    /// sending, so a record under either could never be read back.
    #[error("key must not be {0:?}: URL clients resolve it as a path segment")]
    DotSegment(&'static str),
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
        match raw.as_str() {
            "." => return Err(KeyError::DotSegment(".")),
            ".." => return Err(KeyError::DotSegment("..")),
            _ => {}
        }
        // Printable ASCII is by far the common case; only look closer at the
        // rest.
        if !raw.bytes().all(|byte| byte.is_ascii_graphic())
            && let Some((at, found)) = raw
                .char_indices()
                .find(|(_, c)| c.is_whitespace() || c.is_control() || is_format(*c))
        {
            return Err(KeyError::Forbidden { found, at });
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Format characters (Unicode category Cf: zero-width characters, the soft
/// hyphen, bidirectional overrides and isolates): they render as nothing or
/// reorder the text around them, so a key holding one looks like another
/// key, or like no key. The list is every Cf character of Unicode 16.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record value: UTF-8 text of at most a configured number of bytes,
/// without U+0000. PostgreSQL's `text` cannot hold NUL, so accepting it on
/// SQLite alone would make the same request succeed or fail by engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("value is {len} bytes long; the limit is {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("value contains U+0000 at byte {at}; NUL characters are not allowed")]
    Nul { at: usize },
}

impl Value {
    pub fn parse(raw: String, max_bytes: usize) -> Result<Self, ValueError> {
        if raw.len() > max_bytes {
            return Err(ValueError::TooLarge {
                len: raw.len(),
                limit: max_bytes,
            });
        }
        if let Some(at) = memchr::memchr(0, raw.as_bytes()) {
            return Err(ValueError::Nul { at });
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A record lifetime in whole seconds, 1 to [`MAX_TTL_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(u64);

/// A ttl outside the allowed range; holds what the client sent, as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ttl must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}, got {0}")]
pub struct TtlError(pub String);

impl Ttl {
    pub fn from_seconds(seconds: i128) -> Result<Self, TtlError> {
        u64::try_from(seconds)
            .ok()
            .filter(|s| (1..=MAX_TTL_SECONDS).contains(s))
            .map(Self)
            .ok_or_else(|| TtlError(seconds.to_string()))
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
            ("a\u{202e}b", '\u{202e}', 1),
            ("\u{2066}ab", '\u{2066}', 0),
            ("a\u{ad}", '\u{ad}', 1),
            ("a\u{e0041}", '\u{e0041}', 1),
        ] {
            assert_eq!(Key::parse(raw), Err(KeyError::Forbidden { found, at }));
        }
    }

    #[test]
    fn dot_segments_are_not_keys_but_dotted_keys_are() {
        assert_eq!(Key::parse("."), Err(KeyError::DotSegment(".")));
        assert_eq!(Key::parse(".."), Err(KeyError::DotSegment("..")));
        for raw in ["...", ".a", "a.", "./", "../x"] {
            assert!(Key::parse(raw).is_ok(), "{raw:?}");
        }
    }

    #[test]
    fn values_refuse_nul_and_excess_with_the_position_or_size() {
        assert_eq!(
            Value::parse("ab".into(), 2).map(Value::into_string),
            Ok("ab".into())
        );
        assert_eq!(
            Value::parse("abc".into(), 2),
            Err(ValueError::TooLarge { len: 3, limit: 2 })
        );
        assert_eq!(
            Value::parse("a\0b".into(), 10),
            Err(ValueError::Nul { at: 1 })
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_as_a_key_or_says_why(raw in "\\PC{0,8}|.{0,300}") {
            match Key::parse(raw.as_str()) {
                Ok(key) => {
                    proptest::prop_assert_eq!(key.as_str(), raw.as_str());
                    proptest::prop_assert!(raw.len() <= MAX_KEY_BYTES);
                    proptest::prop_assert!(!raw.chars().any(|c| c.is_whitespace()
                        || c.is_control() || is_format(c)));
                }
                Err(error) => proptest::prop_assert!(!error.to_string().is_empty()),
            }
        }

        #[test]
        fn any_value_is_kept_whole_or_refused(raw in ".{0,64}", limit in 0_usize..80) {
            match Value::parse(raw.clone(), limit) {
                Ok(value) => proptest::prop_assert_eq!(value.as_str(), raw.as_str()),
                Err(ValueError::TooLarge { len, .. }) => {
                    proptest::prop_assert!(len > limit);
                }
                Err(ValueError::Nul { at }) => {
                    proptest::prop_assert_eq!(raw.as_bytes()[at], 0);
                }
            }
        }

        #[test]
        fn any_integer_is_a_ttl_exactly_when_in_range(seconds in proptest::num::i128::ANY) {
            let in_range = (1..=i128::from(MAX_TTL_SECONDS)).contains(&seconds);
            let parsed = Ttl::from_seconds(seconds);
            proptest::prop_assert_eq!(parsed.is_ok(), in_range);
            if let Ok(ttl) = parsed {
                proptest::prop_assert_eq!(i128::from(ttl.seconds()), seconds);
            }
        }
    }

    #[test]
    fn ttl_range_is_enforced() {
        assert_eq!(Ttl::from_seconds(1).map(Ttl::seconds), Ok(1));
        assert!(Ttl::from_seconds(MAX_TTL_SECONDS.into()).is_ok());
        for bad in [0, -1, i128::from(MAX_TTL_SECONDS) + 1, i128::MAX] {
            assert_eq!(Ttl::from_seconds(bad), Err(TtlError(bad.to_string())));
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
