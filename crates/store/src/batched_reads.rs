//! SQLite's point reads, batched: record reads that wait at the same moment
//! share one query.
//!
//! A statement on a SQLite connection runs on that connection's own thread:
//! a read is two thread hand-offs (there and back) around a lookup that
//! takes a few microseconds, so under load the hand-offs, not SQLite, are
//! what a read costs. Reads queue to one task instead, which sends every
//! read waiting at that moment as one `key IN (...)` query. Nothing waits
//! on a timer to fill a batch: a few queries are in flight at once (one per
//! connection of the reader's pool, which has one per two cores), and a
//! batch is whatever queued while they ran and before the reader's next
//! turn, so a lone read goes straight through (docs/decisions.md, records
//! 28 and 47). Each of those query slots keeps its connection while reads
//! keep coming (see [`super::held_connection`]).
//!
//! A batch's query starts after every read in it was asked for, and each
//! read is answered once it ends, so a read still sees every write that
//! completed before it was asked for, and nothing written after it was
//! answered. Each read keeps its own clock for expiry.

use std::sync::{Arc, LazyLock};

use platform::ready_batch::take_ready;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::{mpsc, oneshot};

use super::held_connection::HeldConnection;
use super::placeholders::Placeholders;
use super::records::{SELECT_BY_KEYS, record_from_row, select_live};
use super::{Engine, StoreError};
use crate::domain::Record;

/// Most keys one query carries.
const MAX_BATCH_KEYS: usize = 64;
const _: () = assert!(MAX_BATCH_KEYS <= crate::sqlite_connections::MOST_ROWS_PER_STATEMENT);

/// Reads waiting for the reader; a full queue makes readers wait their turn.
const QUEUE_DEPTH: usize = 1024;

type ReadOutcome = Result<Option<Record>, StoreError>;

/// Where a free query slot takes its next batch from.
type SlotHand = oneshot::Sender<Vec<PendingRead>>;

#[derive(Debug)]
struct PendingRead {
    key: String,
    now_ms: i64,
    reply: oneshot::Sender<ReadOutcome>,
}

/// The sending side of the queue; the reader task stops when every clone of
/// it is gone.
#[derive(Debug, Clone)]
pub(crate) struct BatchedReads {
    queue: mpsc::Sender<PendingRead>,
    /// The query slots' connections.
    pool: SqlitePool,
}

impl BatchedReads {
    /// Starts the reader task, which keeps a query in flight on each
    /// connection of `pool` at once; reads that arrive while they run wait
    /// for the next batch.
    pub fn start(pool: SqlitePool) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        let in_flight = usize::try_from(pool.options().get_max_connections()).unwrap_or(1);
        tokio::spawn(read_batches(pool.clone(), pending, in_flight.max(1)));
        Self { queue, pool }
    }

    /// Closes the reader's connections: reads from now on fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The live record under `key` at `now_ms`, if any.
    pub async fn get(&self, key: &str, now_ms: i64) -> ReadOutcome {
        let (reply, answer) = oneshot::channel();
        let read = PendingRead {
            key: key.to_owned(),
            now_ms,
            reply,
        };
        self.queue
            .send(read)
            .await
            .map_err(|_| StoreError::ReaderStopped)?;
        answer.await.map_err(|_| StoreError::ReaderStopped)?
    }
}

/// The reader task: waits for a read and a free query slot, takes the
/// reads waiting by then ([`take_ready`]), and hands them to the slot as
/// one batch, to run beside the others in flight. The slots stop with it.
async fn read_batches(
    pool: SqlitePool,
    mut pending: mpsc::Receiver<PendingRead>,
    in_flight: usize,
) {
    let (free, mut free_slots) = mpsc::channel(in_flight);
    for _ in 0..in_flight {
        tokio::spawn(query_slot(HeldConnection::new(pool.clone()), free.clone()));
    }
    drop(free);
    while let Some(first) = pending.recv().await {
        let Some(slot) = free_slots.recv().await else {
            break;
        };
        let batch = take_ready(first, &mut pending, MAX_BATCH_KEYS).await;
        // A slot that is gone drops the batch, and its reads answer that
        // the reader stopped.
        let _ = slot.send(batch);
    }
}

/// One query in flight at a time: offers itself to the reader, runs the
/// batch it is handed, and again, on a connection it keeps between them.
async fn query_slot(mut connection: HeldConnection<Sqlite>, free: mpsc::Sender<SlotHand>) {
    loop {
        let (hand, batch) = oneshot::channel();
        if free.send(hand).await.is_err() {
            return;
        }
        let Ok(batch) = connection.wait_for(batch).await else {
            return;
        };
        read_batch(&mut connection, batch).await;
    }
}

async fn read_batch(connection: &mut HeldConnection<Sqlite>, mut batch: Vec<PendingRead>) {
    if batch.len() == 1 {
        let read = batch.swap_remove(0);
        let outcome = connection
            .run(async |connection| select_live(connection, &read.key, read.now_ms).await)
            .await;
        let _ = read.reply.send(outcome);
        return;
    }
    let found = connection
        .run(async |connection| select_many(connection, &batch).await)
        .await;
    match found {
        Ok(found) => {
            for read in batch {
                let record = found
                    .iter()
                    .find(|(key, _)| *key == read.key)
                    .map(|(_, record)| record)
                    .filter(|record| record.is_live_at(read.now_ms))
                    .cloned();
                let _ = read.reply.send(Ok(record));
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for read in batch {
                let _ = read.reply.send(Err(StoreError::Shared(error.clone())));
            }
        }
    }
}

/// The rows of `batch`'s keys, live or not, as `(key, record)`.
async fn select_many(
    connection: &mut SqliteConnection,
    batch: &[PendingRead],
) -> Result<Vec<(String, Record)>, StoreError> {
    let statement = select_many_statement(batch.len());
    let mut query = sqlx::query(AssertSqlSafe(statement.sql.as_str()));
    // The statement has room for a power of two of keys; the rest of it is
    // filled with the first key, which matches the same row again.
    for at in 0..statement.keys {
        let read = batch.get(at).unwrap_or(&batch[0]);
        query = query.bind(read.key.as_str());
    }
    let rows = query.fetch_all(connection).await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, record_from_row::<Sqlite>(row, 1)?)))
        .collect()
}

/// A query of many keys, with room for `keys` of them.
struct SelectMany {
    sql: String,
    keys: usize,
}

/// The smallest query with room for `count` keys. Its sizes are the powers
/// of two up to [`MAX_BATCH_KEYS`]: each connection prepares each statement
/// it runs and keeps it, and a few sizes keep that to a few statements.
fn select_many_statement(count: usize) -> &'static SelectMany {
    static STATEMENTS: LazyLock<Vec<SelectMany>> = LazyLock::new(|| {
        std::iter::successors(Some(2), |keys| Some(keys * 2))
            .take_while(|keys| *keys <= MAX_BATCH_KEYS)
            .map(|keys| {
                let mut sql = String::from(SELECT_BY_KEYS);
                Placeholders::new(Engine::Sqlite).push_rows(&mut sql, 1, keys);
                SelectMany { sql, keys }
            })
            .collect()
    });
    STATEMENTS
        .iter()
        .find(|statement| statement.keys >= count)
        .unwrap_or_else(|| &STATEMENTS[STATEMENTS.len() - 1])
}

#[cfg(test)]
mod tests {
    use crate::domain::{Key, Ttl};
    use crate::{Store, StoreOptions};

    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    /// Reads `batch` (key, clock) as one batch from the store at `url`;
    /// each read's outcome in order.
    async fn read_together(url: &str, batch: &[(&str, i64)]) -> Vec<Option<Record>> {
        let mut answers = Vec::new();
        let pending = batch
            .iter()
            .map(|(key, now_ms)| {
                let (reply, answer) = oneshot::channel();
                answers.push(answer);
                PendingRead {
                    key: (*key).to_owned(),
                    now_ms: *now_ms,
                    reply,
                }
            })
            .collect();
        let pool = SqlitePool::connect(url).await.unwrap();
        read_batch(&mut HeldConnection::new(pool), pending).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.unwrap().unwrap());
        }
        outcomes
    }

    #[tokio::test]
    async fn each_read_of_a_batch_gets_its_own_key_as_of_its_own_clock() {
        let database = testkit::EmptyDatabase::create(testkit::Engine::Sqlite).await;
        let store = Store::connect(database.url(), StoreOptions::point_reads(2))
            .await
            .unwrap();
        let key = |raw: &str| Key::parse(raw).unwrap();
        let live = store
            .put(&key("live"), "1", None, NOW)
            .await
            .unwrap()
            .record;
        let ttl = Ttl::from_seconds(10).unwrap();
        let expiring = store
            .put(&key("expiring"), "2", Some(ttl), NOW)
            .await
            .unwrap()
            .record;
        store.put(&key("deleted"), "3", None, NOW).await.unwrap();
        store.delete(&key("deleted"), NOW).await.unwrap();

        let outcomes = read_together(
            database.url(),
            &[
                ("expiring", NOW + 10_000),
                ("live", NOW),
                ("deleted", NOW),
                ("expiring", NOW + 9_999),
                ("absent", NOW),
                ("live", NOW + 1),
            ],
        )
        .await;
        let expected = [None, Some(&live), None, Some(&expiring), None, Some(&live)];
        assert_eq!(
            outcomes.iter().map(Option::as_ref).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn each_batch_size_has_a_statement_with_room_for_it() {
        for count in 2..=MAX_BATCH_KEYS {
            let statement = select_many_statement(count);
            assert!(statement.keys >= count && statement.keys < 2 * count);
            assert_eq!(statement.sql.matches('?').count(), statement.keys);
        }
    }
}
