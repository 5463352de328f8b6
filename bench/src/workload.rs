//! The load generator: workloads modelled on etcd's `tools/benchmark`, run by closed-loop clients
//! over a fixed number of gRPC connections until a fixed number of operations is done.
//!
//! Every client is prepared (leases granted, watchers created, revisions learned) before the clock
//! starts; all start together behind a barrier. Each operation is bounded by [`REQUEST_TIMEOUT`]; a
//! failed or timed-out operation counts as an error and is not in the latency histogram.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mainstay_proto::etcdserverpb::{
    compare, kv_client::KvClient, lease_client::LeaseClient, request_op, response_op,
    watch_client::WatchClient, watch_request, Compare, DeleteRangeRequest, LeaseGrantRequest,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
};
use mainstay_testkit::client::prefix_end;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Barrier};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use crate::histogram::Latencies;
use crate::Error;

/// Upper bound for one operation (a paged list counts as one).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for connecting, and for each preparation step.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Value size of the key-value workloads (etcd's benchmark default).
pub const VALUE_SIZE: usize = 256;
/// Keys of the key-value workloads are 8-byte big-endian integers below this.
pub const KEY_SPACE: u64 = 100_000;
/// How many error messages an outcome keeps.
const ERROR_SAMPLES: usize = 5;

/// Which members a workload's connections go to.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// All connections to the leader (etcd's "leader only" numbers).
    Leader,
    /// Connection `i` to member `i mod n`.
    AllMembers,
}

/// What a workload does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Kind {
    /// Put one key. `sequential`: operation `i` writes key `i mod KEY_SPACE` (fills the key space),
    /// else a uniformly random key.
    Put { sequential: bool },
    /// Get one random key.
    Range { serializable: bool },
    /// kube-apiserver's optimistic update: `Txn(mod_revision(k) == r) then Put else Get`, each
    /// client on its own block of keys with the revisions it learned.
    TxnCas,
    /// `clients` watch streams with `watchers_per_stream` watchers each on one prefix; a writer
    /// puts `total` keys under it at `put_rate` per second. Latency is from just before each put
    /// is sent until its event reaches a watcher, for every watcher.
    WatchLatency {
        watchers_per_stream: usize,
        put_rate: u32,
    },
    /// Each client keeps one lease alive over its own keep-alive stream: one request, one answer.
    LeaseKeepAlive,
    /// A Kubernetes-shaped mix over pods: see [`KubeMix`].
    KubernetesMix(KubeMix),
}

/// The Kubernetes mix. Writes follow etcd's robustness "Kubernetes" traffic profile (update 75,
/// delete 15, create 10, with each client's object count held near its start), as optimistic
/// transactions like kube-apiserver's. Reads are what an apiserver sends etcd besides writes: gets
/// of single objects and paged lists of a namespace. Watchers on the resource prefix run
/// throughout, as the apiserver's watch cache does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KubeMix {
    pub namespaces: usize,
    pub pods_per_namespace: usize,
    pub value_size: usize,
    /// Percent of operations that are writes.
    pub write_percent: u32,
    /// Percent of operations that are gets (the rest are paged lists).
    pub get_percent: u32,
    pub page_size: i64,
    pub watchers: usize,
}

impl Default for KubeMix {
    fn default() -> Self {
        KubeMix {
            namespaces: 10,
            pods_per_namespace: 1000,
            value_size: 1024,
            write_percent: 60,
            get_percent: 30,
            page_size: 500,
            watchers: 10,
        }
    }
}

/// One workload run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    pub name: String,
    pub kind: Kind,
    /// gRPC connections.
    pub conns: usize,
    /// Concurrent closed-loop clients (watch streams for [`Kind::WatchLatency`]).
    pub clients: usize,
    /// Operations (puts for [`Kind::WatchLatency`]).
    pub total: u64,
    pub route: Route,
}

impl Spec {
    /// Whether throughput is set by the workload (a fixed put rate) rather than by the server.
    pub fn fixed_rate(&self) -> bool {
        matches!(self.kind, Kind::WatchLatency { .. })
    }
}

/// What a run measured.
#[derive(Clone, Default)]
pub struct Outcome {
    /// Operations that succeeded (watch events delivered, for the watch workload).
    pub ops: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// From the start barrier until the last client finished.
    pub elapsed: Duration,
    pub latencies: Latencies,
    /// Named counters (CAS conflicts, events seen by watchers, ...).
    pub counters: BTreeMap<String, u64>,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `spec` against a cluster: `leader` is the leader's client URL, `members` every member's.
pub async fn run(spec: &Spec, leader: &str, members: &[String]) -> Result<Outcome, Error> {
    let endpoints: Vec<String> = match spec.route {
        Route::Leader => vec![leader.to_string()],
        Route::AllMembers => members.to_vec(),
    };
    let conns = Conns::open(&endpoints, spec.conns).await?;
    match &spec.kind {
        Kind::Put { sequential } => {
            let value: Arc<[u8]> = random_value(VALUE_SIZE).into();
            let clients = (0..spec.clients)
                .map(|c| PutClient {
                    kv: KvClient::new(conns.get(c)),
                    sequential: *sequential,
                    rng: StdRng::seed_from_u64(c as u64),
                    value: value.clone(),
                })
                .collect();
            Ok(drive(clients, spec.total).await.0)
        }
        Kind::Range { serializable } => {
            let clients = (0..spec.clients)
                .map(|c| RangeClient {
                    kv: KvClient::new(conns.get(c)),
                    serializable: *serializable,
                    rng: StdRng::seed_from_u64(c as u64),
                })
                .collect();
            Ok(drive(clients, spec.total).await.0)
        }
        Kind::TxnCas => {
            let value: Arc<[u8]> = random_value(VALUE_SIZE).into();
            let per_client = (KEY_SPACE / spec.clients as u64).max(1);
            let prepared = (0..spec.clients).map(|c| {
                let start = c as u64 * per_client;
                CasClient::prepare(
                    KvClient::new(conns.get(c)),
                    start..start + per_client,
                    value.clone(),
                    c as u64,
                )
            });
            let clients = try_join_bounded(prepared).await?;
            Ok(drive(clients, spec.total).await.0)
        }
        Kind::LeaseKeepAlive => {
            let prepared = (0..spec.clients).map(|c| KeepAliveClient::prepare(conns.get(c)));
            let clients = try_join_bounded(prepared).await?;
            let (outcome, clients) = drive(clients, spec.total).await;
            // Revoked so that expiring leases do not write into the next workload.
            let revokes = clients.into_iter().map(KeepAliveClient::revoke);
            futures::future::join_all(revokes).await;
            Ok(outcome)
        }
        Kind::WatchLatency {
            watchers_per_stream,
            put_rate,
        } => {
            let writer = connect(leader).await?;
            watch_latency(
                &conns,
                writer,
                spec.clients,
                *watchers_per_stream,
                spec.total,
                *put_rate,
            )
            .await
        }
        Kind::KubernetesMix(mix) => kube_mix(&conns, leader, spec, mix).await,
    }
}

/// A connection to one member.
pub async fn connect(url: &str) -> Result<Channel, Error> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|_| Error::Endpoint(url.to_string()))?
        .tcp_nodelay(true)
        .connect_timeout(SETUP_TIMEOUT);
    endpoint.connect().await.map_err(|source| Error::Connect {
        url: url.to_string(),
        source,
    })
}

/// `n` connections, the `i`th to `endpoints[i mod len]`; client `c` uses connection `c mod n`.
pub struct Conns(Vec<Channel>);

impl Conns {
    pub async fn open(endpoints: &[String], n: usize) -> Result<Conns, Error> {
        if endpoints.is_empty() || n == 0 {
            return Err(Error::Setup(
                "a workload needs an endpoint and a connection".into(),
            ));
        }
        let futures = (0..n).map(|i| connect(&endpoints[i % endpoints.len()]));
        let channels = futures::future::try_join_all(futures).await?;
        Ok(Conns(channels))
    }

    pub fn get(&self, client: usize) -> Channel {
        self.0[client % self.0.len()].clone()
    }
}

/// An 8-byte key.
pub fn key(i: u64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

fn random_value(len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    (0..len).map(|_| rng.random()).collect()
}

/// Nanoseconds since the first call in this process: the clock watch latencies are measured on
/// (writer and watchers run in this process).
fn now_nanos() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Joins preparation futures, at most 64 at a time (a thousand clients preparing at once would
/// only queue on the server), each bounded by [`SETUP_TIMEOUT`].
async fn try_join_bounded<T, F>(futures: impl Iterator<Item = F>) -> Result<Vec<T>, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    use futures::stream::{StreamExt as _, TryStreamExt as _};
    futures::stream::iter(futures.map(|f| async move {
        tokio::time::timeout(SETUP_TIMEOUT, f).await.map_err(|_| {
            Error::Setup(format!(
                "a client's preparation took over {SETUP_TIMEOUT:?}"
            ))
        })?
    }))
    .buffered(64)
    .try_collect()
    .await
}

/// One closed-loop client: `op` performs operation number `seq`; `Ok(Some(name))` counts a named
/// event (a CAS conflict, say) besides the success.
trait LoopClient: Send + 'static {
    fn op(&mut self, seq: u64)
        -> impl Future<Output = Result<Option<&'static str>, String>> + Send;
}

/// Per-client tally, merged at the end.
#[derive(Default)]
struct Recorder {
    latencies: Latencies,
    ops: u64,
    errors: u64,
    error_samples: Vec<String>,
    counters: BTreeMap<String, u64>,
}

impl Recorder {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(e);
        }
    }

    fn count(&mut self, name: &str, n: u64) {
        *self.counters.entry(name.to_string()).or_default() += n;
    }

    fn merge_into(self, out: &mut Outcome) {
        out.ops += self.ops;
        out.errors += self.errors;
        for e in self.error_samples {
            if out.error_samples.len() < ERROR_SAMPLES {
                out.error_samples.push(e);
            }
        }
        out.latencies.merge(&self.latencies);
        for (k, v) in self.counters {
            *out.counters.entry(k).or_default() += v;
        }
    }
}

/// Runs `clients` until `total` operations have been started; gives the clients back.
async fn drive<C: LoopClient>(clients: Vec<C>, total: u64) -> (Outcome, Vec<C>) {
    let budget = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(clients.len() + 1));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let budget = budget.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                barrier.wait().await;
                while budget.fetch_add(1, Ordering::Relaxed) < total {
                    let started = Instant::now();
                    match tokio::time::timeout(REQUEST_TIMEOUT, client.op(rec.ops + rec.errors))
                        .await
                    {
                        Ok(Ok(note)) => {
                            rec.latencies.record(started.elapsed());
                            rec.ops += 1;
                            if let Some(name) = note {
                                rec.count(name, 1);
                            }
                        }
                        Ok(Err(e)) => rec.error(e),
                        Err(_) => rec.error(format!("no answer within {REQUEST_TIMEOUT:?}")),
                    }
                }
                (rec, client)
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((rec, client)) => {
                rec.merge_into(&mut outcome);
                clients.push(client);
            }
            Err(e) => {
                outcome.errors += 1;
                outcome
                    .error_samples
                    .push(format!("a client task failed: {e}"));
            }
        }
    }
    outcome.elapsed = started.elapsed();
    (outcome, clients)
}

fn status_text(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

struct PutClient {
    kv: KvClient<Channel>,
    sequential: bool,
    rng: StdRng,
    value: Arc<[u8]>,
}

impl LoopClient for PutClient {
    fn op(
        &mut self,
        _seq: u64,
    ) -> impl Future<Output = Result<Option<&'static str>, String>> + Send {
        // Sequential puts take their key from a shared counter so that together the clients
        // cover the key space once per KEY_SPACE operations.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let k = if self.sequential {
            NEXT.fetch_add(1, Ordering::Relaxed) % KEY_SPACE
        } else {
            self.rng.random_range(0..KEY_SPACE)
        };
        let request = PutRequest {
            key: key(k),
            value: self.value.to_vec(),
            ..Default::default()
        };
        let mut kv = self.kv.clone();
        async move { kv.put(request).await.map(|_| None).map_err(status_text) }
    }
}

struct RangeClient {
    kv: KvClient<Channel>,
    serializable: bool,
    rng: StdRng,
}

impl LoopClient for RangeClient {
    fn op(
        &mut self,
        _seq: u64,
    ) -> impl Future<Output = Result<Option<&'static str>, String>> + Send {
        let request = RangeRequest {
            key: key(self.rng.random_range(0..KEY_SPACE)),
            serializable: self.serializable,
            ..Default::default()
        };
        let mut kv = self.kv.clone();
        async move {
            let response = kv.range(request).await.map_err(status_text)?.into_inner();
            if response.kvs.len() > 1 {
                return Err(format!("a get returned {} keys", response.kvs.len()));
            }
            Ok(None)
        }
    }
}

/// `Txn(mod_revision(key) == expected) then put else get`.
fn cas_txn(key: Vec<u8>, expected: i64, then: request_op::Request) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Mod as i32,
            key: key.clone(),
            target_union: Some(compare::TargetUnion::ModRevision(expected)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(then),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key,
                ..Default::default()
            })),
        }],
    }
}

/// The outcome of a CAS txn: `Ok(revision)` when it succeeded (the txn's revision), else
/// `Err(current mod revision, 0 if the key is gone)` from the failure branch's get.
fn cas_result(response: &TxnResponse) -> Result<i64, i64> {
    if response.succeeded {
        return Ok(response.header.as_ref().map_or(0, |h| h.revision));
    }
    let current = response
        .responses
        .first()
        .and_then(|r| match &r.response {
            Some(response_op::Response::ResponseRange(range)) => {
                range.kvs.first().map(|kv| kv.mod_revision)
            }
            _ => None,
        })
        .unwrap_or(0);
    Err(current)
}

struct CasClient {
    kv: KvClient<Channel>,
    block: std::ops::Range<u64>,
    /// The mod revision this client last saw for each key of its block (0: absent).
    known: Vec<i64>,
    rng: StdRng,
    value: Arc<[u8]>,
}

impl CasClient {
    /// Learns the current revisions of its block with one range, as an apiserver's cache would
    /// know them.
    async fn prepare(
        mut kv: KvClient<Channel>,
        block: std::ops::Range<u64>,
        value: Arc<[u8]>,
        seed: u64,
    ) -> Result<CasClient, Error> {
        let response = kv
            .range(RangeRequest {
                key: key(block.start),
                range_end: key(block.end),
                ..Default::default()
            })
            .await
            .map_err(|status| Error::Rpc {
                what: "reading a CAS client's keys",
                status,
            })?
            .into_inner();
        let mut known = vec![0; (block.end - block.start) as usize];
        for kv in response.kvs {
            if let Ok(bytes) = <[u8; 8]>::try_from(kv.key.as_slice()) {
                let k = u64::from_be_bytes(bytes);
                if block.contains(&k) {
                    known[(k - block.start) as usize] = kv.mod_revision;
                }
            }
        }
        Ok(CasClient {
            kv,
            block,
            known,
            rng: StdRng::seed_from_u64(seed),
            value,
        })
    }
}

impl LoopClient for CasClient {
    fn op(
        &mut self,
        _seq: u64,
    ) -> impl Future<Output = Result<Option<&'static str>, String>> + Send {
        let slot = self.rng.random_range(0..self.known.len());
        let k = key(self.block.start + slot as u64);
        let put = request_op::Request::RequestPut(PutRequest {
            key: k.clone(),
            value: self.value.to_vec(),
            ..Default::default()
        });
        let request = cas_txn(k, self.known[slot], put);
        let mut kv = self.kv.clone();
        let known = &mut self.known[slot];
        async move {
            let response = kv.txn(request).await.map_err(status_text)?.into_inner();
            match cas_result(&response) {
                Ok(revision) => {
                    *known = revision;
                    Ok(None)
                }
                Err(current) => {
                    *known = current;
                    Ok(Some("cas-conflicts"))
                }
            }
        }
    }
}

struct KeepAliveClient {
    lease: LeaseClient<Channel>,
    id: i64,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAliveClient {
    async fn prepare(channel: Channel) -> Result<KeepAliveClient, Error> {
        let mut lease = LeaseClient::new(channel);
        let rpc = |what| move |status| Error::Rpc { what, status };
        let id = lease
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .map_err(rpc("granting a lease"))?
            .into_inner()
            .id;
        let (requests, rx) = mpsc::channel(1);
        // As for watches: the first request before the call is awaited (gRPC-Go sends headers
        // with the first response), and its answer read here, untimed.
        let closed = |_| Error::Setup("the keep-alive stream closed".into());
        requests
            .send(LeaseKeepAliveRequest { id })
            .await
            .map_err(closed)?;
        let mut responses = lease
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .map_err(rpc("opening a keep-alive stream"))?
            .into_inner();
        responses
            .message()
            .await
            .map_err(rpc("the first keep-alive"))?
            .ok_or_else(|| Error::Setup("the keep-alive stream ended".into()))?;
        Ok(KeepAliveClient {
            lease,
            id,
            requests,
            responses,
        })
    }

    async fn revoke(mut self) {
        drop(self.requests);
        let _ = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.lease.lease_revoke(LeaseRevokeRequest { id: self.id }),
        )
        .await;
    }
}

impl LoopClient for KeepAliveClient {
    fn op(
        &mut self,
        _seq: u64,
    ) -> impl Future<Output = Result<Option<&'static str>, String>> + Send {
        let id = self.id;
        async move {
            self.requests
                .send(LeaseKeepAliveRequest { id })
                .await
                .map_err(|_| "the keep-alive stream closed".to_string())?;
            match self.responses.message().await {
                Ok(Some(r)) if r.ttl > 0 => Ok(None),
                Ok(Some(_)) => Err("the lease expired".into()),
                Ok(None) => Err("the keep-alive stream ended".into()),
                Err(s) => Err(status_text(s)),
            }
        }
    }
}

/// A watch stream with `n` watchers on `prefix`, created and confirmed.
async fn open_watchers(
    channel: Channel,
    prefix: &[u8],
    n: usize,
) -> Result<
    (
        mpsc::Sender<WatchRequest>,
        Streaming<mainstay_proto::etcdserverpb::WatchResponse>,
    ),
    Error,
> {
    let (tx, rx) = mpsc::channel(n.max(1));
    let range_end = prefix_end(prefix);
    let create = || WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: prefix.to_vec(),
                range_end: range_end.clone(),
                ..Default::default()
            },
        )),
    };
    let closed = |_| Error::Setup("the watch stream closed".into());
    // The first request goes before the call is awaited: gRPC-Go servers (etcd) send the response
    // headers only with the first response.
    tx.send(create()).await.map_err(closed)?;
    let mut stream = WatchClient::new(channel)
        .watch(ReceiverStream::new(rx))
        .await
        .map_err(|status| Error::Rpc {
            what: "opening a watch stream",
            status,
        })?
        .into_inner();
    // One create request at a time, each answered before the next is sent.
    for i in 0..n {
        if i > 0 {
            tx.send(create()).await.map_err(closed)?;
        }
        loop {
            let response = stream
                .message()
                .await
                .map_err(|status| Error::Rpc {
                    what: "creating a watcher",
                    status,
                })?
                .ok_or_else(|| Error::Setup("the watch stream ended".into()))?;
            if response.canceled {
                return Err(Error::Setup(format!(
                    "a watcher was refused: {}",
                    response.cancel_reason
                )));
            }
            if response.created {
                break;
            }
        }
    }
    Ok((tx, stream))
}

/// Opens `streams` × `per_stream` watchers (over `conns`), then receives on each stream until
/// `expected` events per watcher arrived or `deadline` passed, recording each event's latency
/// (the writer's send time is in the value's first 8 bytes). Returns the receiving tasks.
async fn spawn_watch_receivers(
    conns: &Conns,
    prefix: &[u8],
    streams: usize,
    per_stream: usize,
    expected: Option<u64>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<Recorder>>, Error> {
    let opened = (0..streams).map(|s| open_watchers(conns.get(s), prefix, per_stream));
    let opened = try_join_bounded(opened).await?;
    Ok(opened
        .into_iter()
        .map(|(tx, mut stream)| {
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let _keep_open = tx;
                let mut rec = Recorder::default();
                let want = expected.map(|e| e * per_stream as u64);
                loop {
                    if want.is_some_and(|w| rec.ops >= w) {
                        break;
                    }
                    let message = tokio::select! {
                        m = stream.message() => m,
                        _ = stop.wait_for(|s| *s) => break,
                    };
                    match message {
                        Ok(Some(response)) => {
                            let now = now_nanos();
                            for event in response.events {
                                let sent = event
                                    .kv
                                    .as_ref()
                                    .and_then(|kv| kv.value.get(..8))
                                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                                    .map(u64::from_be_bytes);
                                if let (Some(sent), true) = (sent, expected.is_some()) {
                                    rec.latencies
                                        .record(Duration::from_nanos(now.saturating_sub(sent)));
                                }
                                rec.ops += 1;
                            }
                        }
                        Ok(None) => {
                            rec.error("a watch stream ended".into());
                            break;
                        }
                        Err(s) => {
                            rec.error(status_text(s));
                            break;
                        }
                    }
                }
                rec
            })
        })
        .collect())
}

async fn watch_latency(
    conns: &Conns,
    writer: Channel,
    streams: usize,
    per_stream: usize,
    puts: u64,
    put_rate: u32,
) -> Result<Outcome, Error> {
    let prefix = b"/bench/watch/".to_vec();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let receivers =
        spawn_watch_receivers(conns, &prefix, streams, per_stream, Some(puts), stop_rx).await?;
    let kv = KvClient::new(writer);
    let interval = Duration::from_secs_f64(1.0 / put_rate.max(1) as f64);
    let mut ticker = tokio::time::interval(interval);
    let started = Instant::now();
    let mut writes = Vec::with_capacity(puts as usize);
    for i in 0..puts {
        ticker.tick().await;
        let mut kv = kv.clone();
        let mut k = prefix.clone();
        k.extend_from_slice(&key(i));
        writes.push(tokio::spawn(async move {
            let mut value = vec![0u8; VALUE_SIZE];
            value[..8].copy_from_slice(&now_nanos().to_be_bytes());
            let put = kv.put(PutRequest {
                key: k,
                value,
                ..Default::default()
            });
            match tokio::time::timeout(REQUEST_TIMEOUT, put).await {
                Ok(Ok(_)) => None,
                Ok(Err(s)) => Some(status_text(s)),
                Err(_) => Some(format!("a put got no answer within {REQUEST_TIMEOUT:?}")),
            }
        }));
    }
    let mut outcome = Outcome::default();
    for w in writes {
        if let Some(e) = w.await.ok().flatten() {
            outcome.errors += 1;
            if outcome.error_samples.len() < ERROR_SAMPLES {
                outcome.error_samples.push(e);
            }
        }
    }
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(REQUEST_TIMEOUT).await;
        let _ = stop_tx.send(true);
    });
    for r in receivers {
        if let Ok(rec) = r.await {
            rec.merge_into(&mut outcome);
        }
    }
    stopper.abort();
    outcome.elapsed = started.elapsed();
    let expected = puts * (streams * per_stream) as u64;
    if outcome.ops < expected {
        let missing = expected - outcome.ops;
        outcome.errors += missing;
        outcome.error_samples.push(format!(
            "{missing} of {expected} events never reached their watcher"
        ));
    }
    outcome
        .counters
        .insert("watchers".into(), (streams * per_stream) as u64);
    Ok(outcome)
}

/// Pod keys: `/registry/pods/ns-<n>/pod-<j>`.
fn pod_key(namespace: usize, name: &str) -> Vec<u8> {
    format!("/registry/pods/ns-{namespace:02}/{name}").into_bytes()
}

fn namespace_prefix(namespace: usize) -> Vec<u8> {
    format!("/registry/pods/ns-{namespace:02}/").into_bytes()
}

const PODS_PREFIX: &[u8] = b"/registry/pods/";

struct KubeClient {
    kv: KvClient<Channel>,
    mix: KubeMix,
    id: usize,
    /// The pods this client owns, with the mod revisions it last saw.
    pods: Vec<(Vec<u8>, i64)>,
    /// The count the client keeps its pods near.
    target: usize,
    created: u64,
    rng: StdRng,
    value: Arc<[u8]>,
}

impl LoopClient for KubeClient {
    fn op(
        &mut self,
        _seq: u64,
    ) -> impl Future<Output = Result<Option<&'static str>, String>> + Send {
        let roll = self.rng.random_range(0..100u32);
        let mut kv = self.kv.clone();
        let page_size = self.mix.page_size;
        enum Op {
            Get(Vec<u8>),
            List(Vec<u8>),
            Update(usize),
            Delete(usize),
            Create(Vec<u8>),
        }
        let op = if roll < self.mix.write_percent || self.pods.is_empty() {
            // The robustness profile's write choice, with its guard on the object count.
            let w = self.rng.random_range(0..100u32);
            if self.pods.len() < self.target / 2
                || self.pods.is_empty()
                || (w >= 90 && self.pods.len() <= self.target * 3 / 2)
            {
                self.created += 1;
                let ns = self.rng.random_range(0..self.mix.namespaces);
                Op::Create(pod_key(ns, &format!("pod-c{}-{}", self.id, self.created)))
            } else if self.pods.len() > self.target * 3 / 2 || w >= 75 {
                Op::Delete(self.rng.random_range(0..self.pods.len()))
            } else {
                Op::Update(self.rng.random_range(0..self.pods.len()))
            }
        } else if roll < self.mix.write_percent + self.mix.get_percent {
            let i = self.rng.random_range(0..self.pods.len());
            Op::Get(self.pods[i].0.clone())
        } else {
            Op::List(namespace_prefix(
                self.rng.random_range(0..self.mix.namespaces),
            ))
        };
        let value = self.value.clone();
        let pods = &mut self.pods;
        async move {
            match op {
                Op::Get(key) => {
                    kv.range(RangeRequest {
                        key,
                        ..Default::default()
                    })
                    .await
                    .map_err(status_text)?;
                    Ok(None)
                }
                Op::List(prefix) => {
                    // A paged list: the first page at the head, the rest at its revision.
                    let range_end = prefix_end(&prefix);
                    let mut start = prefix;
                    let mut revision = 0;
                    loop {
                        let page = kv
                            .range(RangeRequest {
                                key: start,
                                range_end: range_end.clone(),
                                limit: page_size,
                                revision,
                                ..Default::default()
                            })
                            .await
                            .map_err(status_text)?
                            .into_inner();
                        if revision == 0 {
                            revision = page.header.as_ref().map_or(0, |h| h.revision);
                        }
                        match page.kvs.last() {
                            Some(last) if page.more => {
                                start = last.key.clone();
                                start.push(0);
                            }
                            _ => return Ok(None),
                        }
                    }
                }
                Op::Update(i) => {
                    let (key, expected) = pods[i].clone();
                    let put = request_op::Request::RequestPut(PutRequest {
                        key: key.clone(),
                        value: value.to_vec(),
                        ..Default::default()
                    });
                    let response = kv
                        .txn(cas_txn(key, expected, put))
                        .await
                        .map_err(status_text)?
                        .into_inner();
                    match cas_result(&response) {
                        Ok(revision) => {
                            pods[i].1 = revision;
                            Ok(None)
                        }
                        Err(0) => {
                            pods.swap_remove(i);
                            Ok(Some("conflicts"))
                        }
                        Err(current) => {
                            pods[i].1 = current;
                            Ok(Some("conflicts"))
                        }
                    }
                }
                Op::Delete(i) => {
                    let (key, expected) = pods[i].clone();
                    let delete = request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    });
                    let response = kv
                        .txn(cas_txn(key, expected, delete))
                        .await
                        .map_err(status_text)?
                        .into_inner();
                    match cas_result(&response) {
                        Ok(_) | Err(0) => {
                            pods.swap_remove(i);
                            Ok(None)
                        }
                        Err(current) => {
                            pods[i].1 = current;
                            Ok(Some("conflicts"))
                        }
                    }
                }
                Op::Create(key) => {
                    let put = request_op::Request::RequestPut(PutRequest {
                        key: key.clone(),
                        value: value.to_vec(),
                        ..Default::default()
                    });
                    let response = kv
                        .txn(cas_txn(key.clone(), 0, put))
                        .await
                        .map_err(status_text)?
                        .into_inner();
                    match cas_result(&response) {
                        Ok(revision) => {
                            pods.push((key, revision));
                            Ok(None)
                        }
                        Err(_) => Ok(Some("conflicts")),
                    }
                }
            }
        }
    }
}

async fn kube_mix(
    conns: &Conns,
    leader: &str,
    spec: &Spec,
    mix: &KubeMix,
) -> Result<Outcome, Error> {
    // Untimed set-up: the previous run's pods go, a fresh set is written through the leader, and
    // each client learns its pods' revisions from the writes.
    let mut loader = KvClient::new(connect(leader).await?);
    loader
        .delete_range(DeleteRangeRequest {
            key: PODS_PREFIX.to_vec(),
            range_end: prefix_end(PODS_PREFIX),
            ..Default::default()
        })
        .await
        .map_err(|status| Error::Rpc {
            what: "deleting the previous run's pods",
            status,
        })?;
    let value: Arc<[u8]> = random_value(mix.value_size).into();
    let total_pods = mix.namespaces * mix.pods_per_namespace;
    let writes = (0..total_pods).map(|p| {
        let mut kv = loader.clone();
        let key = pod_key(p % mix.namespaces, &format!("pod-{p}"));
        let value = value.to_vec();
        async move {
            let response = kv
                .put(PutRequest {
                    key: key.clone(),
                    value,
                    ..Default::default()
                })
                .await
                .map_err(|status| Error::Rpc {
                    what: "loading pods",
                    status,
                })?
                .into_inner();
            Ok::<_, Error>((p, key, response.header.map_or(0, |h| h.revision)))
        }
    });
    let loaded = try_join_bounded(writes).await?;
    let mut clients: Vec<KubeClient> = (0..spec.clients)
        .map(|c| KubeClient {
            kv: KvClient::new(conns.get(c)),
            mix: mix.clone(),
            id: c,
            pods: Vec::new(),
            target: 0,
            created: 0,
            rng: StdRng::seed_from_u64(c as u64),
            value: value.clone(),
        })
        .collect();
    for (p, key, revision) in loaded {
        clients[p % spec.clients].pods.push((key, revision));
    }
    for c in &mut clients {
        c.target = c.pods.len().max(2);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watchers =
        spawn_watch_receivers(conns, PODS_PREFIX, mix.watchers, 1, None, stop_rx).await?;
    let (mut outcome, _) = drive(clients, spec.total).await;
    let _ = stop_tx.send(true);
    let mut seen = 0;
    for w in watchers {
        if let Ok(rec) = w.await {
            seen += rec.ops;
            outcome.errors += rec.errors;
            outcome.error_samples.extend(rec.error_samples);
        }
    }
    outcome.counters.insert("watch-events".into(), seen);
    Ok(outcome)
}

/// The workloads of a harness run. `scale` divides the operation counts (1 for the full run).
pub fn standard(scale: u64) -> Vec<Spec> {
    let n = |total: u64| (total / scale).max(50);
    let spec = |name: &str, kind: Kind, conns, clients, total, route| Spec {
        name: name.to_string(),
        kind,
        conns,
        clients,
        total,
        route,
    };
    use Route::*;
    vec![
        spec(
            "put 1x1",
            Kind::Put { sequential: false },
            1,
            1,
            n(2_000),
            Leader,
        ),
        // Sequential: fills the key space the range and txn workloads read.
        spec(
            "put 100x1000",
            Kind::Put { sequential: true },
            100,
            1000,
            n(100_000),
            Leader,
        ),
        spec(
            "range linearizable 1x1",
            Kind::Range {
                serializable: false,
            },
            1,
            1,
            n(10_000),
            AllMembers,
        ),
        spec(
            "range linearizable 100x1000",
            Kind::Range {
                serializable: false,
            },
            100,
            1000,
            n(200_000),
            AllMembers,
        ),
        spec(
            "range serializable 1x1",
            Kind::Range { serializable: true },
            1,
            1,
            n(10_000),
            AllMembers,
        ),
        spec(
            "range serializable 100x1000",
            Kind::Range { serializable: true },
            100,
            1000,
            n(200_000),
            AllMembers,
        ),
        spec(
            "txn cas 100x1000",
            Kind::TxnCas,
            100,
            1000,
            n(100_000),
            Leader,
        ),
        spec(
            "watch latency 1000 watchers",
            Kind::WatchLatency {
                watchers_per_stream: 100,
                put_rate: 200,
            },
            10,
            10,
            n(1_000),
            AllMembers,
        ),
        spec(
            "lease keepalive 100x1000",
            Kind::LeaseKeepAlive,
            100,
            1000,
            n(100_000),
            Leader,
        ),
        spec(
            "kubernetes mix 10x100",
            Kind::KubernetesMix(KubeMix::default()),
            10,
            100,
            n(50_000),
            AllMembers,
        ),
    ]
}

/// Opens `total` watchers on `key` on one member (`streams` streams over `conns` connections) and
/// keeps them open until the returned handle is dropped; used by the scale checks.
pub struct WatcherSet {
    stop: tokio::sync::watch::Sender<bool>,
    receivers: Vec<tokio::task::JoinHandle<Recorder>>,
}

impl WatcherSet {
    pub async fn open(
        member: &str,
        prefix: &[u8],
        total: usize,
        per_stream: usize,
        conns: usize,
        expected_events: u64,
    ) -> Result<WatcherSet, Error> {
        let conns = Conns::open(&[member.to_string()], conns).await?;
        let streams = total.div_ceil(per_stream);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let receivers = spawn_watch_receivers(
            &conns,
            prefix,
            streams,
            per_stream,
            Some(expected_events),
            stop_rx,
        )
        .await?;
        Ok(WatcherSet { stop, receivers })
    }

    /// Waits (at most `timeout`) for every watcher to get its events; the delivery latencies.
    pub async fn finish(self, timeout: Duration) -> Outcome {
        let stop = self.stop;
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = stop.send(true);
        });
        let mut outcome = Outcome::default();
        for r in self.receivers {
            if let Ok(rec) = r.await {
                rec.merge_into(&mut outcome);
            }
        }
        stopper.abort();
        outcome
    }
}

/// Writes `count` values under `prefix` at `rate` per second through `leader`, each stamped with
/// its send time for [`WatcherSet`]; returns put errors.
pub async fn stamped_puts(
    leader: &str,
    prefix: &[u8],
    count: u64,
    rate: u32,
) -> Result<u64, Error> {
    let mut kv = KvClient::new(connect(leader).await?);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut errors = 0;
    for i in 0..count {
        ticker.tick().await;
        let mut k = prefix.to_vec();
        k.extend_from_slice(&key(i));
        let mut value = vec![0u8; VALUE_SIZE];
        value[..8].copy_from_slice(&now_nanos().to_be_bytes());
        let put = kv.put(PutRequest {
            key: k,
            value,
            ..Default::default()
        });
        if !matches!(tokio::time::timeout(REQUEST_TIMEOUT, put).await, Ok(Ok(_))) {
            errors += 1;
        }
    }
    Ok(errors)
}

/// Loads `count` distinct keys (`prefix` + 8-byte index) with `VALUE_SIZE` values through the
/// leader, 1000 clients over 100 connections.
pub async fn load_keys(leader: &str, prefix: &[u8], count: u64) -> Result<Outcome, Error> {
    let conns = Conns::open(&[leader.to_string()], 100).await?;
    let value: Arc<[u8]> = random_value(VALUE_SIZE).into();
    let next = Arc::new(AtomicU64::new(0));
    let clients = (0..1000)
        .map(|c| LoadClient {
            kv: KvClient::new(conns.get(c)),
            prefix: prefix.into(),
            next: next.clone(),
            value: value.clone(),
        })
        .collect();
    Ok(drive(clients, count).await.0)
}

struct LoadClient {
    kv: KvClient<Channel>,
    prefix: Arc<[u8]>,
    next: Arc<AtomicU64>,
    value: Arc<[u8]>,
}

impl LoopClient for LoadClient {
    fn op(
        &mut self,
        _seq: u64,
    ) -> impl Future<Output = Result<Option<&'static str>, String>> + Send {
        let mut k = self.prefix.to_vec();
        k.extend_from_slice(&key(self.next.fetch_add(1, Ordering::Relaxed)));
        let request = PutRequest {
            key: k,
            value: self.value.to_vec(),
            ..Default::default()
        };
        let mut kv = self.kv.clone();
        async move { kv.put(request).await.map(|_| None).map_err(status_text) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_result_reads_both_branches() {
        use mainstay_proto::etcdserverpb::{RangeResponse, ResponseHeader, ResponseOp};
        use mainstay_proto::mvccpb::KeyValue;
        let swapped = TxnResponse {
            succeeded: true,
            header: Some(ResponseHeader {
                revision: 7,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(cas_result(&swapped), Ok(7));
        let stale = |kvs: Vec<KeyValue>| TxnResponse {
            succeeded: false,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponseRange(RangeResponse {
                    kvs,
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        let current = KeyValue {
            key: b"k".to_vec(),
            mod_revision: 5,
            ..Default::default()
        };
        assert_eq!(cas_result(&stale(vec![current])), Err(5));
        assert_eq!(cas_result(&stale(vec![])), Err(0));
    }

    #[test]
    fn standard_workloads_scale_down_but_not_to_nothing() {
        let full = standard(1);
        let quick = standard(1000);
        assert_eq!(full.len(), quick.len());
        assert!(quick.iter().all(|s| s.total >= 50));
        assert!(full
            .iter()
            .zip(&quick)
            .all(|(f, q)| f.total >= q.total && f.name == q.name));
        let mut names: Vec<_> = full.iter().map(|s| s.name.clone()).collect();
        names.dedup();
        assert_eq!(names.len(), full.len(), "names are unique");
    }
}
