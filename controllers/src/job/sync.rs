//! The Job controller's decisions (kube 1.32's `syncJob`, `manageJob` and
//! `trackJobStatusAndRemoveFinalizers`), as one pure function of the Job, its pods and the
//! time: which pods to create (and with which completion index), which to delete, from which to
//! remove the `batch.kubernetes.io/job-tracking` finalizer, the status to write, the Events, and
//! when to look again.
//!
//! Counting is kube's finalizer-based tracking, spread over syncs so that every step is
//! level-triggered: a finished pod that still has the finalizer is first recorded in
//! `status.uncountedTerminatedPods` (or, for a succeeded pod of an Indexed Job, in
//! `status.completedIndexes`) by this sync's status write; only after that write are the
//! finalizers removed; once the watch shows a recorded pod without the finalizer (or gone), a
//! later sync moves its UID from the uncounted lists into `succeeded`/`failed`. A pod is thus
//! counted exactly once, whatever crashes in between.
//!
//! Terminal conditions are delayed as in 1.32: `SuccessCriteriaMet` / `FailureTarget` first
//! (remaining pods are deleted), `Complete` / `Failed` once no pod is active or terminating
//! and nothing is left uncounted.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

use crate::util::pod::{is_pod_ready, PHASE_FAILED, PHASE_SUCCEEDED};

/// The finalizer every pod of a Job carries until the Job counted it.
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation (and, since 1.28, label) with an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable an Indexed Job's containers get.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// kube's `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
pub const POD_FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(360);
/// kube's `MaxPodCreateDeletePerSync`.
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// kube's `MaxUncountedPods`: at most this many UIDs are recorded per status write.
pub const MAX_UNCOUNTED_PODS: usize = 500;

pub const COND_COMPLETE: &str = "Complete";
pub const COND_FAILED: &str = "Failed";
pub const COND_SUSPENDED: &str = "Suspended";
pub const COND_SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const COND_FAILURE_TARGET: &str = "FailureTarget";

pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF_LIMIT_EXCEEDED: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE_EXCEEDED: &str = "Job was active longer than specified deadline";
pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const MESSAGE_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";

/// An Event to record about the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl JobEvent {
    fn normal(reason: &'static str, message: &str) -> Self {
        JobEvent {
            warning: false,
            reason,
            message: message.into(),
        }
    }
}

/// What one sync does.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Pods to create: `Some(index)` for an Indexed Job, `None` otherwise.
    pub create: Vec<Option<i32>>,
    /// Active pods to delete.
    pub delete: Vec<Arc<Pod>>,
    /// Pods whose tracking finalizer goes, after `status` is written.
    pub remove_finalizer: Vec<Arc<Pod>>,
    /// The status to write (compare with the Job's to know whether to write it).
    pub status: JobStatus,
    pub events: Vec<JobEvent>,
    /// Sync again after this long (backoff, deadline).
    pub requeue_after: Option<Duration>,
}

/// True for a NonIndexed (default) Job.
fn is_indexed(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.completion_mode.as_deref())
        .is_some_and(|m| m == "Indexed")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == JOB_TRACKING_FINALIZER))
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// kube's `isPodFailed` with podReplacementPolicy TerminatingOrFailed: Failed, or deleted
/// before it succeeded (a pod that will never report its end counts as failed).
pub fn is_failed(pod: &Pod) -> bool {
    phase(pod) == PHASE_FAILED
        || (pod.metadata.deletion_timestamp.is_some() && phase(pod) != PHASE_SUCCEEDED)
}

pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == PHASE_SUCCEEDED
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), PHASE_SUCCEEDED | PHASE_FAILED)
}

/// Not finished and not being deleted.
fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Being deleted but not yet terminal (status.terminating).
fn is_terminating(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_some()
}

/// The completion index of an Indexed Job's pod (annotation first, then label), if valid.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let from = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.and_then(|m| m.get(COMPLETION_INDEX))
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|i| *i >= 0)
    };
    from(pod.metadata.annotations.as_ref()).or_else(|| from(pod.metadata.labels.as_ref()))
}

/// When the pod finished (kube's `getFinishedTime`): the last container's finishedAt, else the
/// deletion timestamp, else the Ready condition's last transition, else its start or creation
/// — always a time read from the pod, so that the backoff it starts does not move.
fn finished_at(pod: &Pod) -> Option<DateTime<Utc>> {
    let containers = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    containers
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| {
            crate::util::pod::ready_condition(pod)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
        })
        .or_else(|| pod.status.as_ref()?.start_time.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Sets of completion indexes as kube writes them in `status.completedIndexes`: "1,3-5,7".
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        out.push(match last - first {
            0 => first.to_string(),
            _ => format!("{first}-{last}"),
        });
    }
    out.join(",")
}

/// Parses `status.completedIndexes`, keeping indexes below `completions` (kube drops others).
pub fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for i in a.max(0)..=b.min(completions - 1) {
                set.insert(i);
            }
        }
    }
    set
}

fn condition_true<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The Job has a terminal condition (kube's `IsJobFinished`).
pub fn is_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(|s| {
        condition_true(s, COND_COMPLETE).is_some() || condition_true(s, COND_FAILED).is_some()
    })
}

/// When the Job finished (the terminal condition's lastTransitionTime), if it did.
pub fn finished_time(job: &Job) -> Option<DateTime<Utc>> {
    let s = job.status.as_ref()?;
    condition_true(s, COND_COMPLETE)
        .or_else(|| condition_true(s, COND_FAILED))?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// kube's `ensureJobConditionStatus`: sets an existing condition's status (with a new
/// transition time), or adds it when it is True; true when something changed.
fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> bool {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status
            || c.reason.as_deref() != Some(reason)
            || c.message.as_deref() != Some(message)
        {
            let transition = c.status != status;
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_probe_time = Some(Time(now));
            if transition {
                c.last_transition_time = Some(Time(now));
            }
            return true;
        }
        return false;
    }
    if status == "True" {
        conditions.push(new_condition(type_, status, reason, message, now));
        return true;
    }
    false
}

/// The delay before a new pod may be created after `failures` failures since the last success,
/// the last at `last_failure` (kube's `backoffRecord.getRemainingTime`).
pub fn remaining_backoff(
    failures: u32,
    last_failure: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Duration {
    let Some(last) = last_failure else {
        return Duration::ZERO;
    };
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    let backoff = POD_FAILURE_BACKOFF
        .checked_mul(factor)
        .unwrap_or(POD_FAILURE_BACKOFF_MAX)
        .min(POD_FAILURE_BACKOFF_MAX);
    let elapsed = (now - last).to_std().unwrap_or(Duration::ZERO);
    backoff.saturating_sub(elapsed)
}

/// Failures after the last success among finished pods, and the last failure's time.
fn backoff_record(pods: &[Arc<Pod>], now: DateTime<Utc>) -> (u32, Option<DateTime<Utc>>) {
    let last_success = pods
        .iter()
        .filter(|p| is_succeeded(p))
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<DateTime<Utc>> = pods
        .iter()
        .filter(|p| is_failed(p))
        .map(|p| finished_at(p).unwrap_or(now))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    (
        u32::try_from(failures.len()).unwrap_or(u32::MAX),
        failures.iter().max().copied(),
    )
}

/// Order in which active pods are deleted first (kube's `controller.ActivePods` ranking):
/// unscheduled, then pending, then not ready, then the newest.
fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<Option<DateTime<Utc>>>) {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let running = phase(pod) == "Running";
    (
        u8::from(scheduled),
        u8::from(running),
        u8::from(is_pod_ready(pod)),
        std::cmp::Reverse(pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    )
}

fn i32_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The restart counts of active pods, for restartPolicy OnFailure (kube's
/// `pastBackoffLimitOnFailure`).
fn past_backoff_limit_on_failure(job: &Job, active: &[&Arc<Pod>]) -> bool {
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
    let restarts: i64 = active
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| i64::from(c.restart_count))
        .sum();
    limit == 0 || restarts >= i64::from(limit)
}

/// Decides one sync of `job`, given the pods it controls (its controller reference).
/// `satisfied`: the watch has shown the effect of the previous sync's creates and deletes
/// (kube's expectations); when it has not, no pod is created or deleted, but the status is
/// still brought up to date.
pub fn plan(job: &Job, pods: &[Arc<Pod>], now: DateTime<Utc>, satisfied: bool) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut plan = Plan::default();
    let indexed = is_indexed(job);
    let mut conditions = status.conditions.take().unwrap_or_default();

    // A finished Job only lets go of its pods.
    if is_finished(job) {
        plan.remove_finalizer = pods
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .cloned()
            .collect();
        plan.delete = pods.iter().filter(|p| is_active(p)).cloned().collect();
        status.conditions = Some(conditions);
        plan.status = status;
        return plan;
    }

    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let completions = spec.completions;
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let suspended = spec.suspend == Some(true);

    // Counting: uncounted UIDs whose pods lost the finalizer (or are gone) move to the counters.
    let mut uncounted = status.uncounted_terminated_pods.take().unwrap_or_default();
    let by_uid: std::collections::HashMap<&str, &Arc<Pod>> =
        pods.iter().map(|p| (uid(p), p)).collect();
    let still_tracked = |u: &String| {
        by_uid
            .get(u.as_str())
            .is_some_and(|p| has_tracking_finalizer(p))
    };
    let mut succeeded_uids: Vec<String> = uncounted.succeeded.take().unwrap_or_default();
    let mut failed_uids: Vec<String> = uncounted.failed.take().unwrap_or_default();
    let moved_s = succeeded_uids.iter().filter(|u| !still_tracked(u)).count();
    let moved_f = failed_uids.iter().filter(|u| !still_tracked(u)).count();
    succeeded_uids.retain(|u| still_tracked(u));
    failed_uids.retain(|u| still_tracked(u));
    let mut succeeded = status.succeeded.unwrap_or(0) + i32_of(moved_s);
    let failed = status.failed.unwrap_or(0) + i32_of(moved_f);

    // Newly finished pods with the finalizer are recorded now.
    let completions_for_index = completions.unwrap_or(0);
    let mut completed_indexes = if indexed {
        parse_indexes(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions_for_index,
        )
    } else {
        BTreeSet::new()
    };
    let known: HashSet<String> = succeeded_uids
        .iter()
        .chain(failed_uids.iter())
        .cloned()
        .collect();
    let mut recorded = 0usize;
    for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
        let u = uid(p).to_string();
        if known.contains(&u) {
            plan.remove_finalizer.push(p.clone());
            continue;
        }
        if is_succeeded(p) {
            if indexed {
                // An Indexed Job records the index, not the UID.
                if let Some(i) = completion_index(p).filter(|i| *i < completions_for_index) {
                    completed_indexes.insert(i);
                }
                plan.remove_finalizer.push(p.clone());
                continue;
            }
            if recorded >= MAX_UNCOUNTED_PODS {
                continue;
            }
            recorded += 1;
            succeeded_uids.push(u);
            plan.remove_finalizer.push(p.clone());
        } else if is_failed(p) {
            if recorded >= MAX_UNCOUNTED_PODS {
                continue;
            }
            recorded += 1;
            failed_uids.push(u);
            plan.remove_finalizer.push(p.clone());
        }
    }
    if indexed {
        succeeded = i32_of(completed_indexes.len());
        status.completed_indexes = Some(format_indexes(&completed_indexes));
    }
    let uncounted_succeeded = i32_of(succeeded_uids.len());
    let uncounted_failed = i32_of(failed_uids.len());
    let nothing_uncounted = succeeded_uids.is_empty() && failed_uids.is_empty();
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: (!succeeded_uids.is_empty()).then_some(succeeded_uids),
        failed: (!failed_uids.is_empty()).then_some(failed_uids),
    });
    // Decisions count what is recorded, counted or not.
    let succeeded_all = succeeded + if indexed { 0 } else { uncounted_succeeded };
    let failed_all = failed + uncounted_failed;

    let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_active(p)).collect();
    let terminating = i32_of(pods.iter().filter(|p| is_terminating(p)).count());

    // Suspension and start time.
    if suspended {
        if ensure_condition(
            &mut conditions,
            COND_SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            plan.events
                .push(JobEvent::normal("Suspended", "Job suspended"));
        }
    } else if ensure_condition(
        &mut conditions,
        COND_SUSPENDED,
        "False",
        "JobResumed",
        "Job resumed",
        now,
    ) {
        plan.events.push(JobEvent::normal("Resumed", "Job resumed"));
        // The deadline counts continuous activity: a resumed Job starts again.
        status.start_time = Some(Time(now));
    }
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }

    // Has the Job reached a verdict (already, or now)?
    let has = |c: &[JobCondition], t: &str| c.iter().any(|x| x.type_ == t && x.status == "True");
    let mut failure_target = has(&conditions, COND_FAILURE_TARGET);
    let mut success = has(&conditions, COND_SUCCESS_CRITERIA_MET);
    if !failure_target && !success {
        let deadline = spec.active_deadline_seconds.and_then(|d| {
            let start = status.start_time.as_ref()?.0;
            Some(start + chrono::Duration::seconds(d))
        });
        let verdict = if failed_all > backoff_limit || past_backoff_limit_on_failure(job, &active) {
            Some((
                REASON_BACKOFF_LIMIT_EXCEEDED,
                MESSAGE_BACKOFF_LIMIT_EXCEEDED,
            ))
        } else if !suspended && deadline.is_some_and(|d| now >= d) {
            Some((REASON_DEADLINE_EXCEEDED, MESSAGE_DEADLINE_EXCEEDED))
        } else {
            if let Some(d) = deadline.filter(|_| !suspended) {
                plan.requeue_after = (d - now).to_std().ok();
            }
            None
        };
        if let Some((reason, message)) = verdict {
            conditions.push(new_condition(
                COND_FAILURE_TARGET,
                "True",
                reason,
                message,
                now,
            ));
            failure_target = true;
        } else {
            let complete = match completions {
                None => succeeded_all > 0 && active.is_empty(),
                Some(c) => succeeded_all >= c && active.is_empty(),
            };
            if complete {
                conditions.push(new_condition(
                    COND_SUCCESS_CRITERIA_MET,
                    "True",
                    REASON_COMPLETIONS_REACHED,
                    MESSAGE_COMPLETIONS_REACHED,
                    now,
                ));
                success = true;
            }
        }
    }

    if failure_target || success {
        // No new pods; the remaining ones go; the terminal condition waits for all to end.
        plan.delete = active.iter().map(|p| (*p).clone()).collect();
        let all_ended = active.is_empty() && terminating == 0 && nothing_uncounted;
        if all_ended {
            let (type_, reason, message) = match conditions.iter().find(|c| {
                (c.type_ == COND_FAILURE_TARGET || c.type_ == COND_SUCCESS_CRITERIA_MET)
                    && c.status == "True"
            }) {
                Some(c) if c.type_ == COND_FAILURE_TARGET => (
                    COND_FAILED,
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                ),
                _ => (
                    COND_COMPLETE,
                    REASON_COMPLETIONS_REACHED.to_string(),
                    MESSAGE_COMPLETIONS_REACHED.to_string(),
                ),
            };
            conditions.push(new_condition(type_, "True", &reason, &message, now));
            if type_ == COND_COMPLETE {
                status.completion_time = Some(Time(now));
                plan.events
                    .push(JobEvent::normal("Completed", "Job completed"));
            } else {
                let reason: &'static str = if reason == REASON_DEADLINE_EXCEEDED {
                    REASON_DEADLINE_EXCEEDED
                } else {
                    REASON_BACKOFF_LIMIT_EXCEEDED
                };
                plan.events.push(JobEvent {
                    warning: true,
                    reason,
                    message,
                });
            }
        }
        plan.requeue_after = None;
    } else if suspended {
        plan.delete = active.iter().map(|p| (*p).clone()).collect();
    } else {
        manage(
            job,
            &spec,
            &active,
            pods,
            indexed,
            &completed_indexes,
            succeeded_all,
            parallelism,
            now,
            &mut plan,
        );
    }
    if !satisfied {
        plan.create.clear();
        plan.delete.clear();
    }
    plan.delete.sort_by_key(|p| deletion_rank(p));
    plan.delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);

    let deleting: HashSet<&str> = plan.delete.iter().map(|p| uid(p)).collect();
    let active_after = active.iter().filter(|p| !deleting.contains(uid(p))).count();
    status.active = Some(i32_of(active_after));
    status.ready = Some(i32_of(active.iter().filter(|p| is_pod_ready(p)).count()));
    status.terminating = Some(terminating + i32_of(plan.delete.len()));
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    plan.status = status;
    plan
}

/// kube's `manageJob`: how many active pods the Job wants, and which to create or delete.
#[allow(clippy::too_many_arguments)]
fn manage(
    job: &Job,
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    active: &[&Arc<Pod>],
    pods: &[Arc<Pod>],
    indexed: bool,
    completed: &BTreeSet<i32>,
    succeeded: i32,
    parallelism: i32,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let _ = job;
    let active_n = i32_of(active.len());
    let want = match (spec.completions, indexed) {
        (None, _) if succeeded > 0 => active_n,
        (None, _) => parallelism,
        (Some(c), _) => parallelism.min((c - succeeded).max(0)),
    };
    let mut keep: Vec<&Arc<Pod>> = active.to_vec();
    if indexed {
        // Pods without a valid index, with an index already completed, or a duplicate go.
        let completions = spec.completions.unwrap_or(0);
        let mut seen = BTreeSet::new();
        keep.sort_by_key(|p| std::cmp::Reverse(deletion_rank(p)));
        keep.retain(|p| {
            let ok = completion_index(p)
                .filter(|i| *i < completions && !completed.contains(i))
                .is_some_and(|i| seen.insert(i));
            if !ok {
                plan.delete.push((*p).clone());
            }
            ok
        });
    }
    let kept = i32_of(keep.len());
    if kept > want {
        keep.sort_by_key(|p| deletion_rank(p));
        let excess = usize::try_from(kept - want).unwrap_or(0);
        plan.delete
            .extend(keep.iter().take(excess).map(|p| (*p).clone()));
        return;
    }
    if kept == want {
        return;
    }
    let (failures, last) = backoff_record(pods, now);
    let wait = remaining_backoff(failures, last, now);
    if !wait.is_zero() {
        plan.requeue_after = Some(plan.requeue_after.map_or(wait, |r| r.min(wait)));
        return;
    }
    let missing = usize::try_from(want - kept)
        .unwrap_or(0)
        .min(MAX_POD_CREATE_DELETE_PER_SYNC);
    if indexed {
        let running: BTreeSet<i32> = keep.iter().filter_map(|p| completion_index(p)).collect();
        let completions = spec.completions.unwrap_or(0);
        plan.create = (0..completions)
            .filter(|i| !completed.contains(i) && !running.contains(i))
            .take(missing)
            .map(Some)
            .collect();
    } else {
        plan.create = vec![None; missing];
    }
}

/// The pod a Job creates (kube's `GetPodFromTemplate` plus the Job's additions): the
/// template's labels and annotations, `generateName` `<job>-` (`<job>-<index>-` for Indexed),
/// the controller reference, the tracking finalizer, and for Indexed Jobs the completion index
/// annotation, label and environment variable, and the hostname `<job>-<index>`.
pub fn pod_for(job: &Job, index: Option<i32>) -> Result<Pod, String> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .ok_or_else(|| "job has no spec".to_string())?;
    let mut meta = template.metadata.unwrap_or_default();
    let mut spec = template
        .spec
        .ok_or_else(|| "job template has no pod spec".to_string())?;
    meta.name = None;
    meta.namespace = job.metadata.namespace.clone();
    meta.generate_name = Some(match index {
        Some(i) => format!("{name}-{i}-"),
        None => format!("{name}-"),
    });
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: name.clone(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let mut finalizers = meta.finalizers.take().unwrap_or_default();
    finalizers.push(JOB_TRACKING_FINALIZER.into());
    meta.finalizers = Some(finalizers);
    if let Some(i) = index {
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), i.to_string());
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), i.to_string());
        if spec.hostname.as_deref().unwrap_or("").is_empty() {
            spec.hostname = Some(format!("{name}-{i}"));
        }
        for c in spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut())
        {
            let env = c.env.get_or_insert_with(Vec::new);
            if !env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                env.push(EnvVar {
                    name: COMPLETION_INDEX_ENV.into(),
                    value: None,
                    value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                        field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        }),
                        ..Default::default()
                    }),
                });
            }
        }
    }
    Ok(Pod {
        metadata: meta,
        spec: Some(spec),
        status: None,
    })
}

/// Whether the planned status differs from the Job's (condition times change only with
/// their content, so plain equality is right).
/// Fields Go drops when empty (`omitempty` zeros, an empty `completedIndexes`, empty
/// uncounted lists) compare as absent, so that a status read back equals the one written.
pub fn status_changed(job: &Job, status: &JobStatus) -> bool {
    normalized(&job.status.clone().unwrap_or_default()) != normalized(status)
}

fn normalized(s: &JobStatus) -> JobStatus {
    let mut s = s.clone();
    for n in [&mut s.active, &mut s.succeeded, &mut s.failed] {
        if *n == Some(0) {
            *n = None;
        }
    }
    if s.completed_indexes.as_deref() == Some("") {
        s.completed_indexes = None;
    }
    if let Some(u) = s.uncounted_terminated_pods.as_mut() {
        if u.succeeded.as_ref().is_some_and(Vec::is_empty) {
            u.succeeded = None;
        }
        if u.failed.as_ref().is_some_and(Vec::is_empty) {
            u.failed = None;
        }
    }
    if s.uncounted_terminated_pods == Some(UncountedTerminatedPods::default()) {
        s.uncounted_terminated_pods = None;
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
