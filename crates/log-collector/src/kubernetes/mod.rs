//! What the Kubernetes API server knows about the pods whose logs the
//! collector reads: their labels, selected annotations, owner and images,
//! their namespaces' labels, and this node's labels (docs/log-collector.md,
//! "Kubernetes metadata").
//!
//! Three watches (kube-rs's `watcher`, which lists, then watches, and lists
//! again when the server says its version is too old): the pods of this
//! node only (`spec.nodeName`), every namespace, and this node. Memory is
//! bounded by what a node runs (at most a few hundred pods; the kubelet's
//! default is 110) and the cluster's namespaces; only the fields lines are
//! enriched with are kept, not the objects.
//!
//! A deleted pod stays known for `deletion_delay`, so that the last lines
//! of its files, read after the pod is gone, still get its metadata. When
//! the API server cannot be reached or refuses (RBAC), lookups find nothing
//! new, the watches retry with backoff, and [`Metadata::status`] says why.

mod config;
mod container;
mod enrichment;
mod pod;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::Watch;

pub use config::{KubernetesArgs, KubernetesSettings};
pub use container::ContainerMetadata;
pub use enrichment::Enrichment;
pub use pod::{
    EXCLUDE_CONTAINERS, EXCLUDE_LOGS, Labels, NamespaceInfo, Owner, PodInfo, PodMetadata,
};

/// What the metadata source watches and keeps.
#[derive(Debug, Clone)]
pub struct MetadataSettings {
    /// This node: only its pods are watched.
    pub node_name: String,
    /// Pod annotations lines carry (none by default).
    pub annotations: Vec<String>,
    /// Node labels lines carry (e.g. `topology.kubernetes.io/zone`).
    pub node_labels: Vec<String>,
    /// How long a deleted pod stays known.
    pub deletion_delay: Duration,
}

/// A client for the API server at `url`, or, without one, the cluster the
/// process runs in (its service account's token and CA).
pub fn client(url: Option<&str>) -> Result<Client, kube::Error> {
    let config = match url {
        Some(url) => {
            let uri = url.parse().map_err(|error: axum::http::uri::InvalidUri| {
                kube::Error::Service(format!("COLLECTOR_KUBERNETES_API_URL: {error}").into())
            })?;
            kube::Config::new(uri)
        }
        None => kube::Config::incluster().map_err(|error| {
            kube::Error::Service(format!("not running in a Kubernetes pod: {error}").into())
        })?,
    };
    Client::try_from(config)
}

/// The state of one watch, for `/ready`'s body and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchState {
    /// Listing for the first time.
    Starting,
    /// Listed, and watching.
    Synced,
    /// The last list or watch failed: the API server's answer or the
    /// connection's error. Retried with backoff.
    Failing(String),
}

/// The metadata of this node's pods, kept current by watches. Cheap to
/// clone; clones share it.
#[derive(Debug, Clone)]
pub struct Metadata {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: MetadataSettings,
    /// By pod uid.
    pods: RwLock<HashMap<String, Arc<PodInfo>>>,
    /// Deleted pods, with when they may be forgotten, oldest first.
    deleted: Mutex<VecDeque<(Instant, String)>>,
    namespaces: RwLock<HashMap<String, Arc<NamespaceInfo>>>,
    node_labels: RwLock<Arc<Labels>>,
    states: Mutex<[WatchState; 3]>,
    /// Grows with every change of what lookups return, so that a reader
    /// can tell cheaply whether to look again.
    generation: AtomicU64,
    /// Set once the namespaces and this node have been listed: until then
    /// a pod's metadata lacks their labels.
    surroundings_listed: [AtomicBool; 2],
}

/// The watches, as indexes into `Inner::states`.
#[derive(Debug, Clone, Copy)]
enum Watched {
    Pods = 0,
    Namespaces = 1,
    Node = 2,
}

impl Watched {
    /// The index of a namespace or node watch in
    /// `Inner::surroundings_listed`.
    fn surroundings_index(self) -> Option<usize> {
        match self {
            Self::Pods => None,
            Self::Namespaces => Some(0),
            Self::Node => Some(1),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::Namespaces => "namespaces",
            Self::Node => "node",
        }
    }
}

impl Metadata {
    /// Starts the three watches on the runtime this is called from; they
    /// run until the process ends. Their failures are counted in `errors`.
    pub fn start(
        client: Client,
        settings: MetadataSettings,
        errors: &Family<Watch, Counter>,
    ) -> Self {
        let inner = Arc::new(Inner {
            settings,
            pods: RwLock::default(),
            deleted: Mutex::default(),
            namespaces: RwLock::default(),
            node_labels: RwLock::default(),
            states: Mutex::new([
                WatchState::Starting,
                WatchState::Starting,
                WatchState::Starting,
            ]),
            generation: AtomicU64::new(0),
            surroundings_listed: [AtomicBool::new(false), AtomicBool::new(false)],
        });
        let node = inner.settings.node_name.clone();
        let pods = watcher::watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        );
        tokio::spawn(follow(
            inner.clone(),
            Watched::Pods,
            pods,
            Inner::on_pod,
            errors.clone(),
        ));
        let namespaces = watcher::watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        );
        tokio::spawn(follow(
            inner.clone(),
            Watched::Namespaces,
            namespaces,
            Inner::on_namespace,
            errors.clone(),
        ));
        let nodes = watcher::watcher(
            Api::<Node>::all(client),
            watcher::Config::default().fields(&format!("metadata.name={node}")),
        );
        tokio::spawn(follow(
            inner.clone(),
            Watched::Node,
            nodes,
            Inner::on_node,
            errors.clone(),
        ));
        Self { inner }
    }

    /// The metadata of the pod with `uid`, if it is known (or was deleted
    /// less than the deletion delay ago).
    pub fn pod(&self, uid: &str) -> Option<PodMetadata> {
        let pod = read(&self.inner.pods).get(uid)?.clone();
        let namespace = read(&self.inner.namespaces)
            .get(&pod.namespace)
            .cloned()
            .unwrap_or_default();
        let node_labels = read(&self.inner.node_labels).clone();
        Some(PodMetadata {
            pod,
            namespace,
            node_labels,
        })
    }

    /// Whether the namespaces and this node have been listed once, so that
    /// a pod's metadata has their labels.
    pub fn surroundings_listed(&self) -> bool {
        self.inner
            .surroundings_listed
            .iter()
            .all(|listed| listed.load(Ordering::Acquire))
    }

    /// Grows with every change of what [`Metadata::pod`] returns.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Each watch's state, by name (`pods`, `namespaces`, `node`).
    pub fn status(&self) -> Vec<(&'static str, WatchState)> {
        let states = self
            .inner
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        [Watched::Pods, Watched::Namespaces, Watched::Node]
            .into_iter()
            .map(|watched| (watched.name(), states[watched as usize].clone()))
            .collect()
    }
}

/// Applies the events of one watch to `inner` with `apply`, and notes the
/// watch's state, until the process ends (the watcher retries failures).
async fn follow<K, S>(
    inner: Arc<Inner>,
    watched: Watched,
    events: S,
    apply: fn(&Inner, Event<K>, &mut HashSet<String>),
    errors: Family<Watch, Counter>,
) where
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    let mut listed = HashSet::new();
    let mut events = std::pin::pin!(events.default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if matches!(event, Event::InitDone) {
                    inner.set_state(watched, WatchState::Synced);
                    if let Some(index) = watched.surroundings_index() {
                        inner.surroundings_listed[index].store(true, Ordering::Release);
                    }
                }
                apply(&inner, event, &mut listed);
                inner.forget_expired();
                inner.generation.fetch_add(1, Ordering::Release);
            }
            Err(error) => {
                tracing::warn!(watch = watched.name(), %error, "Kubernetes metadata watch failed; retrying");
                errors
                    .get_or_create(&Watch {
                        watch: watched.name(),
                    })
                    .inc();
                inner.set_state(watched, WatchState::Failing(error.to_string()));
            }
        }
    }
}

impl Inner {
    fn set_state(&self, watched: Watched, state: WatchState) {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)[watched as usize] = state;
    }

    fn on_pod(&self, event: Event<Pod>, listed: &mut HashSet<String>) {
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(pod) | Event::Apply(pod) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    return;
                };
                listed.insert(uid.clone());
                let info = Arc::new(PodInfo::of(&pod, &self.settings.annotations));
                write(&self.pods).insert(uid, info);
            }
            Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid {
                    self.deleted_now(uid);
                }
            }
            // Pods known before a relist and absent from it were deleted
            // while the watch was down.
            Event::InitDone => {
                let gone: Vec<String> = read(&self.pods)
                    .keys()
                    .filter(|uid| !listed.contains(*uid))
                    .cloned()
                    .collect();
                gone.into_iter().for_each(|uid| self.deleted_now(uid));
            }
        }
    }

    fn deleted_now(&self, uid: String) {
        let forget_at = Instant::now() + self.settings.deletion_delay;
        self.deleted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((forget_at, uid));
    }

    /// Forgets the deleted pods whose delay is over (checked at each event
    /// of any watch).
    fn forget_expired(&self) {
        let now = Instant::now();
        let mut deleted = self.deleted.lock().unwrap_or_else(PoisonError::into_inner);
        while deleted.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, uid)) = deleted.pop_front() {
                write(&self.pods).remove(&uid);
            }
        }
    }

    fn on_namespace(&self, event: Event<Namespace>, listed: &mut HashSet<String>) {
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(namespace) | Event::Apply(namespace) => {
                let Some(name) = namespace.metadata.name else {
                    return;
                };
                listed.insert(name.clone());
                let excluded = namespace
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get(EXCLUDE_LOGS))
                    .is_some_and(|value| pod::is_true(value));
                let info = NamespaceInfo {
                    labels: namespace.metadata.labels.unwrap_or_default(),
                    excluded,
                };
                write(&self.namespaces).insert(name, Arc::new(info));
            }
            Event::Delete(namespace) => {
                if let Some(name) = namespace.metadata.name {
                    write(&self.namespaces).remove(&name);
                }
            }
            Event::InitDone => write(&self.namespaces).retain(|name, _| listed.contains(name)),
        }
    }

    fn on_node(&self, event: Event<Node>, _listed: &mut HashSet<String>) {
        if let Event::InitApply(node) | Event::Apply(node) = event {
            let labels = node
                .metadata
                .labels
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, _)| self.settings.node_labels.contains(name))
                .collect();
            *write(&self.node_labels) = Arc::new(labels);
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
