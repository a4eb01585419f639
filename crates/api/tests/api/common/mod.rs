//! `spawn_app()`: the real application on a free port, against a real
//! `redis-server` and a fresh store (an SQLite file or a new PostgreSQL
//! database), with a clock the test controls.

pub mod process;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use api::{Application, Config};
use platform::config::{RedisArgs, StoreArgs};
use redis::AsyncCommands;
use serde_json::Value;
use store::clock::ManualClock;
use store::{Store, StoreOptions};
use testkit::{EmptyDatabase, Persistence, RedisServer, SentinelGroup};

pub use testkit::Engine;

#[derive(Debug, Clone)]
pub struct Options {
    pub engine: Engine,
    /// Start a redis-server for the app (else the app runs without Redis).
    pub redis: Option<Persistence>,
    pub redis_password: Option<&'static str>,
    pub max_value_bytes: u64,
    /// `CACHE_L1_TTL_MS`; 0 turns L1 off.
    pub l1_ttl_ms: u64,
    pub pod_name: &'static str,
    pub redis_timeout_ms: u64,
    pub request_timeout_seconds: u64,
    pub header_read_timeout_seconds: u64,
    pub max_requests_in_flight: u64,
    pub max_body_bytes_in_flight: u64,
    pub database_max_connections: u32,
}

impl Options {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            redis: Some(Persistence::None),
            redis_password: None,
            max_value_bytes: 1_048_576,
            l1_ttl_ms: 1000,
            pod_name: "test-pod",
            redis_timeout_ms: 200,
            request_timeout_seconds: 10,
            header_read_timeout_seconds: 10,
            max_requests_in_flight: 256,
            max_body_bytes_in_flight: 16 * 1024 * 1024,
            database_max_connections: 5,
        }
    }
}

pub struct TestApp {
    pub base_url: String,
    pub database_url: String,
    pub http: reqwest::Client,
    pub redis: Option<RedisServer>,
    pub clock: ManualClock,
    /// The app's database, opened by the test to look behind the app's back.
    pub store: Store,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _database: Option<EmptyDatabase>,
}

/// Test configuration: everything explicit, nothing read from the
/// environment of the machine running the tests.
pub fn config(
    database_url: String,
    redis: Option<(&RedisServer, Option<&str>)>,
    options: &Options,
) -> Config {
    Config {
        port: 0,
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        app_env: "test".into(),
        pod_name: Some(options.pod_name.into()),
        redis: RedisArgs {
            redis_host: redis.map(|_| "127.0.0.1".to_owned()),
            redis_port: redis.map_or(6379, |(server, _)| server.port()),
            redis_password: redis
                .and_then(|(_, password)| password)
                .map(platform::config::Secret::new),
            redis_password_file: None,
            redis_sentinels: None,
            redis_sentinel_master: None,
            redis_sentinel_password: None,
            redis_sentinel_password_file: None,
            redis_timeout_ms: options.redis_timeout_ms,
        },
        store: StoreArgs { database_url },
        database_max_connections: options.database_max_connections,
        cache_ttl_seconds: 3600,
        cache_l1_ttl_ms: options.l1_ttl_ms,
        cache_l1_max_bytes: 16 * 1024 * 1024,
        cache_outbox_retention_seconds: 10,
        max_value_bytes: options.max_value_bytes,
        request_timeout_seconds: options.request_timeout_seconds,
        header_read_timeout_seconds: options.header_read_timeout_seconds,
        max_connections: 1024,
        max_requests_in_flight: options.max_requests_in_flight,
        max_body_bytes_in_flight: options.max_body_bytes_in_flight,
        shutdown_drain_seconds: 0,
    }
}

pub async fn spawn_app(options: Options) -> TestApp {
    let database = EmptyDatabase::create(options.engine).await;
    let database_url = database.url().to_owned();
    let redis = options
        .redis
        .map(|persistence| RedisServer::start_with(options.redis_password, persistence));
    let config = config(
        database_url.clone(),
        redis
            .as_ref()
            .map(|server| (server, options.redis_password)),
        &options,
    );
    start(config, database_url, redis, Some(database)).await
}

/// The app on the primary of `group` (found through its Sentinels, whose
/// password is `password` like the data nodes'), over a fresh store; with
/// `database_url`, over that store instead (another replica).
pub async fn spawn_app_on_sentinels(
    options: &Options,
    group: &SentinelGroup,
    password: &str,
    database_url: Option<&str>,
) -> TestApp {
    let (database_url, database) = match database_url {
        Some(url) => (url.to_owned(), None),
        None => {
            let database = EmptyDatabase::create(options.engine).await;
            (database.url().to_owned(), Some(database))
        }
    };
    let mut config = config(database_url.clone(), None, options);
    config.redis.redis_password = Some(platform::config::Secret::new(password));
    config.redis.redis_sentinels = Some(group.sentinel_addresses());
    config.redis.redis_sentinel_master = Some(testkit::MASTER_NAME.to_owned());
    start(config, database_url, None, database).await
}

/// Another replica of `first`: the same Redis and the same store, its own
/// L1, connections and port.
pub async fn spawn_replica(first: &TestApp, pod_name: &'static str) -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.pod_name = pod_name;
    spawn_replica_with(first, &options).await
}

/// Another replica of `first` with `options` (its engine, Redis and
/// password are `first`'s).
pub async fn spawn_replica_with(first: &TestApp, options: &Options) -> TestApp {
    let config = config(
        first.database_url.clone(),
        first.redis.as_ref().map(|server| (server, None)),
        options,
    );
    start(config, first.database_url.clone(), None, None).await
}

async fn start(
    config: Config,
    database_url: String,
    redis: Option<RedisServer>,
    database: Option<EmptyDatabase>,
) -> TestApp {
    let has_redis = config.redis.redis_host.is_some() || config.redis.redis_sentinels.is_some();
    let l1_enabled = config.cache_l1_ttl_ms > 0;
    let clock = ManualClock::default();
    let application = Application::build(config, Arc::new(clock.clone()))
        .await
        .expect("the application builds");
    let address = application.local_addr().unwrap();
    let store = Store::connect(&database_url, StoreOptions::point_reads(2))
        .await
        .expect("the test opens the app's store");
    // Runs until the test drops it; graceful stops are tested on the real
    // binary (the `process` tests).
    let server = tokio::spawn(application.run_until(std::future::pending()));
    let app = TestApp {
        base_url: format!("http://{address}"),
        database_url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        redis,
        clock,
        store,
        server: Some(server),
        _database: database,
    };
    if has_redis {
        app.wait_for_redis(true).await;
        if l1_enabled {
            app.wait_for_l1_armed().await;
        }
    }
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn post_json(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/data"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs `key` = `value` and checks it was stored.
    pub async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Value {
        let mut body = serde_json::json!({"key": key, "value": value});
        if let Some(ttl) = ttl {
            body["ttl"] = ttl.into();
        }
        let response = self.post_json(&body).await;
        assert_eq!(response.status(), 201, "POST {key}");
        response.json().await.unwrap()
    }

    /// GET /api/v1/data/{key}: the status and the JSON body.
    pub async fn get(&self, key: &str) -> (u16, Value) {
        self.get_json(&format!("/api/v1/data/{key}")).await
    }

    /// GET `path`: the status and the JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn delete(&self, key: &str) -> u16 {
        self.http
            .delete(self.url(&format!("/api/v1/data/{key}")))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub fn redis(&self) -> &RedisServer {
        self.redis
            .as_ref()
            .expect("this test app has a redis-server")
    }

    pub fn redis_mut(&mut self) -> &mut RedisServer {
        self.redis
            .as_mut()
            .expect("this test app has a redis-server")
    }

    /// A direct connection to the test's redis-server, to look behind the
    /// API's back.
    pub async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        self.redis().connection().await
    }

    /// The successful calls of each Redis command so far, from the test's
    /// redis-server (`INFO commandstats`).
    pub async fn redis_command_calls(&self) -> CommandCalls {
        let mut redis = self.redis_connection().await;
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut redis)
            .await
            .unwrap();
        CommandCalls(stats)
    }

    /// What `/metrics` shows now.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits (at most 15 s) until `/metrics` shows `redis_connected` as
    /// `connected`.
    pub async fn wait_for_redis(&self, connected: bool) {
        let want = f64::from(u8::from(connected));
        testkit::eventually(&format!("redis_connected {want}"), || async {
            let metrics = self.metrics_text().await;
            testkit::sample_labelled(&metrics, "redis_connected", "") == Some(want)
        })
        .await;
    }

    /// Waits until Redis holds a live entry under `key`: a read from the
    /// store answers before its fill lands.
    pub async fn wait_for_fill(&self, key: &str) {
        let redis = self.redis_connection().await;
        let cache_key = store::cache::cache_key(key);
        testkit::eventually(&format!("a live entry under {cache_key}"), || {
            let (mut redis, cache_key) = (redis.clone(), cache_key.clone());
            async move {
                let raw: Option<String> = redis.get(cache_key).await.unwrap();
                raw.is_some_and(|raw| {
                    matches!(
                        store::cache::entry::decode(&raw),
                        Ok(store::cache::RedisEntry::Live(_))
                    )
                })
            }
        })
        .await;
    }

    /// Waits (at most 15 s) until L1 invalidations flow.
    pub async fn wait_for_l1_armed(&self) {
        testkit::eventually("cache_l1_armed 1", || async {
            self.metric("cache_l1_armed").await == Some(1.0)
        })
        .await;
    }

    /// The sample `series` (name and labels as `/metrics` writes them).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        testkit::sample(&self.metrics_text().await, series)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Redis's `INFO commandstats` at one moment.
pub struct CommandCalls(String);

impl CommandCalls {
    /// Successful calls of `command` (lower case), 0 when never called.
    pub fn of(&self, command: &str) -> u64 {
        let Some(line) = self
            .0
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:")))
        else {
            return 0;
        };
        let field = |name: &str| -> u64 {
            line.split(',')
                .find_map(|field| field.strip_prefix(&format!("{name}=")))
                .map_or(0, |value| value.parse().unwrap())
        };
        field("calls") - field("failed_calls")
    }

    /// Successful calls of `command` between `earlier` and this moment.
    pub fn since(&self, earlier: &Self, command: &str) -> u64 {
        self.of(command) - earlier.of(command)
    }

    /// Script calls (`EVALSHA` or `EVAL`) between `earlier` and this moment.
    pub fn scripts_since(&self, earlier: &Self) -> u64 {
        self.since(earlier, "evalsha") + self.since(earlier, "eval")
    }
}
