//! Table tests after kube's `cronjob_controllerv2_test.go` (`TestControllerV2SyncCronJob`,
//! `TestControllerV2CleanupFinishedJobs`, `TestMostRecentScheduleTime`).

use super::*;
use k8s_openapi::api::batch::v1::{CronJobSpec, JobCondition, JobStatus, JobTemplateSpec};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn cron(schedule: &str, created: &str) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("tick".into()),
            namespace: Some("ns".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(t(created))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), "tick".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(Default::default()),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn job(name: &str, uid: &str, finished: Option<&str>, started: &str) -> Arc<Job> {
    Arc::new(Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: None,
        status: Some(JobStatus {
            start_time: Some(Time(t(started))),
            completion_time: (finished == Some("Complete")).then(|| Time(t(started))),
            conditions: finished.map(|c| {
                vec![JobCondition {
                    type_: c.into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn active_ref(j: &Job) -> ObjectReference {
    reference(j)
}

#[test]
fn a_due_schedule_creates_its_job_named_by_minutes() {
    let cj = cron("*/1 * * * *", "2024-05-01T10:00:30Z");
    let p = plan(&cj, &[], t("2024-05-01T10:01:10Z"));
    let (job, at) = p.create.expect("a job");
    assert_eq!(at, t("2024-05-01T10:01:00Z"));
    assert_eq!(
        job.metadata.name.as_deref(),
        Some(format!("tick-{}", at.timestamp() / 60).as_str())
    );
    assert_eq!(
        job.metadata.annotations.as_ref().expect("a")[SCHEDULED_TIMESTAMP_ANNOTATION],
        "2024-05-01T10:01:00Z"
    );
    assert_eq!(job.metadata.labels.as_ref().expect("l")["app"], "tick");
    let owner = &job.metadata.owner_references.as_ref().expect("o")[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("CronJob", Some(true), Some(true))
    );
    // Look again at the next minute (plus kube's 100 ms).
    assert_eq!(p.requeue_after, Some(Duration::from_millis(50_100)));
    let status = with_created(p.status, &job, at);
    assert_eq!(status.last_schedule_time, Some(Time(at)));
    assert_eq!(status.active.map(|a| a.len()), Some(1));
}

#[test]
fn nothing_due_waits_for_the_next_time() {
    let cj = cron("0 * * * *", "2024-05-01T10:00:30Z");
    let p = plan(&cj, &[], t("2024-05-01T10:30:00Z"));
    assert!(p.create.is_none());
    assert_eq!(
        p.requeue_after,
        Some(Duration::from_secs(1800) + NEXT_SCHEDULE_DELTA)
    );
}

#[test]
fn a_time_already_started_is_not_started_again() {
    let cj = cron("*/1 * * * *", "2024-05-01T10:00:30Z");
    let name = job_name("tick", t("2024-05-01T10:01:00Z"));
    let p = plan(
        &cj,
        &[job(&name, "j1", None, "2024-05-01T10:01:00Z")],
        t("2024-05-01T10:01:10Z"),
    );
    assert!(p.create.is_none());
    // It was missing from the active list: adopted into it, with kube's warning.
    assert_eq!(p.status.active.map(|a| a.len()), Some(1));
    assert_eq!(p.events[0].reason, "UnexpectedJob");
}

#[test]
fn concurrency_policies() {
    let running = job("tick-1", "j1", None, "2024-05-01T09:00:00Z");
    let mut cj = cron("*/1 * * * *", "2024-05-01T10:00:30Z");
    cj.status = Some(CronJobStatus {
        active: Some(vec![active_ref(&running)]),
        ..Default::default()
    });
    let now = t("2024-05-01T10:01:10Z");
    // Allow: another one.
    let p = plan(&cj, std::slice::from_ref(&running), now);
    assert!(p.create.is_some());
    assert!(p.delete.is_empty());
    // Forbid: none, with an Event.
    cj.spec.as_mut().expect("spec").concurrency_policy = Some("Forbid".into());
    let p = plan(&cj, std::slice::from_ref(&running), now);
    assert!(p.create.is_none());
    assert_eq!(p.events.last().map(|e| e.reason), Some("JobAlreadyActive"));
    // Replace: the running one goes, a new one comes.
    cj.spec.as_mut().expect("spec").concurrency_policy = Some("Replace".into());
    let p = plan(&cj, &[running], now);
    assert!(p.create.is_some());
    assert_eq!(
        p.delete.iter().map(|j| name_of(j)).collect::<Vec<_>>(),
        ["tick-1"]
    );
    assert!(p.status.active.is_none());
}

#[test]
fn suspended_and_unparseable_cronjobs_start_nothing() {
    let mut cj = cron("*/1 * * * *", "2024-05-01T10:00:30Z");
    cj.spec.as_mut().expect("spec").suspend = Some(true);
    let p = plan(&cj, &[], t("2024-05-01T10:05:00Z"));
    assert!(p.create.is_none() && p.requeue_after.is_none());
    let cj = cron("61 * * * *", "2024-05-01T10:00:30Z");
    let p = plan(&cj, &[], t("2024-05-01T10:05:00Z"));
    assert!(p.create.is_none());
    assert_eq!(p.events[0].reason, "UnparseableSchedule");
}

#[test]
fn starting_deadline_misses_and_too_many_missed_times() {
    // Created long ago, never run: more than 100 missed minutes → warning, latest time started.
    let cj = cron("*/1 * * * *", "2024-05-01T00:00:00Z");
    let now = t("2024-05-01T10:00:30Z");
    let p = plan(&cj, &[], now);
    assert_eq!(p.events[0].reason, "TooManyMissedTimes");
    assert_eq!(
        p.create.as_ref().map(|c| c.1),
        Some(t("2024-05-01T10:00:00Z"))
    );
    // A starting deadline narrows the window: no warning.
    let mut cj2 = cj.clone();
    cj2.spec.as_mut().expect("spec").starting_deadline_seconds = Some(200);
    let p = plan(&cj2, &[], now);
    assert!(p.events.is_empty());
    assert!(p.create.is_some());
    // The last schedule time is further back than the deadline allows: missed.
    let mut cj3 = cron("0 * * * *", "2024-05-01T00:00:00Z");
    cj3.spec.as_mut().expect("spec").starting_deadline_seconds = Some(10);
    let (recent, _) = most_recent(&cj3, &Schedule::parse("0 * * * *").expect("p"), now);
    assert_eq!(recent, None, "10 s window holds no hourly time at 10:00:30");
    let mut cj4 = cron("0 * * * *", "2024-05-01T00:00:00Z");
    cj4.status = Some(CronJobStatus {
        last_schedule_time: Some(Time(t("2024-05-01T09:00:00Z"))),
        ..Default::default()
    });
    cj4.spec.as_mut().expect("spec").starting_deadline_seconds = Some(40);
    let p = plan(&cj4, &[], t("2024-05-01T10:00:20Z"));
    assert!(p.create.is_some(), "within the deadline");
}

#[test]
fn finished_jobs_leave_active_and_history_is_trimmed() {
    let done: Vec<Arc<Job>> = (0..5)
        .map(|i| {
            job(
                &format!("tick-{i}"),
                &format!("u{i}"),
                Some("Complete"),
                &format!("2024-05-01T0{i}:00:00Z"),
            )
        })
        .collect();
    let failed: Vec<Arc<Job>> = (5..8)
        .map(|i| {
            job(
                &format!("tick-{i}"),
                &format!("u{i}"),
                Some("Failed"),
                &format!("2024-05-01T0{i}:00:00Z"),
            )
        })
        .collect();
    let mut cj = cron("0 0 1 1 *", "2024-05-01T00:00:00Z");
    cj.status = Some(CronJobStatus {
        active: Some(vec![active_ref(&done[4])]),
        ..Default::default()
    });
    let all: Vec<Arc<Job>> = done.iter().chain(failed.iter()).cloned().collect();
    let p = plan(&cj, &all, t("2024-05-01T09:00:00Z"));
    assert!(p.status.active.is_none());
    assert_eq!(p.events[0].reason, "SawCompletedJob");
    assert_eq!(
        p.status.last_successful_time,
        Some(Time(t("2024-05-01T04:00:00Z")))
    );
    let mut deleted: Vec<&str> = p.delete.iter().map(|j| name_of(j)).collect();
    deleted.sort();
    assert_eq!(deleted, ["tick-0", "tick-1", "tick-5", "tick-6"]);
}
