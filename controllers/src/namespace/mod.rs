//! kube's namespace controller (`pkg/controller/namespace`): every namespace being deleted is
//! emptied — each namespaced resource the API serves, found by discovery on every pass, so
//! kinds added later are covered — and then finalized (`kubernetes` leaves `spec.finalizers`
//! through the `finalize` subresource), after which the apiserver removes it.
//!
//! This module is the I/O half: a watch of Namespaces into a cache; a namespace with a
//! deletionTimestamp is queued [`sync::NAMESPACE_DELETION_GRACE_PERIOD`] after each event (and
//! again every resync period); up to `concurrency` workers sync distinct namespaces. A sync
//! reads the namespace afresh, makes sure it is Terminating, deletes everything in it
//! (deletecollection where discovery offers it, else list and delete, always with
//! `propagationPolicy=Background`), lists what remains, writes the deletion conditions when they
//! changed, and then, as [`sync::next`] decides, finalizes it, looks again later (content that is
//! expected to go: graceful pods, finalizers) or retries with backoff (5 ms doubling to 60 s, as
//! kube's `nsControllerRateLimiter`). Every write is preceded by `leading.ensure()`.
//! Level-triggered and idempotent: a sync started over from scratch does the same.

pub mod sync;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResourceList, Time};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::Leading;
use tokio::task::JoinSet;

use self::sync::{Next, Pass, PodGrace, Target};
use crate::util::cache::{Cache, Change};
use crate::util::queue::{Backoff, WorkQueue};
use crate::util::{
    api_code, error_message, is_conflict, is_not_found, supervise, write_with_retry,
};
use crate::{Error, Result};

/// The controller's name in `--controllers`.
pub const CONTROLLER_NAME: &str = "namespace-controller";

/// `--namespace-sync-period` (kube's default): how often every terminating namespace is queued
/// again even without an event.
pub const NAMESPACE_SYNC_PERIOD: Duration = Duration::from_secs(300);

/// kube's `nsControllerRateLimiter` per-item part: 5 ms doubling, at most 60 s.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(5),
    max: Duration::from_secs(60),
};

struct Controller {
    client: Client,
    leading: Leading,
    namespaces: Cache<Namespace>,
    queue: WorkQueue,
}

/// Runs the namespace controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        namespaces: Cache::new(),
        queue: WorkQueue::new(BACKOFF),
    });
    tracing::info!(controller = CONTROLLER_NAME, "starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(watch_namespaces(ctl.clone()));
    tokio::select! {
        _ = leading.lost() => {}
        _ = ctl.namespaces.synced() => {
            tracing::info!(
                controller = CONTROLLER_NAME,
                namespaces = ctl.namespaces.len(),
                workers = concurrency.max(1),
                "caches synced"
            );
            for _ in 0..concurrency.max(1) {
                tasks.spawn(worker(ctl.clone()));
            }
            tasks.spawn(resync(ctl.clone()));
            supervise(&mut tasks, &leading, CONTROLLER_NAME).await;
        }
    }
    ctl.queue.shut_down();
    tasks.shutdown().await;
    tracing::info!(controller = CONTROLLER_NAME, "stopped");
    Ok(())
}

async fn watch_namespaces(ctl: Arc<Controller>) {
    let api: Api<Namespace> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.namespaces.apply(event) {
                    match change {
                        Change::Added(ns) | Change::Updated { new: ns, .. } => ctl.enqueue(&ns),
                        Change::Deleted(_) => {}
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "namespace watch failed; retrying"),
        }
    }
}

/// kube's informer resync: every terminating namespace is looked at again now and then.
async fn resync(ctl: Arc<Controller>) {
    let mut tick = tokio::time::interval(NAMESPACE_SYNC_PERIOD);
    tick.tick().await;
    loop {
        tick.tick().await;
        for ns in ctl.namespaces.in_namespace("") {
            ctl.enqueue(&ns);
        }
    }
}

async fn worker(ctl: Arc<Controller>) {
    while let Some(key) = ctl.queue.get().await {
        match ctl.sync(&key).await {
            Ok(None) => ctl.queue.forget(&key),
            Ok(Some(after)) => {
                tracing::debug!(namespace = %key, wait_s = after.as_secs(), "content remaining in namespace");
                ctl.queue.forget(&key);
                ctl.queue.add_after(&key, after);
            }
            Err(Error::NotLeading(_)) => {}
            Err(e) => {
                tracing::warn!(namespace = %key, error = %e, "deletion of namespace failed; will retry");
                ctl.queue.add_rate_limited(&key);
            }
        }
        ctl.queue.done(&key);
    }
}

impl Controller {
    fn enqueue(&self, ns: &Namespace) {
        if ns.metadata.deletion_timestamp.is_none() {
            return;
        }
        if let Some(name) = &ns.metadata.name {
            self.queue
                .add_after(name, sync::NAMESPACE_DELETION_GRACE_PERIOD);
        }
    }

    fn api(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    /// kube's `namespacedResourcesDeleter.Delete`. `Ok(Some(d))`: look again after `d`.
    async fn sync(&self, name: &str) -> Result<Option<Duration>> {
        let ns = match self.api().get(name).await {
            Ok(ns) => ns,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let ns = match self.ensure_terminating(ns).await? {
            Some(ns) => ns,
            None => return Ok(None),
        };
        if !sync::needs_finalizing(&ns) {
            return Ok(None);
        }
        let pass = self.delete_all_content(&ns).await?;
        let ns = self.write_conditions(ns, &pass).await?;
        match sync::next(&pass) {
            Next::Retry(e) => Err(Error::Invalid(e)),
            Next::Requeue(after) => Ok(Some(after)),
            Next::Finalize => {
                self.finalize(ns).await?;
                Ok(None)
            }
        }
    }

    /// kube's `updateNamespaceStatusFunc` under `retryOnConflictError`: the phase is Terminating
    /// once deletion started. `None`: the namespace is gone (or no longer being deleted).
    async fn ensure_terminating(&self, mut ns: Namespace) -> Result<Option<Namespace>> {
        loop {
            let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
            if ns.metadata.deletion_timestamp.is_none() {
                return Ok(None);
            }
            if phase == Some("Terminating") {
                return Ok(Some(ns));
            }
            let name = ns.metadata.name.clone().unwrap_or_default();
            let mut new = ns.clone();
            new.status
                .get_or_insert_with(NamespaceStatus::default)
                .phase = Some("Terminating".into());
            let body = serde_json::to_vec(&new).map_err(|e| Error::Invalid(e.to_string()))?;
            let (api, pp) = (self.api(), PostParams::default());
            let (api, pp, name_ref, body) = (&api, &pp, &name, &body);
            match write_with_retry(&self.leading, move || async move {
                api.replace_status(name_ref, pp, body.clone()).await
            })
            .await
            {
                Ok(ns) => return Ok(Some(ns)),
                Err(Error::Kube(e)) if is_not_found(&e) => return Ok(None),
                Err(Error::Kube(e)) if is_conflict(&e) => ns = self.refetch(&ns).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// A fresh read for a conflict retry; the namespace must still be the same one (uid).
    async fn refetch(&self, ns: &Namespace) -> Result<Namespace> {
        let name = ns.metadata.name.as_deref().unwrap_or("");
        let fresh = self.api().get(name).await?;
        if fresh.metadata.uid != ns.metadata.uid {
            return Err(Error::Invalid(
                "namespace uid has changed across retries".into(),
            ));
        }
        Ok(fresh)
    }

    /// The namespaced resources of every group's preferred version (kube's
    /// `ServerPreferredNamespacedResources`), with the failure message when some groups failed.
    async fn discover(&self) -> (Vec<APIResourceList>, Option<String>) {
        let mut lists = Vec::new();
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        match self.client.list_core_api_versions().await {
            Ok(core) => {
                for v in core.versions {
                    match self.client.list_core_api_resources(&v).await {
                        Ok(l) => lists.push(l),
                        Err(e) => {
                            failed.insert(v.clone(), error_message(&Error::Kube(e)));
                        }
                    }
                }
            }
            Err(e) => return (lists, Some(error_message(&Error::Kube(e)))),
        }
        let groups = match self.client.list_api_groups().await {
            Ok(g) => g,
            Err(e) => return (lists, Some(error_message(&Error::Kube(e)))),
        };
        for g in groups.groups {
            let gv = g
                .preferred_version
                .map(|p| p.group_version)
                .or_else(|| g.versions.first().map(|v| v.group_version.clone()));
            let Some(gv) = gv else { continue };
            match self.client.list_api_group_resources(&gv).await {
                Ok(l) => lists.push(l),
                Err(e) => {
                    failed.insert(gv, error_message(&Error::Kube(e)));
                }
            }
        }
        let failure = (!failed.is_empty()).then(|| sync::discovery_failure_message(&failed));
        (lists, failure)
    }

    /// kube's `deleteAllContent`: one pass over every deletable resource in the namespace.
    async fn delete_all_content(&self, ns: &Namespace) -> Result<Pass> {
        let name = ns.metadata.name.as_deref().unwrap_or("");
        let deleted_at = ns.metadata.deletion_timestamp.as_ref().map(|t| t.0);
        let (lists, discovery_failure) = self.discover().await;
        let mut pass = Pass {
            discovery_failure,
            ..Default::default()
        };
        let targets = match sync::deletable_resources(&lists) {
            Ok(t) => t,
            Err(e) => {
                pass.group_version_failure = Some(e);
                Vec::new()
            }
        };
        for target in &targets {
            match self.delete_resource(target, name, deleted_at).await {
                Ok((remaining, error)) => pass.add(target, &remaining, error),
                Err(Error::NotLeading(e)) => return Err(e.into()),
                Err(e) => pass.add(target, &sync::Remaining::default(), Some(error_message(&e))),
            }
        }
        Ok(pass)
    }

    /// kube's `deleteAllContentForGroupVersionResource`.
    async fn delete_resource(
        &self,
        target: &Target,
        ns: &str,
        deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(sync::Remaining, Option<String>)> {
        let estimate = if target.group.is_empty() && target.resource == "pods" {
            self.pod_estimate(ns, deleted_at).await?
        } else {
            0
        };
        let gvk = GroupVersionKind::gvk(&target.group, &target.version, &target.kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, &target.resource);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        // The garbage collector must not orphan anything here: every delete is Background.
        let dp = DeleteParams::background();
        let mut each = !target.delete_collection;
        if target.delete_collection {
            let (api, dp) = (&api, &dp);
            let lp = ListParams::default();
            let lp = &lp;
            match write_with_retry(&self.leading, move || async move {
                api.delete_collection(dp, lp).await
            })
            .await
            {
                Ok(_) => {}
                Err(Error::Kube(e)) if matches!(api_code(&e), Some(404 | 405)) => each = true,
                Err(e) => return Err(e),
            }
        }
        if each {
            for item in api.list(&ListParams::default()).await?.items {
                let Some(item_name) = item.metadata.name.clone() else {
                    continue;
                };
                let (api, dp, item_name) = (&api, &dp, &item_name);
                match write_with_retry(&self.leading, move || async move {
                    api.delete(item_name, dp).await
                })
                .await
                {
                    Ok(_) => {}
                    Err(Error::Kube(e)) if matches!(api_code(&e), Some(404 | 405)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let left: Vec<Vec<String>> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|o| o.metadata.finalizers.unwrap_or_default())
            .collect();
        Ok(sync::remaining(target, ns, estimate, &left))
    }

    /// kube's `estimateGracefulTerminationForPods`.
    async fn pod_estimate(
        &self,
        ns: &str,
        deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<i64> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let grace: Vec<PodGrace> = pods
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|p| PodGrace {
                phase: p.status.and_then(|s| s.phase),
                grace_seconds: p.spec.and_then(|s| s.termination_grace_period_seconds),
            })
            .collect();
        let since = deleted_at
            .map(|t| (chrono::Utc::now() - t).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::ZERO);
        Ok(sync::pod_estimate_seconds(&grace, since))
    }

    /// Writes the deletion conditions when they changed (a failed write is logged, as kube's).
    /// Returns the namespace as it now is.
    async fn write_conditions(&self, ns: Namespace, pass: &Pass) -> Result<Namespace> {
        let existing = ns
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let desired = sync::desired_conditions(pass);
        let Some(conditions) =
            sync::updated_conditions(&existing, &desired, Time(chrono::Utc::now()))
        else {
            return Ok(ns);
        };
        let mut new = ns.clone();
        new.status
            .get_or_insert_with(NamespaceStatus::default)
            .conditions = Some(conditions);
        let name = ns.metadata.name.clone().unwrap_or_default();
        let body = serde_json::to_vec(&new).map_err(|e| Error::Invalid(e.to_string()))?;
        let (api, pp) = (self.api(), PostParams::default());
        let (api, pp, name_ref, body) = (&api, &pp, &name, &body);
        match write_with_retry(&self.leading, move || async move {
            api.replace_status(name_ref, pp, body.clone()).await
        })
        .await
        {
            Ok(written) => Ok(written),
            Err(Error::NotLeading(e)) => Err(e.into()),
            Err(e) => {
                tracing::warn!(namespace = %name, error = %e, "couldn't update status condition for namespace");
                Ok(ns)
            }
        }
    }

    /// kube's `finalizeNamespace` under `retryOnConflictError`.
    async fn finalize(&self, mut ns: Namespace) -> Result<()> {
        loop {
            let mut body = ns.clone();
            body.spec.get_or_insert_with(Default::default).finalizers =
                Some(sync::finalized_spec_finalizers(&ns));
            body.status = None;
            let name = ns.metadata.name.clone().unwrap_or_default();
            let bytes = serde_json::to_vec(&body).map_err(|e| Error::Invalid(e.to_string()))?;
            let (api, pp) = (self.api(), PostParams::default());
            let (api, pp, name_ref, bytes) = (&api, &pp, &name, &bytes);
            match write_with_retry(&self.leading, move || async move {
                api.replace_subresource("finalize", name_ref, pp, bytes.clone())
                    .await
            })
            .await
            {
                Ok(_) => {
                    tracing::info!(namespace = %name, "namespace finalized");
                    return Ok(());
                }
                Err(Error::Kube(e)) if is_not_found(&e) => return Ok(()),
                Err(Error::Kube(e)) if is_conflict(&e) => ns = self.refetch(&ns).await?,
                Err(e) => return Err(e),
            }
        }
    }
}
