//! The scheduler process (thin I/O around the pure parts): two watches feed the cache and the
//! queue; one loop pops pods, runs the algorithm, assumes the pod on its node and hands the bind
//! to a bounded set of write tasks.
//!
//! ```text
//!  node watcher ─┐   bounded    ┌──────────── scheduling loop (owns Cache, Queue) ───────────┐
//!  pod watcher  ─┴─► channel ──►│ route events → cache/queue → pop → schedule → assume        │
//!                               │   ▲                                          │              │
//!                               │   └──── bind / status results (JoinSet) ◄────┘ ≤ N writes   │
//!                               └─────────────────────────────────────────────────────────────┘
//! ```
//!
//! The loop owns all state, so nothing is locked and the snapshot is updated in place. It does
//! not schedule until both watches have listed once (kube waits for its informers to sync).

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, ResourceExt};
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::algorithm::Algorithm;
use crate::bind::{self, BindOutcome};
use crate::cache::{Cache, DEFAULT_ASSUMED_POD_TTL};
use crate::error::Error;
use crate::metrics::{AttemptResult, Metrics};
use crate::pods::{route, PodRoute, DEFAULT_SCHEDULER_NAME};
use crate::queue::{pod_key, ClusterEvent, Popped, QueueConfig, SchedulingQueue};

/// Watch events waiting for the loop; the watchers wait when it is full.
const INPUT_CAPACITY: usize = 1024;
/// Watch events handled between two scheduling attempts, so a busy watch cannot starve
/// scheduling nor the reverse.
const INPUT_BATCH: usize = 256;
/// The loop wakes at least this often (assumed-pod expiry, kube's 1 s cleanup period).
const TICK: Duration = Duration::from_secs(1);

/// The scheduler's settings (kube's `KubeSchedulerConfiguration`, the parts we have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Pods with this `spec.schedulerName` are ours (kube's profile name).
    pub scheduler_name: String,
    pub pod_initial_backoff: Duration,
    pub pod_max_backoff: Duration,
    /// `None` (or 0): kube's adaptive percentage.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Bind and status writes in flight at most.
    pub bind_concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            pod_initial_backoff: crate::queue::DEFAULT_POD_INITIAL_BACKOFF,
            pod_max_backoff: crate::queue::DEFAULT_POD_MAX_BACKOFF,
            percentage_of_nodes_to_score: None,
            // kube binds each pod in its own goroutine with client QPS 50 / burst 100; 64
            // concurrent binds keep a fast API server busy without an unbounded fan-out.
            bind_concurrency: 64,
        }
    }
}

/// Runs the scheduler until `leading.lost()` resolves (returns `Ok`) or a fatal error; its
/// metrics go to a private registry (use [`run_with_metrics`] to serve them).
pub async fn run(
    client: kube::Client,
    cfg: SchedulerConfig,
    leading: Leading,
) -> Result<(), Error> {
    let registry = mainstay_component::Metrics::new();
    let metrics = Metrics::new(&registry, &cfg.scheduler_name);
    run_with_metrics(client, cfg, leading, metrics).await
}

/// [`run`], reporting into `metrics` (made with `Metrics::new(&registry, &cfg.scheduler_name)`
/// on the registry the component serves on `/metrics`).
pub async fn run_with_metrics(
    client: kube::Client,
    cfg: SchedulerConfig,
    leading: Leading,
    metrics: Metrics,
) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
    // Dropping the set (on return) stops the watchers.
    let mut watchers = JoinSet::new();
    watchers.spawn(watch(
        Api::<Node>::all(client.clone()),
        tx.clone(),
        |e: Event<Node>| Input::Node(Box::new(e)),
    ));
    watchers.spawn(watch(
        Api::<Pod>::all(client.clone()),
        tx,
        |e: Event<Pod>| {
            Input::Pod(Box::new(e.modify(|p| {
                // Not read, and the largest parts of a pod.
                p.metadata.managed_fields = None;
                p.metadata.annotations = None;
            })))
        },
    ));
    let recorder =
        Recorder::new(client.clone(), &cfg.scheduler_name, None).with_leading(leading.clone());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut s = Scheduler {
        queue: SchedulingQueue::new(QueueConfig {
            initial_backoff: cfg.pod_initial_backoff,
            max_backoff: cfg.pod_max_backoff,
            ..Default::default()
        }),
        cache: Cache::new(DEFAULT_ASSUMED_POD_TTL),
        algorithm: Algorithm::new(cfg.percentage_of_nodes_to_score, seed),
        next_start_index: 0,
        writes: JoinSet::new(),
        node_relist: None,
        pod_relist: None,
        nodes_synced: false,
        pods_synced: false,
        client,
        cfg,
        leading,
        recorder,
        metrics,
    };
    let r = s.run(rx).await;
    watchers.shutdown().await;
    // In-flight writes are aborted with the set; a bind that already reached the API server
    // stands, and the next leader sees the pod bound.
    s.writes.shutdown().await;
    r
}

/// Boxed: a Pod event is over 2 KiB, and the channel holds up to `INPUT_CAPACITY` of them.
enum Input {
    Node(Box<Event<Node>>),
    Pod(Box<Event<Pod>>),
}

/// Forwards one resource's watch events; the watcher retries with kube-rs's default backoff.
async fn watch<K>(api: Api<K>, tx: mpsc::Sender<Input>, wrap: impl Fn(Event<K>) -> Input)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => {
                if tx.send(wrap(ev)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
        }
    }
}

enum WriteDone {
    Bind {
        popped: Popped,
        node: String,
        outcome: BindOutcome,
    },
    Status {
        key: String,
        result: Result<(), Error>,
    },
}

struct Scheduler {
    queue: SchedulingQueue,
    cache: Cache,
    algorithm: Algorithm,
    next_start_index: usize,
    writes: JoinSet<WriteDone>,
    node_relist: Option<HashSet<String>>,
    pod_relist: Option<HashSet<String>>,
    nodes_synced: bool,
    pods_synced: bool,
    client: kube::Client,
    cfg: SchedulerConfig,
    leading: Leading,
    recorder: Recorder,
    metrics: Metrics,
}

impl Scheduler {
    async fn run(&mut self, mut inputs: mpsc::Receiver<Input>) -> Result<(), Error> {
        loop {
            if !self.leading.is_leading() {
                return Ok(());
            }
            for _ in 0..INPUT_BATCH {
                match inputs.try_recv() {
                    Ok(input) => self.on_input(input),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        return Err(Error::WatchEnded("node or pod"))
                    }
                }
            }
            while let Some(done) = self.writes.try_join_next() {
                if !self.on_write_done(done) {
                    return Ok(());
                }
            }
            let now = Instant::now();
            let expired = self.cache.expire_assumed(now);
            if expired > 0 {
                self.metrics.assumed_expired(expired);
                self.queue.on_event(ClusterEvent::AssignedPodFreed, now);
            }
            self.metrics.set_pending(self.queue.counts());
            let synced = self.nodes_synced && self.pods_synced;
            if synced && self.writes.len() < self.cfg.bind_concurrency.max(1) {
                if let Some(popped) = self.queue.pop(now) {
                    self.schedule_one(popped);
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            let wake = self
                .queue
                .next_wakeup()
                .map_or(now + TICK, |t| t.min(now + TICK));
            tokio::select! {
                _ = self.leading.lost() => return Ok(()),
                input = inputs.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => return Err(Error::WatchEnded("node or pod")),
                },
                Some(done) = self.writes.join_next(), if !self.writes.is_empty() => {
                    if !self.on_write_done(done) {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn on_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Node(ev) => match *ev {
                Event::Init => self.node_relist = Some(HashSet::new()),
                Event::InitApply(n) => {
                    if let Some(seen) = &mut self.node_relist {
                        seen.insert(n.name_any());
                    }
                    self.apply_node(&n, now);
                }
                Event::InitDone => {
                    if let Some(seen) = self.node_relist.take() {
                        for name in self.cache.node_names() {
                            if !seen.contains(&name) {
                                self.cache.remove_node(&name);
                            }
                        }
                    }
                    self.nodes_synced = true;
                }
                Event::Apply(n) => self.apply_node(&n, now),
                Event::Delete(n) => {
                    self.cache.remove_node(&n.name_any());
                }
            },
            Input::Pod(ev) => match *ev {
                Event::Init => self.pod_relist = Some(HashSet::new()),
                Event::InitApply(p) => {
                    if let Some(seen) = &mut self.pod_relist {
                        seen.insert(pod_key(&p));
                    }
                    self.apply_pod(p, now);
                }
                Event::InitDone => {
                    if let Some(seen) = self.pod_relist.take() {
                        for key in self.cache.bound_pod_keys() {
                            if !seen.contains(&key) {
                                let ev = self.cache.remove_pod(&key);
                                self.freed(ev, now);
                            }
                        }
                        for key in self.queue.keys() {
                            if !seen.contains(&key) {
                                self.queue.delete(&key);
                            }
                        }
                    }
                    self.pods_synced = true;
                }
                Event::Apply(p) => self.apply_pod(p, now),
                Event::Delete(p) => {
                    let key = pod_key(&p);
                    self.queue.delete(&key);
                    let ev = self.cache.remove_pod(&key);
                    self.freed(ev, now);
                }
            },
        }
    }

    fn freed(&mut self, ev: Option<ClusterEvent>, now: Instant) {
        if let Some(ev) = ev {
            self.queue.on_event(ev, now);
        }
    }

    fn apply_node(&mut self, node: &Node, now: Instant) {
        let ev = self.cache.set_node(node);
        self.freed(ev, now);
    }

    fn apply_pod(&mut self, pod: Pod, now: Instant) {
        let key = pod_key(&pod);
        match route(&pod, &self.cfg.scheduler_name) {
            PodRoute::Finished => {
                self.queue.delete(&key);
                let ev = self.cache.remove_pod(&key);
                self.freed(ev, now);
            }
            PodRoute::Assigned => {
                self.queue.delete(&key);
                let ev = self.cache.add_or_update_pod(&pod);
                self.freed(ev, now);
            }
            PodRoute::Pending => {
                // An assumed pod is being bound: an older unbound version must not requeue it.
                if self.cache.contains_pod(&key) {
                    return;
                }
                if let Err(full) = self.queue.add(pod, now) {
                    self.metrics.queue_full();
                    tracing::warn!(pod = %key, error = %full, "pending pod not queued");
                }
            }
            PodRoute::NotOurs => {
                self.queue.delete(&key);
            }
        }
    }

    fn schedule_one(&mut self, popped: Popped) {
        let pod = popped.pod.clone();
        if self.cache.contains_pod(&popped.key) || pod.metadata.deletion_timestamp.is_some() {
            self.queue.delete(&popped.key);
            return;
        }
        let snapshot = self.cache.snapshot();
        let n = snapshot.num_nodes().max(1);
        match self
            .algorithm
            .schedule(&pod, snapshot, self.next_start_index)
        {
            Ok(result) => {
                self.next_start_index = (self.next_start_index + result.evaluated) % n;
                if let Err(e) = self.cache.assume(&pod, &result.node) {
                    tracing::error!(pod = %popped.key, error = %e, "cannot assume pod");
                    self.queue.delete(&popped.key);
                    return;
                }
                let client = self.client.clone();
                let leading = self.leading.clone();
                let node = result.node;
                self.writes.spawn(async move {
                    let outcome = bind::bind(client, &leading, &popped.pod, &node).await;
                    WriteDone::Bind {
                        popped,
                        node,
                        outcome,
                    }
                });
            }
            Err(fit) => {
                self.metrics.attempt(AttemptResult::Unschedulable);
                let now = Instant::now();
                self.queue
                    .requeue_unschedulable(&popped.key, fit.plugins, now);
                let message = fit.to_string();
                tracing::debug!(pod = %popped.key, %message, "unschedulable");
                // Not leading any more: no event; the loop stops at its next turn.
                if self.leading.ensure().is_ok() {
                    self.recorder.record(
                        &object_reference(&*pod),
                        EventType::Warning,
                        "FailedScheduling",
                        message.clone(),
                    );
                }
                let client = self.client.clone();
                let leading = self.leading.clone();
                let key = popped.key;
                self.writes.spawn(async move {
                    let result = bind::mark_unschedulable(client, &leading, pod, message).await;
                    WriteDone::Status { key, result }
                });
            }
        }
    }

    /// Handles a finished write; `false` when leadership is gone.
    fn on_write_done(&mut self, done: Result<WriteDone, tokio::task::JoinError>) -> bool {
        let now = Instant::now();
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "write task failed");
                return true;
            }
        };
        match done {
            WriteDone::Status { key, result } => match result {
                Ok(()) => {}
                Err(Error::NotLeading(_)) => return false,
                Err(e) => {
                    tracing::debug!(pod = %key, error = %e, "PodScheduled condition not written")
                }
            },
            WriteDone::Bind {
                popped,
                node,
                outcome,
            } => match outcome {
                BindOutcome::Bound => {
                    self.cache.finish_binding(&popped.key, now);
                    self.queue.done(&popped.key);
                    self.metrics.attempt(AttemptResult::Scheduled);
                    self.metrics
                        .observe_e2e(now.saturating_duration_since(popped.first_queued_at));
                    if self.leading.ensure().is_err() {
                        return false;
                    }
                    let pod = &popped.pod;
                    let message = format!(
                        "Successfully assigned {}/{} to {}",
                        pod.metadata.namespace.as_deref().unwrap_or(""),
                        pod.metadata.name.as_deref().unwrap_or(""),
                        node
                    );
                    self.recorder.record(
                        &object_reference(&**pod),
                        EventType::Normal,
                        "Scheduled",
                        message,
                    );
                }
                BindOutcome::Gone(e) => {
                    tracing::debug!(pod = %popped.key, error = %e, "pod gone or already bound");
                    self.metrics.attempt(AttemptResult::Error);
                    let ev = self.cache.forget(&popped.key);
                    self.freed(ev, now);
                    self.queue.delete(&popped.key);
                }
                BindOutcome::Failed(e) => {
                    tracing::warn!(pod = %popped.key, %node, error = %e, "binding failed; retrying after backoff");
                    self.metrics.attempt(AttemptResult::Error);
                    let ev = self.cache.forget(&popped.key);
                    self.freed(ev, now);
                    self.queue.requeue_backoff(&popped.key, now);
                }
                BindOutcome::NotLeading => {
                    self.cache.forget(&popped.key);
                    return false;
                }
            },
        }
        true
    }
}
