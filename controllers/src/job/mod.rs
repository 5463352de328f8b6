//! kube's Job controller (`pkg/controller/job`, 1.32): runs a Job's pods to completion —
//! `parallelism` at a time, `completions` successes (NonIndexed, or one per index for Indexed
//! Jobs), replacing failed pods after kube's pod-failure backoff (10 s doubling to 6 min) until
//! `backoffLimit`, `activeDeadlineSeconds`, `suspend` — and counts every pod once through the
//! `batch.kubernetes.io/job-tracking` finalizer and `status.uncountedTerminatedPods`.
//!
//! This module is the I/O half: Jobs and Pods watched into caches, pod events mapped to their
//! Job's key (through the controller reference) and to the create/delete expectations, workers
//! that run [`sync::plan`] and perform it — the status first, then finalizer removals (so a pod
//! is never released before it is recorded), deletions, creations — with Events. Every write is
//! preceded by `leading.ensure()`.
//!
//! Not done (kube has them): podFailurePolicy, backoffLimitPerIndex, successPolicy,
//! podReplacementPolicy `Failed`, managedBy, adoption of orphan pods matching a manual
//! selector, and the per-Job finalizer expectations (a repeated removal is harmless here).

pub mod sync;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use futures::{stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use serde_json::json;
use tokio::task::JoinSet;

use crate::replicaset::expectations::Expectations;
use crate::runner::{watch_all, worker, Reconcile};
use crate::util::cache::{Cache, Change};
use crate::util::pod::{controller_ref, object_key, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{error_message, is_conflict, is_not_found, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "job-controller";
/// Writes one sync has in flight at once.
const WRITES_IN_FLIGHT: usize = 16;

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    jobs: Cache<Job>,
    pods: Cache<Pod>,
    queue: WorkQueue,
    expectations: Mutex<Expectations>,
}

/// Runs the Job controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client: client.clone(),
        leading: leading.clone(),
        recorder,
        jobs: Cache::new(),
        pods: Cache::new(),
        queue: WorkQueue::default(),
        expectations: Mutex::new(Expectations::new()),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        watch_all(
            Api::<Job>::all(c.client.clone()),
            &c.jobs,
            watcher::Config::default(),
            |ch| c.on_job(ch),
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
    tokio::select! {
        _ = leading.lost() => {}
        _ = async { ctl.jobs.synced().await; ctl.pods.synced().await } => {
            tracing::info!(controller = CONTROLLER_NAME, jobs = ctl.jobs.len(), "caches synced");
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

/// The key of the Job controlling `pod`, if one does.
fn job_key_of(pod: &Pod) -> Option<String> {
    let r = controller_ref(&pod.metadata)?;
    (r.kind == "Job" && r.api_version.starts_with("batch/")).then(|| {
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            r.name
        )
    })
}

impl Controller {
    fn expectations(&self) -> MutexGuard<'_, Expectations> {
        self.expectations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_job(&self, change: &Change<Job>) {
        match change {
            Change::Added(j) | Change::Updated { new: j, .. } => {
                self.queue.add(&object_key(&j.metadata))
            }
            Change::Deleted(j) => {
                let key = object_key(&j.metadata);
                self.expectations().delete(&key);
                self.queue.add(&key);
            }
        }
    }

    fn on_pod(&self, change: &Change<Pod>) {
        let (pod, created, deleted) = match change {
            Change::Added(p) => (
                p,
                p.metadata.deletion_timestamp.is_none(),
                p.metadata.deletion_timestamp.is_some(),
            ),
            Change::Updated { old, new } => (
                new,
                false,
                old.metadata.deletion_timestamp.is_none()
                    && new.metadata.deletion_timestamp.is_some(),
            ),
            Change::Deleted(p) => (p, false, true),
        };
        let Some(key) = job_key_of(pod) else {
            return;
        };
        {
            let mut exp = self.expectations();
            if created {
                exp.creations_observed(&key, 1);
            }
            if deleted {
                exp.deletion_observed(&key, &object_key(&pod.metadata));
            }
        }
        self.queue.add(&key);
    }

    /// The pods `job` controls, from the cache.
    fn pods_of(&self, job: &Job) -> Vec<Arc<Pod>> {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let uid = job.metadata.uid.as_deref().unwrap_or("");
        self.pods
            .in_namespace(ns)
            .into_iter()
            .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .collect()
    }

    async fn perform(&self, key: &str, job: &Job, plan: sync::Plan) -> Result<()> {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let job_ref = object_reference(job);
        // 1. The status, which records every pod about to be released.
        if sync::status_changed(job, &plan.status) {
            let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
            let mut updated = job.clone();
            updated.status = Some(plan.status.clone());
            let body = serde_json::to_vec(&updated)
                .map_err(|e| Error::Invalid(format!("encoding Job status: {e}")))?;
            let name = job.metadata.name.as_deref().unwrap_or("");
            let (api, body) = (&api, &body);
            write_with_retry(&self.leading, move || async move {
                api.replace_status(name, &PostParams::default(), body.clone())
                    .await
            })
            .await?;
        }
        for e in &plan.events {
            let kind = if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.recorder
                .record(&job_ref, kind, e.reason, e.message.clone());
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pods = &pods;
        // 2. Finalizers of recorded pods.
        let removed: Vec<Result<()>> = stream::iter(plan.remove_finalizer.iter().cloned())
            .map(|p: Arc<Pod>| async move { self.remove_finalizer(pods, &p).await })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        let mut first_error = removed.into_iter().find_map(Result::err);
        // 3. Deletions.
        if !plan.delete.is_empty() {
            self.expectations()
                .expect_deletions(key, plan.delete.iter().map(|p| object_key(&p.metadata)));
            let job_ref = &job_ref;
            let deleted: Vec<Result<()>> = stream::iter(plan.delete.iter().cloned())
                .map(|p: Arc<Pod>| async move {
                    let name = p.metadata.name.as_deref().unwrap_or("");
                    let r = write_with_retry(&self.leading, || async {
                        pods.delete(name, &DeleteParams::default()).await
                    })
                    .await;
                    match r {
                        Ok(_) => {
                            self.recorder.record(
                                job_ref,
                                EventType::Normal,
                                "SuccessfulDelete",
                                format!("Deleted pod: {name}"),
                            );
                            Ok(())
                        }
                        Err(e) => {
                            self.expectations()
                                .deletion_observed(key, &object_key(&p.metadata));
                            match e {
                                Error::Kube(k) if is_not_found(&k) => Ok(()),
                                e => {
                                    self.recorder.record(
                                        job_ref,
                                        EventType::Warning,
                                        "FailedDelete",
                                        format!("Error deleting: {}", error_message(&e)),
                                    );
                                    Err(e)
                                }
                            }
                        }
                    }
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            if let Some(e) = deleted.into_iter().find_map(Result::err) {
                first_error.get_or_insert(e);
            }
        }
        // 4. Creations.
        if !plan.create.is_empty() {
            self.expectations().expect_creations(key, plan.create.len());
            let job_ref = &job_ref;
            let created: Vec<Result<()>> = stream::iter(plan.create.iter().copied())
                .map(|index| async move {
                    let pod = match sync::pod_for(job, index) {
                        Ok(p) => p,
                        Err(e) => {
                            self.expectations().creations_observed(key, 1);
                            return Err(Error::Invalid(e));
                        }
                    };
                    let pod = &pod;
                    let r = write_with_retry(&self.leading, || async {
                        pods.create(&PostParams::default(), pod).await
                    })
                    .await;
                    match r {
                        Ok(p) => {
                            let name = p.metadata.name.unwrap_or_default();
                            self.recorder.record(
                                job_ref,
                                EventType::Normal,
                                "SuccessfulCreate",
                                format!("Created pod: {name}"),
                            );
                            Ok(())
                        }
                        Err(e) => {
                            self.expectations().creations_observed(key, 1);
                            if !matches!(e, Error::NotLeading(_)) {
                                self.recorder.record(
                                    job_ref,
                                    EventType::Warning,
                                    "FailedCreate",
                                    format!("Error creating: {}", error_message(&e)),
                                );
                            }
                            Err(e)
                        }
                    }
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            if let Some(e) = created.into_iter().find_map(Result::err) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A JSON patch that tests the finalizers are as read and writes them without ours.
    async fn remove_finalizer(&self, pods: &Api<Pod>, pod: &Pod) -> Result<()> {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let current = pod.metadata.finalizers.clone().unwrap_or_default();
        let rest: Vec<&String> = current
            .iter()
            .filter(|f| *f != sync::JOB_TRACKING_FINALIZER)
            .collect();
        let patch: Patch<()> = Patch::Json(
            serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": current},
                {"op": "replace", "path": "/metadata/finalizers", "value": rest},
            ]))
            .map_err(|e| Error::Invalid(format!("finalizer patch: {e}")))?,
        );
        let patch = &patch;
        let r = write_with_retry(&self.leading, || async {
            pods.patch(name, &PatchParams::default(), patch).await
        })
        .await;
        match r {
            Ok(_) => Ok(()),
            // Gone, or changed since read: the watch brings the new state and another sync.
            Err(Error::Kube(e))
                if is_not_found(&e) || is_conflict(&e) || crate::util::is_invalid(&e) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
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
        let Some(job) = self.jobs.get(ns, name) else {
            self.expectations().delete(key);
            return Ok(None);
        };
        let pods = self.pods_of(&job);
        let satisfied = self.expectations().satisfied(key);
        let plan = sync::plan(&job, &pods, Utc::now(), satisfied);
        let requeue = plan.requeue_after;
        self.perform(key, &job, plan).await?;
        Ok(requeue)
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
                    name: "pi".into(),
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
    fn pods_map_to_the_job_controlling_them() {
        assert_eq!(
            job_key_of(&owned("Job", "batch/v1", true)).as_deref(),
            Some("ns/pi")
        );
        assert_eq!(job_key_of(&owned("Job", "batch/v1", false)), None);
        assert_eq!(job_key_of(&owned("ReplicaSet", "apps/v1", true)), None);
        assert_eq!(job_key_of(&Pod::default()), None);
    }
}
