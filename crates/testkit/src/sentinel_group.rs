//! A Redis group as Sentinel runs it, of real processes: a primary, two
//! replicas and three Sentinels (quorum 2), each on its own port, so that a
//! test can kill the primary and watch a replica take over.

use std::time::{Duration, Instant};

use crate::redis_server::{Persistence, RedisServer, Role};

/// The name the Sentinels know the group's primary by.
pub const MASTER_NAME: &str = "testkit-primary";

/// The Sentinels' `down-after-milliseconds`: how long the primary is silent
/// before it is down.
pub(crate) const DOWN_AFTER: Duration = Duration::from_millis(1000);
/// The Sentinels' `failover-timeout`.
pub(crate) const FAILOVER_TIMEOUT: Duration = Duration::from_millis(2000);

/// Three data nodes and three Sentinels on 127.0.0.1. Killed when dropped.
#[derive(Debug)]
pub struct SentinelGroup {
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    /// When the last failover began.
    last_failover: Option<Instant>,
}

impl SentinelGroup {
    /// Starts the group with `password` on the data nodes (replication
    /// included) and `sentinel_password` on the Sentinels, and waits until
    /// every Sentinel knows the other two and both replicas, so that a
    /// failover can happen from then on.
    pub fn start(password: Option<&str>, sentinel_password: Option<&str>) -> Self {
        let primary = RedisServer::start_with(password, Persistence::None);
        let replica = || {
            let role = Role::Data {
                persistence: Persistence::None,
                replica_of: Some(primary.port()),
            };
            RedisServer::start_as(password, role)
        };
        let replicas = [replica(), replica()];
        let sentinel = || {
            let role = Role::Sentinel {
                primary_port: primary.port(),
                master: MASTER_NAME.to_owned(),
                data_password: password.map(str::to_owned),
            };
            RedisServer::start_as(sentinel_password, role)
        };
        let sentinels = vec![sentinel(), sentinel(), sentinel()];
        let mut nodes = vec![primary];
        nodes.extend(replicas);
        let group = Self {
            nodes,
            sentinels,
            last_failover: None,
        };
        wait_until("the Sentinel group to form", || group.is_formed());
        group
    }

    /// The Sentinels' addresses as `REDIS_SENTINELS` takes them:
    /// `127.0.0.1:PORT,127.0.0.1:PORT,127.0.0.1:PORT`.
    pub fn sentinel_addresses(&self) -> String {
        self.sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The data nodes' ports, the first primary's first.
    pub fn node_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The port of the primary the first Sentinel that answers names.
    pub fn primary_port(&self) -> u16 {
        for sentinel in &self.sentinels {
            let Ok(mut connection) = sentinel.client().get_connection() else {
                continue;
            };
            let address: Result<(String, u16), _> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME)
                .query(&mut connection);
            if let Ok((_, port)) = address {
                return port;
            }
        }
        panic!("no Sentinel names a primary");
    }

    /// The data node on `port`, to kill or restart.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        let at = self.index_of(port);
        &mut self.nodes[at]
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// Kills the primary (SIGKILL) and waits until the Sentinels name
    /// another; returns the old primary's port and the new one's.
    ///
    /// A Sentinel that led or voted in a failover starts no other for twice
    /// the failover timeout: a failover that soon after the last one waits
    /// until then before killing the primary.
    pub fn fail_over(&mut self) -> (u16, u16) {
        self.space_failovers();
        let old = self.primary_port();
        self.node(old).kill();
        let mut new = old;
        wait_until("a replica promoted after the primary was killed", || {
            new = self.primary_port();
            new != old
        });
        (old, new)
    }

    /// Has the Sentinels hand the primary's role to a replica while the old
    /// primary keeps running (`SENTINEL FAILOVER`), and waits until the old
    /// one serves as a replica; returns the old primary's port and the new
    /// one's. The old primary drops its clients as it is demoted.
    pub fn switch_over(&mut self) -> (u16, u16) {
        self.space_failovers();
        let old = self.primary_port();
        let mut connection = self.sentinels[0]
            .client()
            .get_connection()
            .unwrap_or_else(|error| panic!("cannot connect to a Sentinel: {error}"));
        redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .exec(&mut connection)
            .unwrap_or_else(|error| panic!("SENTINEL FAILOVER: {error}"));
        let mut new = old;
        wait_until("the switch-over", || {
            new = self.primary_port();
            new != old && self.role_of(old) == "slave" && self.role_of(new) == "master"
        });
        (old, new)
    }

    /// Waits until the Sentinels will start a failover again (see
    /// [`fail_over`](Self::fail_over)): a test that times a failover calls
    /// this first, so that the wait is not counted.
    pub fn wait_until_failover_possible(&self) {
        if let Some(last) = self.last_failover {
            let ready = last + 2 * FAILOVER_TIMEOUT + Duration::from_millis(500);
            std::thread::sleep(ready.saturating_duration_since(Instant::now()));
        }
    }

    /// Waits as above, and notes that a failover begins now.
    fn space_failovers(&mut self) {
        self.wait_until_failover_possible();
        self.last_failover = Some(Instant::now());
    }

    /// Starts the data node on `port` again (say, the primary [`fail_over`]
    /// killed) as a replica of the primary the Sentinels name, as the
    /// redis-ha component's pods start, and waits until it is in sync: the
    /// group is whole again. (A node restarted as it was, a primary, is
    /// turned into a replica by the Sentinels too, but only once they next
    /// look at it, up to 10 s later.)
    ///
    /// [`fail_over`]: Self::fail_over
    pub fn rejoin(&mut self, port: u16) {
        let primary = self.primary_port();
        self.node(port).restart_as_replica_of(primary);
        wait_until("the restarted node to rejoin as a replica in sync", || {
            let role = self.role(port);
            role[0] == "slave" && role.get(3).map(String::as_str) == Some("connected")
        });
    }

    /// The `role` a data node reports: `master` or `slave`.
    pub fn role_of(&self, port: u16) -> String {
        self.role(port).swap_remove(0)
    }

    /// The node's `ROLE` reply, its strings in order (anything else as an
    /// empty string): for a replica `slave`, the primary's host and port,
    /// the link's state (`connected` once in sync) and offset.
    ///
    /// A node the Sentinels turn into a replica drops its clients, and a
    /// connection can be reset as it opens: such a failure is asked again,
    /// for a few seconds.
    fn role(&self, port: u16) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.try_role(port) {
                Ok(role) => return role,
                Err(error) if error.is_io_error() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("ROLE on the node on {port}: {error}"),
            }
        }
    }

    fn try_role(&self, port: u16) -> redis::RedisResult<Vec<String>> {
        let mut connection = self.nodes[self.index_of(port)].client().get_connection()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connection)?;
        assert!(!role.is_empty(), "an empty ROLE reply from {port}");
        Ok(role
            .iter()
            .map(|value| match value {
                redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                redis::Value::SimpleString(text) => text.clone(),
                _ => String::new(),
            })
            .collect())
    }

    /// Every node's and Sentinel's log, each under its port: which roles
    /// each node took when, and what the Sentinels decided, to explain a
    /// failure.
    pub fn logs(&self) -> String {
        let nodes = self.nodes.iter().map(|node| ("node", node));
        let sentinels = self.sentinels.iter().map(|sentinel| ("Sentinel", sentinel));
        nodes
            .chain(sentinels)
            .map(|(what, server)| format!("--- {what} {} ---\n{}", server.port(), server.log()))
            .collect()
    }

    /// Every Sentinel sees the other two and both replicas.
    fn is_formed(&self) -> bool {
        self.sentinels.iter().all(|sentinel| {
            let Ok(mut connection) = sentinel.client().get_connection() else {
                return false;
            };
            let state: Result<Vec<String>, _> = redis::cmd("SENTINEL")
                .arg("master")
                .arg(MASTER_NAME)
                .query(&mut connection);
            let Ok(state) = state else {
                return false;
            };
            let field = |name: &str| {
                state
                    .chunks(2)
                    .find(|pair| pair[0] == name)
                    .and_then(|pair| pair.get(1).cloned())
            };
            field("num-other-sentinels").as_deref() == Some("2")
                && field("num-slaves").as_deref() == Some("2")
        })
    }
}

/// Polls `done` every 100 ms; panics, naming `what`, if it does not hold
/// within 30 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
