//! kube's node lifecycle controller (`pkg/controller/nodelifecycle`, 1.32), without the taint
//! manager (the separate [`crate::tainteviction`] controller deletes the pods):
//!
//! - **health** every `--node-monitor-period`: a node whose kubelet neither renewed its Lease
//!   in `kube-node-lease` nor posted a new Ready heartbeat for `--node-monitor-grace-period`
//!   (`--node-startup-grace-period` if it never posted) gets Ready, MemoryPressure,
//!   DiskPressure and PIDPressure `Unknown` ([`health`]); when Ready leaves True, the Event
//!   `NodeNotReady` and its pods' Ready condition False (`MarkPodsNotReady`);
//! - **NoSchedule taints** follow the conditions (TaintNodesByCondition, [`taints`]);
//! - **NoExecute taints** `node.kubernetes.io/unreachable` (Ready Unknown) and `not-ready`
//!   (Ready False) are added through per-zone rate-limited queues ([`zones`]) and removed when
//!   the node is Ready again.
//!
//! The pure decisions are in [`health`], [`taints`] and [`zones`]; this file watches Nodes,
//! Leases and Pods and performs the writes, each after `leading.ensure()`.

pub mod health;
pub mod pods;
pub mod taints;
pub mod zones;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::health::{Grace, NodeHealth};
use self::pods::PodsByNode;
use self::taints::{has_taint, node_taints, taint, NO_EXECUTE, TAINT_NOT_READY, TAINT_UNREACHABLE};
use self::zones::{Rates, TaintQueue, ZoneState, NODE_EVICTION_PERIOD};
use crate::nodeconfig::NodeControllersConfig;
use crate::util::cache::Cache;
use crate::util::queue::WorkQueue;
use crate::util::{is_conflict, is_not_found, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "node-lifecycle-controller";
/// The Event source kube's node lifecycle controller records as.
pub const EVENT_SOURCE: &str = "node-controller";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// kube's `NodeHealthUpdateRetry`.
const HEALTH_UPDATE_TRIES: usize = 5;
/// kube's `nodeUpdateWorkerSize`: nodes whose health is written at once.
const NODE_UPDATE_WORKERS: usize = 8;
/// kube's `podUpdateWorkerSize`.
const POD_UPDATE_WORKERS: usize = 4;
/// Tries of a taint write that meets a conflict (client-go's `UpdateTaintBackoff` steps).
const TAINT_TRIES: usize = 5;

/// Watched objects keep no managedFields.
pub(crate) fn strip<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// kube's `RecordNodeEvent` reference: kind Node, the name and UID.
pub(crate) fn node_ref(name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        ..ObjectReference::default()
    }
}

/// Adds `add` and removes `del` from the node's taints (kube's `SwapNodeControllerTaint`):
/// a PUT of the node as cached, then on conflict of a fresh read, a few times. Ok(false) when
/// the node is gone.
pub(crate) async fn swap_taints(
    client: &Client,
    leading: &Leading,
    node: &Node,
    add: &[Taint],
    del: &[Taint],
) -> Result<bool> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut current = node.clone();
    for _ in 0..TAINT_TRIES {
        let Some(new) = taints::swap(node_taints(&current), add, del, Utc::now()) else {
            return Ok(true);
        };
        let mut updated = current.clone();
        updated.metadata.managed_fields = None;
        updated.spec.get_or_insert_with(Default::default).taints = Some(new);
        let (api, updated, params) = (&api, &updated, &PostParams::default());
        let r = write_with_retry(leading, || async move {
            api.replace(
                updated.metadata.name.as_deref().unwrap_or(""),
                params,
                updated,
            )
            .await
        })
        .await;
        match r {
            Ok(_) => return Ok(true),
            Err(Error::Kube(e)) if is_not_found(&e) => return Ok(false),
            Err(Error::Kube(e)) if is_conflict(&e) => match api.get(&name).await {
                Ok(fresh) => current = fresh,
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e),
        }
    }
    Err(Error::Invalid(format!(
        "failed to swap taints of node {name}: conflicts persisted"
    )))
}

struct State {
    health: HashMap<String, NodeHealth>,
    known: HashMap<String, Arc<Node>>,
    zone_states: BTreeMap<String, ZoneState>,
    tainters: HashMap<String, TaintQueue>,
    /// Nodes whose pods could not all be marked NotReady.
    retry: HashSet<String>,
}

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    cfg: NodeControllersConfig,
    nodes: Cache<Node>,
    leases: Cache<Lease>,
    pods: Cache<Pod>,
    by_node: PodsByNode,
    state: Mutex<State>,
    /// Nodes whose NoSchedule taints to check (kube's `nodeUpdateQueue`).
    node_queue: WorkQueue,
    /// Pods newly bound to a not-Ready node (kube's `podUpdateQueue`).
    pod_queue: WorkQueue,
}

/// Runs the node lifecycle controller until `leading` is lost.
pub async fn run(client: Client, cfg: NodeControllersConfig, leading: Leading) -> Result<()> {
    let recorder = Recorder::new(client.clone(), EVENT_SOURCE, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        recorder,
        cfg,
        nodes: Cache::new(),
        leases: Cache::new(),
        pods: Cache::new(),
        by_node: PodsByNode::default(),
        state: Mutex::new(State {
            health: HashMap::new(),
            known: HashMap::new(),
            zone_states: BTreeMap::new(),
            tainters: HashMap::new(),
            retry: HashSet::new(),
        }),
        node_queue: WorkQueue::default(),
        pod_queue: WorkQueue::default(),
    });
    tracing::info!(controller = CONTROLLER_NAME, "starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(watch_nodes(ctl.clone()));
    tasks.spawn(watch_leases(ctl.clone()));
    tasks.spawn(watch_pods(ctl.clone()));
    let synced = async {
        ctl.nodes.synced().await;
        ctl.leases.synced().await;
        ctl.pods.synced().await;
    };
    tokio::select! {
        _ = leading.lost() => {}
        _ = synced => {
            tracing::info!(controller = CONTROLLER_NAME, nodes = ctl.nodes.len(), "caches synced");
            for _ in 0..NODE_UPDATE_WORKERS {
                tasks.spawn(node_worker(ctl.clone()));
            }
            for _ in 0..POD_UPDATE_WORKERS {
                tasks.spawn(pod_worker(ctl.clone()));
            }
            tasks.spawn(monitor_loop(ctl.clone()));
            tasks.spawn(tainting_loop(ctl.clone()));
            supervise(&mut tasks, &leading, CONTROLLER_NAME).await;
        }
    }
    ctl.node_queue.shut_down();
    ctl.pod_queue.shut_down();
    tasks.shutdown().await;
    tracing::info!(controller = CONTROLLER_NAME, "stopped");
    Ok(())
}

async fn watch_nodes(ctl: Arc<Controller>) {
    let api: Api<Node> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.nodes.apply(event.modify(strip)) {
                    if let crate::util::cache::Change::Added(n)
                    | crate::util::cache::Change::Updated { new: n, .. } = change
                    {
                        ctl.node_queue.add(n.metadata.name.as_deref().unwrap_or(""));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
        }
    }
}

async fn watch_leases(ctl: Arc<Controller>) {
    let api: Api<Lease> = Api::namespaced(ctl.client.clone(), LEASE_NAMESPACE);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                ctl.leases.apply(event.modify(strip));
            }
            Err(e) => tracing::warn!(error = %e, "lease watch failed; retrying"),
        }
    }
}

async fn watch_pods(ctl: Arc<Controller>) {
    let api: Api<Pod> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.pods.apply(event.modify(strip)) {
                    ctl.by_node.apply(&change);
                    // A pod newly bound to a node that is not Ready is NotReady too
                    // (kube's `processPod`).
                    let newly_bound = match &change {
                        crate::util::cache::Change::Added(p) => Some(p.clone()),
                        crate::util::cache::Change::Updated { old, new }
                            if pods::node_name(old) != pods::node_name(new) =>
                        {
                            Some(new.clone())
                        }
                        _ => None,
                    };
                    if let Some(p) = newly_bound.filter(|p| !pods::node_name(p).is_empty()) {
                        let not_ready = ctl
                            .state()
                            .health
                            .get(pods::node_name(&p))
                            .and_then(|h| h.ready.as_ref())
                            .is_some_and(|c| c.status != "True");
                        if not_ready {
                            ctl.pod_queue
                                .add(&crate::util::pod::object_key(&p.metadata));
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

/// kube's `doNodeProcessingPassWorker` (the NoSchedule taints).
async fn node_worker(ctl: Arc<Controller>) {
    while let Some(name) = ctl.node_queue.get().await {
        if let Some(node) = ctl.nodes.get("", &name) {
            match ctl.no_schedule_pass(&node).await {
                Ok(()) => ctl.node_queue.forget(&name),
                Err(Error::NotLeading(_)) => {}
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "NoSchedule taints not updated");
                    ctl.node_queue.add_rate_limited(&name);
                }
            }
        }
        ctl.node_queue.done(&name);
    }
}

/// kube's `doPodProcessingWorker`: a pod bound to a node that is not Ready is NotReady.
async fn pod_worker(ctl: Arc<Controller>) {
    while let Some(key) = ctl.pod_queue.get().await {
        let pod = crate::util::pod::split_key(&key).and_then(|(ns, name)| ctl.pods.get(ns, name));
        if let Some(p) = pod {
            let node = pods::node_name(&p).to_string();
            match ctl.mark_pods_not_ready(&[p], &node).await {
                Ok(()) => ctl.pod_queue.forget(&key),
                Err(Error::NotLeading(_)) => {}
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "pod not marked NotReady");
                    ctl.pod_queue.add_rate_limited(&key);
                }
            }
        }
        ctl.pod_queue.done(&key);
    }
}

async fn monitor_loop(ctl: Arc<Controller>) {
    let mut tick = tokio::time::interval(ctl.cfg.node_monitor_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = ctl.monitor_node_health().await {
            if matches!(e, Error::NotLeading(_)) {
                return;
            }
            tracing::warn!(error = %e, "monitoring node health failed");
        }
    }
}

async fn tainting_loop(ctl: Arc<Controller>) {
    let mut tick = tokio::time::interval(NODE_EVICTION_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        ctl.no_execute_pass().await;
    }
}

/// The pod status patch of `MarkPodsNotReady`: the Ready condition False (merged by type,
/// so its reason and message stay); None when it is not True.
pub fn not_ready_patch(pod: &Pod, now: DateTime<Utc>) -> Option<serde_json::Value> {
    let ready = crate::util::pod::ready_condition(pod)?;
    if ready.status == "False" {
        return None;
    }
    Some(json!({"status": {"conditions": [{
        "type": "Ready",
        "status": "False",
        "lastTransitionTime": Time(now),
    }]}}))
}

impl Controller {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rates(&self) -> Rates {
        Rates {
            eviction_qps: self.cfg.node_eviction_rate,
            secondary_eviction_qps: self.cfg.secondary_node_eviction_rate,
            large_cluster_threshold: self.cfg.large_cluster_size_threshold,
            unhealthy_zone_threshold: self.cfg.unhealthy_zone_threshold,
        }
    }

    fn node_event(&self, node: &Node, kind: EventType, reason: &str, message: String) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let uid = node.metadata.uid.as_deref().unwrap_or("");
        self.recorder
            .record(&node_ref(name, uid), kind, reason, message);
    }

    /// kube's `doNoScheduleTaintingPass`.
    async fn no_schedule_pass(&self, node: &Node) -> Result<()> {
        let (add, del) = taints::no_schedule_diff(node);
        if add.is_empty() && del.is_empty() {
            return Ok(());
        }
        swap_taints(&self.client, &self.leading, node, &add, &del).await?;
        Ok(())
    }

    fn tainter(&self, st: &mut State, zone: &str) {
        if !st.tainters.contains_key(zone) {
            st.zone_states
                .entry(zone.to_string())
                .or_insert(ZoneState::Initial);
            st.tainters.insert(
                zone.to_string(),
                TaintQueue::new(self.cfg.node_eviction_rate, Instant::now()),
            );
        }
    }

    /// kube's `markNodeAsReachable`: both NoExecute taints off, out of the taint queue.
    async fn mark_reachable(&self, node: &Node) -> Result<bool> {
        let del = [
            taint(TAINT_UNREACHABLE, NO_EXECUTE),
            taint(TAINT_NOT_READY, NO_EXECUTE),
        ];
        if del.iter().any(|t| has_taint(node_taints(node), t)) {
            swap_taints(&self.client, &self.leading, node, &[], &del).await?;
        }
        let zone = zones::zone_key(node);
        let name = node.metadata.name.as_deref().unwrap_or("");
        let mut st = self.state();
        Ok(st.tainters.get_mut(&zone).is_some_and(|q| q.remove(name)))
    }

    /// kube's `markNodeForTainting`.
    fn mark_for_tainting(&self, node: &Node, status: &str) -> bool {
        let zone = zones::zone_key(node);
        let name = node.metadata.name.as_deref().unwrap_or("");
        let uid = node.metadata.uid.as_deref().unwrap_or("");
        let wanted = if status == "False" {
            TAINT_NOT_READY
        } else {
            TAINT_UNREACHABLE
        };
        let mut st = self.state();
        self.tainter(&mut st, &zone);
        let Some(q) = st.tainters.get_mut(&zone) else {
            return false;
        };
        if !has_taint(node_taints(node), &taint(wanted, NO_EXECUTE)) {
            q.remove(name);
        }
        q.add(name, uid, Instant::now())
    }

    /// kube's `processTaintBaseEviction`.
    async fn taint_based_eviction(&self, node: &Node, observed: &str) -> Result<()> {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let unreachable = taint(TAINT_UNREACHABLE, NO_EXECUTE);
        let not_ready = taint(TAINT_NOT_READY, NO_EXECUTE);
        match observed {
            "False" | "Unknown" => {
                let (want, opposite) = if observed == "False" {
                    (not_ready, unreachable)
                } else {
                    (unreachable, not_ready)
                };
                if has_taint(node_taints(node), &opposite) {
                    swap_taints(&self.client, &self.leading, node, &[want], &[opposite]).await?;
                } else if self.mark_for_tainting(node, observed) {
                    tracing::info!(
                        node = name,
                        ready = observed,
                        "adding node to the taint queue"
                    );
                }
            }
            "True" if self.mark_reachable(node).await? => {
                tracing::info!(node = name, "node is healthy again; taints removed");
            }
            _ => {}
        }
        Ok(())
    }

    /// kube's `doNoExecuteTaintingPass`: each zone's queue hands out the nodes due now, as its
    /// rate allows.
    async fn no_execute_pass(&self) {
        let zones: Vec<String> = self.state().tainters.keys().cloned().collect();
        for zone in zones {
            loop {
                let next = {
                    let mut st = self.state();
                    st.tainters
                        .get_mut(&zone)
                        .and_then(|q| q.next(Instant::now()))
                };
                let Some(v) = next else { break };
                let (ok, wait) = self.taint_one(&v.node).await;
                let mut st = self.state();
                if let Some(q) = st.tainters.get_mut(&zone) {
                    if ok {
                        q.done(&v);
                    } else {
                        q.retry(&v, wait, Instant::now());
                    }
                }
            }
        }
    }

    async fn taint_one(&self, name: &str) -> (bool, Duration) {
        let Some(node) = self.nodes.get("", name) else {
            return (true, Duration::ZERO);
        };
        let Some(ready) = taints::condition(&node, "Ready") else {
            return (false, Duration::from_millis(50));
        };
        let (add, opposite) = match ready.status.as_str() {
            "False" => (TAINT_NOT_READY, TAINT_UNREACHABLE),
            "Unknown" => (TAINT_UNREACHABLE, TAINT_NOT_READY),
            _ => return (true, Duration::ZERO),
        };
        match swap_taints(
            &self.client,
            &self.leading,
            &node,
            &[taint(add, NO_EXECUTE)],
            &[taint(opposite, NO_EXECUTE)],
        )
        .await
        {
            Ok(_) => {
                tracing::info!(node = name, taint = add, "NoExecute taint added");
                (true, Duration::ZERO)
            }
            Err(e) => {
                tracing::warn!(node = name, error = %e, "NoExecute taint not added; retrying");
                (false, Duration::ZERO)
            }
        }
    }

    /// kube's `MarkPodsNotReady`.
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>], node: &str) -> Result<()> {
        let mut first_error = None;
        for pod in pods {
            if pods::node_name(pod) != node {
                continue;
            }
            let Some(patch) = not_ready_patch(pod, Utc::now()) else {
                continue;
            };
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let (api, patch, params) = (&api, &patch, &PatchParams::default());
            let r = write_with_retry(&self.leading, || async move {
                api.patch_status(name, params, &Patch::Strategic(patch))
                    .await
            })
            .await;
            match r {
                Ok(_) => self.recorder.record(
                    &object_reference(pod.as_ref()),
                    EventType::Warning,
                    "NodeNotReady",
                    "Node is not ready".into(),
                ),
                Err(Error::Kube(e)) if is_not_found(&e) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One node's health: observe, write Unknown when due (retrying on a fresh read), then the
    /// taint and pod consequences. Returns the Ready condition's status for the zone's health
    /// (None when the node is left out).
    async fn update_node(&self, node: Arc<Node>) -> Result<Option<(String, bool)>> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let api: Api<Node> = Api::all(self.client.clone());
        let grace = Grace {
            monitor: self.cfg.node_monitor_grace_period,
            startup: self.cfg.node_startup_grace_period,
        };
        let mut node = (*node).clone();
        let mut outcome = None;
        for _ in 0..HEALTH_UPDATE_TRIES {
            let lease_renew = self
                .leases
                .get(LEASE_NAMESPACE, &name)
                .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
            let saved = self.state().health.get(&name).cloned();
            let o = health::observe(
                saved.as_ref(),
                &node,
                lease_renew,
                grace,
                Instant::now(),
                Utc::now(),
            );
            self.state().health.insert(name.clone(), o.health.clone());
            let Some(status) = &o.write else {
                outcome = Some(o);
                break;
            };
            let mut updated = node.clone();
            updated.status = Some(status.clone());
            updated.metadata.managed_fields = None;
            let body = serde_json::to_vec(&updated)
                .map_err(|e| Error::Invalid(format!("encoding Node status: {e}")))?;
            let (api, body, params, name) = (&api, &body, &PostParams::default(), &name);
            let r = write_with_retry(&self.leading, || async move {
                api.replace_status(name, params, body.clone()).await
            })
            .await;
            match r {
                Ok(_) => {
                    tracing::info!(node = %name, "node stopped posting status: conditions Unknown");
                    outcome = Some(o);
                    break;
                }
                Err(Error::NotLeading(e)) => return Err(e.into()),
                Err(e) => {
                    // kube keeps the health it saw, and reads the node again.
                    if let Some(saved) = saved {
                        self.state().health.insert(name.clone(), saved);
                    }
                    tracing::debug!(node = %name, error = %e, "node status write failed; reading it again");
                    match api.get(name).await {
                        Ok(fresh) => node = fresh,
                        Err(e) if is_not_found(&e) => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        let Some(o) = outcome else {
            tracing::warn!(node = %name, "node health not updated; no pods will be evicted");
            return Ok(None);
        };
        let zone = (!zones::excluded_from_disruption(&node)).then(|| {
            (
                zones::zone_key(&node),
                o.current_ready.as_ref().is_some_and(|c| c.status == "True"),
            )
        });
        let Some(current) = &o.current_ready else {
            return Ok(zone);
        };
        let observed = o.observed_ready.status.as_str();
        self.taint_based_eviction(&node, observed).await?;
        let needs_retry = self.state().retry.contains(&name);
        let became_not_ready = current.status != "True" && observed == "True";
        if became_not_ready {
            self.node_event(
                &node,
                EventType::Normal,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
        }
        if became_not_ready || (needs_retry && observed != "True") {
            let pods = self.by_node.on_node(&name);
            if let Err(e) = self.mark_pods_not_ready(&pods, &name).await {
                tracing::warn!(node = %name, error = %e, "pods not all marked NotReady; will retry");
                self.state().retry.insert(name.clone());
                return Ok(zone);
            }
        }
        self.state().retry.remove(&name);
        Ok(zone)
    }

    /// kube's `monitorNodeHealth`.
    async fn monitor_node_health(&self) -> Result<()> {
        let nodes = self.nodes.in_namespace("");
        // New and deleted nodes.
        let (added, deleted) = {
            let st = self.state();
            let names: HashSet<&str> = nodes
                .iter()
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            let added: Vec<Arc<Node>> = nodes
                .iter()
                .filter(|n| {
                    !st.known
                        .contains_key(n.metadata.name.as_deref().unwrap_or(""))
                })
                .cloned()
                .collect();
            let deleted: Vec<Arc<Node>> = st
                .known
                .iter()
                .filter(|(k, _)| !names.contains(k.as_str()))
                .map(|(_, n)| n.clone())
                .collect();
            (added, deleted)
        };
        for n in &nodes {
            let zone = zones::zone_key(n);
            let mut st = self.state();
            self.tainter(&mut st, &zone);
        }
        for n in added {
            let name = n.metadata.name.clone().unwrap_or_default();
            self.node_event(
                &n,
                EventType::Normal,
                "RegisteredNode",
                format!("Registered Node {name} in Controller"),
            );
            self.state().known.insert(name, n.clone());
            if let Err(e) = self.mark_reachable(&n).await {
                tracing::warn!(error = %e, "taints of a new node not removed");
            }
        }
        for n in deleted {
            let name = n.metadata.name.clone().unwrap_or_default();
            self.node_event(
                &n,
                EventType::Normal,
                "RemovingNode",
                format!("Removing Node {name} from Controller"),
            );
            let mut st = self.state();
            st.known.remove(&name);
            st.health.remove(&name);
            st.retry.remove(&name);
        }

        let results: Vec<Result<Option<(String, bool)>>> = stream::iter(nodes.iter().cloned())
            .map(|n| self.update_node(n))
            .buffer_unordered(NODE_UPDATE_WORKERS)
            .collect()
            .await;
        let mut by_zone: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for r in results {
            match r {
                Ok(Some((zone, ready))) => by_zone.entry(zone).or_default().push(ready),
                Ok(None) => {}
                Err(Error::NotLeading(e)) => return Err(e.into()),
                Err(e) => tracing::warn!(error = %e, "node health update failed"),
            }
        }
        self.handle_disruption(&by_zone, &nodes).await;
        Ok(())
    }

    async fn handle_disruption(&self, by_zone: &BTreeMap<String, Vec<bool>>, nodes: &[Arc<Node>]) {
        let rates = self.rates();
        let actions = {
            let mut st = self.state();
            let actions = zones::handle_disruption(&mut st.zone_states, by_zone, &rates);
            let now = Instant::now();
            for (zone, qps) in &actions.limiters {
                if let Some(q) = st.tainters.get_mut(zone) {
                    q.limiter.swap(*qps, now);
                }
            }
            if actions.reset_probes {
                for h in st.health.values_mut() {
                    h.probe = now;
                    h.ready_transition = now;
                }
            }
            actions
        };
        for (zone, state) in &actions.changed {
            tracing::info!(zone = %zone.replace('\0', ""), state = state.as_str(), "zone state changed");
        }
        if actions.mark_all_reachable {
            tracing::info!("all nodes are not Ready: entering master disruption mode");
            for n in nodes {
                if let Err(e) = self.mark_reachable(n).await {
                    tracing::warn!(error = %e, "taints not removed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::pod::testing::{at, pod, ready_at};

    #[test]
    fn mark_pods_not_ready_flips_only_a_ready_condition() {
        let ready = ready_at(pod("a"), Some(at(0)));
        let patch = not_ready_patch(&ready, at(10)).expect("ready pod");
        assert_eq!(patch["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(patch["status"]["conditions"][0]["status"], "False");
        assert_eq!(
            patch["status"]["conditions"][0]["lastTransitionTime"],
            serde_json::to_value(Time(at(10))).unwrap()
        );
        // No Ready condition: nothing (kube loops over existing conditions only).
        assert!(not_ready_patch(&pod("b"), at(10)).is_none());
        let mut not_ready = ready.clone();
        not_ready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        assert!(not_ready_patch(&not_ready, at(10)).is_none());
    }
}
