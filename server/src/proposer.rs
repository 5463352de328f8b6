//! Proposal batching: writes that arrive together on the leader share one Raft log entry.
//!
//! openraft 0.9 appends each entry on its own and waits for that append's fsync before it takes
//! the next request, so one entry per write would cost one fsync per write on the leader. Instead
//! a proposer task takes every command queued while earlier entries were in flight and proposes
//! them as one entry (one append, one fsync, one replication message, one store batch), with a few
//! entries in flight at once so the log never waits for the proposer. A lone write goes out at
//! once, from the caller's own task: batching only ever groups what is already waiting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use mainstay_raft::{Raft, Request};
use mainstay_store::{Command, CommandOutput, RequestOp, StoreError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Result, ServerError};

/// Commands waiting for an entry, at most; beyond it a proposal is refused with etcd's "too many
/// requests" (etcd refuses when its applied index falls 5,000 entries behind the committed one).
const QUEUE: usize = 4096;
/// Approximate bytes of the commands waiting for an entry, at most (a command alone in the queue
/// is always taken, whatever its size).
const QUEUE_BYTES: usize = 64 << 20;
/// Entries proposed and not yet applied, at most. Few, so that under load commands gather into
/// large entries rather than queueing inside openraft as many small ones.
const ENTRIES_IN_FLIGHT: usize = 4;
/// Commands per entry, at most.
const MAX_COMMANDS: usize = 1024;
/// Approximate bytes of commands per entry: an entry of several commands stops growing here (a
/// single command may be larger, up to the request size limit), so that a replication message of
/// openraft's 64 entries stays far below the peer message limit.
const MAX_BYTES: usize = 1 << 20;

/// What a proposal comes to: the entry's log index and the command's output, or `None` when this
/// member was not the leader (nothing was appended).
pub(crate) type Answer = Result<Option<(u64, CommandOutput)>>;

/// What writing one entry came to: its log index and one output per command, `None` when this
/// member was not the leader, or the error every command of it gets.
pub(crate) type EntryResult =
    Result<Option<(u64, Vec<std::result::Result<CommandOutput, StoreError>>)>>;

/// Writes one entry of commands (through Raft; tests pass their own).
type Writer = Arc<dyn Fn(Vec<Command>) -> BoxFuture<'static, EntryResult> + Send + Sync>;

struct Pending {
    command: Command,
    /// Its share of [`Proposer::queued_bytes`], given back when the proposer takes it.
    bytes: usize,
    reply: oneshot::Sender<Answer>,
}

pub(crate) struct Proposer {
    queue: mpsc::Sender<Pending>,
    /// Approximate bytes of the commands in `queue`.
    queued_bytes: Arc<AtomicUsize>,
    /// Entries in flight (the proposer task's and the fast path's).
    slots: Arc<Semaphore>,
    write: Writer,
}

impl Proposer {
    /// Starts the proposer task over `raft`; it ends when the `Proposer` is dropped.
    pub(crate) fn spawn(raft: Raft, timeout: Duration) -> Proposer {
        Proposer::with_writer(Arc::new(move |commands| {
            let raft = raft.clone();
            Box::pin(async move { write_entry(&raft, timeout, commands).await })
        }))
    }

    fn with_writer(write: Writer) -> Proposer {
        let (queue, rx) = mpsc::channel(QUEUE);
        let slots = Arc::new(Semaphore::new(ENTRIES_IN_FLIGHT));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(write.clone(), slots.clone(), queued_bytes.clone(), rx));
        Proposer {
            queue,
            queued_bytes,
            slots,
            write,
        }
    }

    /// Proposes `command` in the next entry.
    pub(crate) async fn propose(&self, command: Command) -> Answer {
        // Fast path: with nothing waiting and an entry slot free, there is nothing to batch
        // with, so the command goes out from this task (no hand-over to the proposer task).
        if self.queue.capacity() == self.queue.max_capacity() {
            if let Ok(_slot) = self.slots.clone().try_acquire_owned() {
                let (reply, answer) = oneshot::channel();
                answer_all((self.write)(vec![command]).await, vec![reply]);
                return answer.await.map_err(|_| ServerError::Stopped)?;
            }
        }
        let bytes = approx_size(&command);
        let before = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > QUEUE_BYTES {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(ServerError::TooManyRequests);
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            command,
            bytes,
            reply,
        };
        if let Err(e) = self.queue.try_send(pending) {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => ServerError::TooManyRequests,
                mpsc::error::TrySendError::Closed(_) => ServerError::Stopped,
            });
        }
        answer.await.map_err(|_| ServerError::Stopped)?
    }
}

async fn run(
    write: Writer,
    slots: Arc<Semaphore>,
    queued_bytes: Arc<AtomicUsize>,
    mut rx: mpsc::Receiver<Pending>,
) {
    let take = |p: Pending| {
        queued_bytes.fetch_sub(p.bytes, Ordering::AcqRel);
        p
    };
    let mut next: Option<Pending> = None;
    loop {
        // Wait for a free slot first: commands arriving meanwhile gather into this entry.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => take(p),
                None => return,
            },
        };
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS {
            match rx.try_recv() {
                Ok(p) => {
                    let p = take(p);
                    if bytes + p.bytes > MAX_BYTES {
                        next = Some(p);
                        break;
                    }
                    bytes += p.bytes;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let write = write.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (commands, replies): (Vec<Command>, Vec<oneshot::Sender<Answer>>) = batch
                .into_iter()
                .filter(|p| !p.reply.is_closed())
                .map(|p| (p.command, p.reply))
                .unzip();
            if !commands.is_empty() {
                answer_all(write(commands).await, replies);
            }
        });
    }
}

/// Proposes `commands` as one entry.
async fn write_entry(raft: &Raft, timeout: Duration, commands: Vec<Command>) -> EntryResult {
    let write = raft.client_write(Request { commands });
    match tokio::time::timeout(timeout, write).await {
        Err(_) => Err(ServerError::Timeout),
        Ok(Ok(response)) => Ok(Some((response.log_id.index, response.data.outputs))),
        Ok(Err(e)) => match crate::error::client_write_error(e) {
            None => Ok(None),
            Some(e) => Err(e),
        },
    }
}

/// Answers each command's waiter from its entry's result.
fn answer_all(result: EntryResult, replies: Vec<oneshot::Sender<Answer>>) {
    match result {
        Ok(Some((index, outputs))) => {
            let mut outputs = outputs.into_iter();
            for r in replies {
                let answer = match outputs.next() {
                    Some(Ok(output)) => Ok(Some((index, output))),
                    Some(Err(e)) => Err(ServerError::Store(e)),
                    None => Err(ServerError::Config("an entry had too few outputs".into())),
                };
                let _ = r.send(answer);
            }
        }
        Ok(None) => {
            for r in replies {
                let _ = r.send(Ok(None));
            }
        }
        Err(e) => {
            for r in replies {
                let _ = r.send(Err(e.duplicate()));
            }
        }
    }
}

/// Roughly the bytes a command takes in an entry: keys and values, plus a little per command.
fn approx_size(command: &Command) -> usize {
    const OVERHEAD: usize = 32;
    fn op_size(op: &RequestOp) -> usize {
        match op {
            RequestOp::Range(r) => r.key.len() + r.range_end.len(),
            RequestOp::Put(p) => p.key.len() + p.value.len(),
            RequestOp::DeleteRange(d) => d.key.len() + d.range_end.len(),
            RequestOp::Txn(t) => txn_size(t),
        }
    }
    fn txn_size(t: &mainstay_store::TxnRequest) -> usize {
        let compares: usize = t
            .compare
            .iter()
            .map(|c| {
                let operand = match &c.target {
                    mainstay_store::CompareTarget::Value(v) => v.len(),
                    _ => 8,
                };
                c.key.len() + c.range_end.len() + operand
            })
            .sum();
        compares
            + t.success.iter().map(op_size).sum::<usize>()
            + t.failure.iter().map(op_size).sum::<usize>()
    }
    OVERHEAD
        + match command {
            Command::Put(p) => p.key.len() + p.value.len(),
            Command::DeleteRange(d) => d.key.len() + d.range_end.len(),
            Command::Txn(t) => txn_size(t),
            Command::LeaseCheckpoint { checkpoints } => checkpoints.len() * 16,
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mainstay_store::PutRequest;

    fn put(bytes: usize) -> Command {
        Command::Put(PutRequest {
            key: b"k".to_vec(),
            value: vec![b'v'; bytes],
            ..Default::default()
        })
    }

    /// A writer whose entries never finish (a leader that lost its quorum): proposals pile up
    /// until the queue's bound, and the next is refused with etcd's "too many requests" instead
    /// of waiting without limit.
    #[tokio::test(start_paused = true)]
    async fn proposals_beyond_the_queue_are_refused() {
        let proposer = Arc::new(Proposer::with_writer(Arc::new(|_| {
            Box::pin(futures::future::pending())
        })));
        let mut waiting = Vec::new();
        // Every slot's entry and the queue fill; the proposer task holds one more batch
        // in hand while it waits for a slot.
        for _ in 0..(ENTRIES_IN_FLIGHT + QUEUE + MAX_COMMANDS + 1) {
            let p = proposer.clone();
            waiting.push(tokio::spawn(async move { p.propose(put(1)).await }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let refused = proposer.propose(put(1)).await;
        assert!(
            matches!(refused, Err(ServerError::TooManyRequests)),
            "{refused:?}"
        );
        // Those taken still wait (none was answered wrongly), and they are at most what the
        // slots, one batch and the queue hold.
        let still = waiting.iter().filter(|w| !w.is_finished()).count();
        assert!(still >= QUEUE, "{still}");
        assert!(still <= ENTRIES_IN_FLIGHT + MAX_COMMANDS + QUEUE, "{still}");
    }

    /// Large commands are bounded by bytes too, long before the count.
    #[tokio::test(start_paused = true)]
    async fn queued_bytes_are_bounded() {
        let proposer = Arc::new(Proposer::with_writer(Arc::new(|_| {
            Box::pin(futures::future::pending())
        })));
        let mut refused = 0;
        let mut accepted = 0;
        let mut waiting = Vec::new();
        for _ in 0..200 {
            let p = proposer.clone();
            let task = tokio::spawn(async move { p.propose(put(1 << 20)).await });
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if task.is_finished() {
                match task.await.unwrap() {
                    Err(ServerError::TooManyRequests) => refused += 1,
                    other => panic!("{other:?}"),
                }
            } else {
                accepted += 1;
                waiting.push(task);
            }
        }
        // Four in flight, one held by the proposer task, 64 MiB queued; the rest refused.
        assert!(
            accepted <= ENTRIES_IN_FLIGHT + 1 + QUEUE_BYTES / (1 << 20) + 1,
            "{accepted}"
        );
        assert!(refused > 100, "{refused}");
        assert!(proposer.queued_bytes.load(Ordering::Acquire) <= QUEUE_BYTES);
    }

    /// A command in a written entry gets its own output.
    #[tokio::test]
    async fn each_command_gets_its_output() {
        let proposer = Proposer::with_writer(Arc::new(|commands: Vec<Command>| {
            Box::pin(async move {
                let outputs = commands
                    .iter()
                    .map(|_| Err(StoreError::DuplicateKey))
                    .collect();
                Ok(Some((7, outputs)))
            })
        }));
        let answer = proposer.propose(put(1)).await;
        assert!(matches!(
            answer,
            Err(ServerError::Store(StoreError::DuplicateKey))
        ));
    }
}
