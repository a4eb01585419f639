//! The agent's Prometheus metrics, all prefixed `log_collector_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why lines were dropped (only ever on a sink's explicit refusal).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropReason {
    pub reason: &'static str,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub lines_shipped: Counter,
    pub batches_shipped: Counter,
    pub send_errors: Counter,
    pub retries: Counter,
    pub files_watched: Gauge,
    pub truncated_lines: Counter,
    pub malformed_lines: Counter,
    pub invalid_utf8_lines: Counter,
    pub dropped_lines: Family<DropReason, Counter>,
    pub file_truncations: Counter,
    pub rotations: Counter,
    pub rescans: Counter,
    pub checkpoint_writes: Counter,
    pub checkpoint_errors: Counter,
    /// Bytes of lines read but not yet acknowledged by the sink.
    pub buffered_bytes: Gauge,
    /// Bytes of unfinished lines held in memory, against
    /// `COLLECTOR_LINE_BUFFER_BYTES`.
    pub line_buffer_bytes: Gauge,
    pub split_lines: Counter,
    /// Files found while every open-file slot was taken.
    pub files_waiting: Gauge,
    pub lost_lines: Counter,
    /// Container log lines shipped without Kubernetes metadata.
    pub lines_without_metadata: Counter,
    /// Lines of excluded pods and containers, not shipped.
    pub excluded_lines: Counter,
    pub kubernetes_watch_errors: Family<Watch, Counter>,
}

/// Which watch of the Kubernetes metadata source.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Watch {
    pub watch: &'static str,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("log_collector");
        let counters = [
            ("lines_read", "Lines read from files", &self.lines_read),
            ("bytes_read", "Bytes read from files", &self.bytes_read),
            (
                "lines_shipped",
                "Lines acknowledged by the sink",
                &self.lines_shipped,
            ),
            (
                "batches_shipped",
                "Batches acknowledged by the sink",
                &self.batches_shipped,
            ),
            (
                "send_errors",
                "Failed attempts to ship a batch",
                &self.send_errors,
            ),
            (
                "retries",
                "Attempts to ship a batch again after a failure",
                &self.retries,
            ),
            (
                "truncated_lines",
                "Lines cut at COLLECTOR_MAX_LINE_BYTES",
                &self.truncated_lines,
            ),
            (
                "malformed_lines",
                "Container log lines that are neither CRI nor docker json (kept as text)",
                &self.malformed_lines,
            ),
            (
                "invalid_utf8_lines",
                "Lines with invalid UTF-8 (replaced by U+FFFD)",
                &self.invalid_utf8_lines,
            ),
            (
                "file_truncations",
                "Files found shorter than the position read (copytruncate); read again from 0",
                &self.file_truncations,
            ),
            (
                "rotations",
                "Files that left their path (renamed or deleted) and were read to their end",
                &self.rotations,
            ),
            (
                "rescans",
                "Evaluations of the path globs: periodic, or soon after a change under them",
                &self.rescans,
            ),
            (
                "lost_lines",
                "Lines of files that left the disk before a slot to read them freed (COLLECTOR_MAX_OPEN_FILES)",
                &self.lost_lines,
            ),
            (
                "split_lines",
                "Partial lines shipped before their last part, to stay within COLLECTOR_LINE_BUFFER_BYTES",
                &self.split_lines,
            ),
            (
                "checkpoint_writes",
                "Checkpoint files written",
                &self.checkpoint_writes,
            ),
            (
                "lines_without_metadata",
                "Container log lines shipped without Kubernetes metadata (pod not known in time, or the API server unreachable)",
                &self.lines_without_metadata,
            ),
            (
                "excluded_lines",
                "Lines of pods or containers excluded by annotation, not shipped",
                &self.excluded_lines,
            ),
            (
                "checkpoint_errors",
                "Checkpoint files that could not be written or read",
                &self.checkpoint_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "kubernetes_watch_errors",
            "Failed lists or watches of the Kubernetes API server, by watch; retried with backoff",
            self.kubernetes_watch_errors.clone(),
        );
        registry.register(
            "dropped_lines",
            "Lines a sink refused for good (Loki 400, a single line over 413)",
            self.dropped_lines.clone(),
        );
        registry.register(
            "files_watched",
            "Files open for reading",
            self.files_watched.clone(),
        );
        registry.register(
            "buffered_bytes",
            "Bytes read but not yet acknowledged by the sink",
            self.buffered_bytes.clone(),
        );
        registry.register(
            "files_waiting",
            "Files found while every open-file slot (COLLECTOR_MAX_OPEN_FILES) was taken",
            self.files_waiting.clone(),
        );
        registry.register(
            "line_buffer_bytes",
            "Bytes of unfinished lines held in memory (at most COLLECTOR_LINE_BUFFER_BYTES)",
            self.line_buffer_bytes.clone(),
        );
    }

    pub fn dropped(&self, reason: &'static str, lines: usize) {
        self.dropped_lines
            .get_or_create(&DropReason { reason })
            .inc_by(lines as u64);
    }
}
