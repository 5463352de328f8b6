//! Table tests of the StatefulSet controller's decisions, after kube's
//! `stateful_set_control_test.go` (scale up and down under both pod management policies, failed
//! pods, rolling updates with a partition, OnDelete, history) and `stateful_set_utils_test.go`
//! (names, identity, storage, revisions, status completion).

use super::*;
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSetOrdinals, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PodCondition, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

/// A pod name's parent and ordinal.
type Parsed = (&'static str, Option<i32>);
/// A table row: what it is about, the pods, and the writes wanted.
type Case = (&'static str, Vec<Arc<Pod>>, Vec<String>);
/// A table row with its own set.
type SetCase = (&'static str, StatefulSet, Vec<Arc<Pod>>, Vec<String>);

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time")
}

fn now() -> DateTime<Utc> {
    at(1000)
}

fn app_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), "web".to_string())])
}

fn set(replicas: i32, image: &str) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("set-uid".into()),
            generation: Some(2),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            selector: LabelSelector {
                match_labels: Some(app_labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(app_labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "nginx".into(),
                        image: Some(image.into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            pod_management_policy: Some("OrderedReady".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    max_unavailable: None,
                }),
            }),
            revision_history_limit: Some(10),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn parallel(mut s: StatefulSet) -> StatefulSet {
    s.spec.as_mut().expect("spec").pod_management_policy = Some("Parallel".into());
    s
}

fn with_partition(mut s: StatefulSet, p: i32) -> StatefulSet {
    s.spec.as_mut().expect("spec").update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateStatefulSetStrategy {
            partition: Some(p),
            max_unavailable: None,
        }),
    });
    s
}

fn on_delete(mut s: StatefulSet) -> StatefulSet {
    s.spec.as_mut().expect("spec").update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    s
}

fn with_current(mut s: StatefulSet, current: &ControllerRevision) -> StatefulSet {
    s.status = Some(StatefulSetStatus {
        current_revision: current.metadata.name.clone(),
        ..StatefulSetStatus::default()
    });
    s
}

fn rev(s: &StatefulSet, n: i64) -> ControllerRevision {
    super::new_revision(s, n, 0).expect("revision")
}

fn name_of(r: &ControllerRevision) -> String {
    r.metadata.name.clone().expect("name")
}

/// A pod of `s` at ordinal `o` and revision `r`, in `phase`, Ready since `ready` if given.
fn pod_at(
    s: &StatefulSet,
    r: &ControllerRevision,
    o: i32,
    phase: &str,
    ready: Option<i64>,
) -> Arc<Pod> {
    let template = revision_template(r).expect("template");
    let mut p = new_pod(s, &template, o, &name_of(r));
    p.metadata.uid = Some(format!("uid-{o}"));
    p.status = Some(PodStatus {
        phase: Some(phase.into()),
        conditions: ready.map(|t| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(at(t))),
                ..PodCondition::default()
            }]
        }),
        ..PodStatus::default()
    });
    Arc::new(p)
}

fn ready(s: &StatefulSet, r: &ControllerRevision, o: i32) -> Arc<Pod> {
    pod_at(s, r, o, "Running", Some(0))
}

fn terminating(p: Arc<Pod>) -> Arc<Pod> {
    let mut p = (*p).clone();
    p.metadata.deletion_timestamp = Some(Time(at(999)));
    Arc::new(p)
}

/// The plan's writes as short strings: `create web-1@<rev>`, `delete web-2`, `relabel web-0`,
/// and `update web-2` for the rolling update's deletion.
fn writes(p: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for a in p.replicas.iter().chain(&p.condemned) {
        out.push(match a {
            Action::Create(pod) => format!("create {}@{}", a.pod_name(), pod_revision(pod)),
            Action::Delete { .. } => format!("delete {}", a.pod_name()),
            Action::Relabel { .. } => format!("relabel {}", a.pod_name()),
        });
    }
    if let Some(pod) = &p.update {
        out.push(format!(
            "update {}",
            pod.metadata.name.as_deref().unwrap_or("")
        ));
    }
    out
}

fn plan_of(
    s: &StatefulSet,
    pods: &[Arc<Pod>],
    current: &ControllerRevision,
    update: &ControllerRevision,
) -> Plan {
    plan(s, pods, current, update, 0, now()).expect("plan")
}

#[test]
fn pod_names_give_parent_and_ordinal() {
    let cases: &[(&str, Option<Parsed>)] = &[
        ("web-0", Some(("web", Some(0)))),
        ("web-12", Some(("web", Some(12)))),
        ("my-web-3", Some(("my-web", Some(3)))),
        ("web-1-2", Some(("web-1", Some(2)))),
        ("web-99999999999", Some(("web", None))),
        ("web", None),
        ("web-", None),
        ("web-a1", None),
        ("web-1a", None),
    ];
    for (name, want) in cases {
        assert_eq!(parent_and_ordinal(name), *want, "{name}");
    }
}

#[test]
fn new_pods_carry_the_identity_and_the_revision() {
    let mut s = set(3, "nginx:1");
    s.spec.as_mut().unwrap().volume_claim_templates = Some(vec![PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("www".into()),
            ..ObjectMeta::default()
        },
        ..PersistentVolumeClaim::default()
    }]);
    let r = rev(&s, 1);
    let p = pod_at(&s, &r, 2, "Pending", None);
    assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("ns"));
    let l = labels(&p.metadata);
    assert_eq!(l["app"], "web");
    assert_eq!(l[POD_NAME_LABEL], "web-2");
    assert_eq!(l[POD_INDEX_LABEL], "2");
    assert_eq!(l[POD_REVISION_LABEL], name_of(&r));
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-2"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vols = spec.volumes.as_ref().unwrap();
    assert_eq!(vols[0].name, "www");
    assert_eq!(
        vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-2"
    );
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("apps/v1", "StatefulSet", "web", "set-uid")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert!(identity_matches(&s, &p));
    assert!(storage_matches(&s, &p));

    let mut other = (*p).clone();
    other
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(POD_NAME_LABEL);
    assert!(!identity_matches(&s, &other));
    other.spec.as_mut().unwrap().volumes = None;
    assert!(!storage_matches(&s, &other));
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_in_order() {
    let s = set(3, "nginx:1");
    let r = rev(&s, 1);
    let cases: Vec<Case> = vec![
        (
            "nothing yet",
            vec![],
            vec![format!("create web-0@{}", name_of(&r))],
        ),
        (
            "web-0 pending",
            vec![pod_at(&s, &r, 0, "Pending", None)],
            vec![],
        ),
        (
            "web-0 running, not ready",
            vec![pod_at(&s, &r, 0, "Running", None)],
            vec![],
        ),
        (
            "web-0 ready",
            vec![ready(&s, &r, 0)],
            vec![format!("create web-1@{}", name_of(&r))],
        ),
        (
            "web-1 missing between ready pods",
            vec![ready(&s, &r, 0), ready(&s, &r, 2)],
            vec![format!("create web-1@{}", name_of(&r))],
        ),
        (
            "all ready",
            vec![ready(&s, &r, 0), ready(&s, &r, 1), ready(&s, &r, 2)],
            vec![],
        ),
        (
            "web-0 terminating blocks",
            vec![terminating(ready(&s, &r, 0))],
            vec![],
        ),
    ];
    for (what, pods, want) in cases {
        assert_eq!(writes(&plan_of(&s, &pods, &r, &r)), want, "{what}");
    }
}

#[test]
fn parallel_creates_and_deletes_all_at_once() {
    let s = parallel(set(3, "nginx:1"));
    let r = rev(&s, 1);
    let n = name_of(&r);
    let p = plan_of(&s, &[], &r, &r);
    assert!(!p.monotonic);
    assert_eq!(
        writes(&p),
        [
            format!("create web-0@{n}"),
            format!("create web-1@{n}"),
            format!("create web-2@{n}")
        ]
    );
    // A pending pod does not block the others.
    let p = plan_of(&s, &[pod_at(&s, &r, 0, "Pending", None)], &r, &r);
    assert_eq!(
        writes(&p),
        [format!("create web-1@{n}"), format!("create web-2@{n}")]
    );
    // Scale down: every condemned pod at once, even unready ones.
    let s1 = parallel(set(1, "nginx:1"));
    let pods = vec![
        ready(&s1, &r, 0),
        pod_at(&s1, &r, 1, "Pending", None),
        ready(&s1, &r, 2),
    ];
    assert_eq!(
        writes(&plan_of(&s1, &pods, &r, &r)),
        ["delete web-2", "delete web-1"]
    );
}

#[test]
fn ordered_ready_scales_down_from_the_highest_ordinal() {
    let s = set(2, "nginx:1");
    let r = rev(&s, 1);
    let all = |n: i32| (0..n).map(|o| ready(&s, &r, o)).collect::<Vec<_>>();
    assert_eq!(writes(&plan_of(&s, &all(4), &r, &r)), ["delete web-3"]);
    // The highest is going: wait for it.
    let mut pods = all(3);
    pods.push(terminating(ready(&s, &r, 3)));
    assert_eq!(writes(&plan_of(&s, &pods, &r, &r)), Vec::<String>::new());
    // A replica that is not ready blocks the scale down.
    let pods = vec![
        ready(&s, &r, 0),
        pod_at(&s, &r, 1, "Running", None),
        ready(&s, &r, 2),
    ];
    assert!(writes(&plan_of(&s, &pods, &r, &r)).is_empty());
    // An unready condemned pod is deleted only when it is the first unavailable one.
    let pods = vec![
        ready(&s, &r, 0),
        ready(&s, &r, 1),
        ready(&s, &r, 2),
        pod_at(&s, &r, 3, "Pending", None),
    ];
    assert_eq!(writes(&plan_of(&s, &pods, &r, &r)), ["delete web-3"]);
    let pods = vec![
        ready(&s, &r, 0),
        ready(&s, &r, 1),
        pod_at(&s, &r, 2, "Pending", None),
        pod_at(&s, &r, 3, "Pending", None),
    ];
    assert!(writes(&plan_of(&s, &pods, &r, &r)).is_empty());
    // To zero.
    let s0 = set(0, "nginx:1");
    assert_eq!(writes(&plan_of(&s0, &all(2), &r, &r)), ["delete web-1"]);
}

#[test]
fn failed_pods_are_deleted_and_created_again_once_gone() {
    let s = set(3, "nginx:1");
    let r = rev(&s, 1);
    let n = name_of(&r);
    let failed = pod_at(&s, &r, 1, "Failed", None);
    let pods = vec![ready(&s, &r, 0), failed.clone(), ready(&s, &r, 2)];
    let p = plan_of(&s, &pods, &r, &r);
    assert_eq!(writes(&p), ["delete web-1"]);
    assert!(matches!(
        p.replicas[0],
        Action::Delete {
            reason: DeleteReason::Recreate,
            ..
        }
    ));
    // Being deleted: wait.
    let pods = vec![ready(&s, &r, 0), terminating(failed), ready(&s, &r, 2)];
    assert!(writes(&plan_of(&s, &pods, &r, &r)).is_empty());
    // Gone: created again under its name.
    let pods = vec![ready(&s, &r, 0), ready(&s, &r, 2)];
    assert_eq!(
        writes(&plan_of(&s, &pods, &r, &r)),
        [format!("create web-1@{n}")]
    );
    // Succeeded pods too; under Parallel the others go on.
    let sp = parallel(set(3, "nginx:1"));
    let pods = vec![pod_at(&sp, &r, 0, "Succeeded", None)];
    assert_eq!(
        writes(&plan_of(&sp, &pods, &r, &r)),
        [
            "delete web-0".to_string(),
            format!("create web-1@{n}"),
            format!("create web-2@{n}")
        ]
    );
}

#[test]
fn identity_is_fixed_by_relabeling() {
    let s = set(2, "nginx:1");
    let r = rev(&s, 1);
    let mut p0 = (*ready(&s, &r, 0)).clone();
    p0.metadata.labels.as_mut().unwrap().remove(POD_NAME_LABEL);
    let p = plan_of(&s, &[Arc::new(p0), ready(&s, &r, 1)], &r, &r);
    assert_eq!(writes(&p), ["relabel web-0"]);
    let Action::Relabel { labels, .. } = &p.replicas[0] else {
        panic!("not a relabel")
    };
    assert_eq!(labels, &identity_labels("web-0", 0));
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let old = set(3, "nginx:1");
    let r1 = rev(&old, 1);
    let new = with_current(set(3, "nginx:2"), &r1);
    let r2 = rev(&new, 2);
    let cases: Vec<SetCase> = vec![
        (
            "all old",
            new.clone(),
            vec![
                ready(&old, &r1, 0),
                ready(&old, &r1, 1),
                ready(&old, &r1, 2),
            ],
            vec!["update web-2".into()],
        ),
        (
            "web-2 deleted: wait for it",
            new.clone(),
            vec![
                ready(&old, &r1, 0),
                ready(&old, &r1, 1),
                terminating(ready(&old, &r1, 2)),
            ],
            vec![],
        ),
        (
            "web-2 gone: created at the update revision",
            new.clone(),
            vec![ready(&old, &r1, 0), ready(&old, &r1, 1)],
            vec![format!("create web-2@{}", name_of(&r2))],
        ),
        (
            "web-2 updated but not ready",
            new.clone(),
            vec![
                ready(&old, &r1, 0),
                ready(&old, &r1, 1),
                pod_at(&new, &r2, 2, "Running", None),
            ],
            vec![],
        ),
        (
            "web-2 updated and ready",
            new.clone(),
            vec![
                ready(&old, &r1, 0),
                ready(&old, &r1, 1),
                ready(&new, &r2, 2),
            ],
            vec!["update web-1".into()],
        ),
        (
            "partition 1 stops above web-0",
            with_partition(new.clone(), 1),
            vec![
                ready(&old, &r1, 0),
                ready(&new, &r2, 1),
                ready(&new, &r2, 2),
            ],
            vec![],
        ),
        (
            "partition 1: a missing web-0 is created at the current revision",
            with_partition(new.clone(), 1),
            vec![ready(&new, &r2, 1), ready(&new, &r2, 2)],
            vec![format!("create web-0@{}", name_of(&r1))],
        ),
        (
            "partition beyond the replicas updates nothing",
            with_partition(new.clone(), 5),
            vec![
                ready(&old, &r1, 0),
                ready(&old, &r1, 1),
                ready(&old, &r1, 2),
            ],
            vec![],
        ),
        (
            "OnDelete updates nothing",
            on_delete(new.clone()),
            vec![
                ready(&old, &r1, 0),
                ready(&old, &r1, 1),
                ready(&old, &r1, 2),
            ],
            vec![],
        ),
        (
            "OnDelete creates deleted pods at the update revision",
            on_delete(new.clone()),
            vec![ready(&old, &r1, 0), ready(&old, &r1, 2)],
            vec![format!("create web-1@{}", name_of(&r2))],
        ),
        (
            "scaling comes before updating",
            new.clone(),
            vec![
                ready(&old, &r1, 0),
                ready(&old, &r1, 1),
                ready(&old, &r1, 2),
                ready(&old, &r1, 3),
            ],
            vec!["delete web-3".into()],
        ),
    ];
    for (what, s, pods, want) in cases {
        assert_eq!(writes(&plan_of(&s, &pods, &r1, &r2)), want, "{what}");
    }
}

#[test]
fn min_ready_seconds_holds_creation_and_asks_for_a_later_sync() {
    let mut s = set(2, "nginx:1");
    s.spec.as_mut().unwrap().min_ready_seconds = Some(30);
    let r = rev(&s, 1);
    // Ready at 990, now is 1000: not available for 20 more seconds.
    let p = plan_of(&s, &[pod_at(&s, &r, 0, "Running", Some(990))], &r, &r);
    assert!(writes(&p).is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));
    assert_eq!(p.status.ready_replicas, Some(1));
    assert_eq!(p.status.available_replicas, Some(0));
    let p = plan_of(&s, &[pod_at(&s, &r, 0, "Running", Some(900))], &r, &r);
    assert_eq!(writes(&p), [format!("create web-1@{}", name_of(&r))]);
}

#[test]
fn ordinals_start_where_the_spec_says() {
    let mut s = set(2, "nginx:1");
    s.spec.as_mut().unwrap().ordinals = Some(StatefulSetOrdinals { start: Some(5) });
    let r = rev(&s, 1);
    let n = name_of(&r);
    assert_eq!(
        writes(&plan_of(&s, &[], &r, &r)),
        [format!("create web-5@{n}")]
    );
    let pods = vec![ready(&s, &r, 5), ready(&s, &r, 6), ready(&s, &r, 0)];
    assert_eq!(writes(&plan_of(&s, &pods, &r, &r)), ["delete web-0"]);
    // The partition counts from the start ordinal.
    let mut sp = with_partition(s.clone(), 1);
    sp.spec.as_mut().unwrap().ordinals = Some(StatefulSetOrdinals { start: Some(5) });
    assert!(uses_current_revision(&sp, 5));
    assert!(!uses_current_revision(&sp, 6));
}

#[test]
fn status_counts_and_completes_the_rollout() {
    let old = set(3, "nginx:1");
    let r1 = rev(&old, 1);
    let new = with_current(set(3, "nginx:2"), &r1);
    let r2 = rev(&new, 2);
    let pods = vec![
        ready(&old, &r1, 0),
        pod_at(&new, &r2, 1, "Running", None),
        ready(&new, &r2, 2),
        terminating(ready(&old, &r1, 4)),
    ];
    let p = plan(&new, &pods, &r1, &r2, 3, now()).expect("plan");
    let st = &p.status;
    assert_eq!(st.replicas, 4);
    assert_eq!(st.ready_replicas, Some(3));
    assert_eq!(st.available_replicas, Some(3));
    assert_eq!(
        st.current_replicas,
        Some(1),
        "terminating pods are neither current nor updated"
    );
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(st.observed_generation, Some(2));
    assert_eq!(st.collision_count, Some(3));
    assert_eq!(st.current_revision.as_deref(), Some(name_of(&r1).as_str()));
    assert_eq!(st.update_revision.as_deref(), Some(name_of(&r2).as_str()));
    let done = finish_status(&new, st, true);
    assert_eq!(done.current_replicas, Some(0));
    assert_eq!(done.current_revision, st.current_revision);

    // Every replica updated and ready: the update revision becomes current.
    let pods: Vec<_> = (0..3).map(|o| ready(&new, &r2, o)).collect();
    let p = plan_of(&new, &pods, &r1, &r2);
    assert!(writes(&p).is_empty());
    let done = finish_status(&new, &p.status, false);
    assert_eq!(done.current_revision, done.update_revision);
    assert_eq!(done.current_replicas, Some(3));
    // Not under OnDelete.
    let od = on_delete(new.clone());
    let done = finish_status(&od, &plan_of(&od, &pods, &r1, &r2).status, false);
    assert_eq!(
        done.current_revision.as_deref(),
        Some(name_of(&r1).as_str())
    );
}

#[test]
fn status_is_written_only_when_it_changed() {
    let s = set(1, "nginx:1");
    let r = rev(&s, 1);
    let st = finish_status(&s, &plan_of(&s, &[ready(&s, &r, 0)], &r, &r).status, false);
    assert!(status_changed(&s, &st));
    let mut written = s.clone();
    written.status = Some(st.clone());
    assert!(!status_changed(&written, &st));
    let mut other = st.clone();
    other.ready_replicas = Some(0);
    assert!(status_changed(&written, &other));
    let mut other = st.clone();
    other.collision_count = Some(1);
    assert!(status_changed(&written, &other));

    let patch = status_patch(&StatefulSetStatus {
        replicas: 0,
        ready_replicas: Some(0),
        observed_generation: Some(2),
        collision_count: Some(0),
        ..StatefulSetStatus::default()
    });
    assert_eq!(patch["status"]["readyReplicas"], Value::Null);
    assert_eq!(patch["status"]["replicas"], json!(0));
    assert_eq!(patch["status"]["availableReplicas"], json!(0));
    assert_eq!(patch["status"]["collisionCount"], json!(0));
    assert_eq!(patch["status"]["observedGeneration"], json!(2));
}

#[test]
fn the_update_revision_is_found_created_or_brought_back() {
    let s1 = set(3, "nginx:1");
    let s2 = set(3, "nginx:2");
    // No history: a new revision 1.
    match update_revision(&s1, &[], 0).expect("revision") {
        UpdateRevision::Create(r) => {
            assert_eq!(r.revision, 1);
            assert!(r.metadata.name.as_deref().unwrap().starts_with("web-"));
            assert_eq!(labels(&r.metadata)["app"], "web");
        }
        other => panic!("{other:?}"),
    }
    let (r1, r2) = (rev(&s1, 1), rev(&s2, 2));
    let history = vec![r1.clone(), r2.clone()];
    // The latest holds the template.
    assert!(matches!(
        update_revision(&s2, &history, 0),
        Ok(UpdateRevision::Latest(1))
    ));
    // A rollback: the old revision becomes the latest, under its name.
    match update_revision(&s1, &history, 0).expect("revision") {
        UpdateRevision::Bump { index, revision } => assert_eq!((index, revision), (0, 3)),
        other => panic!("{other:?}"),
    }
    // A new template: revision 3.
    match update_revision(&set(3, "nginx:3"), &history, 0).expect("revision") {
        UpdateRevision::Create(r) => assert_eq!(r.revision, 3),
        other => panic!("{other:?}"),
    }
    // The set's template and the revision's round-trip.
    assert_eq!(
        revision_template(&r2).expect("template"),
        s2.spec.as_ref().unwrap().template
    );
    // A name collision renames by the collision count; the data stays.
    let moved = renamed(&r1, "web", 1);
    assert_ne!(moved.metadata.name, r1.metadata.name);
    assert_eq!(moved.data, r1.data);
    assert_eq!(renamed(&r1, "web", 0).metadata.name, r1.metadata.name);
}

#[test]
fn the_current_revision_is_the_status_one_else_the_update_one() {
    let s1 = set(3, "nginx:1");
    let (r1, r2) = (rev(&s1, 1), rev(&set(3, "nginx:2"), 2));
    let history = vec![r1.clone(), r2.clone()];
    assert_eq!(
        current_revision(&s1, &history, &r2).metadata.name,
        r2.metadata.name
    );
    let s = with_current(s1, &r1);
    assert_eq!(
        current_revision(&s, &history, &r2).metadata.name,
        r1.metadata.name
    );
}

#[test]
fn history_keeps_the_limit_and_every_live_revision() {
    let revs: Vec<ControllerRevision> = (1..=6)
        .map(|n| rev(&set(1, &format!("nginx:{n}")), n))
        .collect();
    let names: Vec<String> = revs.iter().map(name_of).collect();
    let mut s = set(1, "nginx:6");
    s.spec.as_mut().unwrap().revision_history_limit = Some(2);
    // A pod still at revision 1 keeps it.
    let pods = vec![ready(&s, &revs[0], 0)];
    let gone = history_to_delete(&s, &pods, &revs, &names[4], &names[5]);
    assert_eq!(gone, [names[1].clone()]);
    s.spec.as_mut().unwrap().revision_history_limit = Some(10);
    assert!(history_to_delete(&s, &pods, &revs, &names[4], &names[5]).is_empty());
    s.spec.as_mut().unwrap().revision_history_limit = Some(0);
    assert_eq!(
        history_to_delete(&s, &[], &revs, &names[5], &names[5]),
        names[..5].to_vec()
    );
}

#[test]
fn claims_own_adopt_release_and_ignore() {
    let s = set(3, "nginx:1");
    let r = rev(&s, 1);
    let sel = crate::util::pod::selector(&s.spec.as_ref().unwrap().selector).expect("selector");
    let owned = ready(&s, &r, 0);
    let orphan = {
        let mut p = (*ready(&s, &r, 1)).clone();
        p.metadata.owner_references = None;
        Arc::new(p)
    };
    let orphan_going = terminating(orphan.clone());
    let unmatched = {
        let mut p = (*ready(&s, &r, 2)).clone();
        p.metadata.labels = Some(BTreeMap::from([("app".into(), "other".into())]));
        Arc::new(p)
    };
    let not_member = {
        let mut p = (*orphan).clone();
        p.metadata.name = Some("db-0".into());
        Arc::new(p)
    };
    let foreign = {
        let mut p = (*ready(&s, &r, 2)).clone();
        p.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into();
        Arc::new(p)
    };
    let failed = pod_at(&s, &r, 2, "Failed", None);
    let c = claim_pods(
        &s,
        &sel,
        &[
            owned.clone(),
            orphan.clone(),
            orphan_going,
            unmatched.clone(),
            not_member,
            foreign,
            failed.clone(),
        ],
    );
    let names = |v: &[Arc<Pod>]| {
        v.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&c.owned[..]),
        ["web-0", "web-2"],
        "failed pods stay claimed"
    );
    assert_eq!(names(&c.adopt[..]), ["web-1"]);
    assert_eq!(names(&c.release[..]), ["web-2"]);

    let p = adopt_patch(&s, Some("uid-1"));
    assert_eq!(p["metadata"]["uid"], "uid-1");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    let p = release_patch(&s, &unmatched);
    assert_eq!(p["metadata"]["ownerReferences"][0]["$patch"], "delete");
    assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "set-uid");
}

#[test]
fn revisions_of_the_set_are_its_own_and_orphans() {
    let s = set(1, "nginx:1");
    let sel = crate::util::pod::selector(&s.spec.as_ref().unwrap().selector).expect("selector");
    let mine = rev(&s, 2);
    let mut orphan = rev(&set(1, "nginx:0"), 1);
    orphan.metadata.owner_references = None;
    let mut foreign = rev(&set(1, "nginx:9"), 3);
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into();
    let all: Vec<Arc<ControllerRevision>> = vec![
        Arc::new(mine.clone()),
        Arc::new(foreign),
        Arc::new(orphan.clone()),
    ];
    let revs = set_revisions(&s, &sel, &all);
    assert_eq!(
        revs.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [1, 2],
        "sorted, the foreign one left out"
    );
    assert_eq!(orphan_revisions(&revs), [0]);
}

#[test]
fn events_read_as_kube_writes_them() {
    assert_eq!(
        pod_event("create", "web-0", "web", None),
        (
            "SuccessfulCreate".to_string(),
            "create Pod web-0 in StatefulSet web successful".to_string()
        )
    );
    assert_eq!(
        pod_event("delete", "web-1", "web", Some("forbidden")),
        (
            "FailedDelete".to_string(),
            "delete Pod web-1 in StatefulSet web failed error: forbidden".to_string()
        )
    );
}

#[test]
fn a_set_being_deleted_only_reports() {
    let mut s = set(3, "nginx:1");
    s.metadata.deletion_timestamp = Some(Time(at(1)));
    let r = rev(&s, 1);
    let p = plan_of(&s, &[ready(&s, &r, 0)], &r, &r);
    assert!(p.is_empty());
    assert_eq!(p.status.replicas, 1);
}
