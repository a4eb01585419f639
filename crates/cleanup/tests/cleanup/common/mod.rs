//! Fixtures for the cleanup job's tests: a real redis-server, a real store
//! (SQLite file or fresh PostgreSQL database), and the `cleanup` binary run
//! as the CronJob would run it.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use platform::config::{RedisArgs, StoreArgs};
use redis::AsyncCommands;
use store::cache::{cache_key, entry};
use store::clock::{Clock, SystemClock};
use store::domain::{Key, Record, Ttl};
use store::{Store, StoreOptions};
use testkit::{EmptyDatabase, Engine, Persistence, RedisServer};

pub struct Fixture {
    pub redis: RedisServer,
    pub store: Store,
    pub database: EmptyDatabase,
}

impl Fixture {
    pub async fn new(engine: Engine) -> Self {
        Self::with_persistence(engine, Persistence::None).await
    }

    pub async fn with_persistence(engine: Engine, persistence: Persistence) -> Self {
        let database = EmptyDatabase::create(engine).await;
        let store = Store::connect(database.url(), StoreOptions::batch_reads(2))
            .await
            .unwrap();
        Self {
            redis: RedisServer::start_with(None, persistence),
            store,
            database,
        }
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.redis.connection().await
    }

    /// A record in the store, cached in Redis as the API would cache it.
    pub async fn cached_record(&self, key: &str, ttl: Option<u64>) -> Record {
        let record = self.record(key, ttl, SystemClock.now_ms()).await;
        let mut redis = self.connection().await;
        let _: () = redis
            .pset_ex(cache_key(key), entry::encode_live(&record), 3_600_000)
            .await
            .unwrap();
        record
    }

    /// A record written `ago_ms` in the past.
    pub async fn record(&self, key: &str, ttl: Option<u64>, written_at_ms: i64) -> Record {
        let ttl = ttl.map(|seconds| Ttl::from_seconds(seconds.into()).unwrap());
        self.store
            .put(&Key::parse(key).unwrap(), "value", ttl, written_at_ms)
            .await
            .unwrap()
            .record
    }

    /// The job's configuration against this fixture, for a run in this
    /// process: the defaults of `--help`, nothing read from the environment.
    pub fn config(&self) -> cleanup::Config {
        cleanup::Config {
            redis: RedisArgs {
                redis_host: Some("127.0.0.1".into()),
                redis_port: self.redis.port(),
                redis_password: None,
                redis_password_file: None,
                redis_sentinels: None,
                redis_sentinel_master: None,
                redis_sentinel_password: None,
                redis_sentinel_password_file: None,
                redis_timeout_ms: 200,
            },
            store: StoreArgs {
                database_url: self.database.url().to_owned(),
            },
            pattern: "cache:*".into(),
            deadline_seconds: 270,
            dry_run: false,
            pushgateway_url: None,
            rate_limit: 0,
            scan_count: 100,
            index_max_records: 2_000_000,
            batch_size: 1000,
            outbox_min_age_seconds: 300,
            lock_key: "cleanup:lock".into(),
        }
    }

    /// Runs the `cleanup` binary against this fixture.
    pub fn run(&self, extra: &[(&str, &str)]) -> Run {
        let output = self.command(extra).output().unwrap();
        Run::from_output(&output)
    }

    pub fn command(&self, extra: &[(&str, &str)]) -> Command {
        let mut command = testkit::program(env!("CARGO_BIN_EXE_cleanup"));
        command
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", self.redis.port().to_string())
            .env("DATABASE_URL", self.database.url())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in extra {
            command.env(name, value);
        }
        command
    }

    /// Every key with its DUMP (type, value and encoding, byte for byte) and
    /// whether it has a TTL.
    pub async fn snapshot(&self) -> BTreeMap<Vec<u8>, (Vec<u8>, bool)> {
        let mut redis = self.connection().await;
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut redis)
            .await
            .unwrap();
        let mut snapshot = BTreeMap::new();
        for key in keys {
            let dump: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap();
            let ttl: i64 = redis.pttl(&key).await.unwrap();
            snapshot.insert(key, (dump, ttl >= 0));
        }
        snapshot
    }
}

/// A finished run: exit code, its summary log line, and everything it said.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub summary: serde_json::Value,
    pub output: String,
}

impl Run {
    pub fn from_output(output: &Output) -> Self {
        let text = testkit::output_text(output);
        let summary = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["message"] == "cleanup summary")
            .unwrap_or_default();
        Self {
            code: output.status.code(),
            summary,
            output: text,
        }
    }

    pub fn count(&self, field: &str) -> u64 {
        self.summary[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field} in the summary; output:\n{}", self.output))
    }
}

/// `count` cache keys without TTL, written in pipelines.
pub async fn many_stale_keys(fixture: &Fixture, count: usize) {
    let mut redis = fixture.connection().await;
    for chunk in (0..count).collect::<Vec<_>>().chunks(5000) {
        let mut pipeline = redis::pipe();
        for i in chunk {
            pipeline.set(format!("cache:stale:{i}"), "x").ignore();
        }
        let _: () = pipeline.query_async(&mut redis).await.unwrap();
    }
}

/// Waits until a running job has deleted some of the 20,000 stale keys.
pub async fn deletes_begin(fixture: &Fixture) {
    testkit::eventually("the job deletes something", || async {
        stale_left(fixture).await < 20_000
    })
    .await;
}

/// How many `cache:stale:*` keys are left.
pub async fn stale_left(fixture: &Fixture) -> u64 {
    let mut redis = fixture.connection().await;
    let keys: Vec<String> = redis.keys("cache:stale:*").await.unwrap();
    keys.len() as u64
}
