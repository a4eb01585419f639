//! The `redis` sink: each line is one `XADD <stream> MAXLEN ~ <n> *` entry
//! with the fields of the JSON lines (absent metadata is left out). A batch
//! is one `MULTI`/`EXEC` pipeline, so a retry after a lost reply repeats a
//! whole batch or nothing of it.

use platform::config::RedisSettings;
use redis::aio::ConnectionManager;

use super::SendError;
use crate::event::Event;

pub struct RedisStream {
    connection: ConnectionManager,
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
    pub fn new(settings: &RedisSettings, stream: String, maxlen: u64) -> anyhow::Result<Self> {
        Ok(Self {
            connection: platform::redis::connection_manager(settings)?,
            stream,
            maxlen,
        })
    }

    pub async fn send(&mut self, events: &[Event]) -> Result<(), SendError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for event in events {
            let source = &event.source;
            let pod = source.pod.as_ref();
            let mut fields: Vec<(&str, &str)> = vec![
                ("timestamp", &event.timestamp),
                ("message", &event.message),
                ("node", &source.node),
                ("file", source.path.to_str().unwrap_or("?")),
            ];
            if let Some(stream) = event.stream {
                fields.push(("stream", stream.as_str()));
            }
            if let Some(pod) = pod {
                fields.extend([
                    ("namespace", pod.namespace.as_str()),
                    ("pod", pod.pod.as_str()),
                    ("pod_uid", pod.pod_uid.as_str()),
                    ("container", pod.container.as_str()),
                ]);
            }
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg("*")
                .arg(&fields)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection)
            .await
            .map_err(|error| SendError::Retry(format!("redis: {error}")))
    }
}
