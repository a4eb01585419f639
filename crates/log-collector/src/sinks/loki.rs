//! The `loki` sink: `POST /loki/api/v1/push` with a JSON body, one Loki
//! stream per file, labelled `node`, `namespace`, `pod`, `container` (plain
//! files: `node`, `filename`) and, with the Kubernetes metadata source on,
//! the pod labels of `COLLECTOR_LOKI_POD_LABELS`; each line
//! `["<unix ns as a string>", "<message>"]`.
//!
//! Status codes decide the outcome: 2xx acknowledged; 429, 5xx and transport
//! errors retried; 413 too large (the shipper splits the batch); 400 refused
//! (the shipper drops and counts the lines); other codes retried, since they
//! mean a misconfiguration someone will fix (401, 404).

use std::sync::Arc;
use std::time::Duration;

use platform::json::push_string;
use reqwest::StatusCode;

use super::SendError;
use crate::config::comma_separated;
use crate::event::Event;
use crate::kubernetes::Enrichment;
use crate::origin::Origin;

/// The push URL from Loki's base URL or the push URL itself.
pub fn push_url(raw: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(raw)
        .map_err(|error| format!("{:?}: {error}", platform::config::redact_userinfo(raw)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/loki/api/v1/push");
    }
    Ok(url)
}

/// A pod label made a stream label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLabel {
    /// The pod label (`app.kubernetes.io/name`).
    pub source: String,
    /// The stream label (`app_kubernetes_io_name`).
    pub name: String,
}

/// The stream labels the sink sets itself.
const OWN_LABELS: [&str; 5] = ["node", "namespace", "pod", "container", "filename"];

impl PodLabel {
    /// A comma-separated list of pod labels, each with its stream label's
    /// name: Loki's names are `[a-zA-Z_][a-zA-Z0-9_]*`, so anything else is
    /// written `_`.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, String> {
        let mut labels: Vec<Self> = Vec::new();
        for source in comma_separated(raw) {
            let mut name: String = source
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                name.insert(0, '_');
            }
            if OWN_LABELS.contains(&name.as_str()) {
                return Err(format!(
                    "{source:?} would be the stream label {name:?}, which the sink sets itself"
                ));
            }
            if let Some(other) = labels.iter().find(|label| label.name == name) {
                return Err(format!(
                    "{source:?} and {:?} would both be the stream label {name:?}",
                    other.source
                ));
            }
            labels.push(Self {
                source: source.to_owned(),
                name,
            });
        }
        Ok(labels)
    }
}

pub struct Loki {
    client: reqwest::Client,
    push_url: reqwest::Url,
    pod_labels: Vec<PodLabel>,
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
    pub fn new(push_url: reqwest::Url, pod_labels: Vec<PodLabel>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        let shown_url = platform::config::redact_userinfo(push_url.as_str()).into_owned();
        Ok(Self {
            client,
            push_url,
            pod_labels,
            shown_url,
        })
    }

    pub async fn send(&mut self, events: &[Event]) -> Result<(), SendError> {
        let response = self
            .client
            .post(self.push_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(push_body(events, &self.pod_labels))
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

/// The stream labels a line's pod labels give, in `pod_labels`' order.
fn promoted<'a>(
    kubernetes: Option<&'a Arc<Enrichment>>,
    pod_labels: &'a [PodLabel],
) -> Vec<(&'a str, &'a str)> {
    let Some(kubernetes) = kubernetes else {
        return Vec::new();
    };
    let labels = &kubernetes.metadata.pod.labels;
    pod_labels
        .iter()
        .filter_map(|label| Some((label.name.as_str(), labels.get(&label.source)?.as_str())))
        .collect()
}

/// One stream of a push: a file and the metadata its lines had.
struct Stream<'a> {
    origin: &'a Arc<Origin>,
    kubernetes: Option<&'a Arc<Enrichment>>,
    lines: Vec<&'a Event>,
}

impl Stream<'_> {
    /// Whether `event` belongs here. The metadata is compared by identity:
    /// it changes rarely, and a change that leaves the stream labels as
    /// they were only makes a second entry with the same labels, which
    /// Loki files under the same stream.
    fn takes(&self, event: &Event) -> bool {
        Arc::ptr_eq(self.origin, &event.origin)
            && match (self.kubernetes, &event.kubernetes) {
                (Some(mine), Some(its)) => Arc::ptr_eq(mine, its),
                (None, None) => true,
                _ => false,
            }
    }
}

/// The push API's JSON body for `events`.
fn push_body(events: &[Event], pod_labels: &[PodLabel]) -> Vec<u8> {
    // One stream per origin and metadata (a label changed on the pod
    // starts another), in order of first appearance; lines keep their file
    // order inside it.
    let mut streams: Vec<Stream<'_>> = Vec::new();
    for event in events {
        match streams.iter_mut().find(|stream| stream.takes(event)) {
            Some(stream) => stream.lines.push(event),
            None => streams.push(Stream {
                origin: &event.origin,
                kubernetes: event.kubernetes.as_ref(),
                lines: vec![event],
            }),
        }
    }
    let mut body = Vec::with_capacity(events.iter().map(Event::size).sum::<usize>() + 256);
    body.extend_from_slice(b"{\"streams\":[");
    for (index, stream) in streams.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"stream\":");
        let promoted = promoted(stream.kubernetes, pod_labels);
        write_labels(&mut body, stream.origin, &promoted);
        body.extend_from_slice(b",\"values\":[");
        for (index, event) in stream.lines.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"[\"");
            body.extend_from_slice(
                itoa::Buffer::new()
                    .format(unix_nanos(event.timestamp()))
                    .as_bytes(),
            );
            body.extend_from_slice(b"\",");
            push_string(&mut body, event.message());
            body.push(b']');
        }
        body.extend_from_slice(b"]}");
    }
    body.extend_from_slice(b"]}");
    body
}

fn write_labels(body: &mut Vec<u8>, origin: &Origin, promoted: &[(&str, &str)]) {
    let mut labels = vec![("node", origin.node.as_str())];
    match &origin.pod {
        Some(pod) => labels.extend([
            ("namespace", pod.namespace.as_str()),
            ("pod", pod.pod.as_str()),
            ("container", pod.container.as_str()),
        ]),
        None => labels.push(("filename", origin.path.to_str().unwrap_or("?"))),
    }
    labels.extend_from_slice(promoted);
    body.push(b'{');
    for (index, (name, value)) in labels.into_iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        push_string(body, name);
        body.push(b':');
        push_string(body, value);
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
        Event::new(
            Arc::clone(origin),
            timestamp,
            Some(Stream::Stdout),
            message,
            None,
        )
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
        let body: serde_json::Value = serde_json::from_slice(&push_body(&events, &[])).unwrap();
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

    #[test]
    fn loki_url_may_be_the_base_or_the_push_url() {
        for raw in ["http://loki:3100", "http://loki:3100/"] {
            assert_eq!(
                push_url(raw).unwrap().as_str(),
                "http://loki:3100/loki/api/v1/push"
            );
        }
        assert_eq!(
            push_url("https://logs.example/custom/push").unwrap().path(),
            "/custom/push"
        );
        assert!(push_url("ftp://loki").is_err());
        assert!(push_url("not a url").is_err());
    }

    #[test]
    fn pod_labels_get_loki_names_and_never_replace_the_sinks_own() {
        let labels = PodLabel::parse_list(" app.kubernetes.io/name, app ,2fa,").unwrap();
        let names: Vec<(&str, &str)> = labels
            .iter()
            .map(|label| (label.source.as_str(), label.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("app.kubernetes.io/name", "app_kubernetes_io_name"),
                ("app", "app"),
                ("2fa", "_2fa")
            ]
        );
        assert!(PodLabel::parse_list("").unwrap().is_empty());
        let error = PodLabel::parse_list("app,pod").unwrap_err();
        assert!(error.contains("\"pod\""), "{error}");
        let error = PodLabel::parse_list("a.b,a-b").unwrap_err();
        assert!(error.contains("a_b"), "{error}");
    }

    #[test]
    fn pod_labels_become_stream_labels_and_a_change_starts_a_stream() {
        use crate::kubernetes::{Enrichment, Labels, NamespaceInfo, PodInfo, PodMetadata};

        let web = Arc::new(Origin::new(
            "n1",
            Path::new("/var/log/pods/ns_web-1_u1/app/0.log"),
        ));
        let with_labels = |labels: &[(&str, &str)]| {
            let pod = PodInfo {
                namespace: "ns".into(),
                name: "web-1".into(),
                labels: labels
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect::<Labels>(),
                annotations: Labels::new(),
                owner: None,
                images: std::collections::HashMap::new(),
                excluded: false,
                excluded_containers: Vec::new(),
            };
            Enrichment::new(
                PodMetadata {
                    pod: Arc::new(pod),
                    namespace: Arc::new(NamespaceInfo::default()),
                    node_labels: Arc::default(),
                },
                "app",
            )
        };
        let v1 = with_labels(&[("app.kubernetes.io/name", "web"), ("tier", "front")]);
        let v2 = with_labels(&[("app.kubernetes.io/name", "web2")]);
        let mut first = event(&web, "2026-11-26T07:00:00Z", "first");
        first.kubernetes = Some(v1.clone());
        let mut again = event(&web, "2026-11-26T07:00:01Z", "again");
        again.kubernetes = Some(v1);
        let mut changed = event(&web, "2026-11-26T07:00:02Z", "changed");
        changed.kubernetes = Some(v2);
        let pod_labels = PodLabel::parse_list("app.kubernetes.io/name,app").unwrap();
        let events = [first, again, changed];
        let body: serde_json::Value =
            serde_json::from_slice(&push_body(&events, &pod_labels)).unwrap();
        let streams = body["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2, "{body}");
        assert_eq!(
            streams[0]["stream"],
            serde_json::json!({"node": "n1", "namespace": "ns", "pod": "web-1", "container": "app",
                               "app_kubernetes_io_name": "web"})
        );
        assert_eq!(streams[0]["values"].as_array().unwrap().len(), 2);
        assert_eq!(streams[1]["stream"]["app_kubernetes_io_name"], "web2");
    }
}
