//! One log line with its metadata: what every sink receives.

use std::sync::Arc;

use platform::json::push_string;

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
    /// The timestamp and then the message, in one allocation: an event is
    /// made for every line read and freed once it is shipped, so each
    /// allocation counts (docs/benchmarks.md, "Reading the collector
    /// numbers").
    text: String,
    /// Where the message starts in `text`.
    message_at: usize,
    /// `None` for plain files.
    pub stream: Option<Stream>,
    /// What the Kubernetes API server knows of the line's pod, when the
    /// metadata source is on and knows it.
    pub kubernetes: Option<Arc<Enrichment>>,
}

impl Event {
    /// The event of one line: `message` as `origin` wrote it at `timestamp`.
    pub fn new(
        origin: Arc<Origin>,
        timestamp: &str,
        stream: Option<Stream>,
        message: &str,
        kubernetes: Option<Arc<Enrichment>>,
    ) -> Self {
        let mut text = String::with_capacity(timestamp.len() + message.len());
        text.push_str(timestamp);
        text.push_str(message);
        Self {
            origin,
            text,
            message_at: timestamp.len(),
            stream,
            kubernetes,
        }
    }

    /// RFC 3339: the runtime's time for container lines, the time the line
    /// was read for plain files.
    pub fn timestamp(&self) -> &str {
        &self.text[..self.message_at]
    }

    pub fn message(&self) -> &str {
        &self.text[self.message_at..]
    }

    /// Appends the event as one JSON object and a newline: the format of the
    /// `file` and `stdout` sinks (field names in docs/log-collector.md,
    /// "Sinks").
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":");
        push_string(out, self.timestamp());
        out.extend_from_slice(b",\"stream\":");
        match self.stream {
            Some(stream) => push_string(out, stream.as_str()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"message\":");
        push_string(out, self.message());
        if let Some(kubernetes) = &self.kubernetes {
            out.extend_from_slice(kubernetes.json_fields().as_bytes());
        }
        out.extend_from_slice(self.origin.json_tail().as_bytes());
        out.push(b'\n');
    }

    /// Bytes the event holds, for the memory bound of batches.
    pub fn size(&self) -> usize {
        self.text.len() + 64
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn json_lines_carry_every_field() {
        let event = Event::new(
            Arc::new(Origin::new("n1", Path::new("/logs/pods/ns_p_u/c/0.log"))),
            "2026-11-26T07:00:00.123456789Z",
            Some(Stream::Stderr),
            "boom \"x\"",
            None,
        );
        assert_eq!(event.timestamp(), "2026-11-26T07:00:00.123456789Z");
        assert_eq!(event.message(), "boom \"x\"");
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
