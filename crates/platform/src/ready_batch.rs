//! Batches of what became ready together: a task that serves a queue takes
//! the first item, lets the runtime's other ready tasks run once, and then
//! takes every item they queued, as one batch.
//!
//! The items that become ready together (the requests read from the network
//! in one pass, the replies of one store query) are queued by tasks that run
//! one after another, and a task woken by the one running runs before the
//! rest. Without the turn in between, the serving task would take the first
//! item alone and the others in a second batch, paying twice for the round
//! trip a batch shares. Nothing waits on a timer: when no other task is
//! ready, the turn is one look at the network, and a lone item goes on at
//! once (docs/decisions.md, records 45 and 47).

use tokio::sync::mpsc;

/// `first`, and the items waiting in `queue` once the tasks ready to run
/// have had their turn, up to `most` items in all (at least `first`).
pub async fn take_ready<T>(first: T, queue: &mut mpsc::Receiver<T>, most: usize) -> Vec<T> {
    tokio::task::yield_now().await;
    let mut batch = vec![first];
    while batch.len() < most {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        batch.push(next);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_takes_what_the_tasks_ready_with_its_first_item_queue() {
        let (queue, mut waiting) = mpsc::channel(16);
        // The first item wakes the taker, and only then does its task make
        // the second one's ready: both are waiting when the taker's turn
        // comes.
        let taker = tokio::spawn(async move {
            let first = waiting.recv().await.unwrap();
            take_ready(first, &mut waiting, 16).await
        });
        let second = queue.clone();
        tokio::spawn(async move {
            queue.send(1).await.unwrap();
            tokio::spawn(async move { second.send(2).await.unwrap() });
        });
        assert_eq!(taker.await.unwrap(), [1, 2]);
    }

    #[tokio::test]
    async fn a_batch_stops_at_its_limit_and_leaves_the_rest_queued() {
        let (queue, mut waiting) = mpsc::channel(16);
        for item in 1..=5 {
            queue.send(item).await.unwrap();
        }
        let first = waiting.recv().await.unwrap();
        assert_eq!(take_ready(first, &mut waiting, 3).await, [1, 2, 3]);
        let first = waiting.recv().await.unwrap();
        assert_eq!(take_ready(first, &mut waiting, 3).await, [4, 5]);
        drop(queue);
        assert_eq!(take_ready(0, &mut waiting, 0).await, [0]);
    }
}
