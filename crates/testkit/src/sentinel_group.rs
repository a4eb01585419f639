//! A Redis group as Sentinel runs it, of real processes: a primary, two
//! replicas and three Sentinels (quorum 2), each on its own port, so that a
//! test can kill the primary and watch a replica take over.

use std::time::{Duration, Instant};

use crate::redis_server::{Persistence, RedisServer, Role};

/// The name the Sentinels know the group's primary by.
pub const MASTER_NAME: &str = "testkit-primary";

/// Three data nodes and three Sentinels on 127.0.0.1. Killed when dropped.
#[derive(Debug)]
pub struct SentinelGroup {
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
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
        let group = Self { nodes, sentinels };
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
    pub fn fail_over(&mut self) -> (u16, u16) {
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

    /// The `role` a data node reports: `master` or `slave`.
    pub fn role_of(&self, port: u16) -> String {
        let mut connection = self.nodes[self.index_of(port)]
            .client()
            .get_connection()
            .unwrap_or_else(|error| panic!("cannot connect to the node on {port}: {error}"));
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query(&mut connection)
            .unwrap_or_else(|error| panic!("ROLE on {port}: {error}"));
        match role.first() {
            Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("unexpected ROLE reply from {port}: {other:?}"),
        }
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
