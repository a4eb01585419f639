//! The store's writer: record writes of this process queue to one task,
//! which writes every write waiting at that moment with one statement
//! (group commit).
//!
//! Each statement in autocommit mode is a transaction of its own: on SQLite,
//! which lets one connection write at a time, a lock taken and released, a
//! commit appending the touched pages to the write-ahead log, and a round
//! trip to the connection's thread; on PostgreSQL a round trip to the
//! server, a commit that waits for its log to reach the disk, and another
//! round trip for the pool's check of the connection as it goes back. One
//! statement for many writes pays each of those once. Nothing waits on a
//! timer to fill a batch: a batch is whatever queued while the previous one
//! ran or, after a write that arrived alone, whatever the tasks ready to run
//! queue before the writer's next turn, so a lone write goes straight
//! through and writes under load share their commits.
//!
//! A write is answered only after the statement holding it has committed,
//! with the same durability as a write of its own, and its version follows
//! the same rule (docs/decisions.md, record 26). As with a statement already
//! sent, a write whose caller gives up after queuing it is still made.

use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::checkpointer::Checkpointer;
use super::records::{RecordWrite, Upserted};
use super::{Engine, StoreError};
use writer::Writer;

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

    /// Answers with `error`, a failure of the store that this write was
    /// not sent to.
    fn fail(self, error: &Arc<StoreError>) {
        match self {
            Self::Put { reply, .. } => {
                let _ = reply.send(Err(StoreError::Shared(error.clone())));
            }
            Self::Delete { reply, .. } => {
                let _ = reply.send(Err(StoreError::Shared(error.clone())));
            }
            Self::RemoveOutboxEntries { reply, .. } => {
                let _ = reply.send(Err(StoreError::Shared(error.clone())));
            }
        }
    }
}

/// The sending side of the queue; the writer task stops when every clone
/// of it is gone.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    connections: WriterConnections,
}

/// The pools the writer's connections come from.
#[derive(Debug, Clone)]
enum WriterConnections {
    /// The writer's own connection, and the one of its checkpoints.
    Sqlite {
        writer: SqlitePool,
        checkpoints: SqlitePool,
    },
    /// The writer's own connection.
    Postgres(PgPool),
}

impl GroupCommit {
    /// Starts the writer task on `writer`, and the task of its checkpoints
    /// on `checkpoints`, pools of one connection each.
    pub fn start_sqlite(writer: SqlitePool, checkpoints: SqlitePool) -> Self {
        let checkpointer = Checkpointer::start(checkpoints.clone());
        let queue = Writer::start(&writer, Engine::Sqlite, Some(checkpointer));
        Self {
            queue,
            connections: WriterConnections::Sqlite {
                writer,
                checkpoints,
            },
        }
    }

    /// Starts the writer task on `writer`, a pool of one connection.
    pub fn start_postgres(writer: PgPool) -> Self {
        let queue = Writer::start(&writer, Engine::Postgres, None);
        Self {
            queue,
            connections: WriterConnections::Postgres(writer),
        }
    }

    /// Closes the writer's connections: writes from now on fail.
    pub async fn close(&self) {
        match &self.connections {
            WriterConnections::Sqlite {
                writer,
                checkpoints,
            } => {
                writer.close().await;
                checkpoints.close().await;
            }
            WriterConnections::Postgres(writer) => writer.close().await,
        }
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
/// would keep the writer's connection (on SQLite, its thread) idle for as
/// long as the requests before it take to run, and what they queue goes with the next commit
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

mod writer;

#[cfg(test)]
mod tests;
