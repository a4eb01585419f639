//! A stand-in for the Kubernetes API server, for the log collector's
//! metadata source. There is no API server on the machines the tests run
//! on; this one speaks the part of its protocol a client of pods,
//! namespaces and nodes uses, as the real one does:
//!
//! - lists (`GET /api/v1/pods?fieldSelector=spec.nodeName=N`) answer every
//!   matching object with the list's `resourceVersion`, items without
//!   `kind`/`apiVersion`;
//! - watches (`?watch=true&resourceVersion=V`) stream one JSON event per
//!   line (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`) of what changed after
//!   `V`, then whatever changes next;
//! - a watch from a version older than the server keeps history for gets
//!   the `ERROR` event with a `410 Expired` status, which makes a client
//!   list again;
//! - a resource the client may not read answers `403 Forbidden` with a
//!   `Status` body.
//!
//! Each test drives it: it applies and deletes objects, forbids a resource,
//! drops every open watch, or expires the history.

mod watch;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use watch::{Watch, event, line};

/// The kinds of object the server holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Pods,
    Namespaces,
    Nodes,
}

impl Resource {
    fn kind(self) -> &'static str {
        match self {
            Self::Pods => "Pod",
            Self::Namespaces => "Namespace",
            Self::Nodes => "Node",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::Namespaces => "namespaces",
            Self::Nodes => "nodes",
        }
    }
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
struct Change {
    version: u64,
    resource: Resource,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    kind: &'static str,
    object: Value,
}

impl Change {
    /// Whether a watch of `resource` with field `selector` sees it.
    fn seen_by(&self, resource: Resource, selector: Option<&str>) -> bool {
        self.resource == resource && selected(&self.object, selector)
    }
}

/// What open watches are told.
#[derive(Debug, Clone)]
enum Signal {
    Change(Arc<Change>),
    Bookmark(u64),
    /// Close every open watch (a dropped connection).
    Drop,
}

#[derive(Debug, Default)]
struct Objects {
    version: u64,
    /// By resource, namespace (empty for cluster objects) and name.
    current: BTreeMap<(Resource, String, String), Value>,
    /// The changes a watch may resume from, oldest first.
    history: Vec<Arc<Change>>,
    /// Watches from before this version get `410 Expired`.
    oldest_watchable: u64,
    forbidden: HashSet<Resource>,
    lists: HashMap<Resource, usize>,
}

#[derive(Debug)]
struct Shared {
    objects: Mutex<Objects>,
    signals: broadcast::Sender<Signal>,
}

impl Shared {
    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server, on 127.0.0.1 and a port of its own; stops when dropped.
#[derive(Debug)]
pub struct KubeApiServer {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, serde::Deserialize)]
struct Params {
    #[serde(default)]
    watch: Option<String>,
    #[serde(rename = "resourceVersion", default)]
    resource_version: Option<String>,
    #[serde(rename = "fieldSelector", default)]
    field_selector: Option<String>,
    #[serde(rename = "allowWatchBookmarks", default)]
    allow_watch_bookmarks: Option<String>,
}

impl KubeApiServer {
    /// Starts an empty server. Call from within a Tokio runtime.
    pub async fn start() -> Self {
        let (signals, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            objects: Mutex::new(Objects::default()),
            signals,
        });
        let router = Router::new()
            .route("/api/v1/pods", get(pods))
            .route("/api/v1/namespaces", get(namespaces))
            .route("/api/v1/nodes", get(nodes))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("cannot bind the Kubernetes API stand-in: {error}"));
        let url = format!(
            "http://{}",
            listener.local_addr().map_or_else(
                |error| panic!("no address for the Kubernetes API stand-in: {error}"),
                |address| address.to_string(),
            )
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, shared, task }
    }

    /// `http://127.0.0.1:PORT`, the server's address for a client.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates or replaces `object` (its `metadata.namespace` and
    /// `metadata.name` say which), as `kubectl apply` does: the watches see
    /// `ADDED` or `MODIFIED`. Returns the new resource version.
    pub fn apply(&self, resource: Resource, mut object: Value) -> u64 {
        let mut objects = self.shared.objects();
        objects.version += 1;
        let version = objects.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        object["kind"] = json!(resource.kind());
        object["apiVersion"] = json!("v1");
        let key = key_of(resource, &object);
        let kind = match objects.current.insert(key, object.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        self.record(&mut objects, resource, kind, object);
        version
    }

    /// Deletes an object: the watches see `DELETED` with its last state.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) {
        let mut objects = self.shared.objects();
        let key = (resource, namespace.to_owned(), name.to_owned());
        let Some(mut object) = objects.current.remove(&key) else {
            panic!("no {} {namespace}/{name} to delete", resource.kind());
        };
        objects.version += 1;
        object["metadata"]["resourceVersion"] = json!(objects.version.to_string());
        self.record(&mut objects, resource, "DELETED", object);
    }

    fn record(&self, objects: &mut Objects, resource: Resource, kind: &'static str, object: Value) {
        let change = Arc::new(Change {
            version: objects.version,
            resource,
            kind,
            object,
        });
        objects.history.push(change.clone());
        let _ = self.shared.signals.send(Signal::Change(change));
    }

    /// Answers `403 Forbidden` to every list and watch of `resource` from
    /// now on (`true`), or serves it again (`false`).
    pub fn forbid(&self, resource: Resource, forbidden: bool) {
        let mut objects = self.shared.objects();
        if forbidden {
            objects.forbidden.insert(resource);
            drop(objects);
            let _ = self.shared.signals.send(Signal::Drop);
        } else {
            objects.forbidden.remove(&resource);
        }
    }

    /// Closes every open watch, as a dropped connection does.
    pub fn drop_watches(&self) {
        let _ = self.shared.signals.send(Signal::Drop);
    }

    /// Forgets the history and closes every open watch: a client resuming
    /// from the version it had gets `410 Expired` and must list again.
    pub fn expire_watches(&self) {
        let mut objects = self.shared.objects();
        objects.version += 1;
        objects.oldest_watchable = objects.version;
        objects.history.clear();
        drop(objects);
        let _ = self.shared.signals.send(Signal::Drop);
    }

    /// Sends a `BOOKMARK` with the current version to every open watch
    /// that asked for bookmarks.
    pub fn bookmark(&self) {
        let version = self.shared.objects().version;
        let _ = self.shared.signals.send(Signal::Bookmark(version));
    }

    /// How many lists of `resource` the server has answered.
    pub fn lists(&self, resource: Resource) -> usize {
        self.shared
            .objects()
            .lists
            .get(&resource)
            .copied()
            .unwrap_or(0)
    }
}

fn key_of(resource: Resource, object: &Value) -> (Resource, String, String) {
    let text = |field: &str| {
        object["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (resource, text("namespace"), text("name"))
}

async fn pods(state: State<Arc<Shared>>, params: Query<Params>) -> Response {
    serve(Resource::Pods, state, params)
}

async fn namespaces(state: State<Arc<Shared>>, params: Query<Params>) -> Response {
    serve(Resource::Namespaces, state, params)
}

async fn nodes(state: State<Arc<Shared>>, params: Query<Params>) -> Response {
    serve(Resource::Nodes, state, params)
}

/// Whether `object` matches a field selector of `path=value` terms
/// (`spec.nodeName=node-a`, `metadata.name=node-a`), comma-separated.
fn selected(object: &Value, selector: Option<&str>) -> bool {
    selector
        .unwrap_or_default()
        .split(',')
        .filter(|term| !term.is_empty())
        .all(|term| {
            let (path, wanted) = term.split_once('=').unwrap_or((term, ""));
            let found = path.split('.').fold(object, |value, field| &value[field]);
            found.as_str() == Some(wanted)
        })
}

fn status(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    })
}

fn serve(
    resource: Resource,
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Params>,
) -> Response {
    let watching = matches!(params.watch.as_deref(), Some("true" | "1"));
    let mut objects = shared.objects();
    if objects.forbidden.contains(&resource) {
        let message = format!(
            "{} is forbidden: User \"system:serviceaccount:app-v02:log-collector\" cannot {} resource \"{}\"",
            resource.path(),
            if watching { "watch" } else { "list" },
            resource.path()
        );
        return (
            StatusCode::FORBIDDEN,
            axum::Json(status(StatusCode::FORBIDDEN, "Forbidden", &message)),
        )
            .into_response();
    }
    let selector = params.field_selector.clone();
    if !watching {
        *objects.lists.entry(resource).or_default() += 1;
        let items: Vec<Value> = objects
            .current
            .iter()
            .filter(|((kind, _, _), object)| {
                *kind == resource && selected(object, selector.as_deref())
            })
            .map(|(_, object)| {
                let mut item = object.clone();
                if let Some(fields) = item.as_object_mut() {
                    fields.remove("kind");
                    fields.remove("apiVersion");
                }
                item
            })
            .collect();
        let list = json!({
            "kind": format!("{}List", resource.kind()),
            "apiVersion": "v1",
            "metadata": {"resourceVersion": objects.version.to_string()},
            "items": items,
        });
        return axum::Json(list).into_response();
    }

    // Absent or "0": from now on.
    let from = match params.resource_version.as_deref().map(str::parse::<u64>) {
        Some(Ok(version)) if version > 0 => version,
        _ => objects.version,
    };
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    let expired = from < objects.oldest_watchable;
    if expired {
        let message = format!(
            "too old resource version: {from} ({})",
            objects.oldest_watchable
        );
        pending.push_back(line(&json!({
            "type": "ERROR",
            "object": status(StatusCode::GONE, "Expired", &message),
        })));
    } else {
        for change in objects
            .history
            .iter()
            .filter(|change| change.version > from)
        {
            if change.seen_by(resource, selector.as_deref()) {
                pending.push_back(event(change));
            }
        }
    }
    // Subscribed before the lock is released: no change falls between the
    // backlog and the live events.
    let receiver = shared.signals.subscribe();
    drop(objects);
    let bookmarks = params.allow_watch_bookmarks.as_deref() == Some("true");
    let watch = Watch {
        resource,
        selector,
        bookmarks,
        pending,
        receiver: (!expired).then_some(receiver),
    };
    let body = Body::from_stream(futures::stream::unfold(watch, Watch::next));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
