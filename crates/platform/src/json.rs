//! JSON objects written field by field, with strings escaped a block of
//! bytes at a time.
//!
//! The API's record bodies carry values of up to a mebibyte, the log
//! collector writes every log line it ships as a JSON string, and
//! serde_json looks each byte of a string up in a table before copying it.
//! Almost no byte of either needs an escape, so [`push_string`] tests 32
//! bytes at once and copies the runs between escapes whole. It writes
//! exactly what serde_json writes for the same string: the tests hold it to
//! that, byte for byte.

/// Appends `text` to `out` as a JSON string, quotes included.
pub fn push_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    while let Some(at) = next_escape(bytes, copied) {
        out.extend_from_slice(&bytes[copied..at]);
        push_escape(out, bytes[at]);
        copied = at + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// A JSON object under construction: fields are appended in the order they
/// are given, and [`Object::finish`] closes it.
#[derive(Debug)]
pub struct Object {
    out: Vec<u8>,
}

impl Object {
    /// An empty object with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Self { out }
    }

    pub fn string(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        push_string(&mut self.out, value);
        self
    }

    pub fn integer(&mut self, name: &str, value: impl itoa::Integer) -> &mut Self {
        self.name(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    pub fn boolean(&mut self, name: &str, value: bool) -> &mut Self {
        self.name(name);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// The object's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }

    fn name(&mut self, name: &str) {
        // Past the opening brace, a field came before this one.
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        push_string(&mut self.out, name);
        self.out.push(b':');
    }
}

/// Every byte of a word set to 0x01, and to 0x80.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Bytes tested per step: four words, whose answers are combined before
/// the one branch.
const BLOCK: usize = 32;

/// The index of the first byte at or after `from` that needs an escape.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(block) = bytes.get(at..).and_then(<[u8]>::first_chunk::<BLOCK>) {
        let (words, _) = block.as_chunks::<8>();
        let found = words.iter().fold(0, |found, word| {
            found | escape_bits(u64::from_ne_bytes(*word))
        });
        if found != 0 {
            break;
        }
        at += BLOCK;
    }
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        if escape_bits(u64::from_ne_bytes(*word)) != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&byte| needs_escape(byte))
        .map(|offset| at + offset)
}

/// Whether a JSON string must escape `byte`: a control character, `"` or
/// `\`. (serde_json escapes nothing else either.)
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Non-zero when any of the eight bytes of `word` needs an escape.
///
/// `(x - 0x01..) & !x & 0x80..` is non-zero exactly when a byte of `x` is
/// zero, and `(x - 0x20..) & !x & 0x80..` exactly when a byte is below 0x20
/// (Hacker's Delight, 6-1): a borrow can set a high bit wrongly only in a
/// byte above one that answered yes, so the word's answer is exact. A byte
/// equal to `"` is a zero byte of `x ^ 0x22..`.
fn escape_bits(word: u64) -> u64 {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGHS
}

/// Appends the escape of `byte`, one [`needs_escape`] accepts, as serde_json
/// writes it: the short form where JSON has one, else `\u00XX`.
fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            let high = HEX_DIGITS[usize::from(byte >> 4)];
            let low = HEX_DIGITS[usize::from(byte & 0x0f)];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        push_string(&mut out, text);
        out
    }

    /// Strings dense in the bytes the word test decides on: those around
    /// 0x20, `"` and `\`, 0x7f, and multi-byte characters, at every
    /// position of a word.
    fn edgy_text() -> impl Strategy<Value = String> {
        let edges = prop::sample::select(vec![
            '\0', '\u{1}', '\u{8}', '\t', '\n', '\u{c}', '\r', '\u{1f}', ' ', '!', '"', '#', '[',
            '\\', ']', 'a', '\u{7f}', '\u{80}', 'é', '\u{2028}', '日', '🦀',
        ]);
        prop::collection::vec(prop_oneof![edges, any::<char>()], 0..40)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them(text in edgy_text()) {
            prop_assert_eq!(written(&text), serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in any::<String>()) {
            prop_assert_eq!(written(&text), serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn the_word_test_agrees_with_the_byte_test(word in any::<[u8; 8]>()) {
            let expected = word.iter().any(|&byte| needs_escape(byte));
            prop_assert_eq!(escape_bits(u64::from_ne_bytes(word)) != 0, expected);
        }
    }

    #[test]
    fn every_byte_that_needs_an_escape_is_found_at_every_position() {
        for byte in (0u8..0x80).filter(|&byte| needs_escape(byte)) {
            for at in 0..20 {
                let mut text = "x".repeat(20);
                text.replace_range(at..=at, char::from(byte).encode_utf8(&mut [0; 4]));
                assert_eq!(
                    next_escape(text.as_bytes(), 0),
                    Some(at),
                    "{byte:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn an_object_writes_its_fields_in_order() {
        let mut object = Object::with_capacity(0);
        object
            .string("key", "a\"b")
            .integer("version", -3_i64)
            .boolean("cached", false);
        assert_eq!(
            object.finish(),
            br#"{"key":"a\"b","version":-3,"cached":false}"#
        );
        assert_eq!(Object::with_capacity(0).finish(), b"{}");
    }
}
