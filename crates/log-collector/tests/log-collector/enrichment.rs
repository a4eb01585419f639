//! The agent with the Kubernetes metadata source on, against the stand-in
//! API server (`testkit::KubeApiServer`): what its lines carry, pods and
//! containers excluded by annotation, lines waiting a bounded time for a pod
//! not known yet, watches broken or an API server that cannot be reached,
//! and what each sink makes of the metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use testkit::{KubeApiServer, Resource};

use crate::common::loki::LokiReceiver;
use crate::common::{self, Agent, Node, append, cri};
use crate::kubernetes::{api_pod, node};

/// A pod of the Deployment `web` in namespace `default` on the agent's
/// node, with its containers, label `version` and `annotations`.
fn web_pod(pod: &str, containers: &[&str], version: &str, annotations: Value) -> Value {
    let mut web = api_pod(&format!("uid-{pod}"), pod, common::NODE, version);
    web["metadata"]["namespace"] = json!("default");
    web["metadata"]["labels"]["pod-template-hash"] = json!("5c4f");
    web["metadata"]["ownerReferences"][0]["name"] = json!("web-5c4f");
    web["metadata"]["annotations"] = annotations;
    web["spec"]["containers"] = containers
        .iter()
        .map(|name| json!({"name": name, "image": "nginx:1.27"}))
        .collect();
    web
}

/// The API server with namespace `default` and the agent's node.
async fn cluster() -> KubeApiServer {
    let server = KubeApiServer::start().await;
    server.apply(
        Resource::Namespaces,
        json!({"metadata": {"name": "default", "labels": {"team": "storage"}}}),
    );
    server.apply(Resource::Nodes, node(common::NODE));
    server
}

/// The agent on a fresh node, shipping to a file, with metadata from `api`.
fn agent(api: &str, extra: &[(&'static str, String)]) -> (Node, PathBuf, Agent) {
    let node = Node::new();
    let out = node.path("out.jsonl");
    let mut env = common::file_sink(&out);
    env.push(("COLLECTOR_KUBERNETES_METADATA", "true".to_owned()));
    env.push(("COLLECTOR_KUBERNETES_API_URL", api.to_owned()));
    env.extend_from_slice(extra);
    let agent = Agent::start(&node, &env);
    (node, out, agent)
}

/// The log file of `container` of `pod` (namespace `default`).
fn log_of(node: &Node, pod: &str, container: &str) -> PathBuf {
    let dir = node.path(&format!("pods/default_{pod}_uid-{pod}/{container}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

/// The cluster with `pod` of `web` (container `app`, label `version: 1`),
/// and the agent on a fresh node: the server, the node, the sink's file,
/// the agent and the pod's log.
async fn one_pod_running(pod: &str) -> (KubeApiServer, Node, PathBuf, Agent, PathBuf) {
    let server = cluster().await;
    server.apply(Resource::Pods, web_pod(pod, &["app"], "1", json!({})));
    let (node, out, agent) = agent(server.url(), &[]);
    let log = log_of(&node, pod, "app");
    (server, node, out, agent, log)
}

/// The agent's `/ready`: its status code and body.
async fn ready(agent: &Agent) -> (u16, Value) {
    let response = reqwest::get(format!("http://127.0.0.1:{}/ready", agent.port))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Every line the `file` sink wrote to `out`, parsed.
fn shipped(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Waits until the line with `message` is shipped, and returns it.
async fn shipped_line(out: &Path, message: &str) -> Value {
    testkit::eventually(&format!("{message:?} shipped"), || {
        let found = shipped(out).iter().any(|line| line["message"] == message);
        async move { found }
    })
    .await;
    shipped(out)
        .into_iter()
        .find(|line| line["message"] == message)
        .unwrap()
}

/// Appends lines to `log` until one is shipped with label `version` set to
/// `version`, then checks that no line after it has another.
async fn write_until_lines_show(out: &Path, log: &Path, version: &str) {
    let written = std::sync::atomic::AtomicUsize::new(0);
    testkit::eventually(&format!("a line with version {version}"), || {
        let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        append(log, &cri(&format!("line {n} waiting for {version}")));
        let changed = shipped(out)
            .iter()
            .any(|line| line["labels"]["version"] == version);
        async move { changed }
    })
    .await;
    let versions: Vec<Value> = shipped(out)
        .iter()
        .map(|line| line["labels"]["version"].clone())
        .collect();
    let first_new = versions.iter().position(|seen| seen == version).unwrap();
    assert!(
        versions[first_new..].iter().all(|seen| seen == version),
        "a line after the change had another label or none: {versions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_carry_their_pods_metadata_and_later_lines_show_a_change() {
    let pod = "web-5c4f-abcde";
    let (server, _node, out, agent, log) = one_pod_running(pod).await;

    // The first line waits for the metadata the source is still listing.
    append(&log, &cri("first"));
    let line = shipped_line(&out, "first").await;
    assert_eq!(line["labels"]["version"], "1", "{line}");
    assert_eq!(line["labels"]["app.kubernetes.io/name"], "api");
    assert_eq!(line["owner"], json!({"kind": "Deployment", "name": "web"}));
    assert_eq!(line["image"], "nginx:1.27");
    assert_eq!(
        line["node_labels"],
        json!({"topology.kubernetes.io/zone": "zone-1"})
    );
    assert_eq!(line["namespace_labels"], json!({"team": "storage"}));
    assert!(line.get("annotations").is_none(), "none allowed by default");
    // The path's metadata is still there.
    assert_eq!(line["pod"], pod);
    assert_eq!(line["container"], "app");

    // A label changed on the pod: later lines show it.
    server.apply(Resource::Pods, web_pod(pod, &["app"], "2", json!({})));
    write_until_lines_show(&out, &log, "2").await;
    assert_eq!(
        agent
            .metric("log_collector_lines_without_metadata_total")
            .await,
        0.0
    );
    let (status, body) = ready(&agent).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["kubernetes"],
        json!({"pods": "synced", "namespaces": "synced", "node": "synced"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_dropped_or_expired_watch_lines_keep_their_metadata() {
    let pod = "web-5c4f-relist";
    let (server, _node, out, agent, log) = one_pod_running(pod).await;
    append(&log, &cri("before"));
    assert_eq!(shipped_line(&out, "before").await["labels"]["version"], "1");
    let lists = server.lists(Resource::Pods);

    // The connection dropped, and a change while the watch was away.
    server.drop_watches();
    server.apply(Resource::Pods, web_pod(pod, &["app"], "2", json!({})));
    write_until_lines_show(&out, &log, "2").await;

    // History expired: the agent lists again (410 Gone), and lines read
    // meanwhile keep the metadata it had.
    server.expire_watches();
    server.apply(Resource::Pods, web_pod(pod, &["app"], "3", json!({})));
    write_until_lines_show(&out, &log, "3").await;
    assert!(
        server.lists(Resource::Pods) > lists,
        "no relist after 410 Gone"
    );
    assert_eq!(
        agent
            .metric("log_collector_lines_without_metadata_total")
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn excluded_pods_and_containers_ship_nothing_until_the_annotation_is_removed() {
    let server = cluster().await;
    let excluded = json!({"app-v02.io/exclude-logs": "true"});
    server.apply(Resource::Pods, web_pod("quiet", &["app"], "1", excluded));
    let sidecar_excluded = json!({"app-v02.io/exclude-containers": "sidecar"});
    server.apply(
        Resource::Pods,
        web_pod("mixed", &["app", "sidecar"], "1", sidecar_excluded),
    );
    let (node, out, agent) = agent(server.url(), &[]);
    let quiet = log_of(&node, "quiet", "app");
    let sidecar = log_of(&node, "mixed", "sidecar");
    let app = log_of(&node, "mixed", "app");

    append(&quiet, &cri("quiet while excluded"));
    append(&sidecar, &cri("sidecar while excluded"));
    append(&app, &cri("app of mixed"));
    shipped_line(&out, "app of mixed").await;
    // Another round through every file: the excluded ones were read too.
    append(&app, &cri("app of mixed, later"));
    shipped_line(&out, "app of mixed, later").await;
    testkit::eventually("both excluded lines counted", || async {
        agent.metric("log_collector_excluded_lines_total").await >= 2.0
    })
    .await;

    // The annotation removed: shipping resumes from the position then.
    server.apply(Resource::Pods, web_pod("quiet", &["app"], "1", json!({})));
    let written = std::sync::atomic::AtomicUsize::new(0);
    testkit::eventually("a line of the pod once it is no longer excluded", || {
        let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        append(&quiet, &cri(&format!("quiet again {n}")));
        let resumed = shipped(&out).iter().any(|line| line["pod"] == "quiet");
        async move { resumed }
    })
    .await;
    let messages: Vec<String> = shipped(&out)
        .iter()
        .filter_map(|line| line["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !messages
            .iter()
            .any(|message| message.ends_with("while excluded")),
        "an excluded line was shipped: {messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_api_server_lines_ship_with_path_metadata_and_are_counted() {
    let closed = format!("http://127.0.0.1:{}", testkit::free_port());
    let wait = ("COLLECTOR_KUBERNETES_WAIT_MS", "300".to_owned());
    let (node, out, agent) = agent(&closed, &[wait]);
    let log = log_of(&node, "web-5c4f-abcde", "app");
    append(&log, &format!("{}{}", cri("one"), cri("two")));
    let line = shipped_line(&out, "two").await;
    assert_eq!(line["pod"], "web-5c4f-abcde");
    assert!(line.get("labels").is_none(), "{line}");
    testkit::eventually("the lines without metadata counted", || async {
        agent
            .metric("log_collector_lines_without_metadata_total")
            .await
            == 2.0
    })
    .await;
    let body = agent.metrics().await.unwrap();
    let errors = testkit::sample_labelled(
        &body,
        "log_collector_kubernetes_watch_errors_total",
        "watch=\"pods\"",
    );
    assert!(errors.is_some_and(|errors| errors >= 1.0), "{body}");
    // Ready all the same, saying why lines lack metadata.
    let (status, body) = ready(&agent).await;
    assert_eq!(status, 200);
    let pods = body["kubernetes"]["pods"].as_str().unwrap_or_default();
    assert!(pods.starts_with("failing: "), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_lines_of_a_deleted_pod_still_carry_its_metadata() {
    let pod = "web-5c4f-gone1";
    let (server, _node, out, _agent, log) = one_pod_running(pod).await;
    append(&log, &cri("while running"));
    assert_eq!(
        shipped_line(&out, "while running").await["labels"]["version"],
        "1"
    );

    // The pod is deleted; kubelet keeps its log files a while, and the
    // agent is still reading them.
    server.delete(Resource::Pods, "default", pod);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    append(&log, &cri("last words"));
    let line = shipped_line(&out, "last words").await;
    assert_eq!(line["labels"]["version"], "1", "{line}");
    assert_eq!(line["owner"], json!({"kind": "Deployment", "name": "web"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redis_stream_sink_carries_the_metadata_as_fields() {
    let server = cluster().await;
    let pod = "web-5c4f-redis";
    server.apply(Resource::Pods, web_pod(pod, &["app"], "1", json!({})));
    let redis = testkit::RedisServer::start();
    let node = Node::new();
    let mut env = common::redis_sink(redis.port(), "logs");
    env.push(("COLLECTOR_KUBERNETES_METADATA", "true".to_owned()));
    env.push(("COLLECTOR_KUBERNETES_API_URL", server.url().to_owned()));
    let _agent = Agent::start(&node, &env);
    append(&log_of(&node, pod, "app"), &cri("to the stream"));
    testkit::eventually("the line in the stream", || async {
        !common::stream_entries(&redis, "logs").await.is_empty()
    })
    .await;
    let entry = common::stream_entries(&redis, "logs").await.remove(0);
    assert_eq!(entry["message"], "to the stream");
    let labels: Value = serde_json::from_str(&entry["labels"]).unwrap();
    assert_eq!(labels["version"], "1", "{entry:?}");
    assert_eq!(entry["owner_kind"], "Deployment");
    assert_eq!(entry["owner_name"], "web");
    assert_eq!(entry["image"], "nginx:1.27");
    let node_labels: Value = serde_json::from_str(&entry["node_labels"]).unwrap();
    assert_eq!(
        node_labels,
        json!({"topology.kubernetes.io/zone": "zone-1"})
    );
    let namespace_labels: Value = serde_json::from_str(&entry["namespace_labels"]).unwrap();
    assert_eq!(namespace_labels, json!({"team": "storage"}));
    assert!(!entry.contains_key("annotations"), "none allowed: left out");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_loki_sink_makes_the_named_pod_labels_stream_labels() {
    let server = cluster().await;
    let pod = "web-5c4f-loki1";
    server.apply(Resource::Pods, web_pod(pod, &["app"], "1", json!({})));
    let loki = LokiReceiver::start().await;
    let node = Node::new();
    let _agent = Agent::start(
        &node,
        &[
            ("COLLECTOR_SINK", "loki".into()),
            ("COLLECTOR_LOKI_URL", loki.base_url.clone()),
            (
                "COLLECTOR_LOKI_POD_LABELS",
                "app.kubernetes.io/name,version".into(),
            ),
            ("COLLECTOR_KUBERNETES_METADATA", "true".into()),
            ("COLLECTOR_KUBERNETES_API_URL", server.url().to_owned()),
        ],
    );
    let log = log_of(&node, pod, "app");
    let labels_of = |message: &str| {
        loki.lines()
            .into_iter()
            .find_map(|(labels, line)| (line == message).then_some(labels))
    };
    append(&log, &cri("to loki"));
    testkit::eventually("the line in Loki", || {
        let arrived = labels_of("to loki").is_some();
        async move { arrived }
    })
    .await;
    // The named pod labels, under Loki's names; nothing else of the pod
    // (its template hash, owner, image) becomes a label.
    let expected = |version: &str| {
        BTreeMap::from(
            [
                ("node", common::NODE),
                ("namespace", "default"),
                ("pod", pod),
                ("container", "app"),
                ("app_kubernetes_io_name", "api"),
                ("version", version),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        )
    };
    assert_eq!(labels_of("to loki"), Some(expected("1")));

    // A changed value starts a stream of its own.
    server.apply(Resource::Pods, web_pod(pod, &["app"], "2", json!({})));
    let written = std::sync::atomic::AtomicUsize::new(0);
    testkit::eventually("a line in the stream of version 2", || {
        let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        append(&log, &cri(&format!("after the change {n}")));
        let changed = loki
            .lines()
            .iter()
            .any(|(labels, _)| labels.get("version").is_some_and(|v| v == "2"));
        async move { changed }
    })
    .await;
    let (labels, line) = loki.lines().pop().unwrap();
    assert_eq!(labels, expected("2"), "{line}");
    assert_eq!(loki.violations(), Vec::<String>::new());
}
