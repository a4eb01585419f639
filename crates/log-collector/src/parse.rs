//! From raw lines of one file to [`Event`]s: CRI and docker json-file lines
//! of container logs (partial lines joined per stream), plain lines of other
//! files.
//!
//! A container line that is neither CRI nor docker json is kept as plain
//! text and counted (`log_collector_malformed_lines_total`): losing it would
//! hide exactly the lines someone needs. Invalid UTF-8 is replaced (U+FFFD)
//! and counted, never dropped. Partial lines are joined as bytes and decoded
//! once: runtimes split long lines on byte boundaries, so a part may end in
//! the middle of a character that the next part completes.

use std::borrow::Cow;
use std::sync::Arc;

use crate::event::{Event, Stream};
use crate::kubernetes::Enrichment;
use crate::metrics::Metrics;
use crate::origin::{Format, Origin};

/// One line as the reader cut it from the file (without its newline).
#[derive(Debug, Clone, Copy)]
pub struct RawLine<'a> {
    pub bytes: &'a [u8],
    /// File offset of the line's first byte.
    pub start: u64,
    /// The reader cut the line at the length limit.
    pub truncated: bool,
}

/// The first parts of a partial line, waiting for the last one.
#[derive(Debug)]
struct Partial {
    /// Offset of the first part: a restart must read from here.
    start: u64,
    timestamp: String,
    /// The parts so far, as bytes: decoded once the line is whole.
    message: Vec<u8>,
    truncated: bool,
}

/// Parses the lines of one file, keeping what partial lines need.
#[derive(Debug)]
pub struct LineParser {
    origin: Arc<Origin>,
    max_line_bytes: usize,
    /// Per stream (stdout, stderr): runtimes interleave the two.
    partial: [Option<Partial>; 2],
    /// What the lines completed from now on carry from the Kubernetes API
    /// server (set by the reader before each read).
    pub kubernetes: Option<Arc<Enrichment>>,
}

impl LineParser {
    pub fn new(origin: Arc<Origin>, max_line_bytes: usize) -> Self {
        Self {
            origin,
            max_line_bytes,
            partial: [None, None],
            kubernetes: None,
        }
    }

    /// The event `line` completes, if any. `read_time` is the timestamp
    /// given to lines that carry none.
    pub fn parse(
        &mut self,
        line: RawLine<'_>,
        read_time: &str,
        metrics: &Metrics,
    ) -> Option<Event> {
        let parsed = match self.origin.format {
            Format::Plain => None,
            Format::Container => {
                let parsed = parse_cri(line.bytes).or_else(|| parse_docker(line.bytes));
                if parsed.is_none() {
                    metrics.malformed_lines.inc();
                }
                parsed
            }
        };
        let Some(parsed) = parsed else {
            let message = text(line.bytes, metrics);
            return Some(self.complete(read_time, None, &message, line.truncated, metrics));
        };
        let index = parsed.stream.index();
        if parsed.complete && self.partial[index].is_none() {
            // The common case: a whole line, no joining.
            let message = text(&parsed.message, metrics);
            return Some(self.complete(
                &parsed.timestamp,
                Some(parsed.stream),
                &message,
                line.truncated,
                metrics,
            ));
        }
        let partial = self.partial[index].get_or_insert_with(|| Partial {
            start: line.start,
            timestamp: parsed.timestamp.into_owned(),
            message: Vec::new(),
            truncated: false,
        });
        partial.truncated |= line.truncated;
        append_bounded(partial, &parsed.message, self.max_line_bytes);
        if !parsed.complete {
            return None;
        }
        let partial = self.partial[index].take()?;
        Some(self.complete_partial(parsed.stream, partial, metrics))
    }

    /// The offset a restart may resume from once every line before `end`
    /// has been shipped: not past the first part of a line still waiting for
    /// its end.
    pub fn resume_offset(&self, end: u64) -> u64 {
        self.partial
            .iter()
            .flatten()
            .map(|partial| partial.start)
            .fold(end, u64::min)
    }

    /// Bytes held by lines waiting for their last part.
    pub fn held_bytes(&self) -> usize {
        self.partial
            .iter()
            .flatten()
            .map(|partial| partial.message.len())
            .sum()
    }

    /// The file is finished: lines still waiting for their last part are
    /// shipped as they are.
    pub fn finish(&mut self, metrics: &Metrics) -> Vec<Event> {
        let mut events = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(partial) = self.partial[stream.index()].take() {
                events.push(self.complete_partial(stream, partial, metrics));
            }
        }
        events
    }

    fn complete_partial(&self, stream: Stream, partial: Partial, metrics: &Metrics) -> Event {
        let message = text(&partial.message, metrics);
        self.complete(
            &partial.timestamp,
            Some(stream),
            &message,
            partial.truncated,
            metrics,
        )
    }

    fn complete(
        &self,
        timestamp: &str,
        stream: Option<Stream>,
        message: &str,
        truncated: bool,
        metrics: &Metrics,
    ) -> Event {
        if truncated {
            metrics.truncated_lines.inc();
        }
        Event::new(
            Arc::clone(&self.origin),
            timestamp,
            stream,
            message,
            self.kubernetes.clone(),
        )
    }
}

/// Adds a part to a partial line, cutting at the line limit: before the
/// character the limit falls in, so that a cut line is still valid text.
fn append_bounded(partial: &mut Partial, part: &[u8], max_line_bytes: usize) {
    let room = max_line_bytes.saturating_sub(partial.message.len());
    if part.len() <= room {
        partial.message.extend_from_slice(part);
        return;
    }
    partial.message.extend_from_slice(&part[..room]);
    partial.truncated = true;
    let joined = &partial.message;
    // A UTF-8 character is at most four bytes: look back three at most.
    let tail = joined.len().saturating_sub(3);
    if let Some(lead) = (tail..joined.len())
        .rev()
        .find(|&at| !is_continuation(joined[at]))
    {
        let width = utf8_width(joined[lead]);
        if width > 1 && lead + width > joined.len() {
            partial.message.truncate(lead);
        }
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// Length of the UTF-8 character `lead` starts (1 for anything else).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// A container line, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    timestamp: Cow<'a, str>,
    stream: Stream,
    /// `false` for a partial (`P`, or docker json without a final newline).
    complete: bool,
    message: Cow<'a, [u8]>,
}

/// `<RFC3339Nano> <stdout|stderr> <P|F>[:more tags] <message>`.
fn parse_cri(line: &[u8]) -> Option<Parsed<'_>> {
    let mut fields = line.splitn(4, |&byte| byte == b' ');
    let timestamp = fields.next()?;
    let stream = stream(fields.next()?)?;
    let tags = fields.next()?;
    let message = fields.next().unwrap_or_default();
    if !looks_like_timestamp(timestamp) {
        return None;
    }
    let complete = match tags.split(|&byte| byte == b':').next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Parsed {
        timestamp: Cow::Borrowed(std::str::from_utf8(timestamp).ok()?),
        stream,
        complete,
        message: Cow::Borrowed(message),
    })
}

/// `{"log":"...\n","stream":"stdout","time":"..."}`.
fn parse_docker(line: &[u8]) -> Option<Parsed<'_>> {
    #[derive(serde::Deserialize)]
    struct DockerLine<'a> {
        #[serde(borrow)]
        log: Cow<'a, str>,
        #[serde(borrow)]
        stream: Cow<'a, str>,
        #[serde(borrow)]
        time: Cow<'a, str>,
    }
    if line.first() != Some(&b'{') {
        return None;
    }
    let docker: DockerLine<'_> = serde_json::from_slice(line).ok()?;
    if !looks_like_timestamp(docker.time.as_bytes()) {
        return None;
    }
    let complete = docker.log.ends_with('\n');
    let message = match docker.log {
        Cow::Borrowed(log) => Cow::Borrowed(log.strip_suffix('\n').unwrap_or(log).as_bytes()),
        Cow::Owned(mut log) => {
            if complete {
                log.pop();
            }
            Cow::Owned(log.into_bytes())
        }
    };
    Some(Parsed {
        timestamp: docker.time,
        stream: stream(docker.stream.as_bytes())?,
        complete,
        message,
    })
}

fn stream(name: &[u8]) -> Option<Stream> {
    match name {
        b"stdout" => Some(Stream::Stdout),
        b"stderr" => Some(Stream::Stderr),
        _ => None,
    }
}

/// `2026-11-26T07:00:00...`: enough to tell a runtime's line from text; the
/// sinks that need the instant (Loki) parse it fully.
fn looks_like_timestamp(field: &[u8]) -> bool {
    field.len() >= 20
        && field[..4].iter().all(u8::is_ascii_digit)
        && field[4] == b'-'
        && field[10] == b'T'
        && field.is_ascii()
}

/// The bytes as text; invalid UTF-8 is replaced and counted.
fn text<'a>(bytes: &'a [u8], metrics: &Metrics) -> Cow<'a, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            metrics.invalid_utf8_lines.inc();
            String::from_utf8_lossy(bytes)
        }
    }
}

#[cfg(test)]
mod tests;
