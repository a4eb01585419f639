//! What the collector keeps of a pod: the fields its lines are enriched
//! with, taken once per change of the pod rather than per line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::config::comma_separated;

/// A label or annotation map.
pub type Labels = BTreeMap<String, String>;

/// On a pod or a namespace, `"true"`: none of its lines are shipped.
pub const EXCLUDE_LOGS: &str = "app-v02.io/exclude-logs";
/// On a pod, `"a,b"`: the lines of containers `a` and `b` are not shipped.
pub const EXCLUDE_CONTAINERS: &str = "app-v02.io/exclude-containers";

/// The workload a pod belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `ReplicaSet` (one
    /// not made by a Deployment), ...
    pub kind: String,
    pub name: String,
}

/// A pod's own metadata, as of its last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// Only the annotations on the allow-list.
    pub annotations: Labels,
    pub owner: Option<Owner>,
    /// Each container's image, init containers included.
    pub images: HashMap<String, String>,
    /// `app-v02.io/exclude-logs: "true"` on the pod.
    pub excluded: bool,
    /// The containers named by `app-v02.io/exclude-containers`.
    pub excluded_containers: Vec<String>,
}

impl PodInfo {
    /// The parts of `pod` the collector keeps; `annotations` is the
    /// allow-list of annotation names.
    pub fn of(pod: &Pod, annotations: &[String]) -> Self {
        let metadata = &pod.metadata;
        let labels = metadata.labels.clone().unwrap_or_default();
        let kept = metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(name, _)| annotations.iter().any(|allowed| allowed == *name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let images = pod
            .spec
            .iter()
            .flat_map(|spec| {
                spec.containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
            })
            .filter_map(|container| Some((container.name.clone(), container.image.clone()?)))
            .collect();
        let annotation = |name: &str| {
            metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(name))
        };
        Self {
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            owner: owner_of(pod, &labels),
            labels,
            annotations: kept,
            images,
            excluded: annotation(EXCLUDE_LOGS).is_some_and(|value| is_true(value)),
            excluded_containers: annotation(EXCLUDE_CONTAINERS)
                .map(|list| comma_separated(list).map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether the lines of `container` are excluded by the pod's
    /// annotations.
    pub fn excludes(&self, container: &str) -> bool {
        self.excluded
            || self
                .excluded_containers
                .iter()
                .any(|name| name == container)
    }
}

/// An annotation's `"true"`, as people write it.
pub fn is_true(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

/// What the collector keeps of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub labels: Labels,
    /// `app-v02.io/exclude-logs: "true"` on the namespace.
    pub excluded: bool,
}

/// The pod's controller, resolved through a ReplicaSet to its Deployment.
///
/// A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>` and
/// labels their pods `pod-template-hash=<hash>`, so the Deployment is known
/// from the pod alone: no ReplicaSet needs to be read, which would take a
/// watch of every ReplicaSet in the cluster (memory) and RBAC beyond pods,
/// namespaces and nodes.
fn owner_of(pod: &Pod, labels: &Labels) -> Option<Owner> {
    let references = pod.metadata.owner_references.as_ref()?;
    let reference = references
        .iter()
        .find(|reference| reference.controller == Some(true))
        .or_else(|| references.first())?;
    if reference.kind == "ReplicaSet"
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deployment) = reference
            .name
            .strip_suffix(hash.as_str())
            .and_then(|prefix| prefix.strip_suffix('-'))
        && !deployment.is_empty()
    {
        return Some(Owner {
            kind: "Deployment".to_owned(),
            name: deployment.to_owned(),
        });
    }
    Some(Owner {
        kind: reference.kind.clone(),
        name: reference.name.clone(),
    })
}

/// A pod's metadata with its namespace's and node's labels: everything a
/// line of the pod is enriched with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetadata {
    pub pod: Arc<PodInfo>,
    pub namespace: Arc<NamespaceInfo>,
    /// Only the node labels on the allow-list.
    pub node_labels: Arc<Labels>,
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn pod_owned_by(kind: &str, name: &str, hash: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.owner_references = Some(vec![OwnerReference {
            kind: kind.to_owned(),
            name: name.to_owned(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        if let Some(hash) = hash {
            pod.metadata.labels = Some(Labels::from([("pod-template-hash".into(), hash.into())]));
        }
        pod
    }

    fn owner(pod: &Pod) -> Option<(String, String)> {
        PodInfo::of(pod, &[])
            .owner
            .map(|owner| (owner.kind, owner.name))
    }

    #[test]
    fn a_replica_set_of_a_deployment_resolves_to_the_deployment() {
        let pod = pod_owned_by("ReplicaSet", "api-7d9f8b6c5", Some("7d9f8b6c5"));
        assert_eq!(owner(&pod), Some(("Deployment".into(), "api".into())));
        // A name with dashes of its own.
        let pod = pod_owned_by("ReplicaSet", "my-web-app-5c4f", Some("5c4f"));
        assert_eq!(
            owner(&pod),
            Some(("Deployment".into(), "my-web-app".into()))
        );
    }

    #[test]
    fn other_owners_are_kept_as_they_are() {
        // A ReplicaSet made by hand: no template hash in its name.
        let pod = pod_owned_by("ReplicaSet", "hand-made", Some("abc12"));
        assert_eq!(owner(&pod), Some(("ReplicaSet".into(), "hand-made".into())));
        let pod = pod_owned_by("ReplicaSet", "no-hash-label", None);
        assert_eq!(
            owner(&pod),
            Some(("ReplicaSet".into(), "no-hash-label".into()))
        );
        let pod = pod_owned_by("StatefulSet", "redis", None);
        assert_eq!(owner(&pod), Some(("StatefulSet".into(), "redis".into())));
        assert_eq!(owner(&Pod::default()), None);
    }

    #[test]
    fn exclusion_annotations_name_the_pod_or_its_containers() {
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(Labels::from([(
            EXCLUDE_CONTAINERS.into(),
            " istio-proxy, debug ".into(),
        )]));
        let info = PodInfo::of(&pod, &[]);
        assert!(info.excludes("istio-proxy") && info.excludes("debug"));
        assert!(!info.excludes("app"));
        pod.metadata.annotations = Some(Labels::from([(EXCLUDE_LOGS.into(), "True".into())]));
        assert!(PodInfo::of(&pod, &[]).excludes("app"));
        pod.metadata.annotations = Some(Labels::from([(EXCLUDE_LOGS.into(), "false".into())]));
        assert!(!PodInfo::of(&pod, &[]).excludes("app"));
    }

    #[test]
    fn only_allowed_annotations_are_kept() {
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(Labels::from([
            ("team".into(), "payments".into()),
            (
                "kubectl.kubernetes.io/last-applied-configuration".into(),
                "{...}".into(),
            ),
        ]));
        let info = PodInfo::of(&pod, &["team".to_owned()]);
        assert_eq!(
            info.annotations,
            Labels::from([("team".into(), "payments".into())])
        );
        assert!(PodInfo::of(&pod, &[]).annotations.is_empty());
    }
}
