//! Redis connections with the timeouts and reconnection every program wants,
//! to one server or to whichever server Redis Sentinel names as the primary.
//!
//! A [`PrimaryConnection`] connects lazily and reconnects by itself after a
//! failure, so a program can start while Redis is down and recover when it
//! returns without restarting. Under Sentinel it also follows a failover: a
//! reply that says the server may no longer be the primary (a lost
//! connection, a time-out, `READONLY`) makes the next command ask the
//! Sentinels again, and a connection to a primary is never opened again
//! once it failed: the server at that address may be a replica by then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, ProtocolVersion,
    RedisConnectionInfo, RedisFuture, ServerErrorKind, Value,
};

use crate::config::{RedisSettings, RedisTarget, Secret};
use crate::sentinel::SentinelGroup;

pub use redis::RedisError;

/// A client for the primary now: the configured server, or the one the
/// Sentinels name. RESP3 for connections that receive pushes (client-side
/// caching invalidations).
pub async fn primary_client(
    settings: &RedisSettings,
    protocol: ProtocolVersion,
) -> Result<redis::Client, RedisError> {
    match &settings.target {
        RedisTarget::Server { host, port } => {
            server_client(host, *port, settings.password.as_ref(), protocol)
        }
        RedisTarget::Sentinel(group) => {
            group
                .primary(settings.password.as_ref(), protocol, settings.timeout)
                .await
        }
    }
}

fn server_client(
    host: &str,
    port: u16,
    password: Option<&Secret>,
    protocol: ProtocolVersion,
) -> Result<redis::Client, RedisError> {
    let mut login = RedisConnectionInfo::default().set_protocol(protocol);
    if let Some(password) = password {
        login = login.set_password(password.expose());
    }
    let info = ConnectionAddr::Tcp(host.to_owned(), port)
        .into_connection_info()?
        .set_redis_settings(login);
    redis::Client::open(info)
}

/// A self-reconnecting connection to the primary that has not connected
/// yet: the first command (or the caller's health check) opens it.
pub fn primary_connection(settings: &RedisSettings) -> Result<PrimaryConnection, RedisError> {
    match &settings.target {
        RedisTarget::Server { host, port } => {
            let client = server_client(
                host,
                *port,
                settings.password.as_ref(),
                ProtocolVersion::RESP2,
            )?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(settings.timeout))
                .set_response_timeout(Some(settings.timeout))
                // Reconnection happens in the background on the next
                // command; one quick retry keeps a command from waiting
                // through a long backoff.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            let manager = ConnectionManager::new_lazy_with_config(client, config)?;
            Ok(PrimaryConnection(Target::Server(manager)))
        }
        RedisTarget::Sentinel(group) => {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.timeout))
                .set_response_timeout(Some(settings.timeout));
            Ok(PrimaryConnection(Target::Sentinel(Arc::new(Follower {
                group: group.clone(),
                password: settings.password.clone(),
                timeout: settings.timeout,
                config,
                current: Mutex::new(None),
                generations: AtomicU64::new(0),
                finding: tokio::sync::Mutex::new(()),
            }))))
        }
    }
}

/// A connection to the primary, used like any redis-rs connection
/// (`query_async(&mut connection)`, scripts, pipelines). Cheap to clone;
/// clones share the connection.
#[derive(Clone)]
pub struct PrimaryConnection(Target);

#[derive(Clone)]
enum Target {
    /// One server, which the connection manager reconnects to by itself.
    Server(ConnectionManager),
    /// The primary of a Sentinel group, found again after a failover.
    Sentinel(Arc<Follower>),
}

impl PrimaryConnection {
    /// Whether the primary is found through Sentinel, and so may move.
    pub fn follows_sentinel(&self) -> bool {
        matches!(self.0, Target::Sentinel(_))
    }

    /// Which connection commands go to: under Sentinel, a number that grows
    /// each time the Sentinels are asked for the primary and a new
    /// connection is opened to the server they name, which may not hold
    /// what the last one was sent. Always 0 for one configured server.
    pub fn generation(&self) -> u64 {
        match &self.0 {
            Target::Server(_) => 0,
            Target::Sentinel(follower) => follower.generations.load(Ordering::Acquire),
        }
    }
}

impl std::fmt::Debug for PrimaryConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Target::Server(_) => f.write_str("PrimaryConnection(server)"),
            Target::Sentinel(follower) => {
                write!(f, "PrimaryConnection(primary of {})", follower.group.master)
            }
        }
    }
}

/// The Sentinel side of a [`PrimaryConnection`]: the connection to the
/// primary found last, replaced once a reply says it may be stale.
///
/// The connection is a plain multiplexed one, which never reconnects: once
/// it fails, every command sent on it fails. A connection that reconnected
/// by itself to the same address would reach whatever runs there now. When
/// the Sentinels demote a primary they close its clients' connections, and
/// the server then copies the new primary's data, which may lack writes
/// the old one took: commands already holding the connection would read
/// that without an error to say anything changed.
struct Follower {
    group: SentinelGroup,
    password: Option<Secret>,
    timeout: Duration,
    config: AsyncConnectionConfig,
    /// The connection to the primary found last, numbered: a failure on an
    /// older one must not drop a newer one.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generations: AtomicU64,
    /// Held while the Sentinels are asked: one search at a time, which the
    /// commands waiting meanwhile share.
    finding: tokio::sync::Mutex<()>,
}

impl Follower {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection to the primary, asking the Sentinels when there is
    /// none.
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let _finding = self.finding.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let client = self
            .group
            .primary(self.password.as_ref(), ProtocolVersion::RESP2, self.timeout)
            .await?;
        let address = client.get_connection_info().addr().to_string();
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        // The Sentinels' answer was checked on a connection of its own; the
        // server may have been demoted since, before this one was opened
        // (after it, the demotion closes this one).
        confirm_primary(&mut connection, &address).await?;
        let generation = self.generations.fetch_add(1, Ordering::AcqRel) + 1;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((generation, connection.clone()));
        tracing::info!(master = %self.group.master, %address, "found the Redis primary through Sentinel");
        Ok((generation, connection))
    }

    /// Drops connection `generation` if it is still the current one.
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|(held, _)| *held == generation)
        {
            *current = None;
        }
    }

    /// Sends a request to the primary: `send` sends it on a clone of the
    /// connection held (clones share it). A failure that says the server
    /// may not be the primary any more drops the connection, so the next
    /// command asks the Sentinels; a `READONLY` answer (the server is a
    /// replica now and did nothing) drops it too, and the request is sent
    /// once more, to the primary found then.
    async fn send<T, F, Fut>(&self, send: F) -> Result<T, RedisError>
    where
        T: Reply,
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let (generation, connection) = self.connection().await?;
        let outcome = send(connection).await;
        let refused_as_read_only = match &outcome {
            Ok(reply) => reply.refused_as_read_only(),
            Err(error) => is_read_only(error),
        };
        if refused_as_read_only {
            self.forget(generation);
            let (_, connection) = self.connection().await?;
            return send(connection).await;
        }
        if let Err(error) = &outcome
            && may_have_moved(error)
        {
            self.forget(generation);
        }
        outcome
    }
}

/// Fails unless the server on `connection` says it is a primary.
async fn confirm_primary(
    connection: &mut MultiplexedConnection,
    address: &str,
) -> Result<(), RedisError> {
    let role: redis::Role = redis::cmd("ROLE").query_async(connection).await?;
    if matches!(role, redis::Role::Primary { .. }) {
        return Ok(());
    }
    Err(RedisError::from((
        redis::ErrorKind::MasterNameNotFoundBySentinel,
        "the server the Sentinels named is not a primary (any more)",
        address.to_owned(),
    )))
}

/// What a command or a pipeline gets back.
trait Reply {
    /// Whether the server answered `READONLY`: it is a replica now. A
    /// server's error reply is a value here, not yet an `Err`.
    fn refused_as_read_only(&self) -> bool;
}

impl Reply for Value {
    fn refused_as_read_only(&self) -> bool {
        matches!(self, Value::ServerError(error)
            if error.kind() == Some(ServerErrorKind::ReadOnly))
    }
}

impl Reply for Vec<Value> {
    fn refused_as_read_only(&self) -> bool {
        self.iter().any(Reply::refused_as_read_only)
    }
}

fn is_read_only(error: &RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(ServerErrorKind::ReadOnly)
}

/// Whether a command that failed with `error` may succeed once a failover
/// is over: the primary moved or is down, or no Sentinel names a primary
/// that answers yet (which a wrong master name gives too: retry for a
/// bounded time only).
pub fn may_pass_after_failover(error: &RedisError) -> bool {
    may_have_moved(error) || error.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel
}

/// Whether `error` may mean the server is no longer the primary.
fn may_have_moved(error: &RedisError) -> bool {
    is_read_only(error)
        || error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
}

impl ConnectionLike for PrimaryConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Target::Server(manager) => manager.req_packed_command(cmd),
            Target::Sentinel(follower) => Box::pin(async move {
                follower
                    .send(|mut connection| async move { connection.req_packed_command(cmd).await })
                    .await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Target::Server(manager) => manager.req_packed_commands(pipeline, offset, count),
            Target::Sentinel(follower) => Box::pin(async move {
                follower
                    .send(|mut connection| async move {
                        connection
                            .req_packed_commands(pipeline, offset, count)
                            .await
                    })
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Target::Server(manager) => manager.get_db(),
            // The programs use database 0, which a primary found through the
            // Sentinels is connected to.
            Target::Sentinel(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests;
