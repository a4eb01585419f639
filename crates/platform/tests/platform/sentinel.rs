//! Finding a group's primary through real Sentinels, before and after the
//! primary dies.

use std::time::{Duration, Instant};

use platform::config::{RedisSettings, RedisTarget, Secret};
use platform::redis::PrimaryConnection;
use platform::sentinel::{SentinelGroup, parse_addresses};
use redis::ProtocolVersion;
use testkit::{MASTER_NAME, SentinelGroup as Group};

const DATA_PASSWORD: &str = "data-secret";
const SENTINEL_PASSWORD: &str = "sentinel-secret";

fn sentinels_of(group: &Group) -> SentinelGroup {
    SentinelGroup {
        sentinels: parse_addresses(&group.sentinel_addresses()).unwrap(),
        master: MASTER_NAME.to_owned(),
        sentinel_password: Some(Secret::new(SENTINEL_PASSWORD)),
    }
}

/// The port of the server `sentinels` name as primary, after a write there
/// succeeded (a replica would refuse it with READONLY).
async fn write_to_primary(sentinels: &SentinelGroup, value: &str) -> Result<u16, String> {
    let password = Secret::new(DATA_PASSWORD);
    let client = sentinels
        .primary(
            Some(&password),
            ProtocolVersion::RESP2,
            Duration::from_secs(5),
        )
        .await
        .map_err(|error| error.to_string())?;
    let redis::ConnectionAddr::Tcp(_, port) = client.get_connection_info().addr().clone() else {
        return Err("not a TCP address".into());
    };
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|error| error.to_string())?;
    redis::cmd("SET")
        .arg("written")
        .arg(value)
        .query_async::<()>(&mut connection)
        .await
        .map_err(|error| error.to_string())?;
    Ok(port)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_primary_is_found_again_after_a_failover_and_the_old_one_rejoins_as_a_replica() {
    let mut group =
        tokio::task::spawn_blocking(|| Group::start(Some(DATA_PASSWORD), Some(SENTINEL_PASSWORD)))
            .await
            .unwrap();
    let sentinels = sentinels_of(&group);
    let first = write_to_primary(&sentinels, "before").await.unwrap();
    assert_eq!(
        first,
        group.node_ports()[0],
        "the group starts on its first node"
    );

    let (old, new) = tokio::task::block_in_place(|| group.fail_over());
    assert_eq!(old, first);
    // Until the promoted replica has switched roles it may still refuse
    // writes: a write is tried again until one lands.
    let deadline = Instant::now() + Duration::from_secs(15);
    let found = loop {
        match write_to_primary(&sentinels, "after").await {
            Ok(port) => break port,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("no write landed within 15 s of the failover: {error}"),
        }
    };
    assert_eq!(
        found, new,
        "the write landed on the server the Sentinels promoted"
    );

    // The old primary, restarted as it was (a primary, empty), is turned
    // into a replica of the new one by the Sentinels.
    tokio::task::block_in_place(|| group.node(old).restart());
    testkit::eventually("the old primary rejoins as a replica", || {
        let role = tokio::task::block_in_place(|| group.role_of(old));
        async move { role == "slave" }
    })
    .await;
    assert_eq!(group.role_of(new), "master");
}

#[tokio::test]
async fn a_wrong_sentinel_password_or_master_name_is_an_error_not_a_hang() {
    let group = tokio::task::spawn_blocking(|| Group::start(None, Some(SENTINEL_PASSWORD)))
        .await
        .unwrap();
    // Refused by the Sentinels at once, not given up on at the time limit;
    // and the message does not carry the password tried.
    let refused = |error: redis::RedisError| {
        let text = error.to_string();
        assert!(!text.contains("in time"), "{text}");
        text
    };
    let wrong = "not-the-sentinel-password-4711";
    let mut sentinels = sentinels_of(&group);
    sentinels.sentinel_password = Some(Secret::new(wrong));
    let error = sentinels
        .primary(None, ProtocolVersion::RESP2, Duration::from_secs(5))
        .await
        .expect_err("the Sentinels refuse a wrong password");
    let text = refused(error);
    assert!(!text.contains(wrong), "{text}");

    let mut sentinels = sentinels_of(&group);
    sentinels.master = "no-such-group".into();
    let error = sentinels
        .primary(None, ProtocolVersion::RESP2, Duration::from_secs(5))
        .await
        .expect_err("no Sentinel knows that name");
    refused(error);
}

fn settings_of(group: &Group) -> RedisSettings {
    RedisSettings {
        target: RedisTarget::Sentinel(sentinels_of(group)),
        password: Some(Secret::new(DATA_PASSWORD)),
        timeout: Duration::from_secs(2),
    }
}

async fn set(connection: &mut PrimaryConnection, value: &str) -> Result<(), redis::RedisError> {
    redis::cmd("SET")
        .arg("written")
        .arg(value)
        .query_async(connection)
        .await
}

/// What the data node on `port` holds under `written`.
fn written_on(port: u16) -> Option<String> {
    let client =
        redis::Client::open(format!("redis://:{DATA_PASSWORD}@127.0.0.1:{port}/")).unwrap();
    let mut connection = client.get_connection().unwrap();
    redis::cmd("GET")
        .arg("written")
        .query(&mut connection)
        .unwrap()
}

/// A group of real processes, and a connection to its primary that has
/// written once.
async fn group_and_connection() -> (Group, PrimaryConnection) {
    let group =
        tokio::task::spawn_blocking(|| Group::start(Some(DATA_PASSWORD), Some(SENTINEL_PASSWORD)))
            .await
            .unwrap();
    let mut connection = platform::redis::primary_connection(&settings_of(&group)).unwrap();
    set(&mut connection, "before").await.unwrap();
    (group, connection)
}

/// A hand-over (`SENTINEL FAILOVER`): the old primary stays up as a replica
/// and drops its clients. The first write after it may fail with the
/// dropped connection; the next goes to the new primary.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_switch_over_at_most_one_write_fails() {
    let (mut group, mut connection) = group_and_connection().await;

    let (_, new) = tokio::task::block_in_place(|| group.switch_over());
    if let Err(error) = set(&mut connection, "after").await {
        assert!(
            error.is_io_error() || error.is_connection_dropped(),
            "{error}"
        );
        set(&mut connection, "after")
            .await
            .expect("the second write goes to the new primary");
    }
    assert_eq!(written_on(new).as_deref(), Some("after"));
}

/// The primary killed: commands fail while the Sentinels elect another (the
/// old one does not answer), then go to the new primary without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_connection_follows_a_failover() {
    let (mut group, mut connection) = group_and_connection().await;

    let (_, new) = tokio::task::block_in_place(|| group.fail_over());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut failed = 0;
    while let Err(error) = set(&mut connection, "after").await {
        failed += 1;
        assert!(
            Instant::now() < deadline,
            "no write landed within 15 s of the failover ({failed} failed): {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(written_on(new).as_deref(), Some("after"));
    assert!(
        failed <= 2,
        "{failed} writes failed after the Sentinels named the new primary"
    );
}
