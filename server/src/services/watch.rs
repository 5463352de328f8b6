//! The `Watch` service: one task per gRPC stream, between the client's requests, the watch hub's
//! deliveries and the progress timers.
//!
//! Bounds: the hub delivers into a channel of [`HUB_BUFFER`] messages and the task writes into a
//! response channel of [`OUT_BUFFER`]. A client that stops reading fills both; the hub then moves
//! its watchers to the unsynced set and catches them up from the store later, so neither writers
//! nor memory suffer.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use mainstay_proto::etcdserverpb as pb;
use mainstay_proto::etcdserverpb::watch_request::RequestUnion;
use mainstay_store::watch::{WatchMessage, WatchSpec};
use mainstay_store::{Event, RangeRequest};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::error::ServerError;
use crate::node::Node;

const HUB_BUFFER: usize = 128;
const OUT_BUFFER: usize = 64;
/// gRPC metadata etcd's clients send to require a leader (`clientv3.WithRequireLeader`).
const REQUIRE_LEADER_KEY: &str = "hasleader";
/// Election timeouts without a leader before a leader-requiring stream is ended.
const NO_LEADER_CHECKS: u32 = 3;

/// How often a deferred progress request re-checks whether the stream has caught up.
const PROGRESS_RETRY: Duration = Duration::from_millis(50);

pub struct WatchService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // etcd's clients set this metadata (`WithRequireLeader`) to be told when the member they
        // watch through has lost its leader, instead of silently receiving nothing.
        let require_leader = request
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == b"true");
        if require_leader && self.node.leader().is_none() {
            return Err(ServerError::NoLeader.into());
        }
        let (out, rx) = mpsc::channel(OUT_BUFFER);
        let mut session = Session::new(self.node.clone(), out);
        session.require_leader = require_leader;
        let incoming = request.into_inner();
        tokio::spawn(async move {
            session.run(incoming).await;
            session.node.hub.cancel_stream(session.stream);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct WatcherOpts {
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// Events sent since the last progress tick (etcd notifies only idle watchers).
    active: bool,
}

/// The client went away; the stream ends.
struct Gone;

struct Session {
    node: Arc<Node>,
    stream: u64,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    hub_tx: mpsc::Sender<WatchMessage>,
    hub_rx: mpsc::Receiver<WatchMessage>,
    watchers: HashMap<i64, WatcherOpts>,
    next_id: i64,
    progress_requested: bool,
    require_leader: bool,
}

impl Session {
    fn new(node: Arc<Node>, out: mpsc::Sender<Result<pb::WatchResponse, Status>>) -> Session {
        let (hub_tx, hub_rx) = mpsc::channel(HUB_BUFFER);
        Session {
            stream: node.hub.new_stream(),
            node,
            out,
            hub_tx,
            hub_rx,
            watchers: HashMap::new(),
            next_id: 0,
            progress_requested: false,
            require_leader: false,
        }
    }

    async fn run(&mut self, mut incoming: Streaming<pb::WatchRequest>) {
        let period = self.node.config.progress_notify_interval;
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut retry = tokio::time::interval(PROGRESS_RETRY);
        let mut leader_check = tokio::time::interval(self.node.config.election_timeout);
        let mut leaderless_checks = 0;
        loop {
            let step = tokio::select! {
                req = incoming.next() => match req {
                    Some(Ok(req)) => self.handle_request(req).await,
                    // Client closed its side, or the transport failed.
                    _ => return,
                },
                Some(msg) = self.hub_rx.recv() => self.deliver(msg).await,
                _ = progress.tick() => self.progress_tick().await,
                _ = retry.tick(), if self.progress_requested => self.answer_progress().await,
                _ = leader_check.tick(), if self.require_leader => {
                    // etcd's monitorLeader: three election timeouts without a leader end the stream.
                    if self.node.leader().is_none() {
                        leaderless_checks += 1;
                    } else {
                        leaderless_checks = 0;
                    }
                    if leaderless_checks >= NO_LEADER_CHECKS {
                        let _ = self.out.send(Err(ServerError::NoLeader.into())).await;
                        return;
                    }
                    Ok(())
                }
            };
            if step.is_err() {
                return;
            }
        }
    }

    async fn send(&self, resp: pb::WatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(resp)).await.map_err(|_| Gone)
    }

    fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        self.node.header(revision)
    }

    async fn handle_request(&mut self, req: pb::WatchRequest) -> Result<(), Gone> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_some() {
                    self.node.hub.cancel(self.stream, c.watch_id);
                    let resp = pb::WatchResponse {
                        header: self.header(self.node.hub.revision()),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    };
                    self.send(resp).await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.progress_requested = true;
                self.answer_progress().await
            }
            None => Ok(()),
        }
    }

    async fn refuse_create(&self, reason: String) -> Result<(), Gone> {
        let resp = pb::WatchResponse {
            header: self.header(self.node.hub.revision()),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        };
        self.send(resp).await
    }

    async fn create(&mut self, c: pb::WatchCreateRequest) -> Result<(), Gone> {
        // etcd: an empty key means the smallest key, "\0".
        let key = if c.key.is_empty() { vec![0] } else { c.key };
        let range_end = c.range_end;
        if !range_end.is_empty() && range_end != [0] && key >= range_end {
            return self
                .refuse_create("mvcc: watcher range is empty".into())
                .await;
        }
        if self.watchers.len() >= self.node.config.max_watchers_per_stream {
            return self
                .refuse_create(format!(
                    "mainstay: more than {} watchers on one stream",
                    self.node.config.max_watchers_per_stream
                ))
                .await;
        }
        let id = if c.watch_id != 0 {
            if self.watchers.contains_key(&c.watch_id) {
                return self
                    .refuse_create("mvcc: duplicate watch ID provided on the WatchStream".into())
                    .await;
            }
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        };
        use pb::watch_create_request::FilterType;
        let filter_put = c.filters.contains(&(FilterType::Noput as i32));
        let filter_delete = c.filters.contains(&(FilterType::Nodelete as i32));
        let created_rev = self.node.hub.revision();
        let start_revision = if c.start_revision > 0 {
            c.start_revision
        } else {
            created_rev + 1
        };
        self.watchers.insert(
            id,
            WatcherOpts {
                prev_kv: c.prev_kv,
                fragment: c.fragment,
                progress_notify: c.progress_notify,
                active: false,
            },
        );
        // The created response goes out before anything the hub delivers for this watcher: both
        // leave through this task, and the hub only learns of the watcher below.
        let created = pb::WatchResponse {
            header: self.header(created_rev),
            watch_id: id,
            created: true,
            ..Default::default()
        };
        self.send(created).await?;
        let spec = WatchSpec {
            key,
            range_end,
            start_revision,
            filter_put,
            filter_delete,
        };
        if self
            .node
            .hub
            .watch(self.stream, id, spec, self.hub_tx.clone())
            .is_err()
        {
            // Only a duplicate ID, which the map above already ruled out.
            self.watchers.remove(&id);
        }
        Ok(())
    }

    async fn deliver(&mut self, msg: WatchMessage) -> Result<(), Gone> {
        let Some(opts) = self.watchers.get_mut(&msg.watch_id) else {
            return Ok(()); // canceled while this was queued
        };
        if msg.compact_revision != 0 {
            self.watchers.remove(&msg.watch_id);
            let resp = pb::WatchResponse {
                header: self.header(msg.revision),
                watch_id: msg.watch_id,
                canceled: true,
                compact_revision: msg.compact_revision,
                cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                ..Default::default()
            };
            return self.send(resp).await;
        }
        opts.active = true;
        let (prev_kv, fragment) = (opts.prev_kv, opts.fragment);
        let mut events = msg.events;
        if prev_kv && events.iter().any(|ev| needs_prev_kv(ev)) {
            let store = self.node.store.clone();
            events = tokio::task::spawn_blocking(move || fill_prev_kv(&store, events))
                .await
                .map_err(|_| Gone)?;
        }
        let resp = pb::WatchResponse {
            header: self.header(msg.revision),
            watch_id: msg.watch_id,
            // The one copy of a shared event per response, made as it goes out.
            events: events
                .into_iter()
                .map(|ev| convert::event_to_pb(Arc::unwrap_or_clone(ev)))
                .collect(),
            ..Default::default()
        };
        if fragment {
            for part in fragments(resp, self.node.config.max_request_bytes) {
                self.send(part).await?;
            }
            Ok(())
        } else {
            self.send(resp).await
        }
    }

    /// etcd's periodic progress notification: idle, caught-up watchers that asked for it learn
    /// the current revision.
    async fn progress_tick(&mut self) -> Result<(), Gone> {
        let mut due = Vec::new();
        for (id, opts) in self.watchers.iter_mut() {
            if opts.progress_notify && !std::mem::take(&mut opts.active) {
                due.push(*id);
            }
        }
        for id in due {
            if let Some(rev) = self.node.hub.synced_revision(self.stream, id) {
                let resp = pb::WatchResponse {
                    header: self.header(rev),
                    watch_id: id,
                    ..Default::default()
                };
                self.send(resp).await?;
            }
        }
        Ok(())
    }

    /// Answers a `WatchProgressRequest` (watch_id -1) once every watcher on the stream has seen
    /// everything up to the revision it claims; until then it stays pending and is retried.
    async fn answer_progress(&mut self) -> Result<(), Gone> {
        let Some(rev) = self.node.hub.stream_synced_revision(self.stream) else {
            return Ok(());
        };
        // Deliveries queued before the check cover revisions up to `rev`: they go out first.
        let mut carry = None;
        while let Ok(msg) = self.hub_rx.try_recv() {
            if msg.revision > rev {
                carry = Some(msg);
                break;
            }
            self.deliver(msg).await?;
        }
        self.progress_requested = false;
        let resp = pb::WatchResponse {
            header: self.header(rev),
            watch_id: -1,
            ..Default::default()
        };
        self.send(resp).await?;
        if let Some(msg) = carry {
            self.deliver(msg).await?;
        }
        Ok(())
    }
}

fn needs_prev_kv(ev: &Event) -> bool {
    ev.prev_kv.is_none() && ev.kv.mod_revision > 1
}

/// The value each event's key had just before it, for watchers that asked for `prev_kv`. An event
/// shared with other watchers is copied before it is changed.
fn fill_prev_kv(store: &mainstay_store::Store, mut events: Vec<Arc<Event>>) -> Vec<Arc<Event>> {
    for ev in &mut events {
        if !needs_prev_kv(ev) {
            continue;
        }
        let ev = Arc::make_mut(ev);
        let req = RangeRequest {
            key: ev.kv.key.clone(),
            revision: ev.kv.mod_revision - 1,
            ..Default::default()
        };
        // Compacted history has no previous value to give.
        if let Ok(mut r) = store.range(&req) {
            ev.prev_kv = r.kvs.pop();
        }
    }
    events
}

/// etcd's `sendFragments`: a response larger than the request limit is split into several, each
/// with at least one event; all but the last carry `fragment = true`.
fn fragments(resp: pb::WatchResponse, max_bytes: usize) -> Vec<pb::WatchResponse> {
    if resp.encoded_len() < max_bytes || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut template = resp.clone();
    template.events = Vec::new();
    template.fragment = true;
    let mut parts = Vec::new();
    let mut cur = template.clone();
    for ev in resp.events {
        cur.events.push(ev);
        if cur.events.len() > 1 && cur.encoded_len() >= max_bytes {
            let ev = cur.events.pop().expect("just pushed");
            parts.push(std::mem::replace(&mut cur, template.clone()));
            cur.events.push(ev);
        }
    }
    cur.fragment = false;
    parts.push(cur);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use mainstay_proto::mvccpb;

    fn ev(n: usize) -> mvccpb::Event {
        mvccpb::Event {
            kv: Some(mvccpb::KeyValue {
                key: format!("k{n}").into_bytes(),
                value: vec![b'v'; 100],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fragments_split_large_responses_and_mark_all_but_the_last() {
        let resp = pb::WatchResponse {
            watch_id: 3,
            events: (0..10).map(ev).collect(),
            ..Default::default()
        };
        let parts = fragments(resp.clone(), 400);
        assert!(parts.len() > 1);
        let (last, rest) = parts.split_last().unwrap();
        assert!(rest.iter().all(|p| p.fragment && p.encoded_len() < 400));
        assert!(!last.fragment);
        let all: Vec<_> = parts.iter().flat_map(|p| p.events.clone()).collect();
        assert_eq!(all, resp.events);
        assert!(parts
            .iter()
            .all(|p| p.watch_id == 3 && !p.events.is_empty()));
        // Small responses and single events pass through whole.
        assert_eq!(fragments(resp.clone(), 1 << 20), vec![resp.clone()]);
        let one = pb::WatchResponse {
            events: vec![ev(1)],
            ..Default::default()
        };
        assert_eq!(fragments(one.clone(), 10), vec![one]);
    }
}
