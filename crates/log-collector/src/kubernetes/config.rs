//! The metadata source's variables (`COLLECTOR_KUBERNETES_*`).

use std::time::Duration;

use super::MetadataSettings;
use crate::config::comma_separated;

#[derive(Debug, Clone, clap::Args)]
pub struct KubernetesArgs {
    /// Enrich lines with what the Kubernetes API server knows of their pods:
    /// labels, owner, image, namespace and node labels (true/false). Needs
    /// get/list/watch on pods, namespaces and nodes. On in the DaemonSet,
    /// off by default.
    #[arg(long, env = "COLLECTOR_KUBERNETES_METADATA", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub collector_kubernetes_metadata: bool,

    /// The API server's URL; by default the cluster the agent runs in, with
    /// its service account.
    #[arg(long, env = "COLLECTOR_KUBERNETES_API_URL")]
    pub collector_kubernetes_api_url: Option<String>,

    /// Pod annotations lines carry, comma-separated (none by default).
    #[arg(long, env = "COLLECTOR_KUBERNETES_ANNOTATIONS", default_value = "")]
    pub collector_kubernetes_annotations: String,

    /// Node labels lines carry, comma-separated.
    #[arg(
        long,
        env = "COLLECTOR_KUBERNETES_NODE_LABELS",
        default_value = "topology.kubernetes.io/zone,topology.kubernetes.io/region"
    )]
    pub collector_kubernetes_node_labels: String,

    /// How long a deleted pod's metadata is kept, for the lines of its files
    /// still to be read.
    #[arg(long, env = "COLLECTOR_KUBERNETES_DELETION_DELAY_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub collector_kubernetes_deletion_delay_seconds: u64,

    /// How long the lines of a file whose pod is not known yet wait for its
    /// metadata before they are shipped without it (other files are read
    /// meanwhile).
    #[arg(long, env = "COLLECTOR_KUBERNETES_WAIT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub collector_kubernetes_wait_ms: u64,
}

/// Where the metadata comes from, when it is on.
#[derive(Debug, Clone)]
pub struct KubernetesSettings {
    /// `None`: the cluster the agent runs in.
    pub api_url: Option<String>,
    pub metadata: MetadataSettings,
    /// How long a file's lines wait for its pod's metadata.
    pub wait: Duration,
}

impl KubernetesArgs {
    /// `None` when the metadata source is off.
    pub fn settings(&self, node: &str) -> Option<KubernetesSettings> {
        self.collector_kubernetes_metadata
            .then(|| KubernetesSettings {
                api_url: self.collector_kubernetes_api_url.clone(),
                metadata: MetadataSettings {
                    node_name: node.to_owned(),
                    annotations: names(&self.collector_kubernetes_annotations),
                    node_labels: names(&self.collector_kubernetes_node_labels),
                    deletion_delay: Duration::from_secs(
                        self.collector_kubernetes_deletion_delay_seconds,
                    ),
                },
                wait: Duration::from_millis(self.collector_kubernetes_wait_ms),
            })
    }
}

fn names(list: &str) -> Vec<String> {
    comma_separated(list).map(str::to_owned).collect()
}
