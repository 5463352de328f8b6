//! The CronJob controller's decisions (kube 1.32's `cronjob_controllerv2.go` `syncCronJob`,
//! `mostRecentScheduleTime`, `cleanupFinishedJobs`), pure: from the CronJob, the Jobs it
//! controls and the time, the status, the Job to create for the most recent missed schedule
//! time, the Jobs to delete (Replace policy, history limits), Events, and when to look again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::schedule::Schedule;
use crate::job::sync::is_finished;

/// The annotation with the Job's scheduled time (RFC 3339), kube 1.32.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Past this many missed start times, a `TooManyMissedTimes` warning.
pub const MAX_MISSED_START_TIMES: u64 = 100;
/// kube adds this to the wait for the next schedule time.
pub const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

fn warn(reason: &'static str, message: String) -> CronEvent {
    CronEvent {
        warning: true,
        reason,
        message,
    }
}

fn normal(reason: &'static str, message: String) -> CronEvent {
    CronEvent {
        warning: false,
        reason,
        message,
    }
}

/// What one sync does.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The status before any creation (the active list cleaned up).
    pub status: CronJobStatus,
    /// A Job to create for this scheduled time; once created, its reference joins
    /// `status.active` and the time becomes `lastScheduleTime`.
    pub create: Option<(Job, DateTime<Utc>)>,
    /// Jobs to delete (`Replace` policy, history limits), with propagation Background.
    pub delete: Vec<Arc<Job>>,
    pub events: Vec<CronEvent>,
    pub requeue_after: Option<Duration>,
}

fn name_of(j: &Job) -> &str {
    j.metadata.name.as_deref().unwrap_or("")
}

fn job_condition_true(j: &Job, t: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
}

/// The Job's name for a scheduled time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp().div_euclid(60))
}

/// kube's `mostRecentScheduleTime`: the latest schedule time in (earliest, now], with the
/// number of them; `earliest` is lastScheduleTime or the creation time, moved up to
/// `now - startingDeadlineSeconds` when that is later.
pub fn most_recent(
    cj: &CronJob,
    sched: &Schedule,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, u64) {
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map_or(created, |t| t.0);
    if let Some(sds) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds) {
        let deadline = now - chrono::Duration::seconds(sds);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let mut count = 0u64;
    let mut last = None;
    let mut t = earliest;
    while let Some(n) = sched.next(t) {
        if n > now {
            break;
        }
        count += 1;
        last = Some(n);
        t = n;
        // Beyond this, counting changes nothing but the number in the warning: jump to the
        // last day, where the most recent time is.
        if count == MAX_MISSED_START_TIMES * 10 {
            t = t.max(now - chrono::Duration::days(1));
        }
    }
    (last, count)
}

/// How long until the schedule's next time after `now` (plus kube's 100 ms).
pub fn next_in(sched: &Schedule, now: DateTime<Utc>) -> Option<Duration> {
    let next = sched.next(now)?;
    Some((next - now).to_std().unwrap_or(Duration::ZERO) + NEXT_SCHEDULE_DELTA)
}

fn reference(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// The Job a CronJob creates for `scheduled` (kube's `getJobFromTemplate2`).
pub fn job_for(cj: &CronJob, scheduled: DateTime<Utc>) -> Job {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.into(),
        scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name,
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// The status after a Job was created for `scheduled`.
pub fn with_created(
    mut status: CronJobStatus,
    job: &Job,
    scheduled: DateTime<Utc>,
) -> CronJobStatus {
    status
        .active
        .get_or_insert_with(Vec::new)
        .push(reference(job));
    status.last_schedule_time = Some(Time(scheduled));
    status
}

/// Decides one sync. `jobs`: the Jobs this CronJob controls.
pub fn plan(cj: &CronJob, jobs: &[Arc<Job>], now: DateTime<Utc>) -> Plan {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut plan = Plan::default();
    let mut active = status.active.take().unwrap_or_default();

    // Active list: running Jobs we own that it misses, and finished or vanished ones it holds.
    for j in jobs {
        let listed = active.iter().any(|r| r.uid == j.metadata.uid);
        if !listed && !is_finished(j) {
            plan.events.push(warn(
                "UnexpectedJob",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    name_of(j)
                ),
            ));
            active.push(reference(j));
        }
        if listed && is_finished(j) {
            let cond = if job_condition_true(j, "Complete") {
                "Complete"
            } else {
                "Failed"
            };
            plan.events.push(normal(
                "SawCompletedJob",
                format!("Saw completed job: {}, condition: {cond}", name_of(j)),
            ));
        }
        if job_condition_true(j, "Complete") {
            if let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone()) {
                if status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| t.0 < done.0)
                {
                    status.last_successful_time = Some(done);
                }
            }
        }
    }
    active.retain(|r| {
        jobs.iter()
            .find(|j| j.metadata.uid == r.uid)
            .is_some_and(|j| !is_finished(j))
    });
    status.active = (!active.is_empty()).then_some(active.clone());
    plan.status = status;

    if cj.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    plan.delete = history_to_delete(cj, jobs);
    if let Some(tz) = spec.time_zone.as_deref() {
        if !matches!(
            tz,
            "UTC" | "Etc/UTC" | "Etc/Universal" | "Universal" | "Zulu" | "Etc/Zulu"
        ) {
            plan.events.push(warn(
                "UnknownTimeZone",
                format!("invalid timeZone: {tz:?}: time zones other than UTC are not supported"),
            ));
            return plan;
        }
    }
    if spec.suspend == Some(true) {
        return plan;
    }
    let sched = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            plan.events.push(warn(
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
            return plan;
        }
    };
    plan.requeue_after = next_in(&sched, now);
    let (scheduled, missed) = most_recent(cj, &sched, now);
    if missed > MAX_MISSED_START_TIMES {
        plan.events.push(warn(
            "TooManyMissedTimes",
            format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
        ));
    }
    let Some(scheduled) = scheduled else {
        return plan;
    };
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled + chrono::Duration::seconds(sds) < now {
            plan.events.push(warn(
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled.format("%a, %d %b %Y %H:%M:%S %z")
                ),
            ));
            return plan;
        }
    }
    let name = job_name(cj.metadata.name.as_deref().unwrap_or(""), scheduled);
    if jobs.iter().any(|j| name_of(j) == name) {
        // Already started for this time.
        return plan;
    }
    match spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            plan.events.push(normal(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return plan;
        }
        "Replace" => {
            for r in &active {
                if let Some(j) = jobs.iter().find(|j| j.metadata.uid == r.uid) {
                    plan.delete.push(j.clone());
                }
            }
            plan.status.active = None;
        }
        _ => {}
    }
    plan.create = Some((job_for(cj, scheduled), scheduled));
    plan
}

/// Finished Jobs beyond `successfulJobsHistoryLimit` (default 3) and `failedJobsHistoryLimit`
/// (default 1), oldest first (by start time, then creation).
fn history_to_delete(cj: &CronJob, jobs: &[Arc<Job>]) -> Vec<Arc<Job>> {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (want_complete, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut of_kind: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| is_finished(j) && job_condition_true(j, "Complete") == want_complete)
            .collect();
        of_kind.sort_by_key(|j| {
            (
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0),
                j.metadata.creation_timestamp.as_ref().map(|t| t.0),
                name_of(j).to_string(),
            )
        });
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        let excess = of_kind.len().saturating_sub(keep);
        out.extend(of_kind.into_iter().take(excess).cloned());
    }
    out
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
