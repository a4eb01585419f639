//! SQLite's checkpoints, run beside the writer instead of inside its
//! commits.
//!
//! In WAL mode a commit appends the pages it changed to the write-ahead log,
//! and a checkpoint copies them back into the database file. By default the
//! connection whose commit takes the log past `wal_autocheckpoint` pages
//! runs the checkpoint there and then, before its commit returns: it copies
//! the log's pages and, with `synchronous = NORMAL`, syncs the log and the
//! database file. For the group-commit writer that is every write of the
//! batch waiting for the copy and two syncs, and every write queued behind
//! them waiting too.
//!
//! This task runs passive checkpoints on a connection of its own, asked for
//! by the writer every [`PAGES_PER_CHECKPOINT`] pages it appends to the log
//! (an estimate: SQLite does not say). A passive checkpoint
//! takes no lock a writer waits for: it copies what the log holds when it
//! starts while the writer goes on appending. The writer keeps SQLite's own
//! checkpoint: only a writer can start the log again from its beginning,
//! which it does once every page in it is copied, and that checkpoint
//! bounds the log should this task fall behind. It now finds most pages
//! copied already (docs/decisions.md, record 39).

use sqlx::SqlitePool;
use tokio::sync::mpsc;

/// Pages of log between two checkpoints asked for, by [`log_pages`]'s
/// estimate. A checkpoint syncs the log and the database file, which
/// `synchronous = NORMAL` spares a commit: asked for too often, it syncs the
/// disk nearly as often as `FULL` would, and copies the same hot pages again
/// and again. Asked for too late, the writer's own checkpoint (at SQLite's
/// default `wal_autocheckpoint`, a thousand pages) comes first and copies
/// the lot itself. A good third of the way there, this task does most of
/// the copying.
const PAGES_PER_CHECKPOINT: usize = 400;

/// A database page, SQLite's default size.
const PAGE_BYTES: usize = 4096;

/// An estimate of the pages a commit of `writes` writes of `bytes` bytes of
/// keys and values appends to the log. Each commit rewrites the header page
/// and a leaf and its parents in each B-tree a write touches (the records,
/// the key's index, the expiry index, the cache outbox), the more of them
/// the more keys it spreads over, beside the pages its bytes fill.
fn log_pages(writes: usize, bytes: usize) -> usize {
    4 + writes / 2 + bytes / PAGE_BYTES
}

/// The writer's side: counts what it commits and asks for a checkpoint
/// when enough has gone into the log. The task stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    wake: mpsc::Sender<()>,
    /// Pages appended since the last checkpoint asked for, as estimated.
    pages: usize,
}

impl Checkpointer {
    /// Starts the task on `pool`, a pool of one connection.
    pub fn start(pool: SqlitePool) -> Self {
        // One request waiting is enough: it checkpoints everything
        // committed before the pass starts.
        let (wake, requests) = mpsc::channel(1);
        tokio::spawn(run_checkpoints(pool, requests));
        Self::asking(wake)
    }

    fn asking(wake: mpsc::Sender<()>) -> Self {
        Self { wake, pages: 0 }
    }

    /// Notes a commit of `writes` writes of `bytes` bytes of keys and
    /// values. A batch that failed is noted too: counted as appended, it
    /// can only ask for a pass early.
    pub fn committed(&mut self, writes: usize, bytes: usize) {
        self.pages += log_pages(writes, bytes);
        if self.pages >= PAGES_PER_CHECKPOINT {
            self.pages = 0;
            // Full: a pass is asked for already and will copy this too.
            let _ = self.wake.try_send(());
        }
    }
}

async fn run_checkpoints(pool: SqlitePool, mut requests: mpsc::Receiver<()>) {
    let mut failing = false;
    while requests.recv().await.is_some() {
        // The row says whether another checkpoint held the lock, how many
        // pages the log holds and how many of them are copied.
        let pass = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await;
        match pass {
            Ok((busy, logged, copied)) => {
                tracing::trace!(busy, logged, copied, "checkpoint");
                failing = false;
            }
            // Once per run of failures: under load a pass is asked for
            // many times a second. The writer's own checkpoint still
            // bounds the log meanwhile.
            Err(error) if !failing => {
                tracing::warn!(%error, "a background checkpoint failed");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_asked_for_once_the_log_has_grown_enough() {
        let (wake, mut requests) = mpsc::channel(1);
        let mut checkpointer = Checkpointer::asking(wake);
        let lone_write = log_pages(1, 10);
        let commits = PAGES_PER_CHECKPOINT.div_ceil(lone_write);
        for _ in 1..commits {
            checkpointer.committed(1, 10);
        }
        assert!(requests.try_recv().is_err(), "asked before the log grew");
        checkpointer.committed(1, 10);
        assert!(requests.try_recv().is_ok(), "not asked once it grew");

        // A commit of large values fills the log by itself.
        checkpointer.committed(1, PAGES_PER_CHECKPOINT * PAGE_BYTES);
        assert!(
            requests.try_recv().is_ok(),
            "not asked after a large commit"
        );

        // While a pass is waiting, more commits add nothing to wait for.
        for _ in 0..3 * commits {
            checkpointer.committed(1, 10);
        }
        assert!(requests.try_recv().is_ok());
        assert!(requests.try_recv().is_err());
    }
}
