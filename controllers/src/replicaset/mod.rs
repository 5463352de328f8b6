//! kube's ReplicaSet controller (`pkg/controller/replicaset`): keeps `spec.replicas` active pods
//! for every ReplicaSet, adopting matching orphans and releasing pods that stopped matching, and
//! reports what it sees in the ReplicaSet's status. The same controller, over v1
//! ReplicationControllers seen as ReplicaSets ([`replication`]), is kube's ReplicationController
//! manager (`replicationcontroller-controller`).
//!
//! This module is the thin I/O half: it watches ReplicaSets and Pods into caches, maps every
//! event to the ReplicaSet keys it concerns ([`handlers`]), and runs at most `concurrency` syncs
//! at a time from a work queue that never syncs one key twice at once. A sync reads the caches,
//! asks [`sync`] what to do, and does it: creates pods (slow-start batches), deletes the pods
//! [`sync::pods_to_delete`] chose, patches owner references, and writes `status` when it
//! changed. [`expectations`] holds a ReplicaSet back until the watch has shown the effect of its
//! previous creates and deletes. Every write is preceded by `leading.ensure()`.

pub mod expectations;
pub mod handlers;
pub mod replication;
pub mod sync;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use futures::{stream, StreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ReplicationController};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::events::{EventType, Recorder};
use mainstay_component::Leading;
use serde_json::Value;
use tokio::task::JoinSet;

use self::expectations::Expectations;
use self::handlers::ReplicationControllers;
use self::sync::{
    Kind, ReplicaDiff, BURST_REPLICAS, REPLICATION_CONTROLLER, REPLICA_SET,
    SLOW_START_INITIAL_BATCH_SIZE,
};
use crate::util::cache::Cache;
use crate::util::pod::{controller_ref, labels, object_key, selector, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{error_message, is_invalid, is_not_found, supervise, write_with_retry};
use crate::{Error, Result};

/// The Event source and the controller's name in `--controllers`.
pub const CONTROLLER_NAME: &str = "replicaset-controller";
/// The ReplicationController manager's name in `--controllers`.
pub const RC_CONTROLLER_NAME: &str = "replicationcontroller-controller";
/// The Event source of the ReplicationController manager (kube's).
const RC_EVENT_SOURCE: &str = "replication-controller";

/// Writes (creates, deletes, owner patches) one sync has in flight at once. kube fires a whole
/// slow-start batch (up to 256) at once and relies on its client's 20 qps limit; kube-rs has no
/// client-side limit, so this keeps one sync from filling the API server's mutating budget.
pub const WRITES_IN_FLIGHT_PER_SYNC: usize = 16;

/// One second added to availability wake-ups, as kube does against clock skew.
const AVAILABILITY_SLACK: Duration = Duration::from_secs(1);

struct Controller {
    /// ReplicaSets, or ReplicationControllers seen as ReplicaSets.
    kind: Kind,
    name: &'static str,
    client: Client,
    leading: Leading,
    recorder: Recorder,
    replicasets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    queue: WorkQueue,
    expectations: Mutex<Expectations>,
}

/// Runs the ReplicaSet controller with `concurrency` sync workers until `leading` is lost.
/// Returns `Ok(())` then; it has no fatal errors of its own (watch failures are retried with
/// backoff, sync failures requeued with backoff).
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    run_kind(client, concurrency, leading, REPLICA_SET).await
}

/// Runs the ReplicationController manager (the same controller over v1
/// ReplicationControllers, [`replication`]) with `concurrency` workers until `leading` is lost.
pub async fn run_replication_controllers(
    client: Client,
    concurrency: usize,
    leading: Leading,
) -> Result<()> {
    run_kind(client, concurrency, leading, REPLICATION_CONTROLLER).await
}

async fn run_kind(client: Client, concurrency: usize, leading: Leading, kind: Kind) -> Result<()> {
    let (name, source) = if kind == REPLICA_SET {
        (CONTROLLER_NAME, CONTROLLER_NAME)
    } else {
        (RC_CONTROLLER_NAME, RC_EVENT_SOURCE)
    };
    let recorder = Recorder::new(client.clone(), source, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        kind,
        name,
        client,
        leading: leading.clone(),
        recorder,
        replicasets: Cache::new(),
        pods: Cache::new(),
        queue: WorkQueue::default(),
        expectations: Mutex::new(Expectations::new()),
    });
    tracing::info!(controller = name, "starting");
    let mut tasks = JoinSet::new();
    if kind == REPLICA_SET {
        tasks.spawn(watch_replicasets(ctl.clone()));
    } else {
        tasks.spawn(watch_replication_controllers(ctl.clone()));
    }
    tasks.spawn(watch_pods(ctl.clone()));

    let synced = async {
        ctl.replicasets.synced().await;
        ctl.pods.synced().await;
    };
    tokio::select! {
        _ = leading.lost() => {}
        _ = synced => {
            tracing::info!(
                controller = name,
                replicasets = ctl.replicasets.len(),
                pods = ctl.pods.len(),
                workers = concurrency.max(1),
                "caches synced"
            );
            for _ in 0..concurrency.max(1) {
                tasks.spawn(worker(ctl.clone()));
            }
            supervise(&mut tasks, &leading, name).await;
        }
    }
    ctl.queue.shut_down();
    tasks.shutdown().await;
    tracing::info!(controller = name, "stopped");
    Ok(())
}

/// Watched objects keep no managedFields: nothing here reads them, and pods are many.
fn strip<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

async fn watch_replicasets(ctl: Arc<Controller>) {
    let api: Api<ReplicaSet> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.replicasets.apply(event) {
                    ctl.apply_effects(handlers::on_replicaset(&change));
                }
            }
            Err(e) => tracing::warn!(error = %e, "replicaset watch failed; retrying"),
        }
    }
}

/// ReplicationControllers, each converted to the ReplicaSet it stands for.
async fn watch_replication_controllers(ctl: Arc<Controller>) {
    let api: Api<ReplicationController> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let event = match event {
                    watcher::Event::Apply(rc) => {
                        watcher::Event::Apply(replication::to_replica_set(&rc))
                    }
                    watcher::Event::Delete(rc) => {
                        watcher::Event::Delete(replication::to_replica_set(&rc))
                    }
                    watcher::Event::Init => watcher::Event::Init,
                    watcher::Event::InitApply(rc) => {
                        watcher::Event::InitApply(replication::to_replica_set(&rc))
                    }
                    watcher::Event::InitDone => watcher::Event::InitDone,
                };
                for change in ctl.replicasets.apply(event.modify(strip)) {
                    ctl.apply_effects(handlers::on_replicaset(&change));
                }
            }
            Err(e) => tracing::warn!(error = %e, "replicationcontroller watch failed; retrying"),
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
                    let fx = if ctl.kind == REPLICA_SET {
                        handlers::on_pod(&change, &ctl.replicasets)
                    } else {
                        handlers::on_pod(&change, &ReplicationControllers(&ctl.replicasets))
                    };
                    ctl.apply_effects(fx);
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

async fn worker(ctl: Arc<Controller>) {
    while let Some(key) = ctl.queue.get().await {
        let started = tokio::time::Instant::now();
        match ctl.sync(&key).await {
            Ok(requeue) => {
                ctl.queue.forget(&key);
                if let Some(after) = requeue {
                    ctl.queue.add_after(&key, after);
                }
            }
            Err(Error::NotLeading(_)) => {}
            Err(e) => {
                tracing::warn!(controller = ctl.name, key = %key, error = %e, "sync failed; will retry");
                ctl.queue.add_rate_limited(&key);
            }
        }
        ctl.queue.done(&key);
        tracing::debug!(
            key = %key,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "finished syncing"
        );
    }
}

fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 403 && r.message.contains("because it is being terminated"))
}

impl Controller {
    /// The Events' involved object: the ReplicaSet, or the ReplicationController it stands for.
    fn reference(&self, rs: &ReplicaSet) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.kind.api_version.into()),
            kind: Some(self.kind.kind.into()),
            namespace: rs.metadata.namespace.clone(),
            name: rs.metadata.name.clone(),
            uid: rs.metadata.uid.clone(),
            resource_version: rs.metadata.resource_version.clone(),
            field_path: None,
        }
    }

    fn expectations(&self) -> MutexGuard<'_, Expectations> {
        self.expectations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply_effects(&self, fx: handlers::Effects) {
        {
            let mut exp = self.expectations();
            for key in &fx.forget {
                exp.delete(key);
            }
            for key in &fx.creations_observed {
                exp.creations_observed(key, 1);
            }
            for (key, pod) in &fx.deletions_observed {
                exp.deletion_observed(key, pod);
            }
        }
        for key in &fx.enqueue {
            self.queue.add(key);
        }
        for (key, after) in &fx.enqueue_after {
            self.queue.add_after(key, *after);
        }
    }

    /// kube's `syncReplicaSet`. Returns when to sync the key again, if a pod is about to
    /// become available.
    async fn sync(&self, key: &str) -> Result<Option<Duration>> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(None);
        };
        let Some(rs) = self.replicasets.get(ns, name) else {
            self.expectations().delete(key);
            return Ok(None);
        };
        let needs_sync = self.expectations().satisfied(key);
        let sel = match rs.spec.as_ref().map(|s| selector(&s.selector)) {
            Some(Ok(sel)) => sel,
            Some(Err(e)) => {
                tracing::warn!(key, error = %e, "replicaset not synced");
                return Ok(None);
            }
            None => {
                tracing::warn!(key, "replicaset without spec not synced");
                return Ok(None);
            }
        };
        let pods = self.pods.in_namespace(ns);
        let owned = self.claim(&rs, sync::claim_pods(&rs, &sel, &pods)).await?;

        let managed = if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            self.manage(key, &rs, &owned).await
        } else {
            Ok(())
        };
        if let Err(Error::NotLeading(e)) = managed {
            return Err(e.into());
        }
        let failure = managed.as_ref().err().map(error_message);
        let plan = sync::calculate_status(&rs, &owned, failure.as_deref(), Utc::now());
        if sync::status_changed(&rs, &plan.status) {
            self.write_status(&rs, &plan.status).await?;
        }
        managed?;
        Ok(plan.next_available_in.map(|d| d + AVAILABILITY_SLACK))
    }

    /// Adopts and releases what `claim` says (kube's `claimPods`); returns the pods owned after.
    async fn claim(&self, rs: &ReplicaSet, claim: sync::Claim) -> Result<Vec<Arc<Pod>>> {
        let mut owned = claim.owned;
        let mut first_error: Option<Error> = None;
        if !claim.adopt.is_empty() {
            match self.can_adopt(rs).await {
                Ok(()) => {
                    let adopted: Vec<(Arc<Pod>, Result<()>)> = stream::iter(claim.adopt)
                        .map(|pod| async move {
                            let r = match sync::adopt_patch(rs, &pod, self.kind) {
                                Ok(patch) => self.patch_pod(&pod, patch).await,
                                Err(e) => Err(Error::Invalid(e)),
                            };
                            (pod, r)
                        })
                        .buffer_unordered(WRITES_IN_FLIGHT_PER_SYNC)
                        .collect()
                        .await;
                    for (pod, r) in adopted {
                        match r {
                            Ok(()) => owned.push(pod),
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
            .map(|pod| async move { self.patch_pod(&pod, sync::release_patch(rs, &pod)).await })
            .buffer_unordered(WRITES_IN_FLIGHT_PER_SYNC)
            .collect()
            .await;
        for r in released {
            match r {
                // Gone, or no longer ours (recreated, or released by someone else).
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

    /// Before adopting, a fresh read: a ReplicaSet being deleted must not adopt (kube's
    /// `RecheckDeletionTimestamp`).
    async fn can_adopt(&self, rs: &ReplicaSet) -> Result<()> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let name = rs.metadata.name.as_deref().unwrap_or("");
        let fresh = if self.kind == REPLICA_SET {
            Api::<ReplicaSet>::namespaced(self.client.clone(), ns)
                .get(name)
                .await?
                .metadata
        } else {
            Api::<ReplicationController>::namespaced(self.client.clone(), ns)
                .get(name)
                .await?
                .metadata
        };
        let kind = self.kind.kind;
        if fresh.uid != rs.metadata.uid {
            return Err(Error::Invalid(format!(
                "original {kind} {ns}/{name} is gone: got uid {}, wanted {}",
                fresh.uid.as_deref().unwrap_or(""),
                rs.metadata.uid.as_deref().unwrap_or("")
            )));
        }
        if let Some(at) = fresh.deletion_timestamp {
            return Err(Error::Invalid(format!(
                "{kind} {ns}/{name} has just been deleted at {}",
                at.0.to_rfc3339()
            )));
        }
        Ok(())
    }

    async fn patch_pod(&self, pod: &Pod, patch: Value) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let (api, patch, params) = (&api, &patch, &PatchParams::default());
        write_with_retry(&self.leading, move || async move {
            api.patch(name, params, &Patch::Strategic(patch)).await
        })
        .await
        .map(|_| ())
    }

    /// kube's `manageReplicas`.
    async fn manage(&self, key: &str, rs: &ReplicaSet, owned: &[Arc<Pod>]) -> Result<()> {
        match sync::replica_diff(sync::desired_replicas(rs), owned.len(), BURST_REPLICAS) {
            ReplicaDiff::InSync => Ok(()),
            ReplicaDiff::Create(n) => self.create_pods(key, rs, n).await,
            ReplicaDiff::Delete(n) => self.delete_pods(key, rs, owned, n).await,
        }
    }

    async fn create_pods(&self, key: &str, rs: &ReplicaSet, count: usize) -> Result<()> {
        tracing::debug!(key, creating = count, "too few replicas");
        self.expectations().expect_creations(key, count);
        let pod = match sync::pod_from_template(rs, self.kind) {
            Ok(pod) => pod,
            Err(e) => {
                self.expectations().creations_observed(key, count);
                return Err(Error::Invalid(e));
            }
        };
        let rs_ref = self.reference(rs);
        let mut succeeded = 0;
        let mut failure: Option<Error> = None;
        for batch in sync::slow_start_batches(count, SLOW_START_INITIAL_BATCH_SIZE) {
            let (pod, rs_ref) = (&pod, &rs_ref);
            let results: Vec<Result<()>> = stream::iter(0..batch)
                .map(move |_| async move { self.create_pod(pod, rs_ref).await })
                .buffer_unordered(WRITES_IN_FLIGHT_PER_SYNC)
                .collect()
                .await;
            let mut batch_failed = false;
            for r in results {
                match r {
                    Ok(()) => succeeded += 1,
                    Err(e) => {
                        batch_failed = true;
                        failure.get_or_insert(e);
                    }
                }
            }
            if batch_failed {
                break;
            }
        }
        // Pods that failed or were never tried will not show up in the watch.
        let skipped = count - succeeded;
        if skipped > 0 {
            tracing::debug!(key, skipped, "slow-start failure: lowering expectations");
            self.expectations().creations_observed(key, skipped);
        }
        failure.map_or(Ok(()), Err)
    }

    async fn create_pod(&self, pod: &Pod, rs_ref: &ObjectReference) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let (api, params) = (&api, &PostParams::default());
        let created = write_with_retry(&self.leading, move || async move {
            api.create(params, pod).await
        })
        .await;
        match created {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                self.recorder.record(
                    rs_ref,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {name}"),
                );
                Ok(())
            }
            // The namespace is going away: kube counts the create as done, without an Event.
            Err(Error::Kube(e)) if is_namespace_terminating(&e) => Ok(()),
            Err(e @ Error::Kube(_)) => {
                self.recorder.record(
                    rs_ref,
                    EventType::Warning,
                    sync::FAILED_CREATE,
                    format!("Error creating: {}", error_message(&e)),
                );
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Pods of the ReplicaSets that share this one's controller (a Deployment's ReplicaSets):
    /// they rank which pods to delete (`getIndirectlyRelatedPods`).
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let Some(owner) = controller_ref(&rs.metadata) else {
            return Vec::new();
        };
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let pods = self.pods.in_namespace(ns);
        let mut seen = HashSet::new();
        let mut related = Vec::new();
        for other in self.replicasets.in_namespace(ns) {
            if controller_ref(&other.metadata).is_none_or(|r| r.uid != owner.uid) {
                continue;
            }
            let Some(Ok(sel)) = other.spec.as_ref().map(|s| selector(&s.selector)) else {
                continue;
            };
            for p in &pods {
                if sel.matches(labels(&p.metadata))
                    && seen.insert(p.metadata.uid.clone().unwrap_or_default())
                {
                    related.push(p.clone());
                }
            }
        }
        related
    }

    async fn delete_pods(
        &self,
        key: &str,
        rs: &ReplicaSet,
        owned: &[Arc<Pod>],
        count: usize,
    ) -> Result<()> {
        tracing::debug!(key, deleting = count, "too many replicas");
        let related = self.related_pods(rs);
        let victims = sync::pods_to_delete(owned, &related, count, Utc::now());
        self.expectations()
            .expect_deletions(key, victims.iter().map(|p| object_key(&p.metadata)));
        let rs_ref = self.reference(rs);
        let rs_ref = &rs_ref;
        let results: Vec<Result<()>> = stream::iter(victims)
            .map(move |pod| async move { self.delete_pod(key, &pod, rs_ref).await })
            .buffer_unordered(WRITES_IN_FLIGHT_PER_SYNC)
            .collect()
            .await;
        results
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }

    async fn delete_pod(&self, key: &str, pod: &Pod, rs_ref: &ObjectReference) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let (api, params) = (&api, &DeleteParams::default());
        let deleted = write_with_retry(&self.leading, move || async move {
            api.delete(name, params).await
        })
        .await;
        match deleted {
            Ok(_) => {
                self.recorder.record(
                    rs_ref,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(e) => {
                // The watch will not show this deletion.
                self.expectations()
                    .deletion_observed(key, &object_key(&pod.metadata));
                match e {
                    Error::Kube(k) if is_not_found(&k) => Ok(()),
                    e @ Error::Kube(_) => {
                        self.recorder.record(
                            rs_ref,
                            EventType::Warning,
                            sync::FAILED_DELETE,
                            format!("Error deleting: {}", error_message(&e)),
                        );
                        Err(e)
                    }
                    other => Err(other),
                }
            }
        }
    }

    /// PUT `replicasets/<name>/status` (or `replicationcontrollers/<name>/status`); on
    /// failure, one retry on a fresh read (kube's `updateReplicaSetStatus` with
    /// `statusUpdateRetries = 1`).
    async fn write_status(&self, rs: &ReplicaSet, status: &ReplicaSetStatus) -> Result<()> {
        if self.kind == REPLICATION_CONTROLLER {
            return self.write_rc_status(rs, status).await;
        }
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let name = rs.metadata.name.as_deref().unwrap_or("");
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let mut updated = rs.clone();
        updated.status = Some(status.clone());
        match self.put_status(&api, &updated).await {
            Err(Error::Kube(e)) => {
                tracing::debug!(key = %object_key(&rs.metadata), error = %e, "status write failed; retrying on a fresh read");
                let mut fresh = api.get(name).await?;
                fresh.status = Some(status.clone());
                self.put_status(&api, &fresh).await
            }
            other => other,
        }
    }

    /// The ReplicationController's status write: its status converted back, PUT onto a fresh
    /// read (the cache holds the converted ReplicaSet, not the object to PUT).
    async fn write_rc_status(&self, rs: &ReplicaSet, status: &ReplicaSetStatus) -> Result<()> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let name = rs.metadata.name.as_deref().unwrap_or("");
        let api: Api<ReplicationController> = Api::namespaced(self.client.clone(), ns);
        let status = replication::to_rc_status(status);
        let mut last = None;
        for _ in 0..2 {
            let mut fresh = api.get(name).await?;
            if fresh.metadata.uid != rs.metadata.uid {
                return Ok(());
            }
            fresh.status = Some(status.clone());
            match self.put_status(&api, &fresh).await {
                Err(Error::Kube(e)) => last = Some(Error::Kube(e)),
                other => return other,
            }
        }
        last.map_or(Ok(()), Err)
    }

    async fn put_status<K>(&self, api: &Api<K>, rs: &K) -> Result<()>
    where
        K: kube::Resource
            + serde::Serialize
            + serde::de::DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        let name = rs.meta().name.as_deref().unwrap_or("");
        let body = serde_json::to_vec(rs)
            .map_err(|e| Error::Invalid(format!("encoding {} status: {e}", self.kind.kind)))?;
        let (body, params) = (&body, &PostParams::default());
        write_with_retry(&self.leading, move || async move {
            api.replace_status(name, params, body.clone()).await
        })
        .await
        .map(|_| ())
    }
}
