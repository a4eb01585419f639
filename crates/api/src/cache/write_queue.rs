//! Cache writes that become ready together go to Redis as one pipeline.
//!
//! The writes of one group commit (`store`) are answered at the same moment,
//! and so are the reads of one batched store query, so their write-throughs
//! and fills become ready together. Sent one by one, each command wakes the
//! multiplexed connection's task, and tokio runs a task woken by the running
//! one before any other: that task writes each command alone, which costs a
//! system call, a wake-up of Redis and a reply per command, where one write
//! could carry them all (docs/decisions.md, record 45).
//!
//! A command queued here is sent by the queue's task instead, which waits
//! one turn of the runtime after the first command arrives, so that every
//! request made ready with it queues its own, and then sends all of them as
//! one pipeline. Each command gets its own reply, an error included: the
//! pipeline ignores errors, so that one refused command fails only its
//! caller. A failure of the whole pipeline (the connection, the timeout)
//! fails every command in it. A caller that gives up waiting (its timeout,
//! a request dropped) leaves its command to be sent: a command is either
//! sent whole or not at all, as when the caller sent it itself.

use platform::ready_batch::take_ready;
use platform::redis::PrimaryConnection;
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

/// Commands queued and not yet sent; a full queue makes callers wait.
const QUEUE_DEPTH: usize = 1024;

/// Most commands one pipeline carries: a pipeline is parsed whole before
/// its first reply is handed out.
const MAX_PIPELINE: usize = 128;

type Queued = (Cmd, oneshot::Sender<RedisResult<Value>>);

/// The sending side; the queue's task stops once it is dropped.
#[derive(Debug)]
pub(super) struct WriteQueue {
    commands: mpsc::Sender<Queued>,
}

impl WriteQueue {
    /// Starts the queue's task, which sends on `connection`.
    pub fn start(connection: PrimaryConnection) -> Self {
        let (commands, queued) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(send_pipelines(connection, queued));
        Self { commands }
    }

    /// Sends `command` with the others queued in this turn of the runtime,
    /// and returns its reply.
    pub async fn send(&self, command: Cmd) -> RedisResult<Value> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send((command, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The queue's task: takes the commands queued in one turn, sends them as a
/// pipeline without waiting for its replies, and takes the next ones.
async fn send_pipelines(connection: PrimaryConnection, mut queued: mpsc::Receiver<Queued>) {
    while let Some(first) = queued.recv().await {
        // The first command's caller is often the first of several made
        // ready at once; the others run before this task runs again.
        let batch = take_ready(first, &mut queued, MAX_PIPELINE).await;
        // Not awaited here: the next batch goes out while Redis answers
        // this one, as each command would have on its own.
        tokio::spawn(send_pipeline(connection.clone(), batch));
    }
}

async fn send_pipeline(mut connection: PrimaryConnection, batch: Vec<Queued>) {
    let mut pipeline = redis::pipe();
    pipeline.ignore_errors();
    let mut replies = Vec::with_capacity(batch.len());
    for (command, reply) in batch {
        pipeline.add_command(command);
        replies.push(reply);
    }
    // redis-rs reads one reply per command of the pipeline.
    match pipeline
        .query_async::<Vec<RedisResult<Value>>>(&mut connection)
        .await
    {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

fn stopped() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "the cache's write queue has stopped",
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use platform::config::{RedisSettings, RedisTarget};
    use tokio::sync::Barrier;

    use super::*;

    /// A Redis server of the test's own, and a queue sending to it.
    async fn started() -> (testkit::RedisServer, Arc<WriteQueue>) {
        let server = tokio::task::spawn_blocking(testkit::RedisServer::start)
            .await
            .unwrap();
        let settings = RedisSettings {
            target: RedisTarget::Server {
                host: "127.0.0.1".to_owned(),
                port: server.port(),
            },
            password: None,
            timeout: Duration::from_secs(5),
        };
        let connection = platform::redis::primary_connection(&settings).unwrap();
        (server, Arc::new(WriteQueue::start(connection)))
    }

    /// How many reads of client sockets the server has made.
    async fn reads_processed(control: &mut redis::aio::MultiplexedConnection) -> u64 {
        let stats: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(control)
            .await
            .unwrap();
        stats
            .lines()
            .find_map(|line| line.strip_prefix("total_reads_processed:"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no total_reads_processed in INFO stats:\n{stats}"))
    }

    /// Sends `commands` from as many tasks, all made ready at once by the
    /// last of them to reach a barrier, as a group commit makes its
    /// writers ready; returns each one's reply, in order.
    async fn send_together(queue: &Arc<WriteQueue>, commands: Vec<Cmd>) -> Vec<RedisResult<Value>> {
        let barrier = Arc::new(Barrier::new(commands.len()));
        let senders: Vec<_> = commands
            .into_iter()
            .map(|command| {
                let (queue, barrier) = (queue.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    queue.send(command).await
                })
            })
            .collect();
        let mut replies = Vec::new();
        for sender in senders {
            replies.push(sender.await.unwrap());
        }
        replies
    }

    fn set(key: &str, value: &str) -> Cmd {
        let mut command = redis::cmd("SET");
        command.arg(key).arg(value);
        command
    }

    // One worker, as the API runs: tasks woken together run one after the
    // other on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn commands_made_ready_together_reach_redis_in_one_read() {
        let (server, queue) = started().await;
        // The queue's connection opens on its first command.
        queue.send(set("warm", "up")).await.unwrap();
        let mut control = server.connection().await;

        let before = reads_processed(&mut control).await;
        let commands = (0..50).map(|i| set(&format!("key:{i}"), "value")).collect();
        let replies = send_together(&queue, commands).await;
        let after = reads_processed(&mut control).await;

        assert!(
            replies.iter().all(|reply| matches!(reply, Ok(Value::Okay))),
            "{replies:?}"
        );
        // The pipeline, and the INFO that reads the count after it.
        assert!(
            after - before <= 3,
            "50 commands made ready at once took {} reads",
            after - before
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_refused_command_fails_only_its_own_caller() {
        // Bound to the end: dropping it stops the server.
        let (_server, queue) = started().await;
        queue.send(set("text", "not a number")).await.unwrap();

        let mut increment = redis::cmd("INCR");
        increment.arg("text");
        let replies = send_together(&queue, vec![set("a", "1"), increment, set("b", "2")]).await;

        assert!(matches!(replies[0], Ok(Value::Okay)), "{:?}", replies[0]);
        let refused = replies[1].as_ref().unwrap_err();
        assert!(refused.to_string().contains("not an integer"), "{refused}");
        assert!(matches!(replies[2], Ok(Value::Okay)), "{:?}", replies[2]);
    }

    #[tokio::test]
    async fn a_command_fails_when_redis_does_not_answer() {
        let (mut server, queue) = started().await;
        server.kill();
        assert!(queue.send(set("key", "value")).await.is_err());
    }
}
