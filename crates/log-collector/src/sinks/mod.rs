//! Where batches go. Every sink answers a batch with one of three outcomes,
//! and the shipper (not the sink) decides what happens next: retry with
//! backoff, split, or drop with a count.
//!
//! - `stdout`, `file`: JSON lines ([`crate::event::Event::write_json_line`]),
//! - `loki`: the push API,
//! - `redis`: `XADD` to a stream trimmed with `MAXLEN ~`, a batch written
//!   once however often it is retried.

mod json_lines;
pub(crate) mod loki;
mod redis_stream;

use crate::config::SinkSettings;
use crate::event::Event;

pub use json_lines::JsonLines;
pub use loki::{Loki, PodLabel};
pub use redis_stream::RedisStream;

/// Which lines a send carries, the same on every retry of them: the
/// batch's random token and the index of the first line sent (a batch split
/// after a 413 goes out in ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryId {
    pub batch: u64,
    pub first: usize,
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection errors, 429, 5xx).
    #[error("{0}")]
    Retry(String),
    /// Too large for the receiver (413): smaller batches may pass.
    #[error("batch too large for the sink")]
    TooLarge,
    /// Refused for good (400): retrying the same lines cannot help.
    #[error("rejected by the sink: {0}")]
    Rejected(String),
}

#[derive(Debug)]
pub enum Sink {
    JsonLines(JsonLines),
    Loki(Loki),
    Redis(RedisStream),
}

impl Sink {
    pub fn new(settings: &SinkSettings) -> anyhow::Result<Self> {
        Ok(match settings {
            SinkSettings::Stdout => Self::JsonLines(JsonLines::stdout()),
            SinkSettings::File(path) => Self::JsonLines(JsonLines::file(path)?),
            SinkSettings::Loki {
                push_url,
                pod_labels,
            } => Self::Loki(Loki::new(push_url.clone(), pod_labels.clone())?),
            SinkSettings::Redis {
                redis,
                stream,
                maxlen,
                batch_timeout,
            } => Self::Redis(RedisStream::new(
                redis,
                stream.clone(),
                *maxlen,
                *batch_timeout,
            )?),
        })
    }

    /// Delivers `events`; `Ok` means the sink has them (acknowledged).
    pub async fn send(&mut self, events: &[Event], delivery: DeliveryId) -> Result<(), SendError> {
        match self {
            Self::JsonLines(sink) => sink.send(events).await,
            Self::Loki(sink) => sink.send(events).await,
            Self::Redis(sink) => sink.send(events, delivery).await,
        }
    }
}
