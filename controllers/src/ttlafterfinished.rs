//! kube's TTL-after-finished controller (`pkg/controller/ttlafterfinished`): a finished Job
//! (condition `Complete` or `Failed`) with `spec.ttlSecondsAfterFinished` is deleted, with
//! propagation `Background`, that many seconds after it finished (the terminal condition's
//! lastTransitionTime). Before deleting, the Job is read again from the API server and the
//! delete carries its resourceVersion as a precondition, so a Job whose TTL was just changed is
//! not deleted on stale data. Jobs not yet expired are queued again when they expire.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::Leading;
use tokio::task::JoinSet;

use crate::job::sync::finished_time;
use crate::runner::{changed, watch_all, worker, Reconcile};
use crate::util::cache::{Cache, Change};
use crate::util::pod::{object_key, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{api_code, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "ttl-after-finished-controller";

/// What to do about a Job now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No TTL, not finished, or being deleted already.
    Keep,
    /// Expires after this long.
    Later(Duration),
    Delete,
}

/// kube's `needsCleanup` and `timeLeft`.
pub fn verdict(job: &Job, now: DateTime<Utc>) -> Verdict {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Verdict::Keep;
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Verdict::Keep;
    }
    let Some(finished) = finished_time(job) else {
        return Verdict::Keep;
    };
    let expires = finished + chrono::Duration::seconds(ttl.into());
    match (expires - now).to_std() {
        Ok(left) if !left.is_zero() => Verdict::Later(left),
        _ => Verdict::Delete,
    }
}

struct Controller {
    client: Client,
    leading: Leading,
    jobs: Cache<Job>,
    queue: WorkQueue,
}

/// Runs the controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        jobs: Cache::new(),
        queue: WorkQueue::default(),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<Job>::all(c.client.clone());
        watch_all(api, &c.jobs, watcher::Config::default(), |ch| {
            if !matches!(ch, Change::Deleted(_)) {
                let job = changed(ch);
                if verdict(job, Utc::now()) != Verdict::Keep {
                    c.queue.add(&object_key(&job.metadata));
                }
            }
        })
        .await
    });
    tokio::select! {
        _ = leading.lost() => {}
        _ = ctl.jobs.synced() => {
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
            return Ok(None);
        };
        match verdict(&job, Utc::now()) {
            Verdict::Keep => return Ok(None),
            Verdict::Later(d) => return Ok(Some(d)),
            Verdict::Delete => {}
        }
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let fresh = match api.get(name).await {
            Ok(j) => j,
            Err(e) if api_code(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match verdict(&fresh, Utc::now()) {
            Verdict::Keep => return Ok(None),
            Verdict::Later(d) => return Ok(Some(d)),
            Verdict::Delete => {}
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                resource_version: fresh.metadata.resource_version.clone(),
                uid: fresh.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        let (api, params) = (&api, &params);
        match write_with_retry(
            &self.leading,
            || async move { api.delete(name, params).await },
        )
        .await
        {
            Ok(_) => {
                tracing::info!(key, "deleted finished job after its TTL");
                Ok(None)
            }
            Err(Error::Kube(e)) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time")
    }

    fn job(ttl: Option<i32>, finished: Option<(&str, i64)>) -> Job {
        Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: finished.map(|(t, secs)| JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: t.into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(at(secs))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn finished_jobs_expire_ttl_seconds_after_their_terminal_condition() {
        let cases = [
            (job(None, Some(("Complete", 0))), 100, Verdict::Keep),
            (job(Some(10), None), 100, Verdict::Keep),
            (
                job(Some(10), Some(("SuccessCriteriaMet", 0))),
                100,
                Verdict::Keep,
            ),
            (
                job(Some(10), Some(("Complete", 0))),
                4,
                Verdict::Later(Duration::from_secs(6)),
            ),
            (job(Some(10), Some(("Failed", 0))), 10, Verdict::Delete),
            (job(Some(0), Some(("Complete", 5))), 5, Verdict::Delete),
        ];
        for (i, (j, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(verdict(&j, at(now)), want, "case {i}");
        }
        let mut deleting = job(Some(0), Some(("Complete", 0)));
        deleting.metadata.deletion_timestamp = Some(Time(at(1)));
        assert_eq!(verdict(&deleting, at(5)), Verdict::Keep);
    }
}
