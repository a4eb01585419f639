//! What the lines of one container carry from the API server, encoded once
//! per change of its pod, namespace or node rather than once per line.

use std::sync::Arc;

use super::pod::{Labels, PodMetadata};

/// A container's metadata, ready for every sink.
#[derive(Debug)]
pub struct Enrichment {
    pub metadata: PodMetadata,
    pub image: Option<String>,
    /// The container's lines are not shipped: its pod or namespace is
    /// annotated so (docs/log-collector.md, "Excluding pods").
    pub excluded: bool,
    /// `,"labels":{...},"annotations":{...},"owner":{...},"image":"...",
    /// "node_labels":{...},"namespace_labels":{...}`: what the JSON-lines
    /// sinks insert into every line.
    json_fields: String,
    /// The fields as name and value pairs, maps as JSON objects: what the
    /// Redis Stream sink adds to each entry.
    flat_fields: Vec<(&'static str, String)>,
}

impl Enrichment {
    pub fn new(metadata: PodMetadata, container: &str) -> Arc<Self> {
        let image = metadata.pod.images.get(container).cloned();
        let excluded = metadata.pod.excludes(container) || metadata.namespace.excluded;
        let fields = serde_json::json!({
            "labels": metadata.pod.labels,
            "annotations": metadata.pod.annotations,
            "owner": metadata.pod.owner.as_ref().map(|owner| {
                serde_json::json!({"kind": owner.kind, "name": owner.name})
            }),
            "image": image,
            "node_labels": *metadata.node_labels,
            "namespace_labels": metadata.namespace.labels,
        })
        .to_string();
        // The object's members, to go inside each line's object.
        let json_fields = format!(",{}", &fields[1..fields.len() - 1]);
        let flat_fields = flat_fields(&metadata, image.as_deref());
        Arc::new(Self {
            json_fields,
            flat_fields,
            metadata,
            image,
            excluded,
        })
    }

    /// The fields for a JSON line, each preceded by a comma.
    pub fn json_fields(&self) -> &str {
        &self.json_fields
    }

    /// The fields as name and value pairs (see the field).
    pub fn flat_fields(&self) -> &[(&'static str, String)] {
        &self.flat_fields
    }
}

fn flat_fields(metadata: &PodMetadata, image: Option<&str>) -> Vec<(&'static str, String)> {
    let pod = &metadata.pod;
    let mut fields = vec![
        ("labels", map_json(&pod.labels)),
        ("annotations", map_json(&pod.annotations)),
        ("node_labels", map_json(&metadata.node_labels)),
        ("namespace_labels", map_json(&metadata.namespace.labels)),
    ];
    if let Some(owner) = &pod.owner {
        fields.push(("owner_kind", owner.kind.clone()));
        fields.push(("owner_name", owner.name.clone()));
    }
    if let Some(image) = image {
        fields.push(("image", image.to_owned()));
    }
    fields
}

fn map_json(map: &Labels) -> String {
    serde_json::Value::from_iter(
        map.iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::from(value.as_str()))),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::kubernetes::{NamespaceInfo, Owner, PodInfo};

    #[test]
    fn the_json_fields_are_valid_json_with_every_field() {
        let pod = PodInfo {
            namespace: "app-v02".into(),
            name: "api-1".into(),
            labels: Labels::from([("app".into(), "a \"quoted\" \\ value\n".into())]),
            annotations: Labels::new(),
            owner: Some(Owner {
                kind: "Deployment".into(),
                name: "api".into(),
            }),
            images: HashMap::from([("api".into(), "app-v02/api:0.2.0".into())]),
            excluded: false,
            excluded_containers: vec!["sidecar".into()],
        };
        let metadata = PodMetadata {
            pod: Arc::new(pod),
            namespace: Arc::new(NamespaceInfo {
                labels: Labels::from([("team".into(), "storage".into())]),
                excluded: false,
            }),
            node_labels: Arc::default(),
        };
        let enrichment = Enrichment::new(metadata, "api");
        let line = format!("{{\"message\":\"m\"{}}}", enrichment.json_fields());
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["labels"]["app"], "a \"quoted\" \\ value\n");
        assert_eq!(parsed["annotations"], serde_json::json!({}));
        assert_eq!(
            parsed["owner"],
            serde_json::json!({"kind": "Deployment", "name": "api"})
        );
        assert_eq!(parsed["image"], "app-v02/api:0.2.0");
        assert_eq!(parsed["node_labels"], serde_json::json!({}));
        assert_eq!(parsed["namespace_labels"]["team"], "storage");
        // Another container of the pod: no image known.
        let other = Enrichment::new(enrichment.metadata.clone(), "sidecar");
        let line = format!("{{\"message\":\"m\"{}}}", other.json_fields());
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["image"], serde_json::Value::Null);
        assert!(other.excluded && !enrichment.excluded);
    }
}
