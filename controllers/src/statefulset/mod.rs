//! kube's StatefulSet controller (`pkg/controller/statefulset`, 1.32): pods with a stable
//! identity — `<set>-<ordinal>` for the ordinals `spec.ordinals.start ..` + `replicas`, with
//! hostname, subdomain (`spec.serviceName`), and the pod-name, pod-index and
//! `controller-revision-hash` labels — created in order, each once the lower ones are Running
//! and Ready (and available for `minReadySeconds`), deleted from the highest ordinal on scale
//! down, failed ones deleted and created again (podManagementPolicy OrderedReady, kube's
//! "monotonic" mode; Parallel does all of it at once); the template's history kept as
//! ControllerRevisions (so `kubectl rollout undo` works), and the RollingUpdate strategy (with
//! `partition`) or OnDelete moving pods from the current to the update revision, highest
//! ordinal first, one at a time; the status through the status subresource.
//!
//! This module is the I/O half: StatefulSets, Pods and ControllerRevisions watched into caches,
//! pod events mapped to their set (through the controller reference, or for orphans every set
//! whose selector matches), workers that adopt and release pods and adopt orphan revisions, get
//! or create the update revision (renaming it on a name collision, as kube counts them in
//! `status.collisionCount`), perform what [`sync::plan`] decides — with kube's Events
//! (`SuccessfulCreate` "create Pod web-0 in StatefulSet web successful", `FailedCreate`,
//! `SuccessfulDelete`, `FailedDelete`, `SuccessfulUpdate`, `FailedUpdate`) —, write the status
//! when it changed and truncate the history beyond `revisionHistoryLimit`. Every write is
//! preceded by `leading.ensure()`. As kube's, the controller keeps no expectations: pod names are
//! unique, so a create the cache has not seen yet fails with AlreadyExists (taken as done here;
//! the pod's watch event brings the next sync).
//!
//! Not done (kube has them): PersistentVolumeClaims — the API server does not serve them yet,
//! so `volumeClaimTemplates` give each pod its claim volumes (`<claim>-<set>-<ordinal>`) but no
//! claim is created, and `persistentVolumeClaimRetentionPolicy` is not acted on;
//! `maxUnavailable` (behind the MaxUnavailableStatefulSet gate, off in 1.32: one pod at a time);
//! the controller's metrics. Two small departures: deletions carry the pod's uid as a
//! precondition (a stale cache never deletes a pod created again under the same name), and a
//! relabel is a merge patch of the identity labels rather than a whole-pod update.

pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::SelectorExt;
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::runner::{watch_all, worker, Reconcile};
use crate::util::cache::{Cache, Change};
use crate::util::pod::{controller_ref, is_pod_ready, labels, object_key, selector, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{
    error_message, is_conflict, is_invalid, is_not_found, supervise, write_with_retry,
};
use crate::{Error, Result};

use sync::{Action, UpdateRevision};

pub const CONTROLLER_NAME: &str = "statefulset-controller";
/// kube's `MaxBatchSize`: the largest batch of Parallel writes in flight at once.
const BATCH_MAX: usize = 500;
/// Names tried for one new revision before giving up (kube tries until one is free; a
/// collision needs two templates whose hashes agree, so more than a few is a bug).
const COLLISIONS_MAX: i32 = 100;

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    sets: Cache<StatefulSet>,
    pods: Cache<Pod>,
    revisions: Cache<ControllerRevision>,
    queue: WorkQueue,
}

/// Runs the StatefulSet controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client: client.clone(),
        leading: leading.clone(),
        recorder,
        sets: Cache::new(),
        pods: Cache::new(),
        revisions: Cache::new(),
        queue: WorkQueue::default(),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        watch_all(
            Api::<StatefulSet>::all(c.client.clone()),
            &c.sets,
            watcher::Config::default(),
            |ch| c.on_set(ch),
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
    // As kube's, revisions are only read (a lister): their changes trigger no sync.
    let c = ctl.clone();
    tasks.spawn(async move {
        watch_all(
            Api::<ControllerRevision>::all(c.client.clone()),
            &c.revisions,
            watcher::Config::default(),
            |_| {},
        )
        .await
    });
    tokio::select! {
        _ = leading.lost() => {}
        _ = async {
            ctl.sets.synced().await;
            ctl.pods.synced().await;
            ctl.revisions.synced().await;
        } => {
            tracing::info!(controller = CONTROLLER_NAME, sets = ctl.sets.len(), "caches synced");
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

/// The set a controller reference names, if it is a StatefulSet (`resolveControllerRef` checks
/// the uid against the cache; the sync does here).
fn set_key_of(pod: &Pod) -> Option<String> {
    let r = controller_ref(&pod.metadata)?;
    (r.kind == sync::KIND && r.api_version.starts_with("apps/")).then(|| {
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            r.name
        )
    })
}

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 409 && r.reason == "AlreadyExists")
}

impl Controller {
    fn on_set(&self, change: &Change<StatefulSet>) {
        let set = crate::runner::changed(change);
        self.queue.add(&object_key(&set.metadata));
    }

    /// Every set of the pod's namespace whose selector matches the pod (`getPodStatefulSets`).
    fn sets_selecting(&self, pod: &Pod) -> Vec<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        self.sets
            .in_namespace(ns)
            .into_iter()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|spec| selector(&spec.selector).ok())
                    .is_some_and(|sel| sel.matches(labels(&pod.metadata)))
            })
            .map(|s| object_key(&s.metadata))
            .collect()
    }

    /// kube's `addPod` / `updatePod` / `deletePod`.
    fn on_pod(&self, change: &Change<Pod>) {
        match change {
            Change::Added(pod) => match set_key_of(pod) {
                Some(key) => self.queue.add(&key),
                None if pod.metadata.deletion_timestamp.is_none() => {
                    for key in self.sets_selecting(pod) {
                        self.queue.add(&key);
                    }
                }
                None => {}
            },
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let (old_key, new_key) = (set_key_of(old), set_key_of(new));
                let ref_changed = controller_ref(&old.metadata) != controller_ref(&new.metadata);
                if ref_changed {
                    if let Some(k) = &old_key {
                        self.queue.add(k);
                    }
                }
                if let Some(key) = new_key {
                    self.queue.add(&key);
                    let mrs = self
                        .set_of_key(&key)
                        .and_then(|s| s.spec.as_ref().and_then(|s| s.min_ready_seconds))
                        .unwrap_or(0);
                    if mrs > 0 && !is_pod_ready(old) && is_pod_ready(new) {
                        self.queue.add_after(&key, Duration::from_secs(mrs as u64));
                    }
                    return;
                }
                if ref_changed || old.metadata.labels != new.metadata.labels {
                    for key in self.sets_selecting(new) {
                        self.queue.add(&key);
                    }
                }
            }
            Change::Deleted(pod) => {
                if let Some(key) = set_key_of(pod) {
                    self.queue.add(&key);
                }
            }
        }
    }

    fn set_of_key(&self, key: &str) -> Option<Arc<StatefulSet>> {
        let (ns, name) = split_key(key)?;
        self.sets.get(ns, name)
    }

    fn record(&self, set: &StatefulSet, verb: &str, pod: &str, error: Option<&Error>) {
        let message = error.map(error_message);
        let (reason, message) = sync::pod_event(
            verb,
            pod,
            set.metadata.name.as_deref().unwrap_or(""),
            message.as_deref(),
        );
        let kind = if error.is_some() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.recorder
            .record(&object_reference(set), kind, &reason, message);
    }

    /// Before adopting, a fresh read: a set being deleted, or another set of the same name,
    /// must not adopt (kube's `RecheckDeletionTimestamp`).
    async fn can_adopt(&self, set: &StatefulSet) -> Result<()> {
        let ns = set.metadata.namespace.as_deref().unwrap_or("");
        let name = set.metadata.name.as_deref().unwrap_or("");
        let fresh = Api::<StatefulSet>::namespaced(self.client.clone(), ns)
            .get(name)
            .await?;
        if fresh.metadata.uid != set.metadata.uid {
            return Err(Error::Invalid(format!(
                "original StatefulSet {ns}/{name} is gone: got uid {}, wanted {}",
                fresh.metadata.uid.as_deref().unwrap_or(""),
                set.metadata.uid.as_deref().unwrap_or("")
            )));
        }
        if let Some(at) = fresh.metadata.deletion_timestamp {
            return Err(Error::Invalid(format!(
                "StatefulSet {ns}/{name} has just been deleted at {}",
                at.0.to_rfc3339()
            )));
        }
        Ok(())
    }

    /// `adoptOrphanRevisions`: orphan revisions the selector matches become the set's.
    async fn adopt_revisions(
        &self,
        set: &StatefulSet,
        revisions: &mut [ControllerRevision],
    ) -> Result<()> {
        let orphans = sync::orphan_revisions(revisions);
        if orphans.is_empty() {
            return Ok(());
        }
        self.can_adopt(set)
            .await
            .map_err(|e| Error::Invalid(format!("can't adopt ControllerRevisions: {e}")))?;
        let ns = set.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        for i in orphans {
            let name = revisions[i].metadata.name.clone().unwrap_or_default();
            let patch = sync::adopt_patch(set, revisions[i].metadata.uid.as_deref());
            let (api, patch, name) = (&api, &patch, &name);
            let adopted = write_with_retry(&self.leading, || async move {
                api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
            })
            .await?;
            revisions[i] = adopted;
        }
        Ok(())
    }

    /// Adopts and releases what `claim` says (`ClaimPods`); returns the pods owned after.
    async fn claim_pods(&self, set: &StatefulSet, claim: sync::Claim) -> Result<Vec<Arc<Pod>>> {
        let mut owned = claim.owned;
        let mut first_error: Option<Error> = None;
        if !claim.adopt.is_empty() {
            match self.can_adopt(set).await {
                Ok(()) => {
                    for pod in claim.adopt {
                        let patch = sync::adopt_patch(set, pod.metadata.uid.as_deref());
                        match self.patch_pod(&pod, patch).await {
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
        for pod in claim.release {
            match self.patch_pod(&pod, sync::release_patch(set, &pod)).await {
                // Gone, or no longer ours (created again, or released by someone else).
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

    async fn patch_pod(&self, pod: &Pod, patch: Value) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let (api, patch) = (&api, &patch);
        write_with_retry(&self.leading, move || async move {
            api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
        })
        .await
        .map(|_| ())
    }

    /// `getStatefulSetRevisions`' writes: the update revision (an existing one, an older one
    /// made the latest, or a new one) and the collision count.
    async fn update_revision(
        &self,
        set: &StatefulSet,
        revisions: &[ControllerRevision],
    ) -> Result<(ControllerRevision, i32)> {
        let ns = set.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let api = &api;
        let mut collision_count = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        match sync::update_revision(set, revisions, collision_count).map_err(Error::Invalid)? {
            UpdateRevision::Latest(i) => Ok((revisions[i].clone(), collision_count)),
            UpdateRevision::Bump { index, revision } => {
                let name = revisions[index].metadata.name.clone().unwrap_or_default();
                let (name, patch) = (&name, &json!({ "revision": revision }));
                let bumped = write_with_retry(&self.leading, || async move {
                    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                })
                .await?;
                Ok((bumped, collision_count))
            }
            UpdateRevision::Create(candidate) => {
                let owner = set.metadata.name.as_deref().unwrap_or("");
                let mut rev = *candidate;
                for _ in 0..COLLISIONS_MAX {
                    let r = &rev;
                    let created = write_with_retry(&self.leading, || async move {
                        api.create(&PostParams::default(), r).await
                    })
                    .await;
                    match created {
                        Ok(c) => return Ok((c, collision_count)),
                        Err(Error::Kube(e)) if is_already_exists(&e) => {
                            let name = rev.metadata.name.as_deref().unwrap_or("");
                            let existing = api.get(name).await?;
                            if existing.data.as_ref().map(|d| &d.0)
                                == rev.data.as_ref().map(|d| &d.0)
                            {
                                return Ok((existing, collision_count));
                            }
                            collision_count += 1;
                            rev = sync::renamed(&rev, owner, collision_count);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(Error::Invalid(format!(
                    "no free ControllerRevision name for StatefulSet {ns}/{owner} after {COLLISIONS_MAX} collisions"
                )))
            }
        }
    }

    /// One pod write, with its Event. A create of a pod that exists, or a delete or relabel of
    /// one that is gone (or was created again: the uid precondition), is no error: the watch
    /// brings the next sync.
    async fn perform(&self, set: &StatefulSet, action: &Action) -> Result<()> {
        let ns = set.metadata.namespace.as_deref().unwrap_or("");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pods = &pods;
        let name = action.pod_name().to_string();
        let (verb, result) =
            match action {
                Action::Create(pod) => {
                    let pod = &**pod;
                    let r = write_with_retry(&self.leading, || async move {
                        pods.create(&PostParams::default(), pod).await
                    })
                    .await;
                    match r {
                        Err(Error::Kube(e)) if is_already_exists(&e) => return Ok(()),
                        r => ("create", r.map(|_| ())),
                    }
                }
                Action::Delete { pod, reason } => {
                    tracing::debug!(controller = CONTROLLER_NAME, pod = %name, ?reason, "deleting");
                    let params = DeleteParams {
                        preconditions: Some(Preconditions {
                            uid: pod.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    let (params, name) = (&params, &name);
                    let r = write_with_retry(&self.leading, || async move {
                        pods.delete(name, params).await
                    })
                    .await;
                    match r {
                        Err(Error::Kube(e)) if is_not_found(&e) || is_conflict(&e) => return Ok(()),
                        r => ("delete", r.map(|_| ())),
                    }
                }
                Action::Relabel { labels, .. } => {
                    let patch = json!({"metadata": {"labels": labels}});
                    let (patch, name) = (&patch, &name);
                    let r = write_with_retry(&self.leading, || async move {
                        pods.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                            .await
                    })
                    .await;
                    match r {
                        Err(Error::Kube(e)) if is_not_found(&e) => return Ok(()),
                        r => ("update", r.map(|_| ())),
                    }
                }
            };
        match result {
            Ok(()) => {
                self.record(set, verb, &name, None);
                Ok(())
            }
            Err(Error::NotLeading(e)) => Err(Error::NotLeading(e)),
            Err(e) => {
                self.record(set, verb, &name, Some(&e));
                Err(e)
            }
        }
    }

    /// Performs `actions`: one after the other, stopping at the first failure (OrderedReady),
    /// or in slow-start batches of 1, 2, 4, … stopping after a batch that failed (Parallel).
    async fn perform_all(
        &self,
        set: &StatefulSet,
        actions: &[Action],
        monotonic: bool,
    ) -> Result<()> {
        if monotonic {
            for a in actions {
                self.perform(set, a).await?;
            }
            return Ok(());
        }
        let mut done = 0;
        let mut batch = 1;
        while done < actions.len() {
            let end = (done + batch).min(actions.len());
            let results = join_all(actions[done..end].iter().map(|a| self.perform(set, a))).await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return Err(e);
            }
            done = end;
            batch = (batch * 2).min(BATCH_MAX);
        }
        Ok(())
    }

    /// `updateStatefulSet` and what follows it: the pod writes, the status, the history.
    async fn sync_set(&self, set: &StatefulSet) -> Result<Option<Duration>> {
        let ns = set.metadata.namespace.as_deref().unwrap_or("");
        let name = set.metadata.name.as_deref().unwrap_or("");
        let Some(spec) = set.spec.as_ref() else {
            return Ok(None);
        };
        let sel = match selector(&spec.selector) {
            Ok(s) => s,
            Err(e) => {
                // Not transient: only a change of the set helps.
                tracing::warn!(controller = CONTROLLER_NAME, set = %format!("{ns}/{name}"), error = %e, "skipping");
                return Ok(None);
            }
        };
        let mut revisions = sync::set_revisions(set, &sel, &self.revisions.in_namespace(ns));
        self.adopt_revisions(set, &mut revisions).await?;
        let claim = sync::claim_pods(set, &sel, &self.pods.in_namespace(ns));
        let pods = self.claim_pods(set, claim).await?;

        let (update, collision_count) = self.update_revision(set, &revisions).await?;
        let current = sync::current_revision(set, &revisions, &update).clone();
        let plan = sync::plan(set, &pods, &current, &update, collision_count, Utc::now())
            .map_err(Error::Invalid)?;

        let mut result = self.perform_all(set, &plan.replicas, plan.monotonic).await;
        if result.is_ok() {
            result = self.perform_all(set, &plan.condemned, plan.monotonic).await;
        }
        let mut update_deleted = false;
        let scaled = result.is_ok();
        if let (true, Some(pod)) = (scaled, &plan.update) {
            let action = Action::Delete {
                pod: pod.clone(),
                reason: sync::DeleteReason::Update,
            };
            result = self.perform(set, &action).await;
            update_deleted = result.is_ok();
        }
        if let Err(Error::NotLeading(e)) = result {
            return Err(Error::NotLeading(e));
        }

        // The status, even when a write failed (kube writes it before returning the error).
        let status = sync::finish_status(set, &plan.status, update_deleted);
        if sync::status_changed(set, &status) {
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
            let patch = sync::status_patch(&status);
            let (api, patch) = (&api, &patch);
            let written = write_with_retry(&self.leading, || async move {
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
            })
            .await;
            match written {
                Err(Error::Kube(e)) if is_not_found(&e) => return Ok(None),
                Err(e) => {
                    result = result.and(Err(e));
                }
                Ok(_) => {}
            }
        }

        // The history beyond revisionHistoryLimit.
        let current_name = current.metadata.name.as_deref().unwrap_or("");
        let update_name = update.metadata.name.as_deref().unwrap_or("");
        let stale = sync::history_to_delete(set, &pods, &revisions, current_name, update_name);
        if !stale.is_empty() {
            let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
            let api = &api;
            for rev in &stale {
                let r = write_with_retry(&self.leading, || async move {
                    api.delete(rev, &DeleteParams::default()).await
                })
                .await;
                match r {
                    Err(Error::Kube(e)) if is_not_found(&e) => {}
                    Err(e) => {
                        result = result.and(Err(e));
                        break;
                    }
                    Ok(_) => {}
                }
            }
        }
        result.map(|()| plan.requeue_after)
    }
}

impl Reconcile for Controller {
    fn name(&self) -> &'static str {
        CONTROLLER_NAME
    }

    fn queue(&self) -> &WorkQueue {
        &self.queue
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(None);
        };
        let Some(set) = self.sets.get(ns, name) else {
            return Ok(None);
        };
        self.sync_set(&set).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn owned(kind: &str, api_version: &str, controller: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: api_version.into(),
                    kind: kind.into(),
                    name: "web".into(),
                    uid: "u".into(),
                    controller: Some(controller),
                    block_owner_deletion: None,
                }]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn pods_map_to_the_set_controlling_them() {
        assert_eq!(
            set_key_of(&owned("StatefulSet", "apps/v1", true)).as_deref(),
            Some("ns/web")
        );
        assert_eq!(set_key_of(&owned("StatefulSet", "apps/v1", false)), None);
        assert_eq!(set_key_of(&owned("ReplicaSet", "apps/v1", true)), None);
        assert_eq!(set_key_of(&Pod::default()), None);
    }
}
