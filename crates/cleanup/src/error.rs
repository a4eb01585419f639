//! The job's one error type. Every step returns it, so a failure reaches the
//! summary and the exit code as it happened, with no mapping between steps.

use platform::config::ConfigError;
use store::StoreError;
use store::cache::ReplayError;

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("REDIS_HOST or REDIS_SENTINELS is required: the job cleans the Redis cache")]
    NoRedis,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Outbox(#[from] ReplayError),
    #[error("a batch task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl CleanupError {
    /// Whether the configuration is at fault (exit 2) rather than the run.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::NoRedis | Self::Config(_))
    }
}
