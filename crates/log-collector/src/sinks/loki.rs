//! The `loki` sink: `POST /loki/api/v1/push` with a JSON body, one Loki
//! stream per file, labelled `node`, `namespace`, `pod`, `container` (plain
//! files: `node`, `filename`), each line `["<unix ns as a string>", "<message>"]`.
//!
//! Status codes decide the outcome: 2xx acknowledged; 429, 5xx and transport
//! errors retried; 413 too large (the shipper splits the batch); 400 refused
//! (the shipper drops and counts the lines); other codes retried, since they
//! mean a misconfiguration someone will fix (401, 404).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use super::SendError;
use crate::event::{Event, write_json_string};
use crate::origin::Origin;

pub struct Loki {
    client: reqwest::Client,
    push_url: reqwest::Url,
    /// The URL as messages show it: without its credentials.
    shown_url: String,
}

impl std::fmt::Debug for Loki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loki")
            .field("push_url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

impl Loki {
    pub fn new(push_url: reqwest::Url) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        let shown_url = platform::config::redact_userinfo(push_url.as_str()).into_owned();
        Ok(Self {
            client,
            push_url,
            shown_url,
        })
    }

    pub async fn send(&mut self, events: &[Event]) -> Result<(), SendError> {
        let response = self
            .client
            .post(self.push_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(push_body(events))
            .send()
            .await
            .map_err(|error| {
                // reqwest's message names the URL, credentials and all.
                let error = error.without_url();
                SendError::Retry(format!("loki unreachable at {}: {error}", self.shown_url))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = response.text().await.unwrap_or_default();
        let detail = format!("loki answered {status}: {}", detail.trim());
        Err(match status {
            StatusCode::PAYLOAD_TOO_LARGE => SendError::TooLarge,
            StatusCode::BAD_REQUEST => SendError::Rejected(detail),
            _ => SendError::Retry(detail),
        })
    }
}

/// The push API's JSON body for `events`.
fn push_body(events: &[Event]) -> Vec<u8> {
    // One stream per origin, in order of first appearance; lines keep their
    // file order inside it.
    let mut streams: Vec<(&Arc<Origin>, Vec<&Event>)> = Vec::new();
    for event in events {
        match streams
            .iter_mut()
            .find(|(origin, _)| Arc::ptr_eq(origin, &event.origin))
        {
            Some((_, lines)) => lines.push(event),
            None => streams.push((&event.origin, vec![event])),
        }
    }
    let mut body = Vec::with_capacity(events.iter().map(Event::size).sum::<usize>() + 256);
    body.extend_from_slice(b"{\"streams\":[");
    for (index, (origin, lines)) in streams.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"stream\":");
        write_labels(&mut body, origin);
        body.extend_from_slice(b",\"values\":[");
        for (index, event) in lines.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"[\"");
            body.extend_from_slice(
                itoa::Buffer::new()
                    .format(unix_nanos(&event.timestamp))
                    .as_bytes(),
            );
            body.extend_from_slice(b"\",");
            write_json_string(&mut body, &event.message);
            body.push(b']');
        }
        body.extend_from_slice(b"]}");
    }
    body.extend_from_slice(b"]}");
    body
}

fn write_labels(body: &mut Vec<u8>, origin: &Origin) {
    let mut labels = vec![("node", origin.node.as_str())];
    match &origin.pod {
        Some(pod) => labels.extend([
            ("namespace", pod.namespace.as_str()),
            ("pod", pod.pod.as_str()),
            ("container", pod.container.as_str()),
        ]),
        None => labels.push(("filename", origin.path.to_str().unwrap_or("?"))),
    }
    body.push(b'{');
    for (index, (name, value)) in labels.into_iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        write_json_string(body, name);
        body.push(b':');
        write_json_string(body, value);
    }
    body.push(b'}');
}

/// The line's time in Unix nanoseconds; the current time when the runtime's
/// timestamp cannot be read (Loki needs one).
fn unix_nanos(rfc3339: &str) -> i128 {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(rfc3339, &Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .unix_timestamp_nanos()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::event::Stream;

    fn event(origin: &Arc<Origin>, timestamp: &str, message: &str) -> Event {
        Event {
            origin: Arc::clone(origin),
            timestamp: timestamp.into(),
            stream: Some(Stream::Stdout),
            message: message.into(),
            kubernetes: None,
        }
    }

    #[test]
    fn the_push_body_groups_lines_by_file_with_labels_and_nanosecond_strings() {
        let api = Arc::new(Origin::new(
            "n1",
            Path::new("/var/log/pods/ns_api-1_u1/api/0.log"),
        ));
        let plain = Arc::new(Origin::new("n1", Path::new("/var/log/syslog")));
        let events = [
            event(&api, "2026-11-26T07:00:00.000000001Z", "first"),
            event(&plain, "2026-11-26T07:00:01Z", "sys \"quoted\""),
            event(&api, "2026-11-26T07:00:02.5Z", "second"),
        ];
        let body: serde_json::Value = serde_json::from_slice(&push_body(&events)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"streams": [
                {"stream": {"node": "n1", "namespace": "ns", "pod": "api-1", "container": "api"},
                 "values": [["1795676400000000001", "first"], ["1795676402500000000", "second"]]},
                {"stream": {"node": "n1", "filename": "/var/log/syslog"},
                 "values": [["1795676401000000000", "sys \"quoted\""]]},
            ]})
        );
    }
}
