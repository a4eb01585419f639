//! SQLite's writer: record writes of this process queue to one task, which
//! writes every write waiting at that moment with one statement (group
//! commit).
//!
//! SQLite lets one connection write at a time, and each statement in
//! autocommit mode is a transaction of its own: a lock taken and released, a
//! commit appending the touched pages to the write-ahead log, and a round
//! trip to the connection's thread. One statement for many writes pays each
//! of those once. Nothing waits on a timer to fill a batch: a batch is
//! whatever queued while the previous one ran or, after a write that
//! arrived alone, whatever the tasks ready to run queue before the
//! writer's next turn, so a lone write goes straight through and writes
//! under load share their commits.
//!
//! A write is answered only after the statement holding it has committed,
//! with the same durability as a write of its own, and its version follows
//! the same rule (docs/decisions.md, record 26). As with a statement already
//! sent, a write whose caller gives up after queuing it is still made.

use std::sync::Arc;

use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::checkpointer::Checkpointer;
use super::held_connection::HeldConnection;
use super::outbox::remove_outbox_entries;
use super::records::{
    RecordWrite, Upserted, bind_writes, delete_one, upsert_one, upsert_statement,
};
use super::{Engine, StoreError};

/// Most writes one statement carries: five parameters each, far below
/// SQLite's limit of 32,766.
const MAX_BATCH_ROWS: usize = 64;
const _: () = assert!(MAX_BATCH_ROWS <= crate::sqlite_connections::MOST_ROWS_PER_STATEMENT);

/// A batch takes no more writes once its keys and values reach this many
/// bytes (it always takes its first write, however large): values of a
/// mebibyte do not pile up into one statement of dozens of them.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Writes waiting for the writer; a full queue makes writers wait their turn.
const QUEUE_DEPTH: usize = 1024;

/// The outcome of a put: what the statement returned of its row, and the
/// value handed back so that the caller's record owns it without a copy.
pub(crate) type PutOutcome = Result<(Upserted, String), StoreError>;

#[derive(Debug)]
enum Pending {
    Put {
        write: RecordWrite,
        reply: oneshot::Sender<PutOutcome>,
    },
    Delete {
        key: String,
        now_ms: i64,
        reply: oneshot::Sender<Result<Option<i64>, StoreError>>,
    },
    /// Cache outbox entries the cache layer has applied to Redis.
    RemoveOutboxEntries {
        ids: Vec<i64>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Pending {
    /// The record this writes, if it writes one.
    fn key(&self) -> Option<&str> {
        match self {
            Self::Put { write, .. } => Some(&write.key),
            Self::Delete { key, .. } => Some(key),
            Self::RemoveOutboxEntries { .. } => None,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::Put { write, .. } => write.key.len() + write.value.len(),
            Self::Delete { key, .. } => key.len(),
            Self::RemoveOutboxEntries { ids, .. } => ids.len() * size_of::<i64>(),
        }
    }
}

/// The sending side of the queue; the writer task stops when every clone
/// of it is gone.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    /// The writer's own connection.
    pool: SqlitePool,
    /// The connection of the writer's checkpoints.
    checkpoints: SqlitePool,
}

impl GroupCommit {
    /// Starts the writer task on `pool`, and the task of its checkpoints
    /// on `checkpoints`, pools of one connection each.
    pub fn start(pool: SqlitePool, checkpoints: SqlitePool) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        let checkpointer = Checkpointer::start(checkpoints.clone());
        tokio::spawn(write_batches(pool.clone(), pending, checkpointer));
        Self {
            queue,
            pool,
            checkpoints,
        }
    }

    /// Closes the writer's connections: writes from now on fail.
    pub async fn close(&self) {
        self.pool.close().await;
        self.checkpoints.close().await;
    }

    pub async fn put(&self, write: RecordWrite) -> PutOutcome {
        self.ask(|reply| Pending::Put { write, reply }).await
    }

    pub async fn delete(&self, key: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let key = key.to_owned();
        self.ask(|reply| Pending::Delete { key, now_ms, reply })
            .await
    }

    pub async fn remove_outbox_entries(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.ask(|reply| Pending::RemoveOutboxEntries { ids, reply })
            .await
    }

    /// Queues the work `pending` makes of a reply channel, and waits for
    /// the writer's answer.
    async fn ask<T>(
        &self,
        pending: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Pending,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(pending(reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The writer task: takes what is waiting, writes it, answers, repeats,
/// on a connection it keeps while writes keep coming.
async fn write_batches(
    pool: SqlitePool,
    mut pending: mpsc::Receiver<Pending>,
    mut checkpointer: Checkpointer,
) {
    let mut connection = HeldConnection::new(pool);
    let mut held_back = None;
    while let Some((batch, bytes)) = connection
        .wait_for(next_batch(&mut pending, &mut held_back))
        .await
    {
        let writes = batch.len();
        write_batch(&mut connection, batch).await;
        checkpointer.committed(writes, bytes);
    }
}

/// The writes to make with the next statement: the one held back from the
/// last batch or the next to arrive, and every other write waiting, up to
/// the limits; with the bytes of their keys and values. `None` once the
/// queue is closed and empty.
///
/// A first write that arrives alone waits for the tasks ready to run to
/// have their turn: under load they are requests read from the network, a
/// write each, which would otherwise wait for the next commit. Each commit
/// appends the pages its writes share (the tree leaves they go into, the
/// outbox's, the header) once, so the fewer commits carry the same writes,
/// the fewer pages each write costs (docs/decisions.md, record 47). When no
/// task is ready, the turn is one look at the network, and a lone write
/// goes on at once. When writes are already waiting, as they are after a
/// commit under load, the batch is taken at once: a turn of the runtime
/// would keep SQLite's thread idle for as long as the requests before it
/// take to run, and what they queue goes with the next commit
/// (docs/decisions.md, record 55).
///
/// A write of a key already in the batch is held back for the next one:
/// one statement cannot say in which order it wrote two rows of one key,
/// and the second write must see the first's version. That rule, and the
/// limit on bytes, are why this takes its batch itself rather than with
/// [`platform::ready_batch::take_ready`], as the reader does.
async fn next_batch(
    pending: &mut mpsc::Receiver<Pending>,
    held_back: &mut Option<Pending>,
) -> Option<(Vec<Pending>, usize)> {
    let first = match held_back.take() {
        Some(write) => write,
        None => pending.recv().await?,
    };
    if pending.is_empty() {
        tokio::task::yield_now().await;
    }
    let mut bytes = first.bytes();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH_ROWS && bytes < MAX_BATCH_BYTES {
        let Ok(next) = pending.try_recv() else {
            break;
        };
        if next.key().is_some() && batch.iter().any(|write| write.key() == next.key()) {
            *held_back = Some(next);
            break;
        }
        bytes += next.bytes();
        batch.push(next);
    }
    Some((batch, bytes))
}

async fn write_batch(connection: &mut HeldConnection<Sqlite>, batch: Vec<Pending>) {
    let mut puts = Vec::with_capacity(batch.len());
    for write in batch {
        match write {
            Pending::Put { write, reply } => puts.push((write, reply)),
            // Deletes are rare next to puts; each is a statement of its own.
            Pending::Delete { key, now_ms, reply } => {
                let deleted = connection
                    .run(async |connection| delete_one(connection, &key, now_ms).await)
                    .await;
                let _ = reply.send(deleted);
            }
            Pending::RemoveOutboxEntries { ids, reply } => {
                let removed = connection
                    .run(async |connection| {
                        remove_outbox_entries(connection, Engine::Sqlite, &ids).await
                    })
                    .await;
                let _ = reply.send(removed);
            }
        }
    }
    if puts.len() > 1 {
        put_together(connection, puts).await;
    } else {
        put_each(connection, puts).await;
    }
}

/// Writes `puts` with one statement. When a row in it made it fail, each
/// write is made with a statement of its own, so that every write gets its
/// own outcome (the failed statement wrote nothing: a statement is atomic);
/// any other failure is every write's.
async fn put_together(
    connection: &mut HeldConnection<Sqlite>,
    puts: Vec<(RecordWrite, oneshot::Sender<PutOutcome>)>,
) {
    let upserted = connection
        .run(async |connection| upsert_rows(connection, &puts).await)
        .await;
    match upserted {
        Ok(rows) => {
            for ((write, reply), upserted) in puts.into_iter().zip(rows) {
                let _ = reply.send(Ok((upserted, write.value)));
            }
        }
        Err(error) if failed_on_a_row(&error) => {
            tracing::debug!(%error, writes = puts.len(), "a group write failed; writing one by one");
            put_each(connection, puts).await;
        }
        Err(error) => {
            let error = Arc::new(error);
            for (_, reply) in puts {
                let _ = reply.send(Err(StoreError::Shared(error.clone())));
            }
        }
    }
}

/// Whether a statement failed because of a row in it: a constraint or a
/// trigger refused it, or SQLite refused a value (primary result codes
/// `SQLITE_ERROR`, `SQLITE_TOOBIG`, `SQLITE_CONSTRAINT`, `SQLITE_MISMATCH`,
/// `SQLITE_RANGE`). Any other failure would fail each write again: the
/// database locked past the busy timeout would make every write of a batch
/// wait that long once more, one after the other.
fn failed_on_a_row(error: &StoreError) -> bool {
    let StoreError::Query(sqlx::Error::Database(database)) = error else {
        return false;
    };
    database
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 1 | 18 | 19 | 20 | 25))
}

async fn put_each(
    connection: &mut HeldConnection<Sqlite>,
    puts: Vec<(RecordWrite, oneshot::Sender<PutOutcome>)>,
) {
    for (write, reply) in puts {
        let outcome = connection
            .run(async |connection| upsert_one(connection, Engine::Sqlite, &write).await)
            .await;
        let _ = reply.send(outcome.map(|upserted| (upserted, write.value)));
    }
}

/// What the statement returned of each of `puts`, in the order of `puts`.
async fn upsert_rows(
    connection: &mut SqliteConnection,
    puts: &[(RecordWrite, oneshot::Sender<PutOutcome>)],
) -> Result<Vec<Upserted>, StoreError> {
    let statement = upsert_statement(Engine::Sqlite, puts.len());
    let query = bind_writes::<Sqlite>(sqlx::query(statement), puts.iter().map(|(write, _)| write));
    let returned = query.fetch_all(connection).await?;
    // RETURNING gives rows in no promised order; the keys of a batch are
    // distinct.
    let mut upserted = vec![None; puts.len()];
    for row in returned {
        let key = Upserted::key_of::<Sqlite>(&row)?;
        if let Some(at) = puts.iter().position(|(write, _)| write.key == key) {
            upserted[at] = Some(Upserted::from_row::<Sqlite>(&row)?);
        }
    }
    upserted
        .into_iter()
        .map(|row| row.ok_or(StoreError::Query(sqlx::Error::RowNotFound)))
        .collect()
}

#[cfg(test)]
mod tests;
