//! The batches the writer takes from its queue.

use super::*;

fn put(key: &str, value_bytes: usize) -> Pending {
    let write = RecordWrite {
        key: key.to_owned(),
        value: "v".repeat(value_bytes),
        proposed_version: 1,
        updated_at_ms: 1,
        expires_at_ms: None,
    };
    Pending::Put {
        write,
        reply: oneshot::channel().0,
    }
}

fn delete(key: &str) -> Pending {
    Pending::Delete {
        key: key.to_owned(),
        now_ms: 1,
        reply: oneshot::channel().0,
    }
}

/// The keys of each batch taken until the queue is empty.
async fn batches_of(writes: Vec<Pending>) -> Vec<Vec<String>> {
    let (queue, mut pending) = mpsc::channel(QUEUE_DEPTH);
    for write in writes {
        queue.send(write).await.unwrap();
    }
    drop(queue);
    let mut held_back = None;
    let mut batches = Vec::new();
    while let Some((batch, _)) = next_batch(&mut pending, &mut held_back).await {
        batches.push(keys_of(&batch));
    }
    batches
}

/// The keys `batch` writes, in order.
fn keys_of(batch: &[Pending]) -> Vec<String> {
    batch
        .iter()
        .filter_map(Pending::key)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_batch_takes_every_waiting_write_of_distinct_keys() {
    let batches = batches_of(vec![put("a", 1), delete("b"), put("c", 1)]).await;
    assert_eq!(batches, [["a", "b", "c"]]);
}

#[tokio::test]
async fn a_batch_takes_the_writes_of_tasks_ready_when_its_first_arrives() {
    let (queue, mut pending) = mpsc::channel(QUEUE_DEPTH);
    // The first write wakes the writer, and only then does its task
    // make the second writer ready: both are waiting to run when the
    // writer's turn comes.
    let writer = tokio::spawn(async move {
        let mut held_back = None;
        let (batch, _) = next_batch(&mut pending, &mut held_back).await.unwrap();
        keys_of(&batch)
    });
    let second = queue.clone();
    tokio::spawn(async move {
        queue.send(put("a", 1)).await.unwrap();
        tokio::spawn(async move { second.send(put("b", 1)).await.unwrap() });
    });
    assert_eq!(writer.await.unwrap(), ["a", "b"]);
}

#[tokio::test]
async fn a_batch_of_writes_already_waiting_is_taken_without_a_turn() {
    let (queue, mut pending) = mpsc::channel(QUEUE_DEPTH);
    queue.send(put("a", 1)).await.unwrap();
    queue.send(put("b", 1)).await.unwrap();
    // Ready to run, it would queue its write during a turn.
    let late = queue.clone();
    tokio::spawn(async move { late.send(put("c", 1)).await.unwrap() });

    let mut held_back = None;
    let (batch, _) = next_batch(&mut pending, &mut held_back).await.unwrap();
    assert_eq!(keys_of(&batch), ["a", "b"]);
}

#[tokio::test]
async fn a_second_write_of_a_key_goes_into_the_next_batch_in_order() {
    let batches = batches_of(vec![put("a", 1), put("b", 1), delete("a"), put("c", 1)]).await;
    assert_eq!(batches, [vec!["a", "b"], vec!["a", "c"]]);
}

#[tokio::test]
async fn batches_stop_at_the_row_and_byte_limits() {
    let many: Vec<_> = (0..MAX_BATCH_ROWS + 1)
        .map(|i| put(&i.to_string(), 1))
        .collect();
    let sizes: Vec<_> = batches_of(many).await.iter().map(Vec::len).collect();
    assert_eq!(sizes, [MAX_BATCH_ROWS, 1]);

    let half = MAX_BATCH_BYTES / 2;
    let large = vec![
        put("a", half),
        put("b", half),
        put("c", 1),
        put("d", MAX_BATCH_BYTES * 2),
    ];
    let batches = batches_of(large).await;
    assert_eq!(batches, [vec!["a", "b"], vec!["c", "d"]]);
}
