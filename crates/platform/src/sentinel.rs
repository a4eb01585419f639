//! Redis Sentinel: where the Sentinels are (`REDIS_SENTINELS`) and which
//! server is the primary of a group they watch, asked through redis-rs's own
//! `sentinel` module.
//!
//! The Sentinels elect a new primary when the old one fails; a program that
//! asks them again after a failure finds it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, ProtocolVersion, RedisError};

use crate::config::Secret;

/// One Sentinel's `host:port`; an IPv6 address is written in brackets
/// (`[::1]:26379`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelAddress {
    pub host: String,
    pub port: u16,
}

/// Why a list of Sentinel addresses was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SentinelAddressError {
    #[error("no address: expected host:port,host:port,...")]
    Empty,
    #[error("{0:?} is not host:port")]
    NotHostPort(String),
    #[error("{0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    #[error("{0:?}: the host must not be empty or hold whitespace, commas or brackets")]
    BadHost(String),
}

impl FromStr for SentinelAddress {
    type Err = SentinelAddressError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let not_host_port = || SentinelAddressError::NotHostPort(raw.to_owned());
        let (host, port) = match raw.strip_prefix('[') {
            Some(bracketed) => {
                let (host, rest) = bracketed.split_once(']').ok_or_else(not_host_port)?;
                (host, rest.strip_prefix(':').ok_or_else(not_host_port)?)
            }
            None => raw.rsplit_once(':').ok_or_else(not_host_port)?,
        };
        let valid_host = !host.is_empty()
            && !host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '[' | ']'))
            // Only an IPv6 address has colons, and only in brackets.
            && (raw.starts_with('[') || !host.contains(':'));
        if !valid_host {
            return Err(SentinelAddressError::BadHost(raw.to_owned()));
        }
        // Digits only: `u16::from_str` would take a sign too.
        let port = Some(port)
            .filter(|port| !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|port| *port != 0)
            .ok_or_else(|| SentinelAddressError::BadPort(raw.to_owned()))?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for SentinelAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `REDIS_SENTINELS`: addresses separated by commas, spaces around
/// each ignored.
pub fn parse_addresses(raw: &str) -> Result<Vec<SentinelAddress>, SentinelAddressError> {
    if raw.trim().is_empty() {
        return Err(SentinelAddressError::Empty);
    }
    raw.split(',').map(|part| part.trim().parse()).collect()
}

/// A group of Redis servers watched by Sentinels, and how to log in to both.
#[derive(Debug, Clone)]
pub struct SentinelGroup {
    pub sentinels: Vec<SentinelAddress>,
    /// The name the Sentinels know the group by (`sentinel monitor NAME`).
    pub master: String,
    /// The Sentinels' own password, if they have one.
    pub sentinel_password: Option<Secret>,
}

impl SentinelGroup {
    /// A client for the server the Sentinels name as the group's primary
    /// now: the first Sentinel that answers is asked, and the server it names
    /// must confirm its role before it is trusted. `data_password` logs in to
    /// that server. The whole search gives up after `timeout`: redis-rs asks
    /// the Sentinels one after the other without a connection time-out of
    /// its own, so one that drops packets would hold it up for as long as
    /// the kernel waits.
    pub async fn primary(
        &self,
        data_password: Option<&Secret>,
        protocol: ProtocolVersion,
        timeout: Duration,
    ) -> Result<redis::Client, RedisError> {
        let addresses = self
            .sentinels
            .iter()
            .map(|address| ConnectionAddr::Tcp(address.host.clone(), address.port));
        let mut builder =
            SentinelClientBuilder::new(addresses, &self.master, SentinelServerType::Master)?
                .set_client_to_redis_protocol(protocol);
        if let Some(password) = data_password {
            builder = builder.set_client_to_redis_password(password.expose());
        }
        if let Some(password) = &self.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password.expose());
        }
        let mut client = builder.build()?;
        tokio::time::timeout(timeout, client.async_get_client())
            .await
            .map_err(|_| {
                RedisError::from((
                    redis::ErrorKind::Io,
                    "no Sentinel named a primary in time",
                    format!("{} ({timeout:?})", self.master),
                ))
            })?
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lists_of_addresses_parse() {
        let parsed = parse_addresses(" redis-0.redis:26379, 10.0.0.7:1 ,[::1]:65535").unwrap();
        let shown: Vec<_> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["redis-0.redis:26379", "10.0.0.7:1", "[::1]:65535"]);
        assert_eq!(parsed[2].host, "::1");
    }

    #[test]
    fn bad_addresses_are_refused_with_their_text() {
        for (raw, expected) in [
            ("", SentinelAddressError::Empty),
            (" , ", SentinelAddressError::NotHostPort(String::new())),
            ("redis", SentinelAddressError::NotHostPort("redis".into())),
            ("redis:0", SentinelAddressError::BadPort("redis:0".into())),
            (
                "redis:65536",
                SentinelAddressError::BadPort("redis:65536".into()),
            ),
            ("redis:+1", SentinelAddressError::BadPort("redis:+1".into())),
            (":26379", SentinelAddressError::BadHost(":26379".into())),
            (
                "::1:26379",
                SentinelAddressError::BadHost("::1:26379".into()),
            ),
            (
                "[::1]26379",
                SentinelAddressError::NotHostPort("[::1]26379".into()),
            ),
            ("a b:1", SentinelAddressError::BadHost("a b:1".into())),
        ] {
            assert_eq!(parse_addresses(raw), Err(expected), "{raw:?}");
        }
    }

    fn address() -> impl Strategy<Value = SentinelAddress> {
        let host = prop_oneof![
            "[a-z0-9][a-z0-9.-]{0,30}",
            "[0-9a-f]{1,4}(:[0-9a-f]{0,4}){1,7}",
        ];
        (host, 1..=u16::MAX).prop_map(|(host, port)| SentinelAddress { host, port })
    }

    proptest! {
        #[test]
        fn every_list_parses_back_from_its_text(addresses in prop::collection::vec(address(), 1..6)) {
            let text = addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            prop_assert_eq!(parse_addresses(&text), Ok(addresses));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(raw in any::<String>()) {
            if let Ok(addresses) = parse_addresses(&raw) {
                prop_assert!(!addresses.is_empty());
                prop_assert!(addresses.iter().all(|address| address.port != 0 && !address.host.is_empty()));
            }
        }
    }
}
