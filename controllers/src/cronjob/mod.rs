//! kube's CronJob controller (`pkg/controller/cronjob/cronjob_controllerv2.go`): creates a Job
//! `<cronjob>-<scheduled minutes since the epoch>` for the most recent schedule time not yet
//! started ([`schedule`] parses the cron expression), honouring `startingDeadlineSeconds`,
//! `concurrencyPolicy` (Allow / Forbid / Replace) and `suspend`; keeps `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`; deletes finished Jobs beyond the history
//! limits; and queues each CronJob again at its next schedule time (tokio's clock).
//!
//! I/O only here: CronJobs and Jobs watched into caches, Job events mapped to their CronJob,
//! workers performing [`sync::plan`]: deletions (propagation Background), the creation, then
//! the status, then Events.
//!
//! Not done: time zones other than UTC (`spec.timeZone` naming another zone gets an
//! `UnknownTimeZone` warning and no Job), and kube's check of a Job missing from the cache
//! against the API server before dropping it from `status.active`.

pub mod schedule;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::events::{object_reference, EventType, Recorder};
use mainstay_component::Leading;
use tokio::task::JoinSet;

use crate::runner::{changed, watch_all, worker, Reconcile};
use crate::util::cache::Cache;
use crate::util::pod::{controller_ref, object_key, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{api_code, error_message, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "cronjob-controller";

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    cronjobs: Cache<CronJob>,
    jobs: Cache<Job>,
    queue: WorkQueue,
}

/// Runs the controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        recorder,
        cronjobs: Cache::new(),
        jobs: Cache::new(),
        queue: WorkQueue::default(),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<CronJob>::all(c.client.clone());
        watch_all(api, &c.cronjobs, watcher::Config::default(), |ch| {
            c.queue.add(&object_key(&changed(ch).metadata))
        })
        .await
    });
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<Job>::all(c.client.clone());
        watch_all(api, &c.jobs, watcher::Config::default(), |ch| {
            let j = changed(ch);
            if let Some(r) = controller_ref(&j.metadata).filter(|r| r.kind == "CronJob") {
                c.queue.add(&format!(
                    "{}/{}",
                    j.metadata.namespace.as_deref().unwrap_or(""),
                    r.name
                ));
            }
        })
        .await
    });
    tokio::select! {
        _ = leading.lost() => {}
        _ = async { ctl.cronjobs.synced().await; ctl.jobs.synced().await } => {
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

impl Controller {
    fn jobs_of(&self, cj: &CronJob) -> Vec<Arc<Job>> {
        let ns = cj.metadata.namespace.as_deref().unwrap_or("");
        let uid = cj.metadata.uid.as_deref().unwrap_or("");
        self.jobs
            .in_namespace(ns)
            .into_iter()
            .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
            .collect()
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
        let Some(cj) = self.cronjobs.get(ns, name) else {
            return Ok(None);
        };
        let jobs = self.jobs_of(&cj);
        let plan = sync::plan(&cj, &jobs, Utc::now());
        let cj_ref = object_reference(cj.as_ref());
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let jobs_api = &jobs_api;
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let background = &background;
        for j in &plan.delete {
            let jname = j.metadata.name.as_deref().unwrap_or("");
            match write_with_retry(&self.leading, || async move {
                jobs_api.delete(jname, background).await
            })
            .await
            {
                Ok(_) => self.recorder.record(
                    &cj_ref,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted job {jname}"),
                ),
                Err(Error::Kube(e)) if api_code(&e) == Some(404) => {}
                Err(e) => {
                    self.recorder.record(
                        &cj_ref,
                        EventType::Warning,
                        "FailedDelete",
                        format!("Deleted job: {}", error_message(&e)),
                    );
                    return Err(e);
                }
            }
        }
        let mut status: CronJobStatus = plan.status.clone();
        let mut failure = None;
        if let Some((job, scheduled)) = &plan.create {
            let job = &job;
            match write_with_retry(&self.leading, || async move {
                jobs_api.create(&PostParams::default(), job).await
            })
            .await
            {
                Ok(created) => {
                    self.recorder.record(
                        &cj_ref,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!(
                            "Created job {}",
                            created.metadata.name.as_deref().unwrap_or("")
                        ),
                    );
                    status = sync::with_created(status, &created, *scheduled);
                }
                Err(Error::Kube(e)) if api_code(&e) == Some(409) => {
                    // Created by an earlier sync whose watch event has not arrived yet.
                    let jname = job.metadata.name.as_deref().unwrap_or("");
                    let existing = jobs_api.get(jname).await?;
                    if controller_ref(&existing.metadata)
                        .is_some_and(|r| Some(&r.uid) == cj.metadata.uid.as_ref())
                    {
                        status = sync::with_created(status, &existing, *scheduled);
                    }
                }
                Err(Error::Kube(e)) if api_code(&e) == Some(403) => {
                    // The namespace is being terminated.
                    return Ok(None);
                }
                Err(e) => {
                    if !matches!(e, Error::NotLeading(_)) {
                        self.recorder.record(
                            &cj_ref,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating job: {}", error_message(&e)),
                        );
                    }
                    failure = Some(e);
                }
            }
        }
        if cj.status.clone().unwrap_or_default() != status {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), ns);
            let mut updated = (*cj).clone();
            updated.status = Some(status);
            let body = serde_json::to_vec(&updated)
                .map_err(|e| Error::Invalid(format!("encoding CronJob status: {e}")))?;
            let (api, body) = (&api, &body);
            write_with_retry(&self.leading, || async move {
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
                .record(&cj_ref, kind, e.reason, e.message.clone());
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(plan.requeue_after),
        }
    }
}
