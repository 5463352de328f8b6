//! kube's Deployment controller (`pkg/controller/deployment`): rolls a Deployment's pod template
//! out through ReplicaSets (RollingUpdate within maxSurge/maxUnavailable, or Recreate), scales
//! them in proportion when `spec.replicas` changes mid-rollout, keeps revisions and
//! `revisionHistoryLimit` old ReplicaSets, and reports status and conditions.
//!
//! The decisions are pure and live in [`sync`] (with [`rolling`], [`recreate`], [`progress`]
//! and the arithmetic of [`util`]): a sync is a function of the Deployment, its ReplicaSets, the
//! phases of their pods and the time, giving a [`sync::Plan`] of writes. This module is the thin
//! I/O half: it watches Deployments, ReplicaSets and Pods into caches, maps every event to the
//! Deployment keys it concerns ([`handlers`]), and runs at most `concurrency` syncs at a time
//! from the crate's work queue ([`crate::util::queue`], never one key twice at once). A sync
//! adopts and releases ReplicaSets, plans, and performs the plan's writes in order, stopping at
//! the first failure (the key is then retried with backoff). Every write is preceded by
//! `leading.ensure()`.

pub mod handlers;
pub mod progress;
pub mod recreate;
pub mod rolling;
pub mod sync;
pub mod util;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod util_tests;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use tokio::task::JoinSet;

use self::sync::{Action, EventKind, Input, PodMap, Requeue, Scaled, SCALING_REPLICA_SET};
use self::util::{Claim, STRATEGY_RECREATE};
use crate::util::cache::Cache;
use crate::util::pod::{controller_ref, labels, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{
    error_message, is_conflict, is_invalid, is_not_found, supervise, write_with_retry,
};
use crate::{Error, Result};

/// The Event source and the controller's name in `--controllers`.
pub const CONTROLLER_NAME: &str = "deployment-controller";

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    deployments: Cache<Deployment>,
    replicasets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    queue: WorkQueue,
}

/// Runs the Deployment controller with `concurrency` sync workers (kube's
/// `--concurrent-deployment-syncs`, default 5) until `leading` is lost, then returns `Ok(())`.
/// It has no fatal errors of its own: watch failures are retried with backoff, failed syncs are
/// requeued with backoff.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        recorder,
        deployments: Cache::new(),
        replicasets: Cache::new(),
        pods: Cache::new(),
        queue: WorkQueue::default(),
    });
    tracing::info!(controller = CONTROLLER_NAME, "starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(watch_deployments(ctl.clone()));
    tasks.spawn(watch_replicasets(ctl.clone()));
    tasks.spawn(watch_pods(ctl.clone()));

    // kube's WaitForCacheSync: a sync on a partial view would create ReplicaSets that exist.
    let synced = async {
        ctl.deployments.synced().await;
        ctl.replicasets.synced().await;
        ctl.pods.synced().await;
    };
    tokio::select! {
        _ = leading.lost() => {}
        _ = synced => {
            tracing::info!(
                controller = CONTROLLER_NAME,
                deployments = ctl.deployments.len(),
                replicasets = ctl.replicasets.len(),
                pods = ctl.pods.len(),
                workers = concurrency.max(1),
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
    tracing::info!(controller = CONTROLLER_NAME, "stopped");
    Ok(())
}

/// Pods are many and only their owner, labels and phase matter here (Recreate waits for
/// them): the rest is dropped on arrival.
fn strip_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.spec = None;
    if let Some(status) = pod.status.as_mut() {
        *status = PodStatus {
            phase: status.phase.take(),
            ..Default::default()
        };
    }
}

async fn watch_deployments(ctl: Arc<Controller>) {
    let api: Api<Deployment> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.deployments.apply(event) {
                    ctl.enqueue(handlers::on_deployment(&change));
                }
            }
            Err(e) => tracing::warn!(error = %e, "deployment watch failed; retrying"),
        }
    }
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
                    ctl.enqueue(handlers::on_replicaset(&change, &ctl.deployments));
                }
            }
            Err(e) => tracing::warn!(error = %e, "replicaset watch failed; retrying"),
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
                for change in ctl.pods.apply(event.modify(strip_pod)) {
                    ctl.enqueue(handlers::on_pod(
                        &change,
                        &ctl.replicasets,
                        &ctl.deployments,
                        &ctl.pods,
                    ));
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
                match requeue {
                    // kube's enqueueRateLimited happens inside the sync, before the Forget
                    // that follows its success.
                    Some(Requeue::RateLimited) => ctl.queue.add_rate_limited(&key),
                    Some(Requeue::After(after)) => ctl.queue.add_after(&key, after),
                    None => {}
                }
                ctl.queue.forget(&key);
            }
            Err(Error::NotLeading(_)) => {}
            Err(Error::Kube(e)) if is_conflict(&e) || is_already_exists(&e) => {
                // The cache was behind a write (ours, mostly): retried once it catches up.
                tracing::debug!(key = %key, error = %e, "deployment sync raced a write; will retry");
                ctl.queue.add_rate_limited(&key);
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "deployment sync failed; will retry");
                ctl.queue.add_rate_limited(&key);
            }
        }
        ctl.queue.done(&key);
        tracing::debug!(
            key = %key,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "finished syncing deployment"
        );
    }
}

/// kube's `getPodMapForDeployment`: the phases of the pods each of the ReplicaSets controls,
/// by ReplicaSet uid (pods of other controllers, and orphans, are not listed).
fn pod_map(pods: &[Arc<Pod>], replica_sets: &[ReplicaSet]) -> PodMap {
    let mut map: PodMap = replica_sets
        .iter()
        .filter_map(|rs| rs.metadata.uid.clone())
        .map(|uid| (uid, Vec::new()))
        .collect();
    for pod in pods {
        let Some(r) = controller_ref(&pod.metadata) else {
            continue;
        };
        if let Some(phases) = map.get_mut(&r.uid) {
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            phases.push(phase.unwrap_or_default());
        }
    }
    map
}

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 409 && r.reason == "AlreadyExists")
}

fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 403 && r.message.contains("because it is being terminated"))
}

fn event_type(kind: EventKind) -> EventType {
    match kind {
        EventKind::Normal => EventType::Normal,
        EventKind::Warning => EventType::Warning,
    }
}

impl Controller {
    fn enqueue(&self, keys: Vec<String>) {
        for key in keys {
            self.queue.add(&key);
        }
    }

    fn record(&self, d: &Deployment, kind: EventKind, reason: &str, message: String) {
        self.recorder
            .record(&object_reference(d), event_type(kind), reason, message);
    }

    /// kube's `syncDeployment`: returns when to sync the key again, if the progress deadline
    /// needs watching.
    async fn sync(&self, key: &str) -> Result<Option<Requeue>> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(None);
        };
        let Some(d) = self.deployments.get(ns, name) else {
            // Deleted: its ReplicaSets are the garbage collector's.
            return Ok(None);
        };
        let d = (*d).clone();
        let Some(spec) = d.spec.as_ref() else {
            return Err(Error::Invalid(format!("deployment {key} has no spec")));
        };
        let selector_is_empty = spec
            .selector
            .match_labels
            .as_ref()
            .is_none_or(|m| m.is_empty())
            && spec
                .selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty());
        // An empty selector selects everything: the plan only reports it.
        let replica_sets = if selector_is_empty {
            Vec::new()
        } else {
            self.claim(&d).await?
        };
        let pods = if util::strategy_type(&d) == STRATEGY_RECREATE {
            self.pod_map(ns, &replica_sets)
        } else {
            PodMap::new()
        };
        let plan = sync::plan(Input {
            deployment: d.clone(),
            replica_sets,
            pods,
            now: Utc::now(),
        })?;
        self.execute(&d, plan.actions).await?;
        Ok(plan.requeue)
    }

    /// kube's `getReplicaSetsForDeployment`: the ReplicaSets of the namespace the Deployment
    /// controls after adopting matching orphans and releasing owned ones that stopped matching,
    /// oldest first.
    async fn claim(&self, d: &Deployment) -> Result<Vec<ReplicaSet>> {
        let ns = d.metadata.namespace.as_deref().unwrap_or("");
        let spec = d
            .spec
            .as_ref()
            .ok_or_else(|| Error::Invalid("deployment has no spec".into()))?;
        let sel = crate::util::pod::selector(&spec.selector).map_err(|e| {
            Error::Invalid(format!(
                "deployment {ns}/{} has invalid label selector: {e}",
                d.metadata.name.as_deref().unwrap_or("")
            ))
        })?;
        let mut owned = Vec::new();
        let mut adopt = Vec::new();
        let mut release = Vec::new();
        for rs in self.replicasets.in_namespace(ns) {
            match util::claim(d, &rs, sel.matches(labels(&rs.metadata))) {
                Claim::Owned => owned.push((*rs).clone()),
                Claim::Adopt => adopt.push(rs),
                Claim::Release => release.push(rs),
                Claim::Ignore => {}
            }
        }
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let pp = PatchParams::default();
        let mut first_error: Option<Error> = None;
        if !adopt.is_empty() {
            match self.can_adopt(d).await {
                Ok(()) => {
                    for rs in adopt {
                        let Some(patch) = util::adopt_patch(d, &rs) else {
                            continue;
                        };
                        let name = rs.metadata.name.clone().unwrap_or_default();
                        let patch = Patch::Strategic(&patch);
                        let patched =
                            write_with_retry(&self.leading, || api.patch(&name, &pp, &patch)).await;
                        match patched {
                            Ok(rs) => owned.push(rs),
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
        for rs in release {
            let patch = util::release_patch(d, &rs);
            let patch = Patch::Strategic(&patch);
            let name = rs.metadata.name.clone().unwrap_or_default();
            let released = write_with_retry(&self.leading, || api.patch(&name, &pp, &patch)).await;
            match released {
                // Gone, or no longer ours.
                Err(Error::Kube(e)) if is_not_found(&e) || is_invalid(&e) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
                Ok(_) => {}
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        owned.sort_by(util::by_creation);
        Ok(owned)
    }

    /// Before adopting, a fresh read: a Deployment being deleted (or replaced under its name)
    /// must not adopt (kube's `RecheckDeletionTimestamp`).
    async fn can_adopt(&self, d: &Deployment) -> Result<()> {
        let ns = d.metadata.namespace.as_deref().unwrap_or("");
        let name = d.metadata.name.as_deref().unwrap_or("");
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let fresh = api.get(name).await?;
        if fresh.metadata.uid != d.metadata.uid {
            return Err(Error::Invalid(format!(
                "original Deployment {ns}/{name} is gone: got uid {}, wanted {}",
                fresh.metadata.uid.as_deref().unwrap_or(""),
                d.metadata.uid.as_deref().unwrap_or("")
            )));
        }
        if let Some(at) = fresh.metadata.deletion_timestamp {
            return Err(Error::Invalid(format!(
                "{ns}/{name} has just been deleted at {}",
                at.0.to_rfc3339()
            )));
        }
        Ok(())
    }

    fn pod_map(&self, ns: &str, replica_sets: &[ReplicaSet]) -> PodMap {
        pod_map(&self.pods.in_namespace(ns), replica_sets)
    }

    /// Performs the plan's writes in order; the first failure ends the sync (kube returns its
    /// error there). Writes of one object carry on each other's resourceVersion.
    async fn execute(&self, d: &Deployment, actions: Vec<Action>) -> Result<()> {
        let ns = d.metadata.namespace.as_deref().unwrap_or("");
        let d_name = d.metadata.name.clone().unwrap_or_default();
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        // The Deployment as last written, for the writes the executor adds itself.
        let mut written = d.clone();
        let mut rs_versions: HashMap<String, String> = HashMap::new();
        let post = PostParams::default();
        let delete = DeleteParams::default();
        for action in actions {
            match action {
                Action::CreateReplicaSet(rs) => {
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    let created =
                        write_with_retry(&self.leading, || rs_api.create(&post, &rs)).await;
                    match created {
                        Ok(created) => {
                            if let Some(rv) = created.metadata.resource_version {
                                rs_versions.insert(name.clone(), rv);
                            }
                            let replicas = util::rs_replicas(&rs);
                            if replicas > 0 {
                                let scaled = Scaled {
                                    operation: "up",
                                    from: 0,
                                    to: replicas,
                                };
                                self.leading.ensure()?;
                                self.record(
                                    d,
                                    EventKind::Normal,
                                    SCALING_REPLICA_SET,
                                    scaled.message(&name),
                                );
                            }
                        }
                        Err(Error::Kube(e)) if is_already_exists(&e) => {
                            return self.on_already_exists(&written, &rs_api, &name, e).await;
                        }
                        Err(Error::Kube(e)) if is_namespace_terminating(&e) => {
                            return Err(Error::Kube(e));
                        }
                        Err(Error::NotLeading(e)) => return Err(e.into()),
                        Err(e) => {
                            let (msg, failed) = sync::create_failed(
                                &written,
                                &name,
                                &error_message(&e),
                                Utc::now(),
                            );
                            if let Some(failed) = failed {
                                // kube ignores this write's error: the create's is reported.
                                if let Err(status_error) =
                                    self.write_status(&d_api, &d_name, failed).await
                                {
                                    tracing::debug!(error = %status_error, "could not report ReplicaSetCreateError");
                                }
                            }
                            self.leading.ensure()?;
                            self.record(d, EventKind::Warning, util::reason::FAILED_RS_CREATE, msg);
                            return Err(e);
                        }
                    }
                }
                Action::UpdateReplicaSet { rs, scaled } => {
                    let mut rs = *rs;
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    if let Some(rv) = rs_versions.get(&name) {
                        rs.metadata.resource_version = Some(rv.clone());
                    }
                    let updated =
                        write_with_retry(&self.leading, || rs_api.replace(&name, &post, &rs))
                            .await?;
                    if let Some(rv) = updated.metadata.resource_version {
                        rs_versions.insert(name.clone(), rv);
                    }
                    if let Some(scaled) = scaled {
                        self.leading.ensure()?;
                        self.record(
                            d,
                            EventKind::Normal,
                            SCALING_REPLICA_SET,
                            scaled.message(&name),
                        );
                    }
                }
                Action::DeleteReplicaSet { name } => {
                    let deleted =
                        write_with_retry(&self.leading, || rs_api.delete(&name, &delete)).await;
                    match deleted {
                        Ok(_) => {}
                        Err(Error::Kube(e)) if is_not_found(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                Action::UpdateStatus(obj) => {
                    let mut obj = *obj;
                    obj.metadata.resource_version = written.metadata.resource_version.clone();
                    written = self.write_status(&d_api, &d_name, obj).await?;
                }
                Action::Event {
                    kind,
                    reason,
                    message,
                } => {
                    self.leading.ensure()?;
                    self.record(d, kind, reason, message);
                }
            }
        }
        Ok(())
    }

    /// `UpdateStatus`: PUT `deployments/<name>/status` with the whole object.
    async fn write_status(
        &self,
        api: &Api<Deployment>,
        name: &str,
        obj: Deployment,
    ) -> Result<Deployment> {
        let body = serde_json::to_vec(&obj)
            .map_err(|e| Error::Invalid(format!("deployment status does not serialize: {e}")))?;
        let post = PostParams::default();
        write_with_retry(&self.leading, || {
            api.replace_status(name, &post, body.clone())
        })
        .await
    }

    /// The create of the new ReplicaSet met an existing one of that name. If it is this
    /// Deployment's own (the cache was behind), the sync is simply retried once the watch
    /// catches up. Otherwise it is a hash collision: `collisionCount` goes up so that the next
    /// sync picks another name (kube's collision handling).
    async fn on_already_exists(
        &self,
        written: &Deployment,
        rs_api: &Api<ReplicaSet>,
        name: &str,
        error: kube::Error,
    ) -> Result<()> {
        let existing = rs_api.get(name).await?;
        if sync::is_own_new_replica_set(written, &existing) {
            return Err(Error::Kube(error));
        }
        let bumped = sync::with_collision_bumped(written);
        let d_name = written.metadata.name.clone().unwrap_or_default();
        let ns = written.metadata.namespace.as_deref().unwrap_or("");
        let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let count = bumped.status.as_ref().and_then(|s| s.collision_count);
        if self.write_status(&d_api, &d_name, bumped).await.is_ok() {
            tracing::info!(
                deployment = %d_name,
                collision_count = count.unwrap_or(0),
                "hash collision for the new replica set: bumped collisionCount"
            );
        }
        Err(Error::Kube(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use kube::core::ErrorResponse;

    fn pod(owner_uid: Option<&str>, phase: &str) -> Arc<Pod> {
        let mut p = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                owner_references: owner_uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "rs".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: Some(Default::default()),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                host_ip: Some("10.0.0.1".into()),
                ..Default::default()
            }),
        };
        strip_pod(&mut p);
        Arc::new(p)
    }

    #[test]
    fn pods_are_kept_small_and_grouped_by_their_replica_set() {
        let p = pod(Some("u1"), "Running");
        assert!(p.spec.is_none() && p.metadata.annotations.is_none());
        let st = p.status.as_ref().unwrap();
        assert_eq!(
            (st.phase.as_deref(), st.host_ip.as_deref()),
            (Some("Running"), None)
        );
        assert!(
            p.metadata.owner_references.is_some(),
            "the owner is what matters"
        );

        let mut rs1 = ReplicaSet::default();
        rs1.metadata.uid = Some("u1".into());
        let mut rs2 = ReplicaSet::default();
        rs2.metadata.uid = Some("u2".into());
        let pods = [
            pod(Some("u1"), "Running"),
            pod(Some("u1"), "Succeeded"),
            pod(Some("other"), "Running"),
            pod(None, "Running"),
        ];
        let map = pod_map(&pods, &[rs1, rs2]);
        assert_eq!(
            map.get("u1").unwrap(),
            &["Running".to_string(), "Succeeded".to_string()]
        );
        assert!(map.get("u2").unwrap().is_empty());
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn already_exists_is_not_a_conflict() {
        let api = |code: u16, reason: &str| {
            kube::Error::Api(ErrorResponse {
                status: "Failure".into(),
                message: String::new(),
                reason: reason.into(),
                code,
            })
        };
        assert!(is_already_exists(&api(409, "AlreadyExists")));
        assert!(!is_already_exists(&api(409, "Conflict")));
    }
}
