//! One open watch of the stand-in API server: the changes after the
//! version the client resumes from, then live changes, one JSON event per
//! line, until the server drops it.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{Change, Resource, Signal};

/// One open watch: the backlog first, then live changes, until the server
/// drops it.
pub(super) struct Watch {
    pub(super) resource: Resource,
    pub(super) selector: Option<String>,
    pub(super) bookmarks: bool,
    pub(super) pending: VecDeque<Bytes>,
    /// `None` once the watch is over.
    pub(super) receiver: Option<broadcast::Receiver<Signal>>,
}

impl Watch {
    pub(super) async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some((Ok(bytes), self));
            }
            let receiver = self.receiver.as_mut()?;
            match receiver.recv().await {
                Ok(Signal::Change(change)) => {
                    if change.seen_by(self.resource, self.selector.as_deref()) {
                        self.pending.push_back(event(&change));
                    }
                }
                Ok(Signal::Bookmark(version)) if self.bookmarks => {
                    self.pending.push_back(line(&json!({
                        "type": "BOOKMARK",
                        "object": {
                            "kind": self.resource.kind(),
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": version.to_string()},
                        },
                    })));
                }
                Ok(Signal::Bookmark(_)) => {}
                // A watcher that fell this far behind would be dropped by
                // the real server too.
                Ok(Signal::Drop) | Err(_) => return None,
            }
        }
    }
}

pub(super) fn event(change: &Change) -> Bytes {
    line(&json!({"type": change.kind, "object": change.object}))
}

pub(super) fn line(value: &Value) -> Bytes {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}
