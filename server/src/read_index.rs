//! Read-index batching: one leadership confirmation answers every linearizable read that was
//! waiting when it began (etcd's `linearizableReadLoop` does the same).
//!
//! A read may use a read index only if the index was taken after the read arrived, so a read that
//! arrives while a confirmation is under way waits for the next one. Without batching every read
//! costs a heartbeat round to a quorum (or a request to the leader), and a thousand concurrent
//! readers cost a thousand rounds.

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, ServerError};

/// Readers waiting for the next round, at most; more wait to enqueue.
const QUEUE: usize = 8192;

/// One round's answer: `Some(index)` to wait for, `None` when the member asked was not the leader.
pub(crate) type Answer = Result<Option<u64>>;

/// Queues readers and runs one round for all that are queued when it starts.
pub(crate) struct ReadIndexBatcher {
    queue: mpsc::Sender<oneshot::Sender<Answer>>,
}

impl ReadIndexBatcher {
    /// Starts the batching task; `round` gets the read index. The task ends when the batcher is
    /// dropped, so `round` should hold its owner only weakly (the node passes a closure over a
    /// `Weak<Node>`, answering [`ServerError::Stopped`] once the node is gone).
    pub(crate) fn spawn(
        round: impl Fn() -> BoxFuture<'static, Answer> + Send + 'static,
    ) -> ReadIndexBatcher {
        let (queue, mut rx) = mpsc::channel::<oneshot::Sender<Answer>>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < QUEUE {
                    match rx.try_recv() {
                        Ok(waiter) => batch.push(waiter),
                        Err(_) => break,
                    }
                }
                // Readers that gave up (their client went away) need no round.
                batch.retain(|w: &oneshot::Sender<Answer>| !w.is_closed());
                if batch.is_empty() {
                    continue;
                }
                let answer = round().await;
                for waiter in batch.drain(..) {
                    let _ = waiter.send(match &answer {
                        Ok(index) => Ok(*index),
                        Err(e) => Err(e.duplicate()),
                    });
                }
            }
        });
        ReadIndexBatcher { queue }
    }

    /// The read index of the next round that starts after this call.
    pub(crate) async fn read_index(&self) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(tx)
            .await
            .map_err(|_| ServerError::Stopped)?;
        rx.await.map_err(|_| ServerError::Stopped)?
    }
}
