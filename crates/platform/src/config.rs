//! Configuration pieces shared by every program: how to reach Redis and the
//! store, and a type for secrets that never prints its value.
//!
//! Each program builds its own `clap` parser and flattens these groups into
//! it, so every variable is also a `--flag` and shows up in `--help`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

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
    #[error("REDIS_PASSWORD_FILE: cannot read {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("REDIS_PASSWORD_FILE: {path} is empty")]
    EmptyPasswordFile { path: PathBuf },
    #[error("{variable}: {message}")]
    Invalid {
        variable: &'static str,
        message: String,
    },
}

/// How to reach Redis.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis host name or address. Unset or empty: run without Redis.
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
    pub host: String,
    pub port: u16,
    pub password: Option<Secret>,
    pub timeout: Duration,
}

impl RedisArgs {
    /// `None` when no Redis host is configured.
    pub fn settings(&self) -> Result<Option<RedisSettings>, ConfigError> {
        let Some(host) = self.redis_host.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if host.is_empty() {
            return Ok(None);
        }
        Ok(Some(RedisSettings {
            host: host.to_owned(),
            port: self.redis_port,
            password: self.password()?,
            timeout: Duration::from_millis(self.redis_timeout_ms),
        }))
    }

    fn password(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.redis_password_file {
            let raw =
                std::fs::read_to_string(path).map_err(|source| ConfigError::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
            let password = raw.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(ConfigError::EmptyPasswordFile { path: path.clone() });
            }
            return Ok(Some(Secret::new(password)));
        }
        Ok(self
            .redis_password
            .clone()
            .filter(|password| !password.expose().is_empty()))
    }
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
