//! The workload controllers end to end: a store member, an apiserver, a scheduler, a
//! controller-manager and two simulated nodes, each a process of this binary, driven by kube-rs
//! as a user would. One plane serves every scenario, run side by side so the file stays within
//! about a minute and a half (the CronJob waits for the next whole minute):
//!
//! - a Job with completions 3 and parallelism 2 completes (never more than 2 pods at once,
//!   every pod released from the tracking finalizer);
//! - a Job whose pods exit 1 (`mainstay.io/exit-code`) fails at backoffLimit 1, after kube's
//!   10 s pod-failure backoff;
//! - a CronJob `*/1 * * * *` creates its Job `<name>-<minutes>`;
//! - a Service's Endpoints and EndpointSlices follow its pods' readiness (a readiness probe
//!   delay) and a scale-up and scale-down;
//! - deleting a namespace's `default` ServiceAccount brings it back;
//! - a ReplicationController keeps its replicas (a deleted pod replaced), scales through its
//!   `scale` subresource, adopts a matching orphan and deletes the excess, and reports status.
//!
//! Needs the apiserver to serve Job, CronJob, ServiceAccount and EndpointSlice.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Endpoints, Event, Namespace, Pod, ReplicationController, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use common::plane::{Plane, DEADLINE};

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

async fn event_reasons(c: &kube::Client, ns: &str, about: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(c.clone(), ns);
    events
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| e.involved_object.name.as_deref() == Some(about))
                .filter_map(|e| e.reason)
                .collect()
        })
        .unwrap_or_default()
}

async fn create_namespace(c: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a namespace");
}

fn job_spec(
    name: &str,
    completions: i32,
    parallelism: i32,
    backoff: i32,
    annotations: serde_json::Value,
) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimit": backoff,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "work", "image": "busybox"}]
                }
            }
        }
    }))
    .expect("job")
}

/// completions 3, parallelism 2: Complete, 3 succeeded, at most 2 active at once, pods
/// released from the finalizer, kube's Events.
async fn job_completes(c: kube::Client) {
    let ns = "jobs";
    create_namespace(&c, ns).await;
    let jobs: Api<Job> = Api::namespaced(c.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    jobs.create(
        &PostParams::default(),
        &job_spec("three", 3, 2, 6, json!({"mainstay.io/run-seconds": "1"})),
    )
    .await
    .expect("creating the job");
    let until = Instant::now() + DEADLINE;
    let mut most_active = 0;
    let done = loop {
        assert!(Instant::now() < until, "the job did not complete");
        let list = pods.list(&ListParams::default()).await.expect("pods");
        let active = list
            .items
            .iter()
            .filter(|p| {
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .unwrap_or("");
                phase != "Succeeded" && phase != "Failed" && p.metadata.deletion_timestamp.is_none()
            })
            .count();
        most_active = most_active.max(active);
        let job = jobs.get("three").await.expect("job");
        if condition(&job, "Complete").is_some() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(most_active <= 2, "{most_active} pods active at once");
    assert!(condition(&done, "SuccessCriteriaMet").is_some());
    let status = done.status.expect("status");
    assert_eq!(status.succeeded, Some(3));
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let uid = done.metadata.uid.expect("uid");
    let list = pods.list(&ListParams::default()).await.expect("pods");
    assert_eq!(list.items.len(), 3, "no extra pods");
    for p in &list.items {
        let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Job", uid.as_str(), Some(true))
        );
        assert!(p
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("three-")));
        assert!(
            p.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()),
            "finalizer removed from {:?}",
            p.metadata.name
        );
    }
    let reasons = event_reasons(&c, ns, "three").await;
    assert!(
        reasons.iter().filter(|r| *r == "SuccessfulCreate").count() >= 1,
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "Completed"), "{reasons:?}");
}

/// Pods exit 1; backoffLimit 1: the second failure (after the 10 s backoff) fails the Job.
async fn job_fails_at_backoff_limit(c: kube::Client) {
    let ns = "failing";
    create_namespace(&c, ns).await;
    let jobs: Api<Job> = Api::namespaced(c.clone(), ns);
    jobs.create(
        &PostParams::default(),
        &job_spec(
            "doomed",
            1,
            1,
            1,
            json!({"mainstay.io/run-seconds": "0.5", "mainstay.io/exit-code": "1"}),
        ),
    )
    .await
    .expect("creating the job");
    let failed = common::eventually("the job fails", DEADLINE, || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("doomed").await.ok()?;
            condition(&j, "Failed").map(|_| j)
        }
    })
    .await;
    let (reason, message) = condition(&failed, "Failed").expect("Failed");
    assert_eq!(reason, "BackoffLimitExceeded");
    assert_eq!(message, "Job has reached the specified backoff limit");
    assert!(condition(&failed, "FailureTarget").is_some());
    let status = failed.status.expect("status");
    assert_eq!(status.failed, Some(2));
    assert_eq!(status.active.unwrap_or(0), 0);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let list = pods.list(&ListParams::default()).await.expect("pods");
    assert_eq!(list.items.len(), 2);
    let mut created: Vec<_> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .collect();
    created.sort();
    assert!(
        created[1] - created[0] >= chrono::Duration::seconds(10),
        "the replacement waited for the backoff: {created:?}"
    );
    let reasons = event_reasons(&c, ns, "doomed").await;
    assert!(
        reasons.iter().any(|r| r == "BackoffLimitExceeded"),
        "{reasons:?}"
    );
}

/// `*/1 * * * *` creates `<name>-<minutes>` with the scheduled-timestamp annotation.
async fn cronjob_creates_its_job(c: kube::Client) {
    let ns = "cron";
    create_namespace(&c, ns).await;
    let cronjobs: Api<CronJob> = Api::namespaced(c.clone(), ns);
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "*/1 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "t", "image": "busybox"}]
            }}}}
        }
    }))
    .expect("cronjob");
    cronjobs
        .create(&PostParams::default(), &cj)
        .await
        .expect("creating the cronjob");
    let jobs: Api<Job> = Api::namespaced(c.clone(), ns);
    let job = common::eventually("the cronjob creates a job", Duration::from_secs(90), || {
        let jobs = jobs.clone();
        async move {
            jobs.list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        }
    })
    .await;
    let name = job.metadata.name.clone().expect("name");
    let minutes: i64 = name
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .expect("tick-<minutes>");
    let scheduled = &job.metadata.annotations.as_ref().expect("annotations")
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"];
    let at = chrono::DateTime::parse_from_rfc3339(scheduled).expect("RFC 3339");
    assert_eq!(at.timestamp(), minutes * 60);
    let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("CronJob", Some(true))
    );
    common::eventually("lastScheduleTime", DEADLINE, || {
        let cronjobs = cronjobs.clone();
        async move {
            let cj = cronjobs.get("tick").await.ok()?;
            cj.status?
                .last_schedule_time
                .filter(|t| t.0.timestamp() == minutes * 60)
        }
    })
    .await;
}

fn ready_ips(e: &Endpoints) -> (usize, usize) {
    e.subsets.iter().flatten().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

async fn slice_counts(slices: &Api<EndpointSlice>) -> Option<(usize, usize)> {
    let list = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .ok()?;
    let mut ready = 0;
    let mut not_ready = 0;
    for s in &list.items {
        assert_eq!(
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"))
                .map(String::as_str),
            Some("endpointslice-controller.k8s.io")
        );
        for e in &s.endpoints {
            if e.conditions.as_ref().and_then(|c| c.terminating) == Some(true) {
                continue;
            }
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                ready += 1;
            } else {
                not_ready += 1;
            }
        }
    }
    Some((ready, not_ready))
}

/// Endpoints and slices follow readiness (a 2 s readiness delay) and scaling.
async fn endpoints_follow_pods(c: kube::Client) {
    let ns = "svc";
    create_namespace(&c, ns).await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .expect("service");
    Api::<Service>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("creating the service");
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": "nginx",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 2}
                }]}
            }
        }
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
    deployments
        .create(&PostParams::default(), &deploy)
        .await
        .expect("creating the deployment");
    let endpoints: Api<Endpoints> = Api::namespaced(c.clone(), ns);
    let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), ns);

    // Not ready first (the probe's delay), then ready.
    let until = Instant::now() + DEADLINE;
    let mut saw_not_ready = false;
    loop {
        assert!(
            Instant::now() < until,
            "endpoints never showed 2 ready pods"
        );
        if let Ok(e) = endpoints.get("web").await {
            let (ready, not_ready) = ready_ips(&e);
            saw_not_ready |= not_ready > 0;
            if ready == 2 && not_ready == 0 {
                let port = &e.subsets.as_ref().expect("subsets")[0]
                    .ports
                    .as_ref()
                    .expect("ports")[0];
                assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_not_ready,
        "pods were listed as not ready during the probe delay"
    );
    common::eventually("two ready endpoints in slices", DEADLINE, || {
        let slices = slices.clone();
        async move { (slice_counts(&slices).await? == (2, 0)).then_some(()) }
    })
    .await;

    for (replicas, want) in [(3, 3), (1, 1)] {
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .expect("scaling");
        common::eventually(&format!("{want} ready addresses"), DEADLINE, || {
            let endpoints = endpoints.clone();
            async move { (ready_ips(&endpoints.get("web").await.ok()?) == (want, 0)).then_some(()) }
        })
        .await;
        common::eventually(
            &format!("{want} ready endpoints in slices"),
            DEADLINE,
            || {
                let slices = slices.clone();
                async move { (slice_counts(&slices).await? == (want, 0)).then_some(()) }
            },
        )
        .await;
    }
}

/// A new namespace gets `default`; deleted, it comes back.
async fn default_service_account_comes_back(c: kube::Client) {
    let ns = "accounts";
    create_namespace(&c, ns).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(c.clone(), ns);
    let first = common::eventually("the default service account", DEADLINE, || {
        let accounts = accounts.clone();
        async move { accounts.get("default").await.ok() }
    })
    .await;
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .expect("deleting it");
    let uid = first.metadata.uid.clone();
    common::eventually("the default service account again", DEADLINE, || {
        let accounts = accounts.clone();
        let uid = uid.clone();
        async move {
            accounts
                .get("default")
                .await
                .ok()
                .filter(|sa| sa.metadata.uid != uid)
        }
    })
    .await;
}

/// The pods `rc` controls (controller reference `v1/ReplicationController` with its uid), not
/// being deleted.
async fn rc_pods(pods: &Api<Pod>, rc: &ReplicationController) -> Vec<Pod> {
    pods.list(&ListParams::default().labels("app=rc-web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata.owner_references.iter().flatten().any(|r| {
                r.controller == Some(true)
                    && r.kind == "ReplicationController"
                    && r.api_version == "v1"
                    && Some(&r.uid) == rc.metadata.uid.as_ref()
            })
        })
        .collect()
}

/// Waits until `rc` has exactly `want` pods, all Running, and a status saying so.
async fn rc_settles(rcs: &Api<ReplicationController>, pods: &Api<Pod>, want: usize) -> Vec<Pod> {
    common::eventually(&format!("the RC at {want} running pods"), DEADLINE, || {
        let (rcs, pods) = (rcs.clone(), pods.clone());
        async move {
            let rc = rcs.get("web").await.ok()?;
            let owned = rc_pods(&pods, &rc).await;
            let running = owned
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            let status = rc.status.as_ref()?;
            let w = i32::try_from(want).ok()?;
            (owned.len() == want
                && running == want
                && status.replicas == w
                && status.ready_replicas.unwrap_or(0) == w
                && status.available_replicas.unwrap_or(0) == w
                && status.observed_generation == rc.metadata.generation)
                .then_some(owned)
        }
    })
    .await
}

async fn replication_controller_keeps_its_replicas(c: kube::Client) {
    let ns = "rcs";
    create_namespace(&c, ns).await;
    let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"app": "rc-web"},
            "template": {
                "metadata": {"labels": {"app": "rc-web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}
            }
        }
    }))
    .expect("rc");
    rcs.create(&PostParams::default(), &rc)
        .await
        .expect("creating the RC");
    let three = rc_settles(&rcs, &pods, 3).await;
    assert!(three
        .iter()
        .all(|p| p.metadata.generate_name.as_deref() == Some("web-")));

    // A deleted pod is replaced.
    let victim = three[0].metadata.name.clone().expect("name");
    pods.delete(&victim, &DeleteParams::default().grace_period(0))
        .await
        .expect("deleting a pod");
    let again = rc_settles(&rcs, &pods, 3).await;
    assert!(again
        .iter()
        .all(|p| p.metadata.name.as_deref() != Some(victim.as_str())));

    // Scale down through the scale subresource.
    rcs.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .expect("scaling the RC");
    let one = rc_settles(&rcs, &pods, 1).await;

    // An orphan that matches is adopted, and then one of the two is deleted.
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"app": "rc-web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &orphan)
        .await
        .expect("creating an orphan");
    common::eventually("the orphan adopted or deleted", DEADLINE, || {
        let pods = pods.clone();
        async move {
            match pods.get("stray").await {
                Ok(p) if p.metadata.deletion_timestamp.is_some() => Some(()),
                Ok(p) => p
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.kind == "ReplicationController")
                    .then_some(()),
                Err(_) => Some(()),
            }
        }
    })
    .await;
    let settled = rc_settles(&rcs, &pods, 1).await;
    assert_eq!(settled.len(), 1, "one pod kept of {:?} and the orphan", one);
    let reasons = event_reasons(&c, ns, "web").await;
    for want in ["SuccessfulCreate", "SuccessfulDelete"] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_controllers_end_to_end() {
    let plane = Plane::with_control_plane(2).await;
    let c = plane.client.clone();
    tokio::join!(
        job_completes(c.clone()),
        job_fails_at_backoff_limit(c.clone()),
        cronjob_creates_its_job(c.clone()),
        endpoints_follow_pods(c.clone()),
        default_service_account_comes_back(c.clone()),
        replication_controller_keeps_its_replicas(c.clone()),
    );
}
