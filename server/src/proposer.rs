//! Proposal batching: writes that arrive together on the leader share one Raft log entry.
//!
//! openraft 0.9 appends each entry on its own and waits for that append's fsync before it takes
//! the next request, so one entry per write would cost one fsync per write on the leader. Instead
//! a proposer task takes every command queued while earlier entries were in flight and proposes
//! them as one entry (one append, one fsync, one replication message, one store batch), with a few
//! entries in flight at once so the log never waits for the proposer. A lone write goes out at
//! once, from the caller's own task: batching only ever groups what is already waiting.

use std::sync::Arc;
use std::time::Duration;

use mainstay_raft::{Raft, Request};
use mainstay_store::{Command, CommandOutput, RequestOp};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Result, ServerError};

/// Commands waiting for an entry, at most; more wait to enqueue.
const QUEUE: usize = 4096;
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

struct Pending {
    command: Command,
    reply: oneshot::Sender<Answer>,
}

pub(crate) struct Proposer {
    queue: mpsc::Sender<Pending>,
    /// Entries in flight (the proposer task's and the fast path's).
    slots: Arc<Semaphore>,
    raft: Raft,
    timeout: Duration,
}

impl Proposer {
    /// Starts the proposer task; it ends when the `Proposer` is dropped.
    pub(crate) fn spawn(raft: Raft, timeout: Duration) -> Proposer {
        let (queue, rx) = mpsc::channel(QUEUE);
        let slots = Arc::new(Semaphore::new(ENTRIES_IN_FLIGHT));
        tokio::spawn(run(raft.clone(), timeout, slots.clone(), rx));
        Proposer {
            queue,
            slots,
            raft,
            timeout,
        }
    }

    /// Proposes `command` in the next entry.
    pub(crate) async fn propose(&self, command: Command) -> Answer {
        // Fast path: with nothing waiting and an entry slot free, there is nothing to batch
        // with, so the command goes out from this task (no hand-over to the proposer task).
        if self.queue.capacity() == self.queue.max_capacity() {
            if let Ok(_slot) = self.slots.clone().try_acquire_owned() {
                let (reply, answer) = oneshot::channel();
                write_entry(&self.raft, self.timeout, vec![command], vec![reply]).await;
                return answer.await.map_err(|_| ServerError::Stopped)?;
            }
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .await
            .map_err(|_| ServerError::Stopped)?;
        answer.await.map_err(|_| ServerError::Stopped)?
    }
}

async fn run(
    raft: Raft,
    timeout: Duration,
    slots: Arc<Semaphore>,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut next: Option<Pending> = None;
    loop {
        // Wait for a free slot first: commands arriving meanwhile gather into this entry.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = approx_size(&first.command);
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS {
            match rx.try_recv() {
                Ok(p) => {
                    let size = approx_size(&p.command);
                    if bytes + size > MAX_BYTES {
                        next = Some(p);
                        break;
                    }
                    bytes += size;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (commands, replies): (Vec<Command>, Vec<oneshot::Sender<Answer>>) = batch
                .into_iter()
                .filter(|p| !p.reply.is_closed())
                .map(|p| (p.command, p.reply))
                .unzip();
            if !commands.is_empty() {
                write_entry(&raft, timeout, commands, replies).await;
            }
        });
    }
}

/// Proposes `commands` as one entry and answers each command's waiter.
async fn write_entry(
    raft: &Raft,
    timeout: Duration,
    commands: Vec<Command>,
    replies: Vec<oneshot::Sender<Answer>>,
) {
    let write = raft.client_write(Request { commands });
    let result = match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(_) => {
            for r in replies {
                let _ = r.send(Err(ServerError::Timeout));
            }
            return;
        }
    };
    match result {
        Ok(response) => {
            let index = response.log_id.index;
            let mut outputs = response.data.outputs.into_iter();
            for r in replies {
                let answer = match outputs.next() {
                    Some(Ok(output)) => Ok(Some((index, output))),
                    Some(Err(e)) => Err(ServerError::Store(e)),
                    None => Err(ServerError::Config("an entry had too few outputs".into())),
                };
                let _ = r.send(answer);
            }
        }
        Err(e) => {
            let error = crate::error::client_write_error(e);
            for r in replies {
                let _ = r.send(match &error {
                    None => Ok(None),
                    Some(e) => Err(e.duplicate()),
                });
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
