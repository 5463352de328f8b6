//! kube's disruption controller (`pkg/controller/disruption`): keeps every
//! PodDisruptionBudget's status — expected pods, desired and current healthy pods, the
//! disruptions allowed now, the evictions not yet confirmed (`disruptedPods`) and the
//! `DisruptionAllowed` condition — which the apiserver's `pods/eviction` reads and spends.
//!
//! This module is the thin I/O half: it watches PDBs and Pods into caches, enqueues a budget
//! when it or one of the pods it selects changes, and syncs from a work queue. A sync reads the
//! caches, looks up the scale of the pods' controllers through the API when the budget needs it
//! (Deployment via ReplicaSet, ReplicaSet, StatefulSet, ReplicationController), asks [`sync`]
//! for the status and writes it when it changed; a failed sync writes the fail-safe status
//! (no disruption allowed, reason `SyncFailed`). A budget with unconfirmed evictions is looked
//! at again when the oldest would time out. Every write is preceded by `leading.ensure()`.
//!
//! Not yet as kube: the stale-`DisruptionTarget` cleanup worker, and controllers found only
//! through the generic `scale` subresource.

pub mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use kube::core::SelectorExt;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use tokio::task::JoinSet;

use crate::util::cache::{Cache, Change};
use crate::util::pod::{controller_ref, labels, object_key, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{error_message, is_conflict, supervise, write_with_retry};
use crate::{Error, Result};

/// The Event source and the controller's name in `--controllers`.
pub const CONTROLLER_NAME: &str = "disruption-controller";

/// kube runs one sync worker for budgets.
const WORKERS: usize = 1;

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    budgets: Cache<PodDisruptionBudget>,
    pods: Cache<Pod>,
    queue: WorkQueue,
}

/// Runs the disruption controller until `leading` is lost (then `Ok(())`); watch failures are
/// retried with backoff, sync failures requeued with backoff.
pub async fn run(client: Client, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        recorder,
        budgets: Cache::new(),
        pods: Cache::new(),
        queue: WorkQueue::default(),
    });
    tracing::info!(controller = CONTROLLER_NAME, "starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(watch_budgets(ctl.clone()));
    tasks.spawn(watch_pods(ctl.clone()));
    let synced = async {
        ctl.budgets.synced().await;
        ctl.pods.synced().await;
    };
    tokio::select! {
        _ = leading.lost() => {}
        _ = synced => {
            tracing::info!(controller = CONTROLLER_NAME, budgets = ctl.budgets.len(), pods = ctl.pods.len(), "caches synced");
            for _ in 0..WORKERS {
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

fn strip<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

async fn watch_budgets(ctl: Arc<Controller>) {
    let api: Api<PodDisruptionBudget> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.budgets.apply(event.modify(strip)) {
                    let b = match &change {
                        Change::Added(b) | Change::Deleted(b) => b,
                        Change::Updated { new, .. } => new,
                    };
                    ctl.queue.add(&object_key(&b.metadata));
                }
            }
            Err(e) => tracing::warn!(error = %e, "poddisruptionbudget watch failed; retrying"),
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
                    match &change {
                        Change::Added(p) | Change::Deleted(p) => ctl.enqueue_budgets_of(p),
                        Change::Updated { old, new } => {
                            if old.metadata.resource_version == new.metadata.resource_version
                                && old.metadata.resource_version.is_some()
                            {
                                continue;
                            }
                            ctl.enqueue_budgets_of(new);
                            if old.metadata.labels != new.metadata.labels {
                                ctl.enqueue_budgets_of(old);
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

async fn worker(ctl: Arc<Controller>) {
    while let Some(key) = ctl.queue.get().await {
        match ctl.sync(&key).await {
            Ok(recheck) => {
                ctl.queue.forget(&key);
                if let Some(after) = recheck {
                    ctl.queue.add_after(&key, after);
                }
            }
            Err(Error::NotLeading(_)) => {}
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "poddisruptionbudget sync failed; will retry");
                ctl.queue.add_rate_limited(&key);
            }
        }
        ctl.queue.done(&key);
    }
}

impl Controller {
    /// The budgets of the pod's namespace that select it (`getPdbForPod`).
    fn enqueue_budgets_of(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for b in self.budgets.in_namespace(ns) {
            if let Ok(Some(sel)) = sync::budget_selector(&b) {
                if sel.matches(labels(&pod.metadata)) {
                    self.queue.add(&object_key(&b.metadata));
                }
            }
        }
    }

    /// One sync: `Ok(Some(d))` asks to look again after `d` (an unconfirmed eviction).
    async fn sync(&self, key: &str) -> Result<Option<Duration>> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(None);
        };
        let Some(budget) = self.budgets.get(ns, name) else {
            return Ok(None);
        };
        match self.try_sync(&budget).await {
            Ok(recheck) => Ok(recheck),
            Err(Error::Kube(e)) if is_conflict(&e) => Err(Error::Kube(e)),
            Err(Error::NotLeading(e)) => Err(Error::NotLeading(e)),
            Err(e) => {
                tracing::warn!(key, error = %e, "failed to sync PDB");
                let status = sync::fail_safe_status(&budget, &error_message(&e), Utc::now());
                self.write_status(&budget, status).await.map(|()| None)
            }
        }
    }

    async fn try_sync(&self, budget: &PodDisruptionBudget) -> Result<Option<Duration>> {
        let ns = budget.metadata.namespace.as_deref().unwrap_or("");
        let budget_ref = object_reference(budget);
        let sel = sync::budget_selector(budget).map_err(Error::Invalid)?;
        let all = self.pods.in_namespace(ns);
        let pods = sync::pods_for(sel.as_ref(), all.iter().map(|p| p.as_ref()));
        if pods.is_empty() {
            self.recorder.record(
                &budget_ref,
                EventType::Normal,
                "NoPods",
                "No matching pods found".into(),
            );
        }
        let scales = if sync::needs_scale(budget) {
            self.controller_scales(ns, &pods).await?
        } else {
            HashMap::new()
        };
        let scale_of = |r: &OwnerReference| scales.get(&r.uid).cloned().flatten();
        let expected = match sync::expected_pod_count(budget, &pods, &scale_of) {
            Ok(e) => e,
            Err(e) => {
                self.recorder.record(
                    &budget_ref,
                    EventType::Warning,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                );
                return Err(Error::Invalid(e));
            }
        };
        if !expected.unmanaged.is_empty() {
            let selector = budget
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| kube::core::Selector::try_from(s.clone()).ok())
                .map(|s| s.to_string())
                .unwrap_or_default();
            self.recorder.record(
                &budget_ref,
                EventType::Warning,
                "UnmanagedPods",
                format!("Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."),
            );
        }
        let now = Utc::now();
        let (disrupted, recheck, timed_out) = sync::disrupted_pods(budget, &pods, now);
        for name in timed_out {
            if let Some(p) = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(&name))
            {
                self.recorder.record(
                    &object_reference(*p),
                    EventType::Warning,
                    "NotDeleted",
                    format!(
                        "Pod was expected by PDB {ns}/{} to be deleted but it wasn't",
                        budget.metadata.name.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        let observed = sync::Observed {
            current_healthy: sync::count_healthy(&pods, &disrupted, now),
            desired_healthy: expected.desired_healthy,
            expected_count: expected.expected_count,
            disrupted_pods: disrupted,
        };
        if let Some(status) = sync::new_status(budget, &observed, now) {
            self.write_status(budget, status).await?;
        }
        Ok(recheck.map(|at| (at - now).to_std().unwrap_or_default()))
    }

    /// The scale of each controller of these pods, by the controller reference's uid
    /// (`getExpectedScale`'s finders, read through the API).
    async fn controller_scales(
        &self,
        ns: &str,
        pods: &[&Pod],
    ) -> Result<HashMap<String, sync::Scale>> {
        let mut out = HashMap::new();
        for pod in pods {
            let Some(r) = controller_ref(&pod.metadata) else {
                continue;
            };
            if out.contains_key(&r.uid) {
                continue;
            }
            let scale = self.scale_of(ns, r).await?;
            out.insert(r.uid.clone(), scale);
        }
        Ok(out)
    }

    async fn scale_of(&self, ns: &str, r: &OwnerReference) -> Result<sync::Scale> {
        let group = r.api_version.split_once('/').map_or("", |(g, _)| g);
        let apps = matches!(group, "apps" | "extensions");
        let same = |uid: &Option<String>| uid.as_deref() == Some(r.uid.as_str());
        match r.kind.as_str() {
            "ReplicationController" if group.is_empty() => {
                let api: Api<ReplicationController> = Api::namespaced(self.client.clone(), ns);
                Ok(api
                    .get_opt(&r.name)
                    .await?
                    .filter(|c| same(&c.metadata.uid))
                    .map(|c| {
                        let n = c.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        (r.uid.clone(), n)
                    }))
            }
            "StatefulSet" if apps => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                Ok(api
                    .get_opt(&r.name)
                    .await?
                    .filter(|s| same(&s.metadata.uid))
                    .map(|s| {
                        let n = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        (r.uid.clone(), n)
                    }))
            }
            "ReplicaSet" if apps => {
                let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
                let Some(rs) = api
                    .get_opt(&r.name)
                    .await?
                    .filter(|s| same(&s.metadata.uid))
                else {
                    return Ok(None);
                };
                match controller_ref(&rs.metadata) {
                    Some(d) if d.kind == "Deployment" => {
                        let dgroup = d.api_version.split_once('/').map_or("", |(g, _)| g);
                        if !matches!(dgroup, "apps" | "extensions") {
                            return Ok(None);
                        }
                        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                        Ok(api
                            .get_opt(&d.name)
                            .await?
                            .filter(|dep| dep.metadata.uid.as_deref() == Some(d.uid.as_str()))
                            .map(|dep| {
                                let n = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                                (d.uid.clone(), n)
                            }))
                    }
                    _ => {
                        let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        Ok(Some((r.uid.clone(), n)))
                    }
                }
            }
            _ => Ok(None),
        }
    }

    /// PUT `poddisruptionbudgets/<name>/status` on the cached version: a conflict requeues.
    async fn write_status(
        &self,
        budget: &PodDisruptionBudget,
        status: k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus,
    ) -> Result<()> {
        let ns = budget.metadata.namespace.as_deref().unwrap_or("");
        let name = budget.metadata.name.as_deref().unwrap_or("");
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), ns);
        let mut updated = budget.clone();
        updated.status = Some(status);
        let body = serde_json::to_vec(&updated)
            .map_err(|e| Error::Invalid(format!("encoding PodDisruptionBudget status: {e}")))?;
        let (api, body, params) = (&api, &body, &PostParams::default());
        write_with_retry(&self.leading, move || async move {
            api.replace_status(name, params, body.clone()).await
        })
        .await
        .map(|_| ())
    }
}
