//! The `redis` sink: each line is one `XADD <stream> MAXLEN ~ <n> *` entry
//! with the fields of the JSON lines (absent metadata is left out).
//!
//! A batch is one script run, which Redis applies whole or not at all, and
//! which first sets a delivery key unique to the batch (`SET NX`, kept for
//! [`DELIVERY_KEY_SECONDS`]). A batch Redis applied but answered too late
//! (a slow disk, a paused server) is sent again by the shipper; the script
//! then finds its delivery key and adds nothing, so a retry never writes a
//! line twice. A restart of the agent is another matter: lines after the
//! checkpoint are read and sent again as new batches (at least once).

use std::time::Duration;

use platform::config::RedisSettings;
use platform::redis::PrimaryConnection;

use super::{DeliveryId, SendError};
use crate::event::Event;

/// How long a batch's delivery key outlives it: longer than any retry of
/// the batch can come after the attempt Redis applied (the shipper's
/// backoff is at most `COLLECTOR_RETRY_MAX_MS`, 10 minutes at most).
const DELIVERY_KEY_SECONDS: u64 = 3600;

/// KEYS: the stream, the batch's delivery key. ARGV: MAXLEN, the delivery
/// key's lifetime, then per entry its field count and fields.
const APPEND_BATCH: &str = r"
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
    return 0
end
local at = 3
while at <= #ARGV do
    local fields = tonumber(ARGV[at])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, at + 1, at + fields))
    at = at + 1 + fields
end
return 1
";

pub struct RedisStream {
    connection: PrimaryConnection,
    script: redis::Script,
    stream: String,
    maxlen: u64,
}

impl std::fmt::Debug for RedisStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStream")
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .finish_non_exhaustive()
    }
}

impl RedisStream {
    /// `batch_timeout` bounds the wait for one batch's answer: a batch of
    /// thousands of entries takes Redis longer than a single command.
    pub fn new(
        settings: &RedisSettings,
        stream: String,
        maxlen: u64,
        batch_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let settings = RedisSettings {
            timeout: batch_timeout,
            ..settings.clone()
        };
        Ok(Self {
            connection: platform::redis::primary_connection(&settings)?,
            script: redis::Script::new(APPEND_BATCH),
            stream,
            maxlen,
        })
    }

    pub async fn send(&mut self, events: &[Event], delivery: DeliveryId) -> Result<(), SendError> {
        let delivery_key = format!(
            "{}:delivered:{:016x}-{}",
            self.stream, delivery.batch, delivery.first
        );
        let mut invocation = self.script.key(&self.stream);
        invocation
            .key(delivery_key)
            .arg(self.maxlen)
            .arg(DELIVERY_KEY_SECONDS);
        for event in events {
            let origin = &event.origin;
            let mut fields: Vec<(&str, &str)> = vec![
                ("timestamp", event.timestamp()),
                ("message", event.message()),
                ("node", &origin.node),
                ("file", origin.path.to_str().unwrap_or("?")),
            ];
            if let Some(stream) = event.stream {
                fields.push(("stream", stream.as_str()));
            }
            if let Some(pod) = &origin.pod {
                fields.extend([
                    ("namespace", pod.namespace.as_str()),
                    ("pod", pod.pod.as_str()),
                    ("pod_uid", pod.pod_uid.as_str()),
                    ("container", pod.container.as_str()),
                ]);
            }
            if let Some(kubernetes) = &event.kubernetes {
                fields.extend(
                    kubernetes
                        .flat_fields()
                        .iter()
                        .map(|(name, value)| (*name, value.as_str())),
                );
            }
            invocation.arg(fields.len() * 2).arg(&fields);
        }
        invocation
            .invoke_async::<i64>(&mut self.connection)
            .await
            .map(drop)
            .map_err(|error| SendError::Retry(format!("redis: {error}")))
    }
}
