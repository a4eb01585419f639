//! The job's configuration: environment variables, each also a `--flag`.

use std::time::Duration;

use platform::config::{RedisArgs, StoreArgs};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cleanup",
    version = concat!("v", env!("CARGO_PKG_VERSION")),
    about = "Reclaims expired records and prunes stale cache keys, without blocking Redis.",
    after_help = "Exit codes: 0 done (or stopped at the deadline / on SIGTERM, partial), \
                  1 failed, 2 bad configuration, 3 another run holds the lock."
)]
pub struct Config {
    #[command(flatten)]
    pub redis: RedisArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Which Redis keys to walk (SCAN MATCH). Keys outside it are never read
    /// or touched.
    #[arg(long, env = "CLEANUP_PATTERN", default_value = "cache:*")]
    pub pattern: String,

    /// Stop between batches after this many seconds and report partial
    /// progress (keep it under the CronJob's activeDeadlineSeconds).
    #[arg(long, env = "CLEANUP_DEADLINE_SECONDS", default_value_t = 270,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub deadline_seconds: u64,

    /// Report what would be deleted, delete nothing, push nothing
    /// (true/false, 1/0, yes/no, on/off).
    #[arg(long, env = "CLEANUP_DRY_RUN", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,

    /// Prometheus Pushgateway base URL (e.g. http://pushgateway:9091);
    /// unset: metrics are only logged. Credentials in it
    /// (`https://user:token@...`) are never shown.
    #[arg(long, env = "PUSHGATEWAY_URL", hide_env_values = true)]
    pub pushgateway_url: Option<String>,

    /// Most keys examined per second (0: no limit). Lower it if Redis
    /// latency matters more than the job's speed.
    #[arg(long, env = "CLEANUP_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u64,

    /// SCAN COUNT: keys Redis looks at per walk step. Smaller steps keep
    /// Redis's answer to other clients quicker while the job runs; larger
    /// ones make the walk a little faster.
    #[arg(long, env = "CLEANUP_SCAN_COUNT", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub scan_count: u64,

    /// Up to this many live records, cache keys are checked against an
    /// in-memory index of the store's keys (read once per run, about 20
    /// bytes a record); above it, or at 0, the store is asked once per batch.
    #[arg(long, env = "CLEANUP_INDEX_MAX_RECORDS", default_value_t = 2_000_000)]
    pub index_max_records: u64,

    /// Expired records deleted per store transaction.
    #[arg(long, env = "CLEANUP_BATCH_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// Cache-outbox entries older than this (seconds) were left behind by
    /// API replicas that stopped; the job applies and clears them.
    #[arg(long, env = "CLEANUP_OUTBOX_MIN_AGE_SECONDS", default_value_t = 300)]
    pub outbox_min_age_seconds: u64,

    /// The Redis key of the lock that keeps two runs from overlapping.
    #[arg(long, env = "CLEANUP_LOCK_KEY", default_value = "cleanup:lock")]
    pub lock_key: String,
}

impl Config {
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_seconds)
    }

    /// The lock outlives the deadline a little, so that a run killed
    /// without releasing it does not block the next hour's run.
    pub fn lock_ttl(&self) -> Duration {
        self.deadline() + Duration::from_secs(30)
    }
}
