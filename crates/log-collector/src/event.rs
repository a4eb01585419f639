//! One log line with its metadata: what every sink receives.

use std::sync::Arc;

use crate::kubernetes::Enrichment;
use crate::origin::Origin;

/// The output stream a container wrote the line to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Stdout => 0,
            Self::Stderr => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub origin: Arc<Origin>,
    /// RFC 3339: the runtime's time for container lines, the time the line
    /// was read for plain files.
    pub timestamp: String,
    /// `None` for plain files.
    pub stream: Option<Stream>,
    pub message: String,
    /// What the Kubernetes API server knows of the line's pod, when the
    /// metadata source is on and knows it.
    pub kubernetes: Option<Arc<Enrichment>>,
}

impl Event {
    /// Appends the event as one JSON object and a newline: the format of the
    /// `file` and `stdout` sinks (field names in docs/log-collector.md,
    /// "Sinks").
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":");
        write_json_string(out, &self.timestamp);
        out.extend_from_slice(b",\"stream\":");
        match self.stream {
            Some(stream) => write_json_string(out, stream.as_str()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"message\":");
        write_json_string(out, &self.message);
        if let Some(kubernetes) = &self.kubernetes {
            out.extend_from_slice(kubernetes.json_fields().as_bytes());
        }
        out.extend_from_slice(self.origin.json_tail().as_bytes());
        out.push(b'\n');
    }

    /// Bytes the event holds, for the memory bound of batches.
    pub fn size(&self) -> usize {
        self.message.len() + self.timestamp.len() + 64
    }
}

/// JSON string escaping without going through a serializer: the file sink
/// writes one per line, so the common case (nothing to escape) is found
/// eight bytes at a time and copied at once.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(found) = first_to_escape(&bytes[start..]) {
        let at = start + found;
        out.extend_from_slice(&bytes[start..at]);
        match bytes[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            byte => out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Index of the first byte JSON needs escaped: `"`, `\\` or a control byte.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Bit 7 of each byte of the result is set where a byte of `word` is
    // zero (exact for the first such byte, which is all that is needed).
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0_u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        let hits = control
            | zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')));
        if hits != 0
            && let Some(at) = chunk.iter().position(|&byte| needs_escape(byte))
        {
            return Some(offset + at);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| needs_escape(byte))
        .map(|at| offset + at)
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn json_strings_round_trip_through_serde() {
        let long = format!(
            "{}\"{}\\{}\u{7}é",
            "a".repeat(17),
            "b".repeat(8),
            "c".repeat(9)
        );
        for text in [
            long.as_str(),
            "\u{7f}\u{80}ÿ",
            "12345678\n",
            "1234567\n",
            "",
            "plain",
            "quote \" and \\ back",
            "tab\tnl\ncr\r",
            "\u{1}\u{1f}",
            "日本 ✓",
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, text);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, text);
        }
    }

    #[test]
    fn json_lines_carry_every_field() {
        let event = Event {
            origin: Arc::new(Origin::new("n1", Path::new("/logs/pods/ns_p_u/c/0.log"))),
            timestamp: "2026-11-26T07:00:00.123456789Z".into(),
            stream: Some(Stream::Stderr),
            message: "boom \"x\"".into(),
            kubernetes: None,
        };
        let mut out = Vec::new();
        event.write_json_line(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["timestamp"], "2026-11-26T07:00:00.123456789Z");
        assert_eq!(line["stream"], "stderr");
        assert_eq!(line["message"], "boom \"x\"");
        assert_eq!(line["namespace"], "ns");
        assert_eq!(line["pod"], "p");
        assert_eq!(line["pod_uid"], "u");
        assert_eq!(line["container"], "c");
        assert_eq!(line["node"], "n1");
        assert_eq!(line["file"], "/logs/pods/ns_p_u/c/0.log");
    }
}
