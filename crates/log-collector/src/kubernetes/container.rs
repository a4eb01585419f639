//! One container's view of the metadata source, as the reader of its log
//! file uses it: the enrichment of its lines, looked up again only when
//! something changed, and how long its lines may wait for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Enrichment, Metadata};

/// One container's metadata as its lines are read: looked up again only
/// when something changed since the last look.
#[derive(Debug)]
pub struct ContainerMetadata {
    metadata: Metadata,
    pod_uid: String,
    container: String,
    /// Until then, lines wait for the pod's metadata.
    wait_until: Instant,
    /// The generation `current` was looked up at.
    seen: Option<u64>,
    current: Option<Arc<Enrichment>>,
}

impl ContainerMetadata {
    /// The metadata of `container` of the pod `pod_uid`, for whose lines it
    /// is worth waiting up to `wait` from now.
    pub fn new(metadata: Metadata, pod_uid: &str, container: &str, wait: Duration) -> Self {
        Self {
            metadata,
            pod_uid: pod_uid.to_owned(),
            container: container.to_owned(),
            wait_until: Instant::now() + wait,
            seen: None,
            current: None,
        }
    }

    /// What the container's lines carry now (`None` while its pod is not
    /// known).
    pub fn current(&mut self) -> Option<Arc<Enrichment>> {
        let generation = self.metadata.generation();
        if self.seen != Some(generation) {
            self.current = self
                .metadata
                .pod(&self.pod_uid)
                .map(|found| Enrichment::new(found, &self.container));
            self.seen = Some(generation);
        }
        self.current.clone()
    }

    /// Whether the lines should still wait before they go out, given what
    /// [`Self::current`] found: the pod is not known yet, or its
    /// namespace's and node's labels are not (the watches list in
    /// parallel), and the wait is not over.
    pub fn should_wait(&self, current: Option<&Enrichment>) -> bool {
        let incomplete = current.is_none() || !self.metadata.surroundings_listed();
        incomplete && Instant::now() < self.wait_until
    }
}
