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

/// Readers waiting for the next round, at most; beyond it a read is refused with etcd's "too many
/// requests" rather than waiting without bound.
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
        self.queue.try_send(tx).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ServerError::TooManyRequests,
            mpsc::error::TrySendError::Closed(_) => ServerError::Stopped,
        })?;
        rx.await.map_err(|_| ServerError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A round that never ends (a leader cut off from its quorum): readers queue up to the bound,
    /// and the next one is refused at once with etcd's "too many requests".
    #[tokio::test(start_paused = true)]
    async fn readers_beyond_the_queue_are_refused() {
        let batcher = Arc::new(ReadIndexBatcher::spawn(|| {
            Box::pin(futures::future::pending())
        }));
        let spawn_readers = |n: usize| {
            (0..n)
                .map(|_| {
                    let b = batcher.clone();
                    tokio::spawn(async move { b.read_index().await })
                })
                .collect::<Vec<_>>()
        };
        // One batch goes into the round (which never ends), the queue fills behind it.
        let mut readers = spawn_readers(2 * QUEUE);
        tokio::time::sleep(Duration::from_millis(10)).await;
        readers.extend(spawn_readers(QUEUE));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let refused = tokio::time::timeout(Duration::from_secs(1), batcher.read_index())
            .await
            .expect("a reader beyond the bound is answered at once, not parked");
        assert!(
            matches!(refused, Err(ServerError::TooManyRequests)),
            "{refused:?}"
        );
        // Exactly one round's batch and one full queue wait; every other reader was refused.
        let mut waiting = 0;
        for r in readers {
            if r.is_finished() {
                let answer = r.await.unwrap();
                assert!(
                    matches!(answer, Err(ServerError::TooManyRequests)),
                    "{answer:?}"
                );
            } else {
                waiting += 1;
            }
        }
        assert_eq!(waiting, 2 * QUEUE);
    }

    /// Readers that were queued get the round's index.
    #[tokio::test]
    async fn queued_readers_get_the_round() {
        let batcher = ReadIndexBatcher::spawn(|| Box::pin(async { Ok(Some(42)) }));
        assert_eq!(batcher.read_index().await.unwrap(), Some(42));
    }
}
