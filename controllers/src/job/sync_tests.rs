//! Table tests of the Job controller's decisions, after kube's `job_controller_test.go`
//! (`TestControllerSyncJob`, `TestTrackJobStatusAndRemoveFinalizers`, `TestPastDeadlineJobFinished`).

use super::*;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time")
}

fn job(completions: Option<i32>, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("ns".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(6),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(
                        [(
                            "batch.kubernetes.io/controller-uid".to_string(),
                            "job-uid".to_string(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Default::default()],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn indexed(mut j: Job) -> Job {
    j.spec.as_mut().expect("spec").completion_mode = Some("Indexed".into());
    j
}

fn pod(name: &str, phase: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            finalizers: Some(vec![JOB_TRACKING_FINALIZER.into()]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn finished(mut p: Pod, secs: i64) -> Pod {
    p.status.as_mut().expect("status").container_statuses = Some(vec![ContainerStatus {
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                finished_at: Some(Time(at(secs))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    p
}

fn untracked(mut p: Pod) -> Pod {
    p.metadata.finalizers = None;
    p
}

fn with_index(mut p: Pod, i: i32) -> Pod {
    p.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.into(), i.to_string());
    p
}

fn arcs(pods: Vec<Pod>) -> Vec<Arc<Pod>> {
    pods.into_iter().map(Arc::new).collect()
}

fn names(pods: &[Arc<Pod>]) -> Vec<String> {
    let mut v: Vec<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

fn cond_types(s: &JobStatus) -> Vec<String> {
    s.conditions
        .iter()
        .flatten()
        .filter(|c| c.status == "True")
        .map(|c| c.type_.clone())
        .collect()
}

#[test]
fn a_new_job_creates_min_of_parallelism_and_completions_and_starts() {
    // (completions, parallelism, pods to create)
    for (completions, parallelism, want) in [
        (Some(5), 2, 2),
        (Some(1), 3, 1),
        (None, 3, 3),
        (Some(0), 2, 0),
    ] {
        let p = plan(&job(completions, parallelism), &[], at(0), true);
        assert_eq!(
            p.create.len(),
            want,
            "completions {completions:?} parallelism {parallelism}"
        );
        assert!(p.create.iter().all(Option::is_none));
        assert_eq!(p.status.start_time, Some(Time(at(0))));
    }
}

#[test]
fn unsatisfied_expectations_create_nothing_but_update_status() {
    let p = plan(&job(Some(3), 2), &[], at(0), false);
    assert!(p.create.is_empty());
    assert_eq!(p.status.start_time, Some(Time(at(0))));
}

#[test]
fn finished_pods_are_recorded_before_their_finalizers_go_then_counted() {
    let j = job(Some(3), 2);
    let pods = arcs(vec![
        finished(pod("a", "Succeeded"), 1),
        pod("b", "Running"),
    ]);
    let p = plan(&j, &pods, at(2), true);
    let u = p
        .status
        .uncounted_terminated_pods
        .clone()
        .expect("uncounted");
    assert_eq!(u.succeeded, Some(vec!["uid-a".to_string()]));
    assert_eq!(names(&p.remove_finalizer), ["a"]);
    assert_eq!(p.status.succeeded, Some(0), "not counted until released");
    // One more pod: 3 - 1 recorded success = 2 wanted, 1 active.
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.status.active, Some(1));

    // Next sync: the finalizer is gone, the UID moves into `succeeded`.
    let mut j2 = j.clone();
    j2.status = Some(p.status.clone());
    let pods = arcs(vec![
        untracked(finished(pod("a", "Succeeded"), 1)),
        pod("b", "Running"),
        pod("c", "Pending"),
    ]);
    let p = plan(&j2, &pods, at(3), true);
    assert_eq!(p.status.succeeded, Some(1));
    assert_eq!(
        p.status.uncounted_terminated_pods,
        Some(UncountedTerminatedPods::default())
    );
    assert!(p.remove_finalizer.is_empty());
    assert!(p.create.is_empty());
    assert_eq!(p.status.active, Some(2));
}

#[test]
fn completions_reached_goes_through_success_criteria_met_to_complete() {
    let mut j = job(Some(2), 2);
    j.status = Some(JobStatus {
        succeeded: Some(1),
        start_time: Some(Time(at(0))),
        ..Default::default()
    });
    // The second success is recorded: SuccessCriteriaMet, but not Complete while uncounted.
    let pods = arcs(vec![finished(pod("b", "Succeeded"), 5)]);
    let p = plan(&j, &pods, at(6), true);
    assert_eq!(cond_types(&p.status), [COND_SUCCESS_CRITERIA_MET]);
    assert!(p.status.completion_time.is_none());
    assert!(p.events.is_empty());
    // Once counted: Complete, completionTime, the Completed Event.
    let mut j2 = j.clone();
    j2.status = Some(p.status.clone());
    let p = plan(
        &j2,
        &arcs(vec![untracked(finished(pod("b", "Succeeded"), 5))]),
        at(7),
        true,
    );
    assert_eq!(
        cond_types(&p.status),
        [COND_SUCCESS_CRITERIA_MET, COND_COMPLETE]
    );
    assert_eq!(p.status.succeeded, Some(2));
    assert_eq!(p.status.completion_time, Some(Time(at(7))));
    assert_eq!(p.events, [JobEvent::normal("Completed", "Job completed")]);
    let c = p
        .status
        .conditions
        .as_ref()
        .expect("conditions")
        .last()
        .cloned()
        .expect("complete");
    assert_eq!(c.reason.as_deref(), Some(REASON_COMPLETIONS_REACHED));
    // A finished Job does nothing more.
    let mut j3 = j2.clone();
    j3.status = Some(p.status.clone());
    assert!(is_finished(&j3));
    let p = plan(&j3, &[], at(8), true);
    assert!(p.create.is_empty() && p.events.is_empty());
    assert!(!status_changed(&j3, &p.status));
}

#[test]
fn without_completions_one_success_stops_new_pods_and_completes_when_all_ended() {
    let mut j = job(None, 2);
    j.status = Some(JobStatus {
        succeeded: Some(1),
        start_time: Some(Time(at(0))),
        ..Default::default()
    });
    let p = plan(&j, &arcs(vec![pod("b", "Running")]), at(1), true);
    assert!(p.create.is_empty(), "no new pods after a success");
    assert!(p.delete.is_empty());
    assert!(cond_types(&p.status).is_empty());
    let p = plan(&j, &[], at(2), true);
    assert_eq!(
        cond_types(&p.status),
        [COND_SUCCESS_CRITERIA_MET, COND_COMPLETE]
    );
}

#[test]
fn failures_beyond_backoff_limit_fail_the_job_after_pods_end() {
    let mut j = job(Some(1), 1);
    j.spec.as_mut().expect("spec").backoff_limit = Some(1);
    j.status = Some(JobStatus {
        failed: Some(1),
        start_time: Some(Time(at(0))),
        ..Default::default()
    });
    let pods = arcs(vec![finished(pod("b", "Failed"), 30), pod("c", "Running")]);
    let p = plan(&j, &pods, at(31), true);
    assert_eq!(cond_types(&p.status), [COND_FAILURE_TARGET]);
    assert_eq!(names(&p.delete), ["c"], "active pods go");
    assert!(p.create.is_empty());
    assert_eq!(p.status.terminating, Some(1));
    // Pods ended and counted: Failed, with the Warning Event.
    let mut j2 = j.clone();
    j2.status = Some(p.status.clone());
    let pods = arcs(vec![untracked(finished(pod("b", "Failed"), 30))]);
    let p = plan(&j2, &pods, at(32), true);
    assert_eq!(cond_types(&p.status), [COND_FAILURE_TARGET, COND_FAILED]);
    assert_eq!(p.status.failed, Some(2));
    assert_eq!(
        p.events,
        [JobEvent {
            warning: true,
            reason: REASON_BACKOFF_LIMIT_EXCEEDED,
            message: MESSAGE_BACKOFF_LIMIT_EXCEEDED.into()
        }]
    );
    assert!(p.status.completion_time.is_none());
}

#[test]
fn a_deleted_running_pod_counts_as_failed_and_terminating() {
    let j = job(Some(1), 1);
    let mut p0 = pod("a", "Running");
    p0.metadata.deletion_timestamp = Some(Time(at(1)));
    let p = plan(&j, &arcs(vec![p0]), at(2), true);
    assert_eq!(
        p.status.uncounted_terminated_pods.and_then(|u| u.failed),
        Some(vec!["uid-a".to_string()])
    );
    assert_eq!(p.status.terminating, Some(1));
    assert_eq!(names(&p.remove_finalizer), ["a"]);
}

#[test]
fn replacement_pods_wait_for_the_failure_backoff() {
    // (failures since the last success, seconds since the last failure, remaining seconds)
    for (failures, elapsed, remaining) in [
        (0, 0, 0),
        (1, 0, 10),
        (1, 4, 6),
        (2, 5, 15),
        (3, 50, 0),
        (10, 0, 360),
    ] {
        assert_eq!(
            remaining_backoff(failures, Some(at(0)), at(elapsed)),
            Duration::from_secs(remaining),
            "{failures} failures, {elapsed}s"
        );
    }
    let j = job(Some(1), 1);
    let pods = arcs(vec![untracked(finished(pod("a", "Failed"), 10))]);
    let p = plan(&j, &pods, at(14), true);
    assert!(p.create.is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(6)));
    let p = plan(&j, &pods, at(21), true);
    assert_eq!(p.create.len(), 1);
}

#[test]
fn active_deadline_fails_with_deadline_exceeded_and_is_requeued_before() {
    let mut j = job(Some(1), 1);
    j.spec.as_mut().expect("spec").active_deadline_seconds = Some(30);
    j.status = Some(JobStatus {
        start_time: Some(Time(at(0))),
        ..Default::default()
    });
    let pods = arcs(vec![pod("a", "Running")]);
    let p = plan(&j, &pods, at(10), true);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
    let p = plan(&j, &pods, at(30), true);
    assert_eq!(cond_types(&p.status), [COND_FAILURE_TARGET]);
    let c = &p.status.conditions.as_ref().expect("c")[0];
    assert_eq!(c.reason.as_deref(), Some(REASON_DEADLINE_EXCEEDED));
    assert_eq!(names(&p.delete), ["a"]);
}

#[test]
fn too_many_active_pods_are_deleted_least_ready_first() {
    let mut j = job(Some(10), 1);
    j.status = Some(JobStatus {
        start_time: Some(Time(at(0))),
        ..Default::default()
    });
    let mut running = pod("running", "Running");
    running.spec.as_mut().expect("spec").node_name = Some("n".into());
    let pending = pod("pending", "Pending");
    let p = plan(&j, &arcs(vec![running, pending]), at(1), true);
    assert_eq!(names(&p.delete), ["pending"]);
    assert_eq!(p.status.active, Some(1));
}

#[test]
fn suspend_deletes_active_pods_and_resume_restarts_the_clock() {
    let mut j = job(Some(3), 2);
    j.spec.as_mut().expect("spec").suspend = Some(true);
    let p = plan(&j, &arcs(vec![pod("a", "Running")]), at(1), true);
    assert_eq!(names(&p.delete), ["a"]);
    assert!(p.create.is_empty());
    assert_eq!(cond_types(&p.status), [COND_SUSPENDED]);
    assert_eq!(p.events, [JobEvent::normal("Suspended", "Job suspended")]);
    assert!(p.status.start_time.is_none());
    let mut resumed = j.clone();
    resumed.spec.as_mut().expect("spec").suspend = Some(false);
    resumed.status = Some(p.status.clone());
    let p = plan(&resumed, &[], at(9), true);
    assert_eq!(p.events, [JobEvent::normal("Resumed", "Job resumed")]);
    assert_eq!(p.status.start_time, Some(Time(at(9))));
    assert_eq!(p.create.len(), 2);
}

#[test]
fn indexed_jobs_create_missing_indexes_and_record_completed_ones() {
    let j = indexed(job(Some(4), 2));
    let p = plan(&j, &[], at(0), true);
    assert_eq!(p.create, [Some(0), Some(1)]);
    // Index 0 succeeded, 1 running, a duplicate of 1 and a stray index 9 go.
    let pods = arcs(vec![
        with_index(finished(pod("a", "Succeeded"), 1), 0),
        with_index(pod("b", "Running"), 1),
        with_index(pod("b2", "Pending"), 1),
        with_index(pod("z", "Running"), 9),
    ]);
    let p = plan(&j, &pods, at(2), true);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(p.status.succeeded, Some(1));
    assert_eq!(names(&p.remove_finalizer), ["a"]);
    assert_eq!(names(&p.delete), ["b2", "z"]);
    assert_eq!(p.create, [Some(2)]);
}

#[test]
fn completed_indexes_format_and_parse_as_kube() {
    for (set, text) in [
        (vec![], ""),
        (vec![0], "0"),
        (vec![0, 1, 2, 4, 6, 7], "0-2,4,6-7"),
    ] {
        let s: BTreeSet<i32> = set.into_iter().collect();
        assert_eq!(format_indexes(&s), text);
        assert_eq!(parse_indexes(text, 10), s);
    }
    assert_eq!(parse_indexes("1-3,8", 3), [1, 2].into_iter().collect());
}

#[test]
fn pods_carry_owner_finalizer_and_index() {
    let j = indexed(job(Some(2), 1));
    let p = pod_for(&j, Some(1)).expect("pod");
    assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-1-"));
    let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("Job", Some(true), Some(true))
    );
    assert_eq!(
        p.metadata.finalizers,
        Some(vec![JOB_TRACKING_FINALIZER.to_string()])
    );
    assert_eq!(
        p.metadata.annotations.as_ref().expect("a")[COMPLETION_INDEX],
        "1"
    );
    assert_eq!(
        p.metadata.labels.as_ref().expect("l")[COMPLETION_INDEX],
        "1"
    );
    assert_eq!(
        p.spec.as_ref().expect("spec").hostname.as_deref(),
        Some("pi-1")
    );
    let plain = pod_for(&job(Some(1), 1), None).expect("pod");
    assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
    assert!(plain.metadata.annotations.is_none());
}

#[test]
fn status_comparison_ignores_what_go_omits() {
    let mut j = job(Some(1), 1);
    j.status = Some(JobStatus::default());
    let s = JobStatus {
        active: Some(0),
        uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
        ..Default::default()
    };
    assert!(!status_changed(&j, &s));
    let s = JobStatus {
        active: Some(1),
        ..Default::default()
    };
    assert!(status_changed(&j, &s));
}
