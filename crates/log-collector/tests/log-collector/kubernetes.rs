//! The Kubernetes metadata source against a stand-in API server that speaks
//! the list/watch protocol (`testkit::KubeApiServer`): what a pod's lines
//! are enriched with, kept current through changes, deletions, dropped and
//! expired watches, refusals and an unreachable server.

use std::time::Duration;

use log_collector::kubernetes::{self, Metadata, MetadataSettings, PodMetadata, WatchState};

use serde_json::{Value, json};
use testkit::{KubeApiServer, Resource};

const NODE: &str = "node-a";
const UID: &str = "5b1c7a52-1111-4a6e-9d0e-000000000001";

fn settings() -> MetadataSettings {
    MetadataSettings {
        node_name: NODE.to_owned(),
        annotations: vec!["team".to_owned()],
        node_labels: vec!["topology.kubernetes.io/zone".to_owned()],
        deletion_delay: Duration::from_secs(2),
    }
}

/// A pod of the Deployment `api` (through its ReplicaSet) on `node`.
pub(crate) fn api_pod(uid: &str, name: &str, node: &str, version: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": "app-v02",
            "uid": uid,
            "labels": {"app.kubernetes.io/name": "api", "version": version, "pod-template-hash": "7d9f8b6c5"},
            "annotations": {"team": "storage", "checksum/api-config": "abc"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f8b6c5",
                "uid": "rs-uid", "controller": true,
            }],
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "api", "image": "app-v02/api:0.2.0"}],
            "initContainers": [{"name": "migrate", "image": "app-v02/api:0.2.0"}],
        },
    })
}

fn namespace(labels: Value) -> Value {
    json!({"metadata": {"name": "app-v02", "labels": labels}})
}

pub(crate) fn node(name: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {
        "topology.kubernetes.io/zone": "zone-1",
        "kubernetes.io/hostname": name,
    }}})
}

/// A server holding the namespace, this node, another node and one `api`
/// pod on each node, and a source watching it.
async fn cluster() -> (KubeApiServer, Metadata) {
    let server = KubeApiServer::start().await;
    server.apply(Resource::Namespaces, namespace(json!({"team": "storage"})));
    server.apply(Resource::Nodes, node(NODE));
    server.apply(Resource::Nodes, node("node-b"));
    server.apply(
        Resource::Pods,
        api_pod(UID, "api-7d9f8b6c5-x2x4z", NODE, "1"),
    );
    server.apply(
        Resource::Pods,
        api_pod("elsewhere", "api-7d9f8b6c5-q9q8w", "node-b", "1"),
    );
    let client = kubernetes::client(Some(server.url())).unwrap();
    let metadata = Metadata::start(client, settings(), &Default::default());
    (server, metadata)
}

async fn eventually_pod(
    metadata: &Metadata,
    what: &str,
    check: impl Fn(Option<&PodMetadata>) -> bool,
) {
    testkit::eventually(what, || {
        let found = metadata.pod(UID);
        let holds = check(found.as_ref());
        async move { holds }
    })
    .await;
}

fn version_is(wanted: &str) -> impl Fn(Option<&PodMetadata>) -> bool + '_ {
    move |found| {
        found.is_some_and(|found| {
            found.pod.labels.get("version").map(String::as_str) == Some(wanted)
        })
    }
}

/// Changes the pod's `version` label and waits until the source has it.
async fn relabel(server: &KubeApiServer, metadata: &Metadata, version: &str, what: &str) {
    let pod = api_pod(UID, "api-7d9f8b6c5-x2x4z", NODE, version);
    server.apply(Resource::Pods, pod);
    eventually_pod(metadata, what, version_is(version)).await;
}

#[tokio::test]
async fn a_pod_has_its_labels_owner_images_and_node_and_namespace_labels() {
    let (_server, metadata) = cluster().await;
    eventually_pod(&metadata, "the pod's metadata", |found| found.is_some()).await;
    eventually_pod(&metadata, "the node's labels", |found| {
        found.is_some_and(|found| !found.node_labels.is_empty())
    })
    .await;
    let found = metadata.pod(UID).unwrap();
    assert_eq!(found.pod.name, "api-7d9f8b6c5-x2x4z");
    assert_eq!(found.pod.labels["app.kubernetes.io/name"], "api");
    let owner = found.pod.owner.clone().unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Deployment", "api")
    );
    assert_eq!(found.pod.images["api"], "app-v02/api:0.2.0");
    assert_eq!(found.pod.images["migrate"], "app-v02/api:0.2.0");
    // Only the allowed annotation and node label.
    assert_eq!(found.pod.annotations.len(), 1);
    assert_eq!(found.pod.annotations["team"], "storage");
    assert_eq!(found.node_labels.len(), 1);
    assert_eq!(found.node_labels["topology.kubernetes.io/zone"], "zone-1");
    assert_eq!(found.namespace.labels["team"], "storage");
    // Only this node's pods are watched.
    assert!(metadata.pod("elsewhere").is_none());
    assert!(
        metadata
            .status()
            .iter()
            .all(|(_, state)| *state == WatchState::Synced),
        "{:?}",
        metadata.status()
    );
}

#[tokio::test]
async fn changes_show_and_a_deleted_pod_is_kept_for_the_delay() {
    let (server, metadata) = cluster().await;
    eventually_pod(&metadata, "the pod's metadata", version_is("1")).await;
    relabel(&server, &metadata, "2", "the changed label").await;
    server.apply(Resource::Namespaces, namespace(json!({"team": "platform"})));
    eventually_pod(&metadata, "the changed namespace label", |found| {
        found.is_some_and(|found| found.namespace.labels["team"] == "platform")
    })
    .await;

    server.delete(Resource::Pods, "app-v02", "api-7d9f8b6c5-x2x4z");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(metadata.pod(UID).is_some(), "forgotten before the delay");
    // Forgotten at the first event after the delay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.apply(Resource::Nodes, node("node-c"));
    server.apply(
        Resource::Pods,
        api_pod("another", "api-7d9f8b6c5-zzzzz", NODE, "1"),
    );
    testkit::eventually("the deleted pod forgotten after the delay", || {
        let gone = metadata.pod(UID).is_none() && metadata.pod("another").is_some();
        async move { gone }
    })
    .await;
}

#[tokio::test]
async fn a_dropped_or_expired_watch_is_followed_by_a_relist() {
    let (server, metadata) = cluster().await;
    eventually_pod(&metadata, "the pod's metadata", version_is("1")).await;
    let lists = server.lists(Resource::Pods);

    // A bookmark, then a dropped connection: the watch resumes from the
    // bookmark's version, without listing again.
    server.bookmark();
    server.drop_watches();
    tokio::time::sleep(Duration::from_millis(200)).await;
    relabel(&server, &metadata, "2", "a change after the dropped watch").await;
    assert_eq!(
        server.lists(Resource::Pods),
        lists,
        "a resumed watch lists again"
    );

    // History expired: resuming gets 410 Gone, and the source lists again.
    server.expire_watches();
    relabel(&server, &metadata, "3", "a change after the expired watch").await;
    assert!(
        server.lists(Resource::Pods) > lists,
        "no relist after 410 Gone"
    );
}

#[tokio::test]
async fn refused_or_unreachable_the_source_says_why_and_recovers() {
    let server = KubeApiServer::start().await;
    server.forbid(Resource::Pods, true);
    server.apply(
        Resource::Pods,
        api_pod(UID, "api-7d9f8b6c5-x2x4z", NODE, "1"),
    );
    let client = kubernetes::client(Some(server.url())).unwrap();
    let metadata = Metadata::start(client, settings(), &Default::default());
    testkit::eventually("the refusal in the status", || {
        let refused = metadata.status().iter().any(|(name, state)| {
            *name == "pods" && matches!(state, WatchState::Failing(why) if why.contains("403") || why.contains("forbidden"))
        });
        async move { refused }
    })
    .await;
    assert!(metadata.pod(UID).is_none());
    server.forbid(Resource::Pods, false);
    eventually_pod(&metadata, "the pod once allowed", version_is("1")).await;

    // Nothing listening at all.
    let closed = format!("http://127.0.0.1:{}", testkit::free_port());
    let metadata = Metadata::start(
        kubernetes::client(Some(&closed)).unwrap(),
        settings(),
        &Default::default(),
    );
    testkit::eventually("the unreachable server in the status", || {
        let failing = metadata
            .status()
            .iter()
            .all(|(_, state)| matches!(state, WatchState::Failing(_)));
        async move { failing }
    })
    .await;
}
