//! The `Maintenance` service (Status, Alarm, Hash, HashKV, Defragment, Snapshot) and `Cluster`
//! (one member until Raft replication arrives).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::Stream;
use mainstay_proto::etcdserverpb as pb;
use mainstay_store::{Alarm, AlarmKind, Command};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::{status, ServerError};
use crate::node::Node;
use crate::peer::wire::{ClusterOp, MemberInfo};

/// Version reported by Status and /version: the etcd API level this server implements.
pub const ETCD_VERSION: &str = "3.5.17";
const SNAPSHOT_CHUNK: usize = 32 * 1024;
/// Snapshot chunks in flight to one client.
const SNAPSHOT_BUFFER: usize = 4;

/// Hash, HashKV and Defragment read or rewrite the whole store: they run on at most this many
/// threads of their own, never on the runtime's shared blocking pool, which reads, applies and
/// watch catch-up need.
const MAINTENANCE_THREADS: usize = 2;
/// Requests waiting for one of those threads, at most; more get etcd's "too many requests".
const MAINTENANCE_QUEUE: usize = 64;
/// Snapshot streams served at once, each by a thread of its own; more get "too many requests".
const SNAPSHOT_STREAMS: usize = 4;
/// A snapshot whose client takes no chunk for this long is abandoned, and its thread freed.
const SNAPSHOT_STALL: Duration = Duration::from_secs(30);

/// The threads that maintenance work may use, shared by every member in the process.
struct MaintenancePool {
    work: Arc<Semaphore>,
    waiting: AtomicUsize,
    snapshots: Arc<Semaphore>,
}

static POOL: LazyLock<MaintenancePool> = LazyLock::new(|| MaintenancePool {
    work: Arc::new(Semaphore::new(MAINTENANCE_THREADS)),
    waiting: AtomicUsize::new(0),
    snapshots: Arc::new(Semaphore::new(SNAPSHOT_STREAMS)),
});

/// Runs `f` on a maintenance thread once one is free (waiting in a bounded queue).
async fn run_maintenance<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    /// Counts one waiter until dropped, also when the request is abandoned while it waits.
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            POOL.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let waiting = Waiting;
    if POOL.waiting.fetch_add(1, Ordering::AcqRel) >= MAINTENANCE_QUEUE {
        return Err(ServerError::TooManyRequests.into());
    }
    let permit = POOL.work.clone().acquire_owned().await;
    drop(waiting);
    let permit = permit.map_err(|_| Status::from(ServerError::Stopped))?;
    let (tx, rx) = oneshot::channel();
    spawn_thread("maintenance", permit, move || {
        let _ = tx.send(f());
    })?;
    rx.await
        .map_err(|_| Status::internal("maintenance work failed"))
}

/// A thread that holds `permit` for as long as it runs.
fn spawn_thread(
    name: &str,
    permit: OwnedSemaphorePermit,
    f: impl FnOnce() + Send + 'static,
) -> Result<(), Status> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            f();
            drop(permit);
        })
        .map(|_| ())
        .map_err(|e| Status::internal(format!("starting a maintenance thread: {e}")))
}

pub struct MaintenanceService {
    pub node: Arc<Node>,
}

fn blocking_err(e: tokio::task::JoinError) -> Status {
    Status::internal(e.to_string())
}

fn alarm_to_pb(a: &Alarm) -> pb::AlarmMember {
    pb::AlarmMember {
        member_id: a.member_id,
        alarm: match a.kind {
            AlarmKind::NoSpace => pb::AlarmType::Nospace,
            AlarmKind::Corrupt => pb::AlarmType::Corrupt,
        } as i32,
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        use pb::alarm_request::AlarmAction;
        let req = request.into_inner();
        let action = AlarmAction::try_from(req.action)
            .map_err(|_| Status::invalid_argument("etcdserver: unknown alarm action"))?;
        let kind = match pb::AlarmType::try_from(req.alarm) {
            Ok(pb::AlarmType::Nospace) => Some(AlarmKind::NoSpace),
            Ok(pb::AlarmType::Corrupt) => Some(AlarmKind::Corrupt),
            _ => None,
        };
        let alarms = match (action, kind) {
            (AlarmAction::Get, _) => self.node.store.alarms().iter().map(alarm_to_pb).collect(),
            (_, None) => vec![],
            (AlarmAction::Activate | AlarmAction::Deactivate, Some(kind)) => {
                let alarm = Alarm {
                    member_id: req.member_id,
                    kind,
                };
                let cmd = if action == AlarmAction::Activate {
                    Command::AlarmActivate(alarm)
                } else {
                    Command::AlarmDeactivate(alarm)
                };
                match self.node.propose(cmd).await? {
                    mainstay_store::CommandOutput::Alarm { changed, .. } => {
                        changed.iter().map(alarm_to_pb).collect()
                    }
                    other => return Err(Status::internal(format!("unexpected {other:?}"))),
                }
            }
        };
        Ok(Response::new(pb::AlarmResponse {
            header: self.node.header(self.node.store.current_revision()),
            alarms,
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let store = node.store.clone();
        let in_use = tokio::task::spawn_blocking(move || store.size_in_use_bytes())
            .await
            .map_err(blocking_err)?;
        let errors = node
            .store
            .alarms()
            .iter()
            .map(|a| {
                let kind = match a.kind {
                    AlarmKind::NoSpace => "NOSPACE",
                    AlarmKind::Corrupt => "CORRUPT",
                };
                format!("memberID:{} alarm:{kind} ", a.member_id)
            })
            .collect();
        let metrics = node.raft.metrics().borrow().clone();
        let is_learner = node
            .members()
            .iter()
            .any(|m| m.id == node.member_id && m.is_learner);
        Ok(Response::new(pb::StatusResponse {
            header: node.header(node.store.current_revision()),
            version: ETCD_VERSION.into(),
            db_size: node.db_size() as i64,
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            errors,
            db_size_in_use: in_use as i64,
            is_learner,
            db_size_quota: node.config.quota_backend_bytes as i64,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        let store = self.node.store.clone();
        run_maintenance(move || store.defragment())
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::DefragmentResponse {
            header: self.node.header(self.node.store.current_revision()),
        }))
    }

    async fn hash(
        &self,
        _request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let store = self.node.store.clone();
        let h = run_maintenance(move || store.hash_kv(0))
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::HashResponse {
            header: self.node.header(h.hash_revision),
            hash: h.hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let store = self.node.store.clone();
        let h = run_maintenance(move || store.hash_kv(rev))
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::HashKvResponse {
            header: self.node.header(self.node.store.current_revision()),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        }))
    }

    type SnapshotStream =
        Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send + 'static>>;

    /// Streams a consistent copy of the store, followed (as etcd does) by the SHA-256 of
    /// everything before it. `remaining_bytes` is an estimate until the last message, which says 0.
    ///
    /// Each stream is written by a thread of its own (at most [`SNAPSHOT_STREAMS`] at once), which
    /// waits for its client at most [`SNAPSHOT_STALL`] per chunk: a client that does not read
    /// holds neither a thread of the runtime's blocking pool nor a maintenance thread for long.
    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let permit = POOL
            .snapshots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Status::from(ServerError::TooManyRequests))?;
        let (tx, rx) = mpsc::channel(SNAPSHOT_BUFFER);
        let node = self.node.clone();
        let runtime = tokio::runtime::Handle::current();
        // Hands one message to the client, or gives up if it has not taken one for a while.
        let send = move |msg: Result<pb::SnapshotResponse, Status>| {
            // The timer is made inside `block_on`, where the runtime's timer is reachable (this
            // is a thread of our own, outside the runtime).
            runtime
                .block_on(async { tokio::time::timeout(SNAPSHOT_STALL, tx.send(msg)).await })
                .is_ok_and(|sent| sent.is_ok())
        };
        spawn_thread("snapshot", permit, move || {
            let header = node.header(node.store.current_revision());
            let estimate = node.db_size();
            let mut sent = 0u64;
            let mut hasher = Sha256::new();
            let result = node.store.write_snapshot(SNAPSHOT_CHUNK, |chunk| {
                hasher.update(&chunk);
                sent += chunk.len() as u64;
                let msg = pb::SnapshotResponse {
                    header,
                    remaining_bytes: estimate.saturating_sub(sent).max(1),
                    blob: chunk,
                    ..Default::default()
                };
                send(Ok(msg))
            });
            let last = match result {
                Ok(true) => {
                    // etcdctl expects a page-aligned (512-byte) file before the checksum, as a
                    // bbolt file is; the store's format ends at its end marker, so zeros after it
                    // are ignored.
                    let pad = (512 - (sent % 512) as usize) % 512;
                    if pad > 0 {
                        let zeros = vec![0u8; pad];
                        hasher.update(&zeros);
                        let msg = pb::SnapshotResponse {
                            header,
                            remaining_bytes: 32,
                            blob: zeros,
                            ..Default::default()
                        };
                        if !send(Ok(msg)) {
                            return;
                        }
                    }
                    Ok(pb::SnapshotResponse {
                        header,
                        remaining_bytes: 0,
                        blob: hasher.finalize().to_vec(),
                        ..Default::default()
                    })
                }
                Ok(false) => return, // the client went away
                Err(e) => Err(status(e)),
            };
            send(last);
        })?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn downgrade(
        &self,
        _request: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "mainstay: cluster downgrade is not supported",
        ))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        self.node.transfer_leadership(target).await?;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: self.node.header(self.node.store.current_revision()),
        }))
    }
}

pub struct ClusterService {
    pub node: Arc<Node>,
}

fn member_to_pb(m: &MemberInfo) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.member.name.clone(),
        peer_ur_ls: m.member.peer_urls.clone(),
        client_ur_ls: m.member.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

impl ClusterService {
    /// The members after a change this member asked the leader for: its own view may lag behind
    /// the leader's for a moment, so the changed member is patched in (or out).
    fn members_after(&self, changed: Option<&MemberInfo>, removed: Option<u64>) -> Vec<pb::Member> {
        let mut members = self.node.members();
        members.retain(|m| Some(m.id) != removed);
        if let Some(c) = changed {
            match members.iter_mut().find(|m| m.id == c.id) {
                Some(m) => *m = c.clone(),
                None => members.push(c.clone()),
            }
        }
        members.iter().map(member_to_pb).collect()
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let req = request.into_inner();
        let added = self
            .node
            .change_cluster(ClusterOp::Add {
                peer_urls: req.peer_ur_ls,
                is_learner: req.is_learner,
            })
            .await?
            .ok_or_else(|| Status::internal("mainstay: MemberAdd returned no member"))?;
        Ok(Response::new(pb::MemberAddResponse {
            header: self.node.header(0),
            member: Some(member_to_pb(&added)),
            members: self.members_after(Some(&added), None),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        self.node.change_cluster(ClusterOp::Remove { id }).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.node.header(0),
            members: self.members_after(None, Some(id)),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let req = request.into_inner();
        self.node
            .change_cluster(ClusterOp::Update {
                id: req.id,
                peer_urls: req.peer_ur_ls.clone(),
            })
            .await?;
        let updated = self
            .node
            .members()
            .into_iter()
            .find(|m| m.id == req.id)
            .map(|mut m| {
                m.member.peer_urls = req.peer_ur_ls.clone();
                m
            });
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.node.header(0),
            members: self.members_after(updated.as_ref(), None),
        }))
    }

    async fn member_list(
        &self,
        _r: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        // etcd's MemberList header carries no revision.
        Ok(Response::new(pb::MemberListResponse {
            header: self.node.header(0),
            members: self.node.members().iter().map(member_to_pb).collect(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        let promoted = self.node.change_cluster(ClusterOp::Promote { id }).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.node.header(0),
            members: self.members_after(promoted.as_ref(), None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// A request abandoned while it waits for a maintenance thread (its client went away) leaves
    /// the queue: otherwise 64 such requests would refuse every later one forever.
    #[tokio::test]
    async fn abandoned_waiters_leave_the_queue() {
        let busy: Vec<_> = (0..MAINTENANCE_THREADS)
            .map(|_| {
                let (release, released) = std::sync::mpsc::channel::<()>();
                let task = tokio::spawn(run_maintenance(move || {
                    let _ = released.recv();
                }));
                (release, task)
            })
            .collect();
        while POOL.work.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..2 * MAINTENANCE_QUEUE {
            // Polled once: it joins the queue, finds no thread free, and is dropped.
            assert!(run_maintenance(|| ()).now_or_never().is_none());
        }
        assert_eq!(POOL.waiting.load(Ordering::Acquire), 0);
        for (release, task) in busy {
            release.send(()).unwrap();
            task.await.unwrap().unwrap();
        }
        assert_eq!(run_maintenance(|| 7).await.unwrap(), 7);
    }
}
