//! What a file is, learned from its path: a container log under the
//! kubelet's layout (`.../pods/<namespace>_<pod>_<uid>/<container>/<n>.log`)
//! with its Kubernetes metadata, or a plain file.

use std::path::{Path, PathBuf};

/// How the lines of a file are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Written by a container runtime: CRI (`<time> <stream> <P|F> <msg>`) or
    /// docker json-file, recognised line by line.
    Container,
    /// Anything else: one message per line.
    Plain,
}

/// The Kubernetes coordinates of a container log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodContainer {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
}

/// A tailed file's identity for the people reading its lines.
#[derive(Debug)]
pub struct Origin {
    pub node: String,
    /// The path the file was found under (a rotated file keeps it).
    pub path: PathBuf,
    pub format: Format,
    pub pod: Option<PodContainer>,
    /// `,"node":...,"file":...}`: the end of every JSON line this file
    /// produces, encoded once (the file and stdout sinks append it as is).
    json_tail: String,
}

impl Origin {
    pub fn new(node: &str, path: &Path) -> Self {
        let pod = pod_container(path);
        let format = if pod.is_some() || is_docker_json_log(path) {
            Format::Container
        } else {
            Format::Plain
        };
        let json_tail = json_tail(node, path, pod.as_ref());
        Self {
            node: node.to_owned(),
            path: path.to_owned(),
            format,
            pod,
            json_tail,
        }
    }

    pub fn json_tail(&self) -> &str {
        &self.json_tail
    }
}

/// `.../pods/<namespace>_<pod>_<uid>/<container>/<file>`. Namespaces, pod
/// names and uids never contain `_` (DNS names and UUIDs), so the split is
/// unambiguous.
pub fn pod_container(path: &Path) -> Option<PodContainer> {
    let container_dir = path.parent()?;
    let pod_dir = container_dir.parent()?;
    if pod_dir.parent()?.file_name()? != "pods" {
        return None;
    }
    let container = container_dir.file_name()?.to_str()?;
    let mut parts = pod_dir.file_name()?.to_str()?.split('_');
    let (namespace, pod, pod_uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [namespace, pod, pod_uid, container].contains(&"") {
        return None;
    }
    Some(PodContainer {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        pod_uid: pod_uid.to_owned(),
        container: container.to_owned(),
    })
}

/// Docker's own log files, `.../containers/<id>/<id>-json.log` (what the
/// collector tails outside Kubernetes, e.g. under Docker Compose).
fn is_docker_json_log(path: &Path) -> bool {
    let in_containers_dir = path
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|name| name == "containers");
    let json_file = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.ends_with("-json.log"));
    in_containers_dir && json_file
}

fn json_tail(node: &str, path: &Path, pod: Option<&PodContainer>) -> String {
    let text = |value: &str| serde_json::Value::from(value).to_string();
    let optional = |value: Option<&str>| value.map_or_else(|| "null".to_owned(), text);
    format!(
        r#","node":{},"namespace":{},"pod":{},"pod_uid":{},"container":{},"file":{}}}"#,
        text(node),
        optional(pod.map(|p| p.namespace.as_str())),
        optional(pod.map(|p| p.pod.as_str())),
        optional(pod.map(|p| p.pod_uid.as_str())),
        optional(pod.map(|p| p.container.as_str())),
        text(&path.to_string_lossy()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_name_the_container() {
        let path = Path::new("/var/log/pods/app-v02_api-7d9f_0c1e-42/api/0.log");
        let origin = Origin::new("node-1", path);
        assert_eq!(origin.format, Format::Container);
        assert_eq!(
            origin.pod,
            Some(PodContainer {
                namespace: "app-v02".into(),
                pod: "api-7d9f".into(),
                pod_uid: "0c1e-42".into(),
                container: "api".into(),
            })
        );
        let tail: serde_json::Value =
            serde_json::from_str(&format!("{{\"x\":1{}", origin.json_tail())).unwrap();
        assert_eq!(tail["node"], "node-1");
        assert_eq!(tail["container"], "api");
        assert_eq!(tail["file"], path.to_str().unwrap());
    }

    #[test]
    fn docker_json_logs_are_container_logs_without_pod() {
        let origin = Origin::new(
            "n",
            Path::new("/var/lib/docker/containers/abc/abc-json.log"),
        );
        assert_eq!(origin.format, Format::Container);
        assert_eq!(origin.pod, None);
        let other = Origin::new("n", Path::new("/var/lib/docker/other/abc/abc-json.log"));
        assert_eq!(other.format, Format::Plain);
    }

    #[test]
    fn other_paths_are_plain_files() {
        for raw in [
            "/var/log/syslog",
            "/var/log/pods/not-three-parts/c/0.log",
            "/var/log/pods/a_b_c_d/c/0.log",
            "/var/log/other/ns_pod_uid/c/0.log",
        ] {
            let origin = Origin::new("n", Path::new(raw));
            assert_eq!(origin.format, Format::Plain, "{raw}");
            let tail: serde_json::Value =
                serde_json::from_str(&format!("{{\"x\":1{}", origin.json_tail())).unwrap();
            assert!(tail["pod"].is_null());
        }
    }
}
