//! Wiring: from a [`Config`] to a listening server, and a graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use platform::config::RedisTarget;
use store::clock::Clock;
use store::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cache::RedisCache;
use crate::cache::l1::LocalCache;
use crate::cache::supervisor::Supervisor;
use crate::cache::tracking;
use crate::config::Config;
use crate::config::RequestLimits;
use crate::metrics::Metrics;
use crate::routes::{self, AppState, PublicConfig};
use crate::server::{self, ConnectionLimits};
use crate::service::DataService;

/// A built application: listening, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    request_limits: RequestLimits,
    connection_limits: ConnectionLimits,
    drain_delay: Duration,
    /// The Redis supervisor and the L1 invalidation listener.
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Connects to the store (migrating it), prepares the Redis connection
    /// (which may be down: the service starts anyway) and binds the port.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        config.validate()?;
        let redis = config.redis.settings()?;
        let pod = config.pod_name();
        let metrics = Arc::new(Metrics::new(pod.clone()));

        let store = Store::connect(
            &config.store.database_url,
            StoreOptions::point_reads(config.database_max_connections),
        )
        .await
        .context("DATABASE_URL")?;
        tracing::info!(engine = store.engine().name(), "store ready");

        // Without Redis no other replica's writes can be heard of, but none
        // is expected either: L1 takes entries from the start. With Redis,
        // only once invalidations flow.
        let l1 = Arc::new(LocalCache::new(
            config.l1_ttl(),
            config.cache_l1_max_bytes,
            redis.is_none(),
        ));
        let l1_enabled = !config.l1_ttl().is_zero();
        let mut background = Vec::new();
        let cache = match &redis {
            None => {
                tracing::warn!(
                    "neither REDIS_HOST nor REDIS_SENTINELS is set: running without a shared cache"
                );
                None
            }
            Some(settings) => {
                let connection = platform::redis::primary_connection(settings)
                    .context("REDIS_HOST / REDIS_PORT / REDIS_SENTINELS")?;
                let cache = Arc::new(RedisCache::new(
                    connection,
                    settings.timeout,
                    config.cache_ttl(),
                    config.outbox_retention(),
                    metrics.clone(),
                ));
                let supervisor = Supervisor::new(
                    cache.clone(),
                    store.clone(),
                    clock.clone(),
                    config.outbox_retention(),
                );
                tracing::info!(target = %settings.target, "using redis");
                background.push(tokio::spawn(supervisor.run()));
                if l1_enabled {
                    background.push(tokio::spawn(tracking::run(
                        settings.clone(),
                        pod.clone(),
                        l1.clone(),
                    )));
                }
                Some(cache)
            }
        };

        let address = SocketAddr::new(config.bind_address, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("PORT: cannot listen on {address}"))?;

        // Where Redis is, for /api/v1/config: no password goes beyond here.
        let (redis_host, redis_sentinels, redis_sentinel_master) =
            match redis.map(|settings| settings.target) {
                Some(RedisTarget::Server { host, .. }) => (Some(host), None, None),
                Some(RedisTarget::Sentinel(group)) => (
                    None,
                    Some(group.sentinels.iter().map(ToString::to_string).collect()),
                    Some(group.master),
                ),
                None => (None, None, None),
            };
        let state = AppState {
            service: DataService::new(store, cache, l1, l1_enabled, clock, metrics.clone()),
            metrics,
            config: Arc::new(PublicConfig {
                app_env: config.app_env.clone(),
                redis_host,
                redis_port: config.redis.redis_port,
                redis_sentinels,
                redis_sentinel_master,
                pod,
                cache_ttl_seconds: config.cache_ttl_seconds,
                max_value_bytes: config.max_value_bytes(),
            }),
            draining: Arc::new(AtomicBool::new(false)),
        };
        Ok(Self {
            listener,
            state,
            request_limits: config.request_limits(),
            connection_limits: config.connection_limits(),
            drain_delay: config.drain_delay(),
            background,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains: `/ready` turns 503,
    /// requests are still served for the drain delay (so that endpoints stop
    /// routing here), then the listener closes, in-flight requests finish,
    /// and connections to Redis and the store are closed.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = self.local_addr()?;
        let draining = self.state.draining.clone();
        let drain_delay = self.drain_delay;
        let store = self.state.service.store().clone();
        let app = routes::app(self.state, self.request_limits);
        tracing::info!(%address, "serving");

        let stop = async move {
            shutdown.await;
            draining.store(true, Ordering::Release);
            tracing::info!(?drain_delay, "draining: readiness is now 503");
            tokio::time::sleep(drain_delay).await;
            tracing::info!("closing the listener; finishing in-flight requests");
        };
        server::serve(self.listener, app, self.connection_limits, stop).await;

        for task in self.background {
            task.abort();
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
