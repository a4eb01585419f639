//! L1 against invalidations: a load or a value that raced one is never
//! cached, and nothing is cached while L1 is disarmed.

use tokio::sync::Notify;

use super::*;

fn loaded(value: &str) -> LoadedRecord {
    let record = Record {
        value: value.into(),
        version: 1,
        updated_at_ms: 0,
        expires_at_ms: None,
    };
    LoadedRecord::new(record, Source::Store, true)
}

/// The value a load handed its callers, if it found one.
fn value(load: &SharedLoad) -> Option<&str> {
    match &load.outcome {
        LoadOutcome::Uncached(loaded) => Some(&loaded.record.value),
        LoadOutcome::Cacheable(entry) => Some(&entry.record.value),
        LoadOutcome::NotFound | LoadOutcome::Failed(_) => None,
    }
}

#[tokio::test]
async fn a_load_that_raced_an_invalidation_is_returned_but_not_cached() {
    let cache = LocalCache::new(Duration::from_secs(60), 1 << 20, true);
    let (started, finish) = (Notify::new(), Notify::new());
    let load = cache.get_or_load("k", cache.snapshot("k"), || async {
        started.notify_one();
        finish.notified().await;
        (Ok(Some(loaded("old"))), None)
    });
    let race = async {
        started.notified().await;
        cache.invalidate("k").await;
        finish.notify_one();
    };
    let (outcome, ()) = tokio::join!(load, race);
    assert_eq!(value(&outcome), Some("old"), "its own caller gets it");
    assert!(cache.get("k").is_none(), "but it is not cached");
}

#[tokio::test]
async fn a_read_after_an_invalidation_does_not_take_a_load_that_began_before_it() {
    let cache = LocalCache::new(Duration::from_secs(60), 1 << 20, true);
    let (started, finish) = (Notify::new(), Notify::new());
    let early = cache.get_or_load("k", cache.snapshot("k"), || async {
        started.notify_one();
        finish.notified().await;
        (Ok(Some(loaded("old"))), None)
    });
    let late = async {
        started.notified().await;
        // A write completed; this reader starts after it and joins the
        // load in flight, which is let go only once it waits.
        cache.invalidate("k").await;
        let read = cache.get_or_load("k", cache.snapshot("k"), || async {
            (Ok(Some(loaded("new"))), None)
        });
        let release = async {
            tokio::task::yield_now().await;
            finish.notify_one();
        };
        tokio::join!(read, release).0
    };
    let (early, late) = tokio::join!(early, late);
    assert_eq!(value(&early), Some("old"));
    assert_eq!(value(&late), Some("new"));
    let cached = cache.get("k").map(|entry| entry.record.value.clone());
    assert_eq!(
        cached.as_deref(),
        Some("new"),
        "only the fresh load is cached"
    );
}

#[tokio::test]
async fn an_insert_and_an_invalidation_of_one_key_take_turns() {
    // The insert has passed its check when the invalidation comes: the
    // invalidation waits for the insert, then evicts what it inserted.
    let cache = Arc::new(LocalCache::new(Duration::from_secs(60), 1 << 20, true));
    let taken = cache.snapshot("k");
    let turn = cache.insert_turns[cache.stripe_index("k")].lock().await;
    let invalidation = tokio::spawn({
        let cache = cache.clone();
        async move { cache.invalidate("k").await }
    });
    tokio::task::yield_now().await;
    assert!(!invalidation.is_finished(), "waits for the insert's turn");
    cache.entries.insert("k", Arc::new(loaded("old")));
    drop(turn);
    invalidation.await.unwrap();
    assert_ne!(cache.snapshot("k"), taken);
    assert!(cache.get("k").is_none());
}

#[tokio::test]
async fn a_value_read_before_an_invalidation_is_not_inserted() {
    let cache = LocalCache::new(Duration::from_secs(60), 1 << 20, true);
    let taken = cache.snapshot("k");
    cache.invalidate("k").await;
    cache
        .insert_if_current("k", taken, Arc::new(loaded("old")))
        .await;
    assert!(cache.get("k").is_none());

    let taken = cache.snapshot("k");
    cache
        .insert_if_current("k", taken, Arc::new(loaded("new")))
        .await;
    let hit = cache.get("k").map(|hit| hit.record.value.clone());
    assert_eq!(hit.as_deref(), Some("new"));
}

#[tokio::test]
async fn a_noted_change_moves_the_snapshot_and_evicts_nothing() {
    let cache = LocalCache::new(Duration::from_secs(60), 1 << 20, true);
    cache
        .insert_if_current("k", cache.snapshot("k"), Arc::new(loaded("v")))
        .await;
    let before = cache.snapshot("k");
    cache.note_change("k");
    assert_ne!(cache.snapshot("k"), before);
    assert!(cache.get("k").is_some());
}

#[tokio::test]
async fn nothing_is_cached_while_disarmed() {
    let cache = LocalCache::new(Duration::from_secs(60), 1 << 20, false);
    let outcome = cache
        .get_or_load("k", cache.snapshot("k"), || async {
            (Ok(Some(loaded("v"))), None)
        })
        .await;
    assert!(matches!(outcome.outcome, LoadOutcome::Uncached(_)));
    assert!(cache.get("k").is_none());

    cache.set_armed(true);
    let outcome = cache
        .get_or_load("k", cache.snapshot("k"), || async {
            (Ok(Some(loaded("v"))), None)
        })
        .await;
    assert!(matches!(outcome.outcome, LoadOutcome::Cacheable(_)));
    assert!(cache.get("k").is_some());
}

#[tokio::test]
async fn a_zero_ttl_keeps_nothing() {
    let cache = LocalCache::new(Duration::ZERO, 1 << 20, true);
    let outcome = cache
        .get_or_load("k", cache.snapshot("k"), || async {
            (Ok(Some(loaded("v"))), None)
        })
        .await;
    assert!(matches!(outcome.outcome, LoadOutcome::Cacheable(_)));
    assert!(cache.get("k").is_none());
    assert!(cache.entries.is_empty());
}
