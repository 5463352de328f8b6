//! kube's DaemonSet controller (`pkg/controller/daemon`, 1.32): one pod of each apps/v1
//! DaemonSet on every node that should run one — the template's nodeSelector and required node
//! affinity match, its tolerations (with kube's daemon tolerations added) cover the node's
//! NoSchedule and NoExecute taints — and none elsewhere. Pods are created pinned to their node
//! through a `matchFields: metadata.name` node affinity term, for the scheduler to bind; failed
//! pods are replaced after a per-node backoff (1 s doubling to 15 min); RollingUpdate replaces
//! old pods within maxUnavailable (or next to them, within maxSurge), OnDelete only when they
//! are deleted. The template's history is kept in ControllerRevisions (`<ds>-<hash>`, the data
//! `kubectl rollout undo` patches back), and the status counts what runs where.
//!
//! This module is the I/O half: DaemonSets, Pods, Nodes and ControllerRevisions watched into
//! caches, events mapped to DaemonSet keys (pods through their controller reference, orphans
//! through the selectors, nodes through the placement decisions that changed), and workers that
//! run a sync: adopt and release pods and revisions, construct the history (create the current
//! revision, bumping `status.collisionCount` on a name collision; dedup; renumber a revision
//! that is current again), then, once the create/delete expectations are met, perform what
//! [`sync::manage`] and [`sync::rolling_update`] decide (creates in slow-start batches, deletes,
//! with Events), truncate the history, and write the status when it changed. Every write is
//! preceded by `leading.ensure()`.
//!
//! Not done (kube has them): the periodic resync, kube's dedup relabelling of *every* pod to
//! the kept revision (only pods carrying a duplicate's hash are relabelled), the error a
//! surging rollout raises for a pod pinned to a node missing from the cache (the node is
//! skipped), and the exact `Go spew` template hash (see `deployment::util::compute_hash`).

pub mod sync;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use futures::{stream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::history::POD_REVISION_LABEL;
use crate::replicaset::expectations::Expectations;
use crate::replicaset::sync::{slow_start_batches, SLOW_START_INITIAL_BATCH_SIZE};
use crate::runner::{watch_all, worker, Reconcile};
use crate::util::cache::{Cache, Change};
use crate::util::pod::{controller_ref, is_pod_ready, labels, object_key, selector, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{
    api_code, error_message, is_conflict, is_invalid, is_not_found, supervise, write_with_retry,
};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "daemonset-controller";
/// Writes one sync has in flight at once (kube fires a whole batch and relies on its client's
/// qps limit; kube-rs has none).
const WRITES_IN_FLIGHT: usize = 16;
/// One second added to availability wake-ups, as kube does against clock skew.
const AVAILABILITY_SLACK: Duration = Duration::from_secs(1);

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    daemonsets: Cache<DaemonSet>,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
    revisions: Cache<ControllerRevision>,
    /// Namespaces holding DaemonSets (node events look at every DaemonSet). Bound: one entry
    /// per namespace with a DaemonSet in the cache.
    namespaces: Mutex<BTreeSet<String>>,
    queue: WorkQueue,
    /// kube's one `ControllerExpectations` is two here: the shared type sets creations or
    /// deletions, not both at once.
    creations: Mutex<Expectations>,
    deletions: Mutex<Expectations>,
    backoff: Mutex<sync::FailedPodBackoff>,
}

/// Runs the DaemonSet controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client: client.clone(),
        leading: leading.clone(),
        recorder,
        daemonsets: Cache::new(),
        pods: Cache::new(),
        nodes: Cache::new(),
        revisions: Cache::new(),
        namespaces: Mutex::new(BTreeSet::new()),
        queue: WorkQueue::default(),
        creations: Mutex::new(Expectations::new()),
        deletions: Mutex::new(Expectations::new()),
        backoff: Mutex::new(sync::FailedPodBackoff::default()),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        watch_all(
            Api::<DaemonSet>::all(c.client.clone()),
            &c.daemonsets,
            watcher::Config::default(),
            |ch| c.on_daemonset(ch),
        )
        .await
    });
    let c = ctl.clone();
    tasks.spawn(async move {
        watch_all(
            Api::<Pod>::all(c.client.clone()),
            &c.pods,
            watcher::Config::default(),
            |ch| c.on_pod(ch),
        )
        .await
    });
    let c = ctl.clone();
    tasks.spawn(async move {
        watch_all(
            Api::<Node>::all(c.client.clone()),
            &c.nodes,
            watcher::Config::default(),
            |ch| c.on_node(ch),
        )
        .await
    });
    let c = ctl.clone();
    tasks.spawn(async move {
        watch_all(
            Api::<ControllerRevision>::all(c.client.clone()),
            &c.revisions,
            watcher::Config::default(),
            |ch| c.on_revision(ch),
        )
        .await
    });
    tokio::select! {
        _ = leading.lost() => {}
        _ = async {
            ctl.daemonsets.synced().await;
            ctl.pods.synced().await;
            ctl.nodes.synced().await;
            ctl.revisions.synced().await;
        } => {
            tracing::info!(
                controller = CONTROLLER_NAME,
                daemonsets = ctl.daemonsets.len(),
                nodes = ctl.nodes.len(),
                "caches synced"
            );
            for _ in 0..concurrency.max(1) {
                tasks.spawn(worker(ctl.clone()));
            }
            supervise(&mut tasks, &leading, CONTROLLER_NAME).await;
        }
    }
    ctl.queue.shut_down();
    tasks.shutdown().await;
    Ok(())
}

fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 403 && r.message.contains("because it is being terminated"))
}

fn is_already_exists(e: &kube::Error) -> bool {
    api_code(e) == Some(409) && !is_conflict_reason(e)
}

/// A 409 is either AlreadyExists (create) or Conflict (a stale resourceVersion).
fn is_conflict_reason(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.reason == "Conflict")
}

impl Controller {
    fn creations(&self) -> MutexGuard<'_, Expectations> {
        self.creations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deletions(&self) -> MutexGuard<'_, Expectations> {
        self.deletions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn backoff(&self) -> MutexGuard<'_, sync::FailedPodBackoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn satisfied(&self, key: &str) -> bool {
        self.creations().satisfied(key) && self.deletions().satisfied(key)
    }

    fn all_daemonsets(&self) -> Vec<Arc<DaemonSet>> {
        let namespaces: Vec<String> = self
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        namespaces
            .iter()
            .flat_map(|ns| self.daemonsets.in_namespace(ns))
            .collect()
    }

    /// The DaemonSet a controller reference names, if it is in the cache with that uid.
    fn resolve(&self, ns: &str, meta: &ObjectMeta) -> Option<Arc<DaemonSet>> {
        let r = controller_ref(meta)?;
        if r.kind != sync::KIND {
            return None;
        }
        self.daemonsets
            .get(ns, &r.name)
            .filter(|ds| ds.metadata.uid.as_deref() == Some(r.uid.as_str()))
    }

    /// DaemonSets of the namespace whose selector matches these labels (orphans).
    fn matching(&self, meta: &ObjectMeta) -> Vec<Arc<DaemonSet>> {
        let ns = meta.namespace.as_deref().unwrap_or("");
        self.daemonsets
            .in_namespace(ns)
            .into_iter()
            .filter(|ds| {
                ds.spec
                    .as_ref()
                    .and_then(|s| selector(&s.selector).ok())
                    .is_some_and(|sel| sel.matches(labels(meta)))
            })
            .collect()
    }

    fn enqueue(&self, ds: &DaemonSet) {
        self.queue.add(&object_key(&ds.metadata));
    }

    fn on_daemonset(&self, change: &Change<DaemonSet>) {
        match change {
            Change::Added(ds) | Change::Updated { new: ds, .. } => {
                let ns = ds.metadata.namespace.clone().unwrap_or_default();
                self.namespaces
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(ns);
                self.enqueue(ds);
            }
            Change::Deleted(ds) => {
                let ns = ds.metadata.namespace.clone().unwrap_or_default();
                if self.daemonsets.in_namespace(&ns).is_empty() {
                    self.namespaces
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&ns);
                }
                let key = object_key(&ds.metadata);
                self.creations().delete(&key);
                self.deletions().delete(&key);
                self.queue.add(&key);
            }
        }
    }

    /// kube's addPod/updatePod/deletePod.
    fn on_pod(&self, change: &Change<Pod>) {
        let (old, pod, deleted) = match change {
            Change::Added(p) => (None, p, p.metadata.deletion_timestamp.is_some()),
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                (Some(old), new, new.metadata.deletion_timestamp.is_some())
            }
            Change::Deleted(p) => (None, p, true),
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if deleted {
            if let Some(ds) = self.resolve(ns, &pod.metadata) {
                let key = object_key(&ds.metadata);
                self.deletions()
                    .deletion_observed(&key, &object_key(&pod.metadata));
                self.queue.add(&key);
            }
            return;
        }
        let Some(old) = old else {
            // Added.
            match controller_ref(&pod.metadata) {
                Some(_) => {
                    if let Some(ds) = self.resolve(ns, &pod.metadata) {
                        let key = object_key(&ds.metadata);
                        self.creations().creations_observed(&key, 1);
                        self.queue.add(&key);
                    }
                }
                None => self
                    .matching(&pod.metadata)
                    .iter()
                    .for_each(|ds| self.enqueue(ds)),
            }
            return;
        };
        let old_ref = controller_ref(&old.metadata);
        let new_ref = controller_ref(&pod.metadata);
        let ref_changed = old_ref != new_ref;
        if ref_changed {
            if let Some(ds) = self.resolve(ns, &old.metadata) {
                self.enqueue(&ds);
            }
        }
        if new_ref.is_some() {
            if let Some(ds) = self.resolve(ns, &pod.metadata) {
                self.enqueue(&ds);
                let min_ready = sync::min_ready_seconds(&ds);
                if min_ready > 0 && !is_pod_ready(old) && is_pod_ready(pod) {
                    let after = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0))
                        + AVAILABILITY_SLACK;
                    self.queue.add_after(&object_key(&ds.metadata), after);
                }
            }
            return;
        }
        if ref_changed || old.metadata.labels != pod.metadata.labels {
            for ds in self.matching(&pod.metadata) {
                self.enqueue(&ds);
            }
        }
    }

    /// kube's addNode/updateNode, and node deletions: the DaemonSets whose decision about the
    /// node is (or changed to) something.
    fn on_node(&self, change: &Change<Node>) {
        match change {
            Change::Added(node) => {
                for ds in self.all_daemonsets() {
                    if sync::placement(node, &ds).should_run {
                        self.enqueue(&ds);
                    }
                }
            }
            Change::Updated { old, new } => {
                if !sync::node_placement_inputs_changed(old, new) {
                    return;
                }
                for ds in self.all_daemonsets() {
                    if sync::placement(old, &ds) != sync::placement(new, &ds) {
                        self.enqueue(&ds);
                    }
                }
            }
            Change::Deleted(node) => {
                for ds in self.all_daemonsets() {
                    if sync::placement(node, &ds).should_continue_running {
                        self.enqueue(&ds);
                    }
                }
            }
        }
    }

    /// kube's addHistory/updateHistory/deleteHistory.
    fn on_revision(&self, change: &Change<ControllerRevision>) {
        let (old, rev) = match change {
            Change::Added(r) | Change::Deleted(r) => (None, r),
            Change::Updated { old, new } => (Some(old), new),
        };
        let ns = rev.metadata.namespace.as_deref().unwrap_or("");
        if let Some(old) = old {
            if controller_ref(&old.metadata) != controller_ref(&rev.metadata) {
                if let Some(ds) = self.resolve(ns, &old.metadata) {
                    self.enqueue(&ds);
                }
            }
        }
        if controller_ref(&rev.metadata).is_some() {
            if let Some(ds) = self.resolve(ns, &rev.metadata) {
                self.enqueue(&ds);
            }
            return;
        }
        let orphan_changed = match (change, old) {
            (Change::Deleted(_), _) => false,
            (_, None) => true,
            (_, Some(old)) => {
                old.metadata.labels != rev.metadata.labels
                    || controller_ref(&old.metadata).is_some()
            }
        };
        if orphan_changed {
            for ds in self.matching(&rev.metadata) {
                self.enqueue(&ds);
            }
        }
    }

    // --------------------------------------------------------------------------------------------
    // Claiming
    // --------------------------------------------------------------------------------------------

    /// Before adopting, a fresh read: a DaemonSet being deleted, or replaced by another of the
    /// same name, must not adopt (kube's `RecheckDeletionTimestamp`).
    async fn can_adopt(&self, ds: &DaemonSet) -> Result<()> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let name = ds.metadata.name.as_deref().unwrap_or("");
        let fresh = Api::<DaemonSet>::namespaced(self.client.clone(), ns)
            .get(name)
            .await?;
        if fresh.metadata.uid != ds.metadata.uid {
            return Err(Error::Invalid(format!(
                "original DaemonSet {ns}/{name} is gone: got uid {}, wanted {}",
                fresh.metadata.uid.as_deref().unwrap_or(""),
                ds.metadata.uid.as_deref().unwrap_or("")
            )));
        }
        if let Some(at) = fresh.metadata.deletion_timestamp {
            return Err(Error::Invalid(format!(
                "DaemonSet {ns}/{name} has just been deleted at {}",
                at.0.to_rfc3339()
            )));
        }
        Ok(())
    }

    async fn patch<K>(&self, api: &Api<K>, name: &str, patch: Value) -> Result<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let (patch, params) = (&patch, &PatchParams::default());
        write_with_retry(&self.leading, move || async move {
            api.patch(name, params, &Patch::Strategic(patch)).await
        })
        .await
        .map(|_| ())
    }

    /// Adopts and releases what `claim` says; returns what the DaemonSet owns after.
    async fn apply_claim<K>(
        &self,
        ds: &DaemonSet,
        api: &Api<K>,
        claim: sync::Claim<K>,
    ) -> Result<Vec<Arc<K>>>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync,
    {
        let mut owned = claim.owned;
        let mut first_error: Option<Error> = None;
        if !claim.adopt.is_empty() {
            match self.can_adopt(ds).await {
                Ok(()) => {
                    let adopted: Vec<(Arc<K>, Result<()>)> = stream::iter(claim.adopt)
                        .map(|obj| async move {
                            let meta = obj.meta();
                            let name = meta.name.as_deref().unwrap_or("");
                            let r = match sync::adopt_patch(ds, meta) {
                                Ok(p) => self.patch(api, name, p).await,
                                Err(e) => Err(Error::Invalid(e)),
                            };
                            (obj, r)
                        })
                        .buffer_unordered(WRITES_IN_FLIGHT)
                        .collect()
                        .await;
                    for (obj, r) in adopted {
                        match r {
                            Ok(()) => owned.push(obj),
                            Err(Error::Kube(e)) if is_not_found(&e) => {}
                            Err(e) => {
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                }
                Err(e) => first_error = Some(e),
            }
        }
        let released: Vec<Result<()>> = stream::iter(claim.release)
            .map(|obj| async move {
                let meta = obj.meta();
                let name = meta.name.as_deref().unwrap_or("");
                self.patch(api, name, sync::release_patch(ds, meta)).await
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        for r in released {
            match r {
                Err(Error::Kube(e)) if is_not_found(&e) || is_invalid(&e) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
                Ok(()) => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(owned),
        }
    }

    // --------------------------------------------------------------------------------------------
    // History
    // --------------------------------------------------------------------------------------------

    /// kube's `constructHistory`: returns the current revision's hash and the old revisions.
    async fn construct_history(
        &self,
        ds: &DaemonSet,
        sel: &Selector,
        pods: &[Arc<Pod>],
    ) -> Result<(String, Vec<Arc<ControllerRevision>>)> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let all = self.revisions.in_namespace(ns);
        let owned = self
            .apply_claim(ds, &api, sync::claim(ds, sel, &all))
            .await?;
        // Revisions without the hash label get their name as one, as kube labels them.
        for rev in &owned {
            if labels(&rev.metadata).contains_key(POD_REVISION_LABEL) {
                continue;
            }
            let name = rev.metadata.name.as_deref().unwrap_or("");
            let patch = json!({"metadata": {"labels": {POD_REVISION_LABEL: name}}});
            match self.patch(&api, name, patch).await {
                Err(Error::Kube(e)) if is_not_found(&e) => {}
                r => r?,
            }
        }
        let plan = sync::plan_history(ds, &owned, pods).map_err(Error::Invalid)?;
        let hash = match &plan.current {
            sync::Current::Create(rev) => self.snapshot(ds, rev).await?,
            sync::Current::Existing(cur) => {
                let hash = sync::revision_hash(cur);
                let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                for pod in &plan.relabel {
                    let name = pod.metadata.name.as_deref().unwrap_or("");
                    match self
                        .patch(&pods_api, name, sync::relabel_patch(&hash))
                        .await
                    {
                        Err(Error::Kube(e)) if is_not_found(&e) => {}
                        r => r?,
                    }
                }
                for dup in &plan.duplicates {
                    self.delete_revision(&api, dup).await?;
                }
                if let Some(revision) = plan.bump_to {
                    let name = cur.metadata.name.as_deref().unwrap_or("");
                    let patch = json!({"revision": revision});
                    let patch = &patch;
                    let api = &api;
                    write_with_retry(&self.leading, move || async move {
                        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                            .await
                    })
                    .await?;
                }
                hash
            }
        };
        Ok((hash, plan.old))
    }

    async fn delete_revision(
        &self,
        api: &Api<ControllerRevision>,
        rev: &ControllerRevision,
    ) -> Result<()> {
        let name = rev.metadata.name.as_deref().unwrap_or("");
        let r = write_with_retry(&self.leading, || async {
            api.delete(name, &DeleteParams::default()).await
        })
        .await;
        match r {
            Err(Error::Kube(e)) if is_not_found(&e) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// kube's `snapshot`: creates the current revision; on a name taken by other data, bumps
    /// `status.collisionCount` and fails, so the next sync hashes anew.
    async fn snapshot(&self, ds: &DaemonSet, rev: &ControllerRevision) -> Result<String> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let created = {
            let api = &api;
            write_with_retry(&self.leading, move || async move {
                api.create(&PostParams::default(), rev).await
            })
            .await
        };
        let e = match created {
            Ok(created) => return Ok(sync::revision_hash(&created)),
            Err(Error::Kube(e)) if is_already_exists(&e) => e,
            Err(e) => return Err(e),
        };
        let name = rev.metadata.name.as_deref().unwrap_or("");
        let existing = api.get(name).await?;
        if sync::revision_matches(ds, &existing) {
            return Ok(sync::revision_hash(&existing));
        }
        let ds_name = ds.metadata.name.as_deref().unwrap_or("");
        let ds_api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
        let mut fresh = ds_api.get(ds_name).await?;
        let count = |d: &DaemonSet| d.status.as_ref().and_then(|s| s.collision_count);
        if count(&fresh) != count(ds) {
            return Err(Error::Invalid(format!(
                "found a stale collision count ({:?}, expected {:?}) of DaemonSet {ds_name:?} while processing; will retry until it is updated",
                count(ds),
                count(&fresh)
            )));
        }
        let status = fresh.status.get_or_insert_with(DaemonSetStatus::default);
        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
        tracing::info!(daemonset = %object_key(&ds.metadata), revision = name, "hash collision; bumping collisionCount");
        let body = serde_json::to_vec(&fresh)
            .map_err(|e| Error::Invalid(format!("encoding DaemonSet status: {e}")))?;
        let (ds_api, body) = (&ds_api, &body);
        write_with_retry(&self.leading, move || async move {
            ds_api
                .replace_status(ds_name, &PostParams::default(), body.clone())
                .await
        })
        .await?;
        Err(Error::Kube(e))
    }

    // --------------------------------------------------------------------------------------------
    // Pods
    // --------------------------------------------------------------------------------------------

    /// kube's `syncNodes`: creates a pod on each of `create_on` (slow-start batches), then
    /// deletes `delete`, with the expectations set first.
    async fn sync_nodes(
        &self,
        key: &str,
        ds: &DaemonSet,
        hash: &str,
        changes: &sync::Changes,
    ) -> Result<()> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let ds_ref = object_reference(ds);
        let create_on = &changes.create_on;
        let mut first_error: Option<Error> = None;
        if !create_on.is_empty() {
            self.creations().expect_creations(key, create_on.len());
        }
        if !changes.delete.is_empty() {
            self.deletions()
                .expect_deletions(key, changes.delete.iter().map(|p| object_key(&p.metadata)));
        }
        let mut position = 0;
        for batch in slow_start_batches(create_on.len(), SLOW_START_INITIAL_BATCH_SIZE) {
            let nodes = &create_on[position..position + batch];
            position += batch;
            let (api, ds_ref) = (&api, &ds_ref);
            let results: Vec<Result<()>> = stream::iter(nodes.iter().cloned())
                .map(|node: String| async move {
                    let r = self.create_pod(api, ds, hash, &node, ds_ref).await;
                    if r.is_err() {
                        self.creations().creations_observed(key, 1);
                    }
                    r
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                first_error = Some(e);
                break;
            }
        }
        let skipped = create_on.len() - position;
        if skipped > 0 {
            tracing::debug!(key, skipped, "slow-start failure: lowering expectations");
            self.creations().creations_observed(key, skipped);
        }
        let (api, ds_ref) = (&api, &ds_ref);
        let deleted: Vec<Result<()>> = stream::iter(changes.delete.iter().cloned())
            .map(|pod: Arc<Pod>| async move { self.delete_pod(key, api, &pod, ds_ref).await })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        if let Some(e) = deleted.into_iter().find_map(Result::err) {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn create_pod(
        &self,
        api: &Api<Pod>,
        ds: &DaemonSet,
        hash: &str,
        node: &str,
        ds_ref: &ObjectReference,
    ) -> Result<()> {
        let pod = sync::pod_for_node(ds, hash, node).map_err(Error::Invalid)?;
        let pod = &pod;
        let created = write_with_retry(&self.leading, move || async move {
            api.create(&PostParams::default(), pod).await
        })
        .await;
        match created {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                self.recorder.record(
                    ds_ref,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {name}"),
                );
                Ok(())
            }
            // The namespace is going away: every other create would fail too, and no Event.
            Err(Error::Kube(e)) if is_namespace_terminating(&e) => Err(Error::Kube(e)),
            Err(e @ Error::Kube(_)) => {
                self.recorder.record(
                    ds_ref,
                    EventType::Warning,
                    sync::FAILED_CREATE,
                    format!("Error creating: {}", error_message(&e)),
                );
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_pod(
        &self,
        key: &str,
        api: &Api<Pod>,
        pod: &Pod,
        ds_ref: &ObjectReference,
    ) -> Result<()> {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let deleted = write_with_retry(&self.leading, move || async move {
            api.delete(name, &DeleteParams::default()).await
        })
        .await;
        match deleted {
            Ok(_) => {
                self.recorder.record(
                    ds_ref,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(e) => {
                // The watch will not show this deletion.
                self.deletions()
                    .deletion_observed(key, &object_key(&pod.metadata));
                match e {
                    Error::Kube(k) if is_not_found(&k) => Ok(()),
                    e @ Error::Kube(_) => {
                        self.recorder.record(
                            ds_ref,
                            EventType::Warning,
                            sync::FAILED_DELETE,
                            format!("Error deleting: {}", error_message(&e)),
                        );
                        Err(e)
                    }
                    e => Err(e),
                }
            }
        }
    }

    fn record(&self, ds: &DaemonSet, events: &[sync::PlanEvent]) {
        if events.is_empty() {
            return;
        }
        let ds_ref = object_reference(ds);
        for e in events {
            let kind = if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.recorder
                .record(&ds_ref, kind, e.reason, e.message.clone());
        }
    }

    // --------------------------------------------------------------------------------------------
    // Status
    // --------------------------------------------------------------------------------------------

    /// kube's `storeDaemonSetStatus`: through the status subresource, only when it changed; on
    /// a conflict once more over a fresh read.
    async fn write_status(
        &self,
        ds: &DaemonSet,
        counts: sync::Counts,
        observe_generation: bool,
    ) -> Result<()> {
        let observed = if observe_generation {
            ds.metadata.generation
        } else {
            None
        };
        let status = sync::next_status(ds.status.as_ref(), counts, observed);
        if !sync::status_changed(ds, &status) {
            return Ok(());
        }
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let name = ds.metadata.name.as_deref().unwrap_or("");
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
        let mut updated = ds.clone();
        updated.status = Some(status);
        match self.replace_status(&api, name, &updated).await {
            Err(Error::Kube(e)) if is_conflict(&e) => {
                let mut fresh = api.get(name).await?;
                if fresh.metadata.uid != ds.metadata.uid {
                    return Ok(());
                }
                let status = sync::next_status(fresh.status.as_ref(), counts, observed);
                if !sync::status_changed(&fresh, &status) {
                    return Ok(());
                }
                fresh.status = Some(status);
                self.replace_status(&api, name, &fresh).await
            }
            r => r,
        }
    }

    async fn replace_status(&self, api: &Api<DaemonSet>, name: &str, ds: &DaemonSet) -> Result<()> {
        let body = serde_json::to_vec(ds)
            .map_err(|e| Error::Invalid(format!("encoding DaemonSet status: {e}")))?;
        let body = &body;
        write_with_retry(&self.leading, move || async move {
            api.replace_status(name, &PostParams::default(), body.clone())
                .await
        })
        .await
        .map(|_| ())
    }
}

impl Reconcile for Controller {
    fn name(&self) -> &'static str {
        CONTROLLER_NAME
    }

    fn queue(&self) -> &WorkQueue {
        &self.queue
    }

    /// kube's `syncDaemonSet`.
    async fn sync(&self, key: &str) -> Result<Option<Duration>> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(None);
        };
        let Some(ds) = self.daemonsets.get(ns, name) else {
            self.creations().delete(key);
            self.deletions().delete(key);
            return Ok(None);
        };
        let Some(spec) = ds.spec.as_ref() else {
            return Ok(None);
        };
        let everything = spec
            .selector
            .match_labels
            .as_ref()
            .is_none_or(|m| m.is_empty())
            && spec
                .selector
                .match_expressions
                .as_ref()
                .is_none_or(|m| m.is_empty());
        if everything {
            self.record(
                &ds,
                &[sync::PlanEvent {
                    warning: true,
                    reason: sync::SELECTING_ALL,
                    message: sync::SELECTING_ALL_MESSAGE.into(),
                }],
            );
            return Ok(None);
        }
        let sel = selector(&spec.selector).map_err(Error::Invalid)?;
        // A DaemonSet being deleted: its history may be going too; kube leaves it alone.
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let nodes = sync::live_nodes(self.nodes.in_namespace(""));
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let all_pods = self.pods.in_namespace(ns);
        let pods = self
            .apply_claim(&ds, &pods_api, sync::claim(&ds, &sel, &all_pods))
            .await?;
        let (hash, old) = self.construct_history(&ds, &sel, &pods).await?;
        let node_pods = sync::nodes_to_pods(&pods);
        let now = Utc::now();

        if !self.satisfied(key) {
            // Only the status; the generation is not observed until it is acted on.
            let counts = sync::count(&ds, &nodes, &node_pods, &hash, now);
            self.write_status(&ds, counts, false).await?;
            return Ok(sync::availability_requeue(&ds, counts));
        }

        let managed = {
            let mut backoff = self.backoff();
            let at = Instant::now();
            backoff.gc(at);
            sync::manage(
                &ds,
                &nodes,
                &node_pods,
                &hash,
                sync::Clocks { now, at },
                &mut backoff,
            )
        };
        self.record(&ds, &managed.events);
        let mut result = self.sync_nodes(key, &ds, &hash, &managed).await;
        if result.is_ok() && self.satisfied(key) && sync::is_rolling_update(&ds) {
            result = match sync::rolling_update(&ds, &nodes, &node_pods, &hash, now) {
                Ok(changes) => self.sync_nodes(key, &ds, &hash, &changes).await,
                Err(e) => Err(Error::Invalid(e)),
            };
        }
        if result.is_ok() {
            let ns_api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
            for rev in sync::revisions_to_truncate(&ds, &old, &pods) {
                if let Err(e) = self.delete_revision(&ns_api, &rev).await {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(Error::NotLeading(e)) = result {
            return Err(e.into());
        }
        let counts = sync::count(&ds, &nodes, &node_pods, &hash, now);
        self.write_status(&ds, counts, true).await?;
        result?;
        let requeue = [
            managed.requeue_after,
            sync::availability_requeue(&ds, counts),
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(requeue)
    }
}
