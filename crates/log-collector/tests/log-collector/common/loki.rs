//! A local HTTP receiver that speaks Loki's push API, since no Loki server
//! can be installed here: it checks the exact payload format (streams,
//! labels, `[ns-timestamp-string, line]`), records the lines, and answers
//! with whatever status the test sets (503, 429, ...).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Default)]
struct Shared {
    status: AtomicU16,
    requests: AtomicUsize,
    max_body: AtomicUsize,
    lines: Mutex<Vec<(BTreeMap<String, String>, String)>>,
    violations: Mutex<Vec<String>>,
}

pub struct LokiReceiver {
    pub base_url: String,
    shared: Arc<Shared>,
}

impl LokiReceiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        shared.status.store(204, Ordering::SeqCst);
        shared.max_body.store(usize::MAX, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, shared }
    }

    /// Answers every push with `status` from now on (204 accepts).
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Answers 413 to bodies larger than `bytes`, as Loki does past its
    /// `grpc_server_max_recv_msg_size`.
    pub fn limit_body(&self, bytes: usize) {
        self.shared.max_body.store(bytes, Ordering::SeqCst);
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Accepted lines with their stream labels.
    pub fn lines(&self) -> Vec<(BTreeMap<String, String>, String)> {
        self.shared.lines.lock().unwrap().clone()
    }

    pub fn messages(&self) -> Vec<String> {
        self.lines().into_iter().map(|(_, line)| line).collect()
    }

    /// How often each message arrived.
    pub fn message_counts(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for message in self.messages() {
            *counts.entry(message).or_insert(0) += 1;
        }
        counts
    }

    /// Every way a push broke the format, if any.
    pub fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().unwrap().clone()
    }
}

async fn push(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(shared.status.load(Ordering::SeqCst)).unwrap();
    if !status.is_success() {
        return status;
    }
    if body.len() > shared.max_body.load(Ordering::SeqCst) {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    match check(&headers, &body) {
        Ok(lines) => {
            shared.lines.lock().unwrap().extend(lines);
            StatusCode::NO_CONTENT
        }
        Err(violation) => {
            shared.violations.lock().unwrap().push(violation);
            StatusCode::BAD_REQUEST
        }
    }
}

type Lines = Vec<(BTreeMap<String, String>, String)>;

/// The push format, strictly: `{"streams":[{"stream":{labels},"values":[["<ns>","<line>"]]}]}`.
fn check(headers: &HeaderMap, body: &[u8]) -> Result<Lines, String> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return Err(format!("content-type {content_type:?}"));
    }
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let top = document.as_object().ok_or("body is not an object")?;
    if top.len() != 1 {
        return Err(format!(
            "unexpected top-level keys: {:?}",
            top.keys().collect::<Vec<_>>()
        ));
    }
    let streams = top
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or("no streams array")?;
    if streams.is_empty() {
        return Err("empty streams".into());
    }
    let mut lines = Vec::new();
    for stream in streams {
        let labels = stream["stream"]
            .as_object()
            .ok_or("stream without labels")?;
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    v.as_str()
                        .ok_or(format!("label {k} is not a string"))?
                        .to_owned(),
                ))
            })
            .collect::<Result<_, String>>()?;
        // Loki refuses a push with any other label name.
        let loki_name = |name: &str| {
            name.bytes().enumerate().all(|(at, byte)| {
                byte == b'_' || byte.is_ascii_alphabetic() || (at > 0 && byte.is_ascii_digit())
            }) && !name.is_empty()
        };
        if let Some(name) = labels.keys().find(|name| !loki_name(name)) {
            return Err(format!("label name {name:?} is not [a-zA-Z_][a-zA-Z0-9_]*"));
        }
        let has_pod = ["namespace", "pod", "container"]
            .iter()
            .all(|l| labels.contains_key(*l));
        if !labels.contains_key("node") || !(has_pod || labels.contains_key("filename")) {
            return Err(format!("labels {labels:?}"));
        }
        let values = stream["values"]
            .as_array()
            .ok_or("values is not an array")?;
        if values.is_empty() {
            return Err("stream without values".into());
        }
        for value in values {
            let pair = value
                .as_array()
                .filter(|pair| pair.len() == 2)
                .ok_or("value is not a pair")?;
            let nanos = pair[0].as_str().ok_or("timestamp is not a string")?;
            if nanos.len() < 19 || !nanos.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("timestamp {nanos:?} is not Unix nanoseconds"));
            }
            let line = pair[1].as_str().ok_or("line is not a string")?;
            lines.push((labels.clone(), line.to_owned()));
        }
    }
    Ok(lines)
}
