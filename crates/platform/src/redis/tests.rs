//! The primary connection against a real Sentinel group.

use super::*;
use crate::sentinel::parse_addresses;

const PASSWORD: &str = "data-secret";

fn settings_of(group: &testkit::SentinelGroup) -> RedisSettings {
    RedisSettings {
        target: RedisTarget::Sentinel(SentinelGroup {
            sentinels: parse_addresses(&group.sentinel_addresses()).unwrap(),
            master: testkit::MASTER_NAME.to_owned(),
            sentinel_password: None,
        }),
        password: Some(Secret::new(PASSWORD)),
        timeout: Duration::from_secs(2),
    }
}

async fn start_group() -> testkit::SentinelGroup {
    tokio::task::spawn_blocking(|| testkit::SentinelGroup::start(Some(PASSWORD), None))
        .await
        .unwrap()
}

fn follower(connection: &PrimaryConnection) -> &Follower {
    let Target::Sentinel(follower) = &connection.0 else {
        panic!("a Sentinel target follows the primary");
    };
    follower
}

/// A connection that reaches a replica, as one kept to a demoted
/// primary would: the write is refused with READONLY (so not made) and
/// sent again to the primary the Sentinels name, and does not fail.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_refused_as_read_only_is_sent_again_to_the_primary() {
    let group = start_group().await;
    let mut connection = primary_connection(&settings_of(&group)).unwrap();
    let follower = follower(&connection);
    let [primary, replica, _] = group.node_ports()[..] else {
        panic!("three data nodes");
    };
    let password = Secret::new(PASSWORD);
    let to_replica = server_client(
        "127.0.0.1",
        replica,
        Some(&password),
        ProtocolVersion::RESP2,
    )
    .unwrap()
    .get_multiplexed_async_connection_with_config(&follower.config)
    .await
    .unwrap();
    *follower.current.lock().unwrap() = Some((0, to_replica));

    redis::cmd("SET")
        .arg("written")
        .arg("v")
        .query_async::<()>(&mut connection)
        .await
        .expect("sent again to the primary");
    assert!(connection.generation() > 0, "a connection of its own");
    let to_primary = server_client(
        "127.0.0.1",
        primary,
        Some(&password),
        ProtocolVersion::RESP2,
    )
    .unwrap();
    let written: Option<String> = redis::cmd("GET")
        .arg("written")
        .query(&mut to_primary.get_connection().unwrap())
        .unwrap();
    assert_eq!(written.as_deref(), Some("v"));
}

/// A command already holding the connection when the Sentinels demote
/// the primary: the demotion closes the connection, and the command
/// fails, however long it waits. It never reaches the old primary again,
/// which serves as a replica at the same address by then. Once a command
/// through the primary connection has met the closed connection, the
/// next asks the Sentinels and goes to the new primary on a new
/// connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_the_demotion_closed_never_reaches_the_old_primary_again() {
    let mut group = start_group().await;
    let mut connection = primary_connection(&settings_of(&group)).unwrap();
    redis::cmd("PING")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    let before = connection.generation();
    let (_, held) = follower(&connection).current().unwrap();

    tokio::task::block_in_place(|| group.switch_over());
    for attempt in 0..5 {
        let role = redis::cmd("ROLE")
            .query_async::<redis::Role>(&mut held.clone())
            .await;
        assert!(
            role.is_err(),
            "attempt {attempt} on the closed connection was answered: {role:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The first command through the connection meets the closed one
    // too, as any command in flight would.
    let mut role = redis::cmd("ROLE")
        .query_async::<redis::Role>(&mut connection)
        .await;
    if let Err(error) = &role {
        assert!(error.is_connection_dropped(), "{error}");
        role = redis::cmd("ROLE").query_async(&mut connection).await;
    }
    let role = role.expect("the next command goes to the new primary");
    assert!(matches!(role, redis::Role::Primary { .. }), "{role:?}");
    assert!(connection.generation() > before);
}
