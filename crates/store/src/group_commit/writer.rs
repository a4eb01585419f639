//! The writer task of [`super::GroupCommit`]: takes the batches its queue
//! holds, one after the other, and writes each with one statement on a
//! connection it keeps while writes keep coming.

use std::sync::Arc;

use sqlx::{Database, Executor, Pool};
use tokio::sync::{mpsc, oneshot};

use super::{Pending, PutOutcome, QUEUE_DEPTH, next_batch};
use crate::checkpointer::Checkpointer;
use crate::driver::Driver;
use crate::held_connection::HeldConnection;
use crate::outbox::remove_outbox_entries;
use crate::records::{
    RecordWrite, Upserted, bind_writes, delete_one, upsert_one, upsert_statement,
};
use crate::{Engine, StoreError};

/// The writer: the connection it keeps while writes keep coming, and the
/// engine its statements are written for.
pub(super) struct Writer<DB: Database> {
    connection: HeldConnection<DB>,
    engine: Engine,
}

impl<DB: Driver> Writer<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Starts the task on `pool`; its queue.
    pub(super) fn start(
        pool: &Pool<DB>,
        engine: Engine,
        checkpointer: Option<Checkpointer>,
    ) -> mpsc::Sender<Pending> {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        let writer = Self {
            connection: HeldConnection::new(pool.clone()),
            engine,
        };
        tokio::spawn(writer.write_batches(pending, checkpointer));
        queue
    }

    /// Takes what is waiting, writes it, answers, repeats; on SQLite, asks
    /// for checkpoints as the log grows.
    async fn write_batches(
        mut self,
        mut pending: mpsc::Receiver<Pending>,
        mut checkpointer: Option<Checkpointer>,
    ) {
        let mut held_back = None;
        while let Some((batch, bytes)) = self
            .connection
            .wait_for(next_batch(&mut pending, &mut held_back))
            .await
        {
            let writes = batch.len();
            if let Err(error) = self.write_batch(batch).await {
                // The writes queued meanwhile would each wait for the same
                // store in turn (the pool's acquire time-out, SQLite's busy
                // timeout), past their callers' own time limits; they fail
                // now, unsent, and the next write to arrive tries again.
                let waiting = std::iter::from_fn(|| pending.try_recv().ok());
                for write in held_back.take().into_iter().chain(waiting) {
                    write.fail(&error);
                }
            }
            if let Some(checkpointer) = &mut checkpointer {
                checkpointer.committed(writes, bytes);
            }
        }
    }

    /// Writes `batch` and answers each of its writes. A failure of the
    /// store as a whole (not of one write's row) fails the writes after it
    /// unsent, and is returned.
    async fn write_batch(&mut self, batch: Vec<Pending>) -> Result<(), Arc<StoreError>> {
        let engine = self.engine;
        let mut puts = Vec::with_capacity(batch.len());
        let mut batch = batch.into_iter();
        while let Some(write) = batch.next() {
            let answered = match write {
                Pending::Put { write, reply } => {
                    puts.push((write, reply));
                    continue;
                }
                // Deletes are rare next to puts; each is a statement of its own.
                Pending::Delete { key, now_ms, reply } => {
                    let deleted = self
                        .connection
                        .run(async |connection| delete_one(connection, &key, now_ms).await)
                        .await;
                    answer(engine, reply, deleted)
                }
                Pending::RemoveOutboxEntries { ids, reply } => {
                    let removed = self
                        .connection
                        .run(async |connection| {
                            remove_outbox_entries(connection, engine, &ids).await
                        })
                        .await;
                    answer(engine, reply, removed)
                }
            };
            if let Err(error) = answered {
                fail_puts(puts, &error);
                for write in batch {
                    write.fail(&error);
                }
                return Err(error);
            }
        }
        if puts.len() > 1 {
            self.put_together(puts).await
        } else {
            self.put_each(puts).await
        }
    }

    /// Writes `puts` with one statement. When a row in it made it fail, each
    /// write is made with a statement of its own, so that every write gets
    /// its own outcome (the failed statement wrote nothing: a statement is
    /// atomic); any other failure is every write's.
    ///
    /// The rows go in key order: on PostgreSQL the statement locks them in
    /// the order it writes them, and the statements of two replicas, each
    /// in that order, never wait on each other in a cycle.
    async fn put_together(
        &mut self,
        mut puts: Vec<(RecordWrite, oneshot::Sender<PutOutcome>)>,
    ) -> Result<(), Arc<StoreError>> {
        puts.sort_unstable_by(|(one, _), (other, _)| one.key.cmp(&other.key));
        let engine = self.engine;
        let upserted = self
            .connection
            .run(async |connection| upsert_rows::<DB>(connection, engine, &puts).await)
            .await;
        match upserted {
            Ok(rows) => {
                for ((write, reply), upserted) in puts.into_iter().zip(rows) {
                    let _ = reply.send(Ok((upserted, write.value)));
                }
                Ok(())
            }
            Err(error) if failed_on_a_row(engine, &error) => {
                tracing::debug!(%error, writes = puts.len(), "a group write failed; writing one by one");
                self.put_each(puts).await
            }
            Err(error) => {
                let error = Arc::new(error);
                fail_puts(puts, &error);
                Err(error)
            }
        }
    }

    async fn put_each(
        &mut self,
        puts: Vec<(RecordWrite, oneshot::Sender<PutOutcome>)>,
    ) -> Result<(), Arc<StoreError>> {
        let engine = self.engine;
        let mut puts = puts.into_iter();
        while let Some((write, reply)) = puts.next() {
            let outcome = self
                .connection
                .run(async |connection| upsert_one(connection, engine, &write).await)
                .await;
            let outcome = outcome.map(|upserted| (upserted, write.value));
            if let Err(error) = answer(engine, reply, outcome) {
                fail_puts(puts, &error);
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Sends `outcome` to `reply`. A failure of the store as a whole rather
/// than of this write's row is sent shared, and returned.
fn answer<T>(
    engine: Engine,
    reply: oneshot::Sender<Result<T, StoreError>>,
    outcome: Result<T, StoreError>,
) -> Result<(), Arc<StoreError>> {
    match outcome {
        Err(error) if !failed_on_a_row(engine, &error) => {
            let error = Arc::new(error);
            let _ = reply.send(Err(StoreError::Shared(error.clone())));
            Err(error)
        }
        outcome => {
            let _ = reply.send(outcome);
            Ok(())
        }
    }
}

/// Answers each of `puts` with `error`, a failure of the store.
fn fail_puts(
    puts: impl IntoIterator<Item = (RecordWrite, oneshot::Sender<PutOutcome>)>,
    error: &Arc<StoreError>,
) {
    for (write, reply) in puts {
        Pending::Put { write, reply }.fail(error);
    }
}

/// Whether a statement failed because of a row in it, or because of the
/// rows together: a constraint or a trigger refused one, or the engine
/// refused a value. SQLite: primary result codes `SQLITE_ERROR`,
/// `SQLITE_TOOBIG`, `SQLITE_CONSTRAINT`, `SQLITE_MISMATCH`, `SQLITE_RANGE`.
/// PostgreSQL: SQLSTATE classes 22 (data exception), 23 (integrity
/// constraint), 54 (program limit), P0 (raised by a trigger), and 40 (the
/// statement was rolled back to break a deadlock with another writer; one
/// row at a time holds no lock another writer waits for). Any other failure
/// would fail each write again: the database locked past the busy timeout,
/// or unreachable, would make every write of a batch wait that long once
/// more, one after the other.
fn failed_on_a_row(engine: Engine, error: &StoreError) -> bool {
    let StoreError::Query(sqlx::Error::Database(database)) = error else {
        return false;
    };
    let Some(code) = database.code() else {
        return false;
    };
    match engine {
        Engine::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 1 | 18 | 19 | 20 | 25)),
        Engine::Postgres => ["22", "23", "40", "54", "P0"]
            .iter()
            .any(|class| code.starts_with(class)),
    }
}

/// What the statement returned of each of `puts`, in the order of `puts`.
async fn upsert_rows<DB: Driver>(
    connection: &mut DB::Connection,
    engine: Engine,
    puts: &[(RecordWrite, oneshot::Sender<PutOutcome>)],
) -> Result<Vec<Upserted>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let statement = upsert_statement(engine, puts.len());
    let query = bind_writes::<DB>(sqlx::query(statement), puts.iter().map(|(write, _)| write));
    let returned = query.fetch_all(connection).await?;
    // RETURNING gives rows in no promised order; the keys of a batch are
    // distinct.
    let mut upserted = vec![None; puts.len()];
    for row in returned {
        let key = Upserted::key_of::<DB>(&row)?;
        if let Some(at) = puts.iter().position(|(write, _)| write.key == key) {
            upserted[at] = Some(Upserted::from_row::<DB>(&row)?);
        }
    }
    upserted
        .into_iter()
        .map(|row| row.ok_or(StoreError::Query(sqlx::Error::RowNotFound)))
        .collect()
}
