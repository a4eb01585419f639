//! What the lines of one container carry from the API server, encoded once
//! per change of its pod, namespace or node rather than once per line.

use std::sync::Arc;

use super::pod::{Labels, Owner, PodMetadata};

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
    /// sinks insert into every line. Every byte of it is written once per
    /// line, so a map with nothing in it and an unknown owner or image are
    /// left out rather than written as `{}` or `null`.
    json_fields: String,
    /// The fields as name and value pairs, maps as JSON objects: what the
    /// Redis Stream sink adds to each entry.
    flat_fields: Vec<(&'static str, String)>,
}

impl Enrichment {
    pub fn new(metadata: PodMetadata, container: &str) -> Arc<Self> {
        let image = metadata.pod.images.get(container).cloned();
        let excluded = metadata.pod.excludes(container) || metadata.namespace.excluded;
        let json_fields = json_fields(&metadata, image.as_deref());
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

/// One field of a line, as the container's metadata has it.
enum Field<'a> {
    Map(&'a Labels),
    Owner(&'a Owner),
    Text(&'a str),
}

fn json_fields(metadata: &PodMetadata, image: Option<&str>) -> String {
    let mut fields = String::new();
    for (name, field) in named_fields(metadata, image) {
        let value = match field {
            Field::Map(map) => serde_json::json!(map),
            Field::Owner(owner) => serde_json::json!({"kind": owner.kind, "name": owner.name}),
            Field::Text(text) => serde_json::json!(text),
        };
        fields.push_str(&format!(",\"{name}\":{value}"));
    }
    fields
}

fn flat_fields(metadata: &PodMetadata, image: Option<&str>) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    for (name, field) in named_fields(metadata, image) {
        match field {
            Field::Map(map) => fields.push((name, serde_json::json!(map).to_string())),
            // Two plain fields, which a reader of the stream can match on.
            Field::Owner(owner) => {
                fields.push(("owner_kind", owner.kind.clone()));
                fields.push(("owner_name", owner.name.clone()));
            }
            Field::Text(text) => fields.push((name, text.to_owned())),
        }
    }
    fields
}

/// Every field a line carries, by name, in the order lines carry them;
/// empty maps and unknown values are not there.
fn named_fields<'a>(
    metadata: &'a PodMetadata,
    image: Option<&'a str>,
) -> Vec<(&'static str, Field<'a>)> {
    let pod = &metadata.pod;
    let fields = [
        ("labels", Some(Field::Map(&pod.labels))),
        ("annotations", Some(Field::Map(&pod.annotations))),
        ("owner", pod.owner.as_ref().map(Field::Owner)),
        ("image", image.map(Field::Text)),
        ("node_labels", Some(Field::Map(&metadata.node_labels))),
        (
            "namespace_labels",
            Some(Field::Map(&metadata.namespace.labels)),
        ),
    ];
    fields
        .into_iter()
        .filter_map(|(name, field)| match field? {
            Field::Map(map) if map.is_empty() => None,
            field => Some((name, field)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::kubernetes::{NamespaceInfo, PodInfo};

    #[test]
    fn the_fields_are_valid_json_without_empty_or_unknown_ones() {
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
        assert!(parsed.get("annotations").is_none(), "empty: left out");
        assert_eq!(
            parsed["owner"],
            serde_json::json!({"kind": "Deployment", "name": "api"})
        );
        assert_eq!(parsed["image"], "app-v02/api:0.2.0");
        assert!(parsed.get("node_labels").is_none(), "empty: left out");
        assert_eq!(parsed["namespace_labels"]["team"], "storage");
        // Another container of the pod: no image known.
        let other = Enrichment::new(enrichment.metadata.clone(), "sidecar");
        let line = format!("{{\"message\":\"m\"{}}}", other.json_fields());
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(parsed.get("image").is_none(), "unknown: left out");
        let flat: Vec<(&str, &str)> = other
            .flat_fields()
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        assert_eq!(
            flat,
            [
                ("labels", r#"{"app":"a \"quoted\" \\ value\n"}"#),
                ("owner_kind", "Deployment"),
                ("owner_name", "api"),
                ("namespace_labels", r#"{"team":"storage"}"#),
            ]
        );
        assert!(other.excluded && !enrichment.excluded);
    }
}
