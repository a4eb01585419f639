//! How the agent recognises its own logs, so that it never reads them: the
//! agent's output is written by the runtime into one of the files it tails,
//! and reading it would ship each line again, escaped once more, until lines
//! hit the length limit.
//!
//! - Kubernetes: its pod, by `POD_NAMESPACE`/`POD_NAME` (downward API) or
//!   by the pod UID in its cgroup path; the kubelet layout names both.
//! - Docker (Compose): its container ID, from `COLLECTOR_OWN_CONTAINER_ID`
//!   or from `/proc/self/mountinfo` (Docker bind-mounts
//!   `/var/lib/docker/containers/<id>/hostname` and friends into every
//!   container) or `/proc/self/cgroup` (cgroup v1 and systemd names); the
//!   json-file layout names it (`containers/<id>/<id>-json.log`).

use std::path::Path;

use crate::origin::Origin;

const CONTAINER_ID_LEN: usize = 64;

/// Everything that identifies the agent's own log files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnLogs {
    /// `(namespace, pod)`.
    pub pod: Option<(String, String)>,
    pub pod_uid: Option<String>,
    pub container_ids: Vec<String>,
}

impl OwnLogs {
    /// The identity given in settings, completed with what the agent's
    /// `/proc/self` tells.
    pub fn detect(pod: Option<(String, String)>, container_id: Option<String>) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cgroup = read("/proc/self/cgroup");
        let mountinfo = read("/proc/self/mountinfo");
        let mut container_ids: Vec<String> = container_id.into_iter().collect();
        for found in container_ids_in(&cgroup).chain(container_ids_in(&mountinfo)) {
            if !container_ids.contains(&found) {
                container_ids.push(found);
            }
        }
        Self {
            pod,
            pod_uid: pod_uid_in(&cgroup),
            container_ids,
        }
    }

    /// Whether the agent itself writes this file.
    pub fn wrote(&self, origin: &Origin) -> bool {
        if let Some(found) = &origin.pod {
            let by_name = self
                .pod
                .as_ref()
                .is_some_and(|(namespace, pod)| found.namespace == *namespace && found.pod == *pod);
            let by_uid = self.pod_uid.as_ref() == Some(&found.pod_uid);
            return by_name || by_uid;
        }
        docker_container_id(&origin.path)
            .is_some_and(|id| self.container_ids.iter().any(|own| own == id))
    }
}

/// `<id>` of `.../containers/<id>/<id>-json.log[.N]`.
fn docker_container_id(path: &Path) -> Option<&str> {
    let id = path.parent()?.file_name()?.to_str()?;
    let file = path.file_name()?.to_str()?;
    file.strip_prefix(id)?
        .starts_with("-json.log")
        .then_some(id)
}

/// Container IDs named in cgroup paths or mount sources: 64 hex digits
/// after a runtime's marker (`containers/`, `docker-`, `docker/`,
/// `cri-containerd-`, `crio-`). Image layer IDs (`overlay2/<id>`) have none.
fn container_ids_in(text: &str) -> impl Iterator<Item = String> + '_ {
    const MARKERS: [&str; 5] = [
        "containers/",
        "docker-",
        "docker/",
        "cri-containerd-",
        "crio-",
    ];
    MARKERS.iter().flat_map(move |marker| {
        text.match_indices(marker).filter_map(move |(at, _)| {
            let rest = &text[at + marker.len()..];
            let id = rest.get(..CONTAINER_ID_LEN)?;
            let ends = rest[CONTAINER_ID_LEN..]
                .chars()
                .next()
                .is_none_or(|next| !next.is_ascii_hexdigit());
            (id.bytes().all(|byte| byte.is_ascii_hexdigit()) && ends).then(|| id.to_owned())
        })
    })
}

/// The pod UID in a kubelet cgroup path: `.../pod<uid>/...` (cgroupfs) or
/// `kubepods-<class>-pod<uid with _>.slice` (systemd).
fn pod_uid_in(cgroup: &str) -> Option<String> {
    cgroup.match_indices("pod").find_map(|(at, _)| {
        let preceded = cgroup[..at].ends_with('/') || cgroup[..at].ends_with('-');
        let rest = &cgroup[at + 3..];
        let end = rest
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        let uid = rest[..end].replace('_', "-");
        (preceded && uid.len() == 36 && uid.matches('-').count() == 4).then_some(uid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1b2c9d8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e";

    #[test]
    fn docker_ids_are_found_in_mountinfo_and_cgroup_but_not_layers() {
        let mountinfo = format!(
            "1203 1162 0:58 / / rw,relatime master:1 - overlay overlay rw,\
             lowerdir=/var/lib/docker/overlay2/l/ABC:/var/lib/docker/overlay2/{}/diff\n\
             1215 1203 254:1 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda1 rw\n\
             1216 1203 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n",
            "a".repeat(64)
        );
        assert_eq!(container_ids_in(&mountinfo).collect::<Vec<_>>(), [ID, ID]);
        for cgroup in [
            format!("12:pids:/docker/{ID}\n"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope\n"),
        ] {
            assert_eq!(
                container_ids_in(&cgroup).collect::<Vec<_>>(),
                [ID],
                "{cgroup}"
            );
        }
        assert_eq!(container_ids_in("0::/\n").count(), 0);
        assert_eq!(container_ids_in(&format!("docker/{ID}0")).count(), 0);
    }

    #[test]
    fn pod_uids_are_found_in_either_cgroup_driver() {
        let uid = "0c1e4f2a-1b2c-4d3e-8f9a-0b1c2d3e4f5a";
        let systemd = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{ID}.scope\n",
            uid.replace('-', "_")
        );
        let cgroupfs = format!("11:memory:/kubepods/burstable/pod{uid}/{ID}\n");
        assert_eq!(pod_uid_in(&systemd).as_deref(), Some(uid));
        assert_eq!(pod_uid_in(&cgroupfs).as_deref(), Some(uid));
        assert_eq!(pod_uid_in("0::/\n"), None);
        assert_eq!(pod_uid_in("0::/user.slice/podman-1.scope\n"), None);
    }

    #[test]
    fn own_files_in_both_layouts_are_recognised() {
        let own = OwnLogs {
            pod: Some(("logging".into(), "collector-x1".into())),
            pod_uid: Some("uid-own".into()),
            container_ids: vec![ID.into()],
        };
        let wrote = |path: &str| own.wrote(&Origin::new("n", Path::new(path)));
        assert!(wrote("/var/log/pods/logging_collector-x1_uid-1/c/0.log"));
        assert!(wrote("/var/log/pods/other_renamed_uid-own/c/0.log"));
        assert!(!wrote("/var/log/pods/logging_web_uid-2/c/0.log"));
        assert!(wrote(&format!(
            "/var/lib/docker/containers/{ID}/{ID}-json.log"
        )));
        assert!(wrote(&format!(
            "/var/lib/docker/containers/{ID}/{ID}-json.log.1"
        )));
        let other = "b".repeat(64);
        assert!(!wrote(&format!(
            "/var/lib/docker/containers/{other}/{other}-json.log"
        )));
        assert!(!wrote("/var/log/syslog"));
    }
}
