//! The agent's configuration: environment variables (each also a `--flag`),
//! parsed once into typed [`Settings`] so that a wrong value stops the agent
//! at start with a message naming the variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::config::{ConfigError, RedisArgs, RedisSettings};

use crate::kubernetes::{KubernetesArgs, KubernetesSettings};
use crate::own_logs::OwnLogs;
use crate::sinks::{PodLabel, loki};

/// `log-collector`: tails node logs and ships every line to a log center.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Config {
    /// This node's name, attached to every line. Defaults to the host name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// Comma-separated globs of the files to tail. Files under the kubelet
    /// layout (`/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`) are
    /// parsed as CRI or docker json-file lines, any other file as plain lines.
    /// Compressed files (`.gz`, `.zst`, ...) are never read.
    #[arg(
        long,
        env = "COLLECTOR_PATHS",
        default_value = "/var/log/pods/*/*/*.log"
    )]
    pub collector_paths: String,

    /// Writable directory for the checkpoint file (a hostPath in Kubernetes,
    /// so that positions survive the pod).
    #[arg(
        long,
        env = "COLLECTOR_CHECKPOINT_DIR",
        default_value = "/var/lib/log-collector"
    )]
    pub collector_checkpoint_dir: PathBuf,

    /// What to do when a checkpoint exists but neither it nor its previous
    /// version can be read: `refuse` to start (reading every file from its
    /// start would ship the node's logs again), or `start-at-end`: skip what
    /// the files hold now and ship only lines written from here on.
    #[arg(long, env = "COLLECTOR_UNREADABLE_CHECKPOINT", value_enum,
          default_value_t = UnreadableCheckpoint::Refuse)]
    pub collector_unreadable_checkpoint: UnreadableCheckpoint,

    /// Where lines go.
    #[arg(long, env = "COLLECTOR_SINK", value_enum, default_value_t = SinkKind::Stdout)]
    pub collector_sink: SinkKind,

    /// Loki base URL (`http://loki:3100`) or full push URL, for the `loki` sink.
    /// It may carry credentials (`https://user:token@...`): they are sent as
    /// basic authentication and never shown.
    #[arg(long, env = "COLLECTOR_LOKI_URL", hide_env_values = true)]
    pub collector_loki_url: Option<String>,

    /// Pod labels the `loki` sink makes stream labels, comma-separated (with
    /// the Kubernetes metadata source on): a few that name an application,
    /// since every distinct value is a Loki stream. Written with `_` for
    /// what Loki's label names do not allow (`app.kubernetes.io/name` is
    /// `app_kubernetes_io_name`).
    #[arg(
        long,
        env = "COLLECTOR_LOKI_POD_LABELS",
        default_value = "app.kubernetes.io/name,app"
    )]
    pub collector_loki_pod_labels: String,

    /// Redis Stream receiving the lines, for the `redis` sink.
    #[arg(long, env = "COLLECTOR_REDIS_STREAM", default_value = "logs")]
    pub collector_redis_stream: String,

    /// Approximate length the Redis Stream is trimmed to (`XADD ... MAXLEN ~`).
    #[arg(long, env = "COLLECTOR_REDIS_MAXLEN", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub collector_redis_maxlen: u64,

    /// Longest wait for Redis to answer one batch of the `redis` sink (a
    /// batch of thousands of entries takes longer than one command). A batch
    /// answered later is retried and Redis keeps its first copy only.
    #[arg(long, env = "COLLECTOR_REDIS_BATCH_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub collector_redis_batch_timeout_ms: u64,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// File the `file` sink appends JSON lines to.
    #[arg(long, env = "COLLECTOR_FILE_PATH")]
    pub collector_file_path: Option<PathBuf>,

    /// Port of `/health` and `/metrics`; 0 picks a free one (logged).
    #[arg(long, env = "COLLECTOR_PORT", default_value_t = 9180)]
    pub collector_port: u16,

    /// Address `/health` and `/metrics` listen on.
    #[arg(long, env = "COLLECTOR_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub collector_bind_address: IpAddr,

    /// A batch is shipped when it holds this many lines...
    #[arg(long, env = "COLLECTOR_BATCH_LINES", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub collector_batch_lines: u64,

    /// ...or this many bytes of messages. At most three batches exist at once
    /// (one being filled, one queued, one being sent): that bounds memory
    /// when the sink is slow or down, and reading pauses instead.
    #[arg(long, env = "COLLECTOR_BATCH_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub collector_batch_bytes: u64,

    /// ...or when its first line has waited this long.
    #[arg(long, env = "COLLECTOR_BATCH_WAIT_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub collector_batch_wait_ms: u64,

    /// Longest line kept; the rest of a longer line is skipped and counted
    /// (`log_collector_truncated_lines_total`).
    #[arg(long, env = "COLLECTOR_MAX_LINE_BYTES", default_value_t = 256 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=16 * 1024 * 1024))]
    pub collector_max_line_bytes: u64,

    /// Memory for unfinished lines across all files: a file's last line
    /// still waiting for its newline, and runtime partial lines waiting for
    /// their last part. Above it, an unfinished line is dropped from memory
    /// and read again from its file once it grows, and partial lines are
    /// shipped in pieces (`log_collector_split_lines_total`).
    #[arg(long, env = "COLLECTOR_LINE_BUFFER_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(64 * 1024..=1024 * 1024 * 1024))]
    pub collector_line_buffer_bytes: u64,

    /// Most files open for reading at once. While the sink is down reading
    /// pauses, but rotated files are still found and held open, so that a
    /// rotated file deleted meanwhile can be read once the sink is back.
    /// Files found past this limit wait for a slot; their lines are counted
    /// as lost (`log_collector_lost_lines_total`) if they leave the disk
    /// first.
    #[arg(long, env = "COLLECTOR_MAX_OPEN_FILES", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub collector_max_open_files: u64,

    /// How often the globs are evaluated again. File changes wake the agent
    /// at once through inotify; this is the backstop.
    #[arg(long, env = "COLLECTOR_RESCAN_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub collector_rescan_ms: u64,

    /// A rotated or deleted file is closed once it has been read to its end,
    /// shipped, and has not grown for this long.
    #[arg(long, env = "COLLECTOR_ROTATE_WAIT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub collector_rotate_wait_ms: u64,

    /// Longest pause between two attempts to ship a batch (backoff doubles
    /// from 100 ms up to this, with jitter).
    #[arg(long, env = "COLLECTOR_RETRY_MAX_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub collector_retry_max_ms: u64,

    /// On SIGTERM, how long the agent keeps trying to ship what it has read
    /// before it exits anyway (unshipped lines are read again next start).
    #[arg(long, env = "COLLECTOR_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub collector_shutdown_timeout_seconds: u64,

    /// Period of the summary log line `[<node>] collected <N> log lines`.
    #[arg(long, env = "COLLECTOR_SUMMARY_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub collector_summary_seconds: u64,

    /// Namespace of the agent's own pod (downward API); its logs are skipped.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,

    /// Name of the agent's own pod (downward API); its logs are skipped.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// The agent's own container ID (64 hex digits), whose json-file log
    /// (`containers/<id>/<id>-json.log`) is skipped. Found in
    /// `/proc/self/mountinfo` or `/proc/self/cgroup` when unset.
    #[arg(long, env = "COLLECTOR_OWN_CONTAINER_ID")]
    pub collector_own_container_id: Option<String>,

    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnreadableCheckpoint {
    Refuse,
    StartAtEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    Stdout,
    File,
    Loki,
    Redis,
}

/// Where a sink delivers, with everything it needs.
#[derive(Debug, Clone)]
pub enum SinkSettings {
    Stdout,
    File(PathBuf),
    Loki {
        push_url: reqwest::Url,
        pod_labels: Vec<PodLabel>,
    },
    Redis {
        redis: RedisSettings,
        stream: String,
        maxlen: u64,
        batch_timeout: Duration,
    },
}

/// The configuration after validation.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: String,
    pub paths: Vec<glob::Pattern>,
    pub checkpoint_dir: PathBuf,
    pub unreadable_checkpoint: UnreadableCheckpoint,
    pub sink: SinkSettings,
    pub bind: (IpAddr, u16),
    pub batch: BatchLimits,
    pub max_line_bytes: usize,
    pub line_buffer_bytes: usize,
    pub max_open_files: usize,
    pub rescan: Duration,
    pub rotate_wait: Duration,
    pub retry_max: Duration,
    pub shutdown_timeout: Duration,
    pub summary_period: Duration,
    /// The agent's own logs, never collected.
    pub own: OwnLogs,
    /// The Kubernetes metadata source, when it is on.
    pub kubernetes: Option<KubernetesSettings>,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub lines: usize,
    pub bytes: usize,
    pub wait: Duration,
}

impl Config {
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let node = self.node()?;
        Ok(Settings {
            kubernetes: self.kubernetes.settings(&node),
            node,
            paths: self.paths()?,
            checkpoint_dir: self.collector_checkpoint_dir.clone(),
            unreadable_checkpoint: self.collector_unreadable_checkpoint,
            sink: self.sink()?,
            bind: (self.collector_bind_address, self.collector_port),
            batch: BatchLimits {
                lines: to_usize(self.collector_batch_lines),
                bytes: to_usize(self.collector_batch_bytes),
                wait: Duration::from_millis(self.collector_batch_wait_ms),
            },
            max_line_bytes: to_usize(self.collector_max_line_bytes),
            line_buffer_bytes: to_usize(self.collector_line_buffer_bytes),
            max_open_files: to_usize(self.collector_max_open_files),
            rescan: Duration::from_millis(self.collector_rescan_ms),
            rotate_wait: Duration::from_millis(self.collector_rotate_wait_ms),
            retry_max: Duration::from_millis(self.collector_retry_max_ms),
            shutdown_timeout: Duration::from_secs(self.collector_shutdown_timeout_seconds),
            summary_period: Duration::from_secs(self.collector_summary_seconds),
            own: OwnLogs::detect(
                self.pod_namespace.clone().zip(self.pod_name.clone()),
                self.collector_own_container_id.clone(),
            ),
        })
    }

    fn node(&self) -> Result<String, ConfigError> {
        match self.node_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => Ok(name.to_owned()),
            _ => platform::config::host_name()
                .ok_or_else(|| invalid("NODE_NAME", "is empty and the host name is unknown")),
        }
    }

    fn paths(&self) -> Result<Vec<glob::Pattern>, ConfigError> {
        let patterns = comma_separated(&self.collector_paths)
            .map(|pattern| {
                if !pattern.starts_with('/') {
                    return Err(invalid(
                        "COLLECTOR_PATHS",
                        format!("{pattern:?} is not an absolute path"),
                    ));
                }
                glob::Pattern::new(pattern)
                    .map_err(|error| invalid("COLLECTOR_PATHS", format!("{pattern:?}: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err(invalid("COLLECTOR_PATHS", "names no file"));
        }
        Ok(patterns)
    }

    fn sink(&self) -> Result<SinkSettings, ConfigError> {
        Ok(match self.collector_sink {
            SinkKind::Stdout => SinkSettings::Stdout,
            SinkKind::File => {
                SinkSettings::File(self.collector_file_path.clone().ok_or_else(|| {
                    invalid("COLLECTOR_FILE_PATH", "is required by COLLECTOR_SINK=file")
                })?)
            }
            SinkKind::Loki => {
                let raw = self.collector_loki_url.as_deref().ok_or_else(|| {
                    invalid("COLLECTOR_LOKI_URL", "is required by COLLECTOR_SINK=loki")
                })?;
                SinkSettings::Loki {
                    push_url: loki::push_url(raw)
                        .map_err(|why| invalid("COLLECTOR_LOKI_URL", why))?,
                    pod_labels: PodLabel::parse_list(&self.collector_loki_pod_labels)
                        .map_err(|why| invalid("COLLECTOR_LOKI_POD_LABELS", why))?,
                }
            }
            SinkKind::Redis => SinkSettings::Redis {
                redis: self.redis.settings()?.ok_or_else(|| {
                    invalid(
                        "REDIS_HOST",
                        "(or REDIS_SENTINELS) is required by COLLECTOR_SINK=redis",
                    )
                })?,
                stream: self.collector_redis_stream.clone(),
                maxlen: self.collector_redis_maxlen,
                batch_timeout: Duration::from_millis(self.collector_redis_batch_timeout_ms),
            },
        })
    }
}

/// The items of a comma-separated list, trimmed, empty ones skipped.
pub(crate) fn comma_separated(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable,
        message: message.into(),
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests;
