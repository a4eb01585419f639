//! Configuration pieces shared by every program: how to reach Redis and the
//! store, and a type for secrets that never prints its value.
//!
//! Each program builds its own `clap` parser and flattens these groups into
//! it, so every variable is also a `--flag` and shows up in `--help`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::sentinel::{SentinelGroup, parse_addresses};

/// A secret value (a password). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (the connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

/// This machine's (or container's) host name: `HOSTNAME`, else the kernel's,
/// else `/etc/hostname`; `None` when none is set.
pub fn host_name() -> Option<String> {
    let non_empty = |name: String| Some(name.trim().to_owned()).filter(|name| !name.is_empty());
    let from_file = |path: &str| std::fs::read_to_string(path).ok().and_then(non_empty);
    std::env::var("HOSTNAME")
        .ok()
        .and_then(non_empty)
        .or_else(|| from_file("/proc/sys/kernel/hostname"))
        .or_else(|| from_file("/etc/hostname"))
}

/// `raw` with the user information of a URL (`user:password@`) replaced by
/// `redacted@`, for messages and logs. It works on text that does not parse
/// as a URL too, since that is when an error message would echo it.
pub fn redact_userinfo(raw: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = raw.find("://") else {
        return raw.into();
    };
    let authority_start = scheme_end + 3;
    let authority_len = raw[authority_start..]
        .find(['/', '?', '#'])
        .unwrap_or(raw.len() - authority_start);
    let authority = &raw[authority_start..authority_start + authority_len];
    match authority.rfind('@') {
        Some(at) => format!(
            "{}redacted{}",
            &raw[..authority_start],
            &raw[authority_start + at..]
        )
        .into(),
        None => raw.into(),
    }
}

/// A configuration value that passed clap's parsing but is still wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable}: cannot read {path}: {source}")]
    PasswordFile {
        variable: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{variable}: {path} is empty")]
    EmptyPasswordFile {
        variable: &'static str,
        path: PathBuf,
    },
    #[error("{variable}: {message}")]
    Invalid {
        variable: &'static str,
        message: String,
    },
}

/// How to reach Redis.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis host name or address. Unset or empty (and no REDIS_SENTINELS):
    /// run without Redis.
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<String>,

    /// Redis TCP port.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,

    /// Redis password. Prefer REDIS_PASSWORD_FILE (a mounted Secret).
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<Secret>,

    /// File holding the Redis password (trailing newline ignored).
    #[arg(long, env = "REDIS_PASSWORD_FILE", conflicts_with = "redis_password")]
    pub redis_password_file: Option<PathBuf>,

    /// Redis Sentinels to ask for the primary, as host:port,host:port,...
    /// When set, the primary they name is used, not REDIS_HOST.
    #[arg(long, env = "REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,

    /// The name the Sentinels know the primary by (`sentinel monitor NAME`).
    #[arg(long, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,

    /// The Sentinels' own password, if they have one (REDIS_PASSWORD logs in
    /// to the data nodes). Prefer REDIS_SENTINEL_PASSWORD_FILE.
    #[arg(long, env = "REDIS_SENTINEL_PASSWORD", hide_env_values = true)]
    pub redis_sentinel_password: Option<Secret>,

    /// File holding the Sentinels' password (trailing newline ignored).
    #[arg(
        long,
        env = "REDIS_SENTINEL_PASSWORD_FILE",
        conflicts_with = "redis_sentinel_password"
    )]
    pub redis_sentinel_password_file: Option<PathBuf>,

    /// Longest wait for any one Redis command, in milliseconds. When Redis is
    /// slow or gone a request waits at most this long before it is served
    /// from the store instead.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_timeout_ms: u64,
}

/// Where Redis is and how to log in, after files have been read.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub target: RedisTarget,
    /// The data nodes' password.
    pub password: Option<Secret>,
    pub timeout: Duration,
}

/// Which server is the Redis to use.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One server at a fixed address (`REDIS_HOST`, `REDIS_PORT`).
    Server { host: String, port: u16 },
    /// Whichever server the Sentinels name as the primary now
    /// (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`).
    Sentinel(SentinelGroup),
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server { host, port } => write!(f, "{host}:{port}"),
            Self::Sentinel(group) => {
                write!(f, "the primary of {} via Sentinels ", group.master)?;
                for (at, sentinel) in group.sentinels.iter().enumerate() {
                    let separator = if at == 0 { "" } else { "," };
                    write!(f, "{separator}{sentinel}")?;
                }
                Ok(())
            }
        }
    }
}

impl RedisArgs {
    /// `None` when no Redis is configured.
    pub fn settings(&self) -> Result<Option<RedisSettings>, ConfigError> {
        let target = match self.sentinel_group()? {
            Some(group) => RedisTarget::Sentinel(group),
            None => match self.redis_host.as_deref().map(str::trim) {
                Some(host) if !host.is_empty() => RedisTarget::Server {
                    host: host.to_owned(),
                    port: self.redis_port,
                },
                _ => return Ok(None),
            },
        };
        Ok(Some(RedisSettings {
            target,
            password: read_secret(
                "REDIS_PASSWORD_FILE",
                self.redis_password_file.as_deref(),
                self.redis_password.as_ref(),
            )?,
            timeout: Duration::from_millis(self.redis_timeout_ms),
        }))
    }

    /// The Sentinel group, when `REDIS_SENTINELS` names one.
    fn sentinel_group(&self) -> Result<Option<SentinelGroup>, ConfigError> {
        let Some(raw) = self
            .redis_sentinels
            .as_deref()
            .filter(|raw| !raw.trim().is_empty())
        else {
            return Ok(None);
        };
        let sentinels = parse_addresses(raw).map_err(|error| ConfigError::Invalid {
            variable: "REDIS_SENTINELS",
            message: error.to_string(),
        })?;
        let master = self
            .redis_sentinel_master
            .as_deref()
            .map(str::trim)
            .filter(|master| !master.is_empty())
            .ok_or_else(|| ConfigError::Invalid {
                variable: "REDIS_SENTINEL_MASTER",
                message: "must name the primary when REDIS_SENTINELS is set".to_owned(),
            })?;
        Ok(Some(SentinelGroup {
            sentinels,
            master: master.to_owned(),
            sentinel_password: read_secret(
                "REDIS_SENTINEL_PASSWORD_FILE",
                self.redis_sentinel_password_file.as_deref(),
                self.redis_sentinel_password.as_ref(),
            )?,
        }))
    }
}

/// A password from its file (named by `file_variable`) when one is given,
/// else the value itself; an empty value is no password.
fn read_secret(
    file_variable: &'static str,
    file: Option<&Path>,
    value: Option<&Secret>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(path) = file {
        let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::PasswordFile {
            variable: file_variable,
            path: path.to_owned(),
            source,
        })?;
        let password = raw.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(ConfigError::EmptyPasswordFile {
                variable: file_variable,
                path: path.to_owned(),
            });
        }
        return Ok(Some(Secret::new(password)));
    }
    Ok(value
        .filter(|password| !password.expose().is_empty())
        .cloned())
}

/// Where the durable store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The store: `sqlite://PATH` (created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://api.db",
        hide_env_values = true
    )]
    pub database_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_args(host: Option<&str>, sentinels: Option<&str>, master: Option<&str>) -> RedisArgs {
        RedisArgs {
            redis_host: host.map(str::to_owned),
            redis_port: 6379,
            redis_password: Some(Secret::new("data")),
            redis_password_file: None,
            redis_sentinels: sentinels.map(str::to_owned),
            redis_sentinel_master: master.map(str::to_owned),
            redis_sentinel_password: None,
            redis_sentinel_password_file: None,
            redis_timeout_ms: 200,
        }
    }

    #[test]
    fn sentinels_take_precedence_over_a_host() {
        let args = redis_args(Some("redis"), Some("s1:26379, s2:26379"), Some("mymaster"));
        let settings = args.settings().unwrap().unwrap();
        let RedisTarget::Sentinel(group) = &settings.target else {
            panic!("expected a Sentinel target, got {}", settings.target);
        };
        assert_eq!(group.master, "mymaster");
        assert_eq!(group.sentinels.len(), 2);
        assert_eq!(
            settings.target.to_string(),
            "the primary of mymaster via Sentinels s1:26379,s2:26379"
        );
        assert_eq!(settings.password.as_ref().map(Secret::expose), Some("data"));
    }

    #[test]
    fn an_empty_sentinel_list_leaves_the_host_or_no_redis() {
        let settings = redis_args(Some("redis"), Some(" "), None)
            .settings()
            .unwrap();
        let target = settings.map(|settings| settings.target.to_string());
        assert_eq!(target.as_deref(), Some("redis:6379"));
        assert!(redis_args(None, None, None).settings().unwrap().is_none());
    }

    #[test]
    fn sentinel_settings_that_cannot_work_name_their_variable() {
        let error = |args: RedisArgs| args.settings().unwrap_err().to_string();
        assert!(
            error(redis_args(None, Some("s1:26379"), None)).starts_with("REDIS_SENTINEL_MASTER:")
        );
        assert!(error(redis_args(None, Some("s1"), Some("m"))).starts_with("REDIS_SENTINELS:"));
        let mut args = redis_args(None, Some("s1:26379"), Some("m"));
        args.redis_sentinel_password_file = Some(PathBuf::from("/nonexistent/sentinel-password"));
        assert!(error(args).starts_with("REDIS_SENTINEL_PASSWORD_FILE:"));
    }

    #[test]
    fn user_information_is_redacted_from_urls_parsed_or_not() {
        for (raw, shown) in [
            ("http://loki:3100", "http://loki:3100"),
            ("http://u:p@loki:3100/x", "http://redacted@loki:3100/x"),
            ("https://tok@h", "https://redacted@h"),
            ("http://u:p@ss@h/a@b", "http://redacted@h/a@b"),
            ("http://h/path?x=a@b", "http://h/path?x=a@b"),
            ("ht tp://u:secret@h", "ht tp://redacted@h"),
            ("not a url", "not a url"),
            ("", ""),
        ] {
            assert_eq!(redact_userinfo(raw), shown, "{raw}");
        }
    }
}
