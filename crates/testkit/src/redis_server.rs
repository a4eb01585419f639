//! A real `redis-server` process for one test: a data node (standalone or a
//! replica) or a Sentinel.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the server keeps across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: a restarted server starts empty.
    None,
    /// An append-only file fsynced on every write: a restarted server comes
    /// back with exactly what it held when it was killed.
    AppendOnlyAlways,
}

/// What a server is for.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// Holds data; a replica of the server on `replica_of` when set. Every
    /// data node of a group shares one password, which a replica also logs
    /// in to its primary with.
    Data {
        persistence: Persistence,
        replica_of: Option<u16>,
    },
    /// A Sentinel watching the primary on `primary_port` under the name
    /// `master`, logging in to data nodes with `data_password`.
    Sentinel {
        primary_port: u16,
        master: String,
        data_password: Option<String>,
    },
}

/// A `redis-server` on 127.0.0.1 with its own port and data directory.
/// Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// What clients log in with (a Sentinel's own password, for a Sentinel).
    password: Option<String>,
    role: Role,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without password or persistence.
    pub fn start() -> Self {
        Self::start_with(None, Persistence::None)
    }

    pub fn start_with(password: Option<&str>, persistence: Persistence) -> Self {
        let role = Role::Data {
            persistence,
            replica_of: None,
        };
        Self::start_as(password, role)
    }

    pub(crate) fn start_as(password: Option<&str>, role: Role) -> Self {
        let mut last_error = String::new();
        // A port picked as free may be taken before redis binds it: retry.
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("testkit-redis-")
                .tempdir()
                .unwrap_or_else(|error| {
                    panic!("cannot create a data dir for redis-server: {error}")
                });
            let mut server = Self {
                port: crate::free_port(),
                password: password.map(str::to_owned),
                role: role.clone(),
                dir,
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://` URL, with the password when there is one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// A client for direct inspection in tests.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url())
            .unwrap_or_else(|error| panic!("bad redis url for port {}: {error}", self.port))
    }

    /// A connection for a test's own commands. redis-rs gives up on a reply
    /// after 500 ms by default; a test that seeds thousands of keys into a
    /// server that fsyncs every write, on a busy CI machine, can wait longer
    /// than that for a pipeline without anything being wrong.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        self.client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to redis on {}: {error}", self.port))
    }

    /// SIGKILL: no shutdown save, connections reset, like a crashed pod.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a data node again as a replica of the server on
    /// `primary_port`, as a node does that finds the group's primary before
    /// it starts (deploy/k8s/components/redis-ha/redis-ha.sh).
    pub fn restart_as_replica_of(&mut self, primary_port: u16) {
        if let Role::Data { replica_of, .. } = &mut self.role {
            *replica_of = Some(primary_port);
        } else {
            panic!("a Sentinel replicates nothing");
        }
        self.restart();
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger for a moment.
                Err(error) if Instant::now() > deadline => {
                    panic!(
                        "redis-server did not restart on port {}: {error}",
                        self.port
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        if let Role::Sentinel {
            primary_port,
            master,
            data_password,
        } = &self.role
        {
            // A Sentinel rewrites its file as it learns the group: written
            // once, kept across restarts.
            let config = self.dir.path().join("sentinel.conf");
            if !config.exists() {
                let text = sentinel_config(
                    *primary_port,
                    master,
                    data_password.as_deref(),
                    self.password.as_deref(),
                );
                std::fs::write(&config, text)
                    .map_err(|error| format!("cannot write {}: {error}", config.display()))?;
            }
            command.arg(config).arg("--sentinel");
        }
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--daemonize")
            .arg("no")
            .arg("--loglevel")
            .arg("notice")
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Role::Data {
            persistence,
            replica_of,
        } = &self.role
        {
            command.arg("--save").arg("");
            match persistence {
                Persistence::None => command.arg("--appendonly").arg("no"),
                Persistence::AppendOnlyAlways => command
                    .arg("--appendonly")
                    .arg("yes")
                    .arg("--appendfsync")
                    .arg("always"),
            };
            if let Some(primary) = replica_of {
                command
                    .arg("--replicaof")
                    .arg("127.0.0.1")
                    .arg(primary.to_string());
            }
            // A full resync starts at once rather than after the default
            // 5 s wait for more replicas to share the transfer.
            command.arg("--repl-diskless-sync-delay").arg("0");
            // Any node may become a replica in a failover.
            if let Some(password) = &self.password {
                command.arg("--masterauth").arg(password);
            }
        }
        if let Some(password) = &self.password {
            command.arg("--requirepass").arg(password);
        }
        let child = command.spawn().map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                "redis-server is not installed (apt-get install redis-server, or run scripts/test)"
                    .to_owned()
            } else {
                format!("cannot run redis-server: {error}")
            }
        })?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = self.client();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(format!("exited with {status}: {log}"));
            }
            if let Ok(mut connection) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut connection).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("no answer to PING within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// What the server has logged (at `notice` level: roles taken,
    /// replication links, a Sentinel's events), to explain a failure.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Sentinel's first configuration: quick to call a primary down (1 s
/// without an answer) and to fail over, as a test wants. Sentinels log in
/// to each other with their own password.
fn sentinel_config(
    primary_port: u16,
    master: &str,
    data_password: Option<&str>,
    sentinel_password: Option<&str>,
) -> String {
    let down_after = crate::sentinel_group::DOWN_AFTER.as_millis();
    let failover_timeout = crate::sentinel_group::FAILOVER_TIMEOUT.as_millis();
    let mut config = format!(
        "sentinel monitor {master} 127.0.0.1 {primary_port} 2\n\
         sentinel down-after-milliseconds {master} {down_after}\n\
         sentinel failover-timeout {master} {failover_timeout}\n\
         sentinel parallel-syncs {master} 1\n"
    );
    if let Some(password) = data_password {
        config.push_str(&format!("sentinel auth-pass {master} {password}\n"));
    }
    if let Some(password) = sentinel_password {
        config.push_str(&format!("sentinel sentinel-pass {password}\n"));
    }
    config
}
