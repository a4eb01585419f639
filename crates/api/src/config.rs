//! The API's configuration: environment variables, each also a `--flag`.
//!
//! `api --help` lists them all. Names are contracts (manifests and scripts
//! use them); see `docs/configuration.md`.

use std::net::IpAddr;
use std::time::Duration;

use platform::config::{ConfigError, RedisArgs, StoreArgs};

use crate::server::ConnectionLimits;

/// Limits on the work one replica takes on at once.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub timeout: Duration,
    /// Requests to `/api/` being served at once; more are shed with 503.
    pub max_in_flight: usize,
    /// Request body bytes being received or processed at once; more are
    /// shed with 503.
    pub max_body_bytes_in_flight: u64,
}

/// The largest request body taken for values of up to `max_value_bytes`.
/// JSON escapes can make a body larger than the value it carries; the
/// value's own limit is checked after parsing, with a clearer message.
pub fn body_limit(max_value_bytes: usize) -> usize {
    max_value_bytes.saturating_mul(2).saturating_add(64 * 1024)
}

/// The API's version, as `/api/v1/config` and the OpenAPI document report
/// it: the crate's, with a `v`.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "api", version = VERSION, about = "Cache-aside HTTP API over a SQL store with Redis as the cache.")]
pub struct Config {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// Deployment environment, reported by /api/v1/config.
    #[arg(long, env = "APP_ENV", default_value = "development")]
    pub app_env: String,

    /// Name of this replica, the `pod` label of `redis_connected`
    /// (the downward API sets it in Kubernetes). Default: the host name.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    #[command(flatten)]
    pub redis: RedisArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Most connections the store pool opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    /// Longest time a value stays in Redis, in seconds. A record with a
    /// shorter remaining lifetime is cached for that lifetime only.
    #[arg(long, env = "CACHE_TTL_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub cache_ttl_seconds: u64,

    /// Life of an entry in each replica's in-process L1 cache, in
    /// milliseconds: the longest a replica can serve a value after another
    /// replica replaced it, should an invalidation be lost. 0 turns L1 off
    /// (concurrent misses are still coalesced).
    #[arg(long, env = "CACHE_L1_TTL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub cache_l1_ttl_ms: u64,

    /// Most memory the L1 entries may take (keys and values), in bytes.
    #[arg(long, env = "CACHE_L1_MAX_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(0..=17_179_869_184))]
    pub cache_l1_max_bytes: u64,

    /// How long the cache outbox keeps a write, in seconds: a Redis restart
    /// that loses up to this much of its latest data is repaired. Keep it
    /// above Redis' fsync interval (1 s with `appendfsync everysec`).
    #[arg(long, env = "CACHE_OUTBOX_RETENTION_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub cache_outbox_retention_seconds: u64,

    /// Largest value accepted, in bytes (413 above it).
    #[arg(long, env = "MAX_VALUE_BYTES", default_value_t = 1_048_576,
          value_parser = clap::value_parser!(u64).range(1..=67_108_864))]
    pub max_value_bytes: u64,

    /// Longest time one request may take, in seconds (408 after it).
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=50))]
    pub request_timeout_seconds: u64,

    /// Longest time a connection may take to send a request's headers, in
    /// seconds; an idle keep-alive connection is closed after it too.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_read_timeout_seconds: u64,

    /// Most client connections open at once; further ones wait to be
    /// accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Most `/api/` requests served at once; more get 503 `overloaded`.
    #[arg(long, env = "MAX_REQUESTS_IN_FLIGHT", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_requests_in_flight: u64,

    /// Most request-body bytes held at once; a request whose body does not
    /// fit gets 503 `overloaded`. At least the largest body
    /// (2 * MAX_VALUE_BYTES + 64 KiB).
    #[arg(long, env = "MAX_BODY_BYTES_IN_FLIGHT", default_value_t = 16_777_216,
          value_parser = clap::value_parser!(u64).range(1..=1_099_511_627_776))]
    pub max_body_bytes_in_flight: u64,

    /// On SIGTERM, how long to keep serving while /ready answers 503, so
    /// that load balancers stop sending traffic first, in seconds.
    #[arg(long, env = "SHUTDOWN_DRAIN_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_drain_seconds: u64,
}

impl Config {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            timeout: self.request_timeout(),
            max_in_flight: usize::try_from(self.max_requests_in_flight).unwrap_or(usize::MAX),
            max_body_bytes_in_flight: self.max_body_bytes_in_flight,
        }
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }

    pub fn l1_ttl(&self) -> Duration {
        Duration::from_millis(self.cache_l1_ttl_ms)
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_seconds)
    }

    pub fn outbox_retention(&self) -> Duration {
        Duration::from_secs(self.cache_outbox_retention_seconds)
    }

    pub fn drain_delay(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_seconds)
    }

    pub fn max_value_bytes(&self) -> usize {
        usize::try_from(self.max_value_bytes).unwrap_or(usize::MAX)
    }

    /// The replica name: `POD_NAME`, else the host name, else "unknown".
    pub fn pod_name(&self) -> String {
        self.pod_name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .or_else(platform::config::host_name)
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Checks that clap cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.app_env.trim().is_empty() {
            return Err(ConfigError::Invalid {
                variable: "APP_ENV",
                message: "must not be empty".into(),
            });
        }
        let largest_body = body_limit(self.max_value_bytes());
        if self.max_body_bytes_in_flight < u64::try_from(largest_body).unwrap_or(u64::MAX) {
            return Err(ConfigError::Invalid {
                variable: "MAX_BODY_BYTES_IN_FLIGHT",
                message: format!(
                    "must be at least the largest body, {largest_body} bytes \
                     (2 * MAX_VALUE_BYTES + 64 KiB), or no such write could ever be admitted"
                ),
            });
        }
        Ok(())
    }
}
