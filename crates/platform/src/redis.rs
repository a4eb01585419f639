//! Redis connections with the timeouts and reconnection every program wants.
//!
//! The connection manager connects lazily and reconnects by itself after a
//! failure, so a program can start while Redis is down and recover when it
//! returns without restarting.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo};

use crate::config::RedisSettings;

pub use redis::RedisError;

/// A client for `settings`, with the password (if any) set and nothing
/// connected yet.
pub fn client(settings: &RedisSettings) -> Result<redis::Client, RedisError> {
    client_speaking(settings, ProtocolVersion::RESP2)
}

/// A RESP3 client, for connections that receive pushes (client-side
/// caching invalidations).
pub fn push_client(settings: &RedisSettings) -> Result<redis::Client, RedisError> {
    client_speaking(settings, ProtocolVersion::RESP3)
}

fn client_speaking(
    settings: &RedisSettings,
    protocol: ProtocolVersion,
) -> Result<redis::Client, RedisError> {
    let mut login = RedisConnectionInfo::default().set_protocol(protocol);
    if let Some(password) = &settings.password {
        login = login.set_password(password.expose());
    }
    let info = ConnectionAddr::Tcp(settings.host.clone(), settings.port)
        .into_connection_info()?
        .set_redis_settings(login);
    redis::Client::open(info)
}

/// A self-reconnecting connection that has not connected yet: the first
/// command (or the caller's health check) opens it.
pub fn connection_manager(settings: &RedisSettings) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.timeout))
        .set_response_timeout(Some(settings.timeout))
        // Reconnection happens in the background on the next command; one
        // quick retry keeps a command from waiting through a long backoff.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client(settings)?, config)
}
