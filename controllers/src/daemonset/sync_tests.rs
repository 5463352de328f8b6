//! Table tests of the DaemonSet controller's decisions, after kube's `daemon_controller_test.go`
//! (`TestNodeShouldRunDaemonPod`, `TestSimpleDaemonSetLaunchesPods`, `TestDaemonKillFailedPods`,
//! `TestNumberReadyStatus`, …), `update_test.go` (`TestDaemonSetUpdatesPods`,
//! `TestDaemonSetUpdatesPodsWithMaxSurge`, `TestDaemonSetUpdatesAllOldPodsNotReady`) and
//! `daemonset_util_test.go` (`TestReplaceDaemonSetPodNodeNameNodeAffinity`,
//! `TestGetTargetNodeName`).

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time")
}

/// Merges `patch` into `base` (JSON merge patch, without deletes).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// The DaemonSet `agent` (generation 2) with `patch` merged in.
fn ds_with(patch: Value) -> DaemonSet {
    let mut v = json!({
        "metadata": {
            "name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 2,
            "annotations": {TEMPLATE_GENERATION_ANNOTATION: "2"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "agent:1"}]},
            },
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10,
        },
    });
    merge(&mut v, &patch);
    serde_json::from_value(v).expect("daemonset")
}

fn ds() -> DaemonSet {
    ds_with(json!({}))
}

fn node_with(name: &str, patch: Value) -> Arc<Node> {
    let mut v = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
    merge(&mut v, &patch);
    Arc::new(serde_json::from_value(v).expect("node"))
}

fn node(name: &str) -> Arc<Node> {
    node_with(name, json!({}))
}

fn tainted(name: &str, key: &str, effect: &str) -> Arc<Node> {
    node_with(
        name,
        json!({"spec": {"taints": [{"key": key, "value": "x", "effect": effect}]}}),
    )
}

/// A daemon pod of `agent` on `node` with revision `hash`, created at `created` seconds,
/// Running and Ready since `created`.
fn pod(name: &str, node: &str, hash: &str, created: i64) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "creationTimestamp": Time(at(created)),
                "labels": {"app": "agent", POD_REVISION_LABEL: hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                     "uid": "ds-uid", "controller": true}],
            },
            "spec": {"nodeName": node, "containers": [{"name": "a"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": Time(at(created))}]},
        }))
        .expect("pod"),
    )
}

fn modified(p: &Arc<Pod>, patch: Value) -> Arc<Pod> {
    let mut v = serde_json::to_value(p.as_ref()).expect("json");
    merge(&mut v, &patch);
    Arc::new(serde_json::from_value(v).expect("pod"))
}

fn not_ready(p: &Arc<Pod>) -> Arc<Pod> {
    modified(
        p,
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    )
}

fn failed(p: &Arc<Pod>) -> Arc<Pod> {
    modified(p, json!({"status": {"phase": "Failed"}}))
}

fn deleting(p: &Arc<Pod>) -> Arc<Pod> {
    modified(p, json!({"metadata": {"deletionTimestamp": Time(at(500))}}))
}

fn names(pods: &[Arc<Pod>]) -> Vec<String> {
    let mut v: Vec<String> = pods.iter().map(|p| pod_name(p).to_string()).collect();
    v.sort();
    v
}

fn clocks() -> Clocks {
    Clocks {
        now: at(1000),
        at: Instant::now(),
    }
}

fn run_manage(ds: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>], hash: &str) -> Changes {
    let mut backoff = FailedPodBackoff::default();
    manage(
        ds,
        nodes,
        &nodes_to_pods(pods),
        hash,
        clocks(),
        &mut backoff,
    )
}

fn place(run: bool, keep: bool) -> Placement {
    Placement {
        should_run: run,
        should_continue_running: keep,
    }
}

// ------------------------------------------------------------------------------------------------
// NodeShouldRunDaemonPod
// ------------------------------------------------------------------------------------------------

#[test]
fn which_nodes_should_run_a_daemon_pod() {
    let zone_a = node_with("a", json!({"metadata": {"labels": {"zone": "a"}}}));
    let cases: Vec<(&str, DaemonSet, Arc<Node>, Placement)> = vec![
        ("plain node", ds(), node("n"), place(true, true)),
        (
            "nodeSelector matches",
            ds_with(json!({"spec": {"template": {"spec": {"nodeSelector": {"zone": "a"}}}}})),
            zone_a.clone(),
            place(true, true),
        ),
        (
            "nodeSelector does not match",
            ds_with(json!({"spec": {"template": {"spec": {"nodeSelector": {"zone": "b"}}}}})),
            zone_a.clone(),
            place(false, false),
        ),
        (
            "required affinity matches one term",
            ds_with(
                json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                ]}}}}}}}),
            ),
            zone_a.clone(),
            place(true, true),
        ),
        (
            "required affinity by field selects another node",
            ds_with(
                json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
                ]}}}}}}}),
            ),
            zone_a.clone(),
            place(false, false),
        ),
        (
            "template nodeName names another node",
            ds_with(json!({"spec": {"template": {"spec": {"nodeName": "other"}}}})),
            node("n"),
            place(false, false),
        ),
        (
            "untolerated NoSchedule: no new pod, the running one stays",
            ds(),
            tainted("n", "dedicated", "NoSchedule"),
            place(false, true),
        ),
        (
            "untolerated NoExecute: none at all",
            ds(),
            tainted("n", "dedicated", "NoExecute"),
            place(false, false),
        ),
        (
            "PreferNoSchedule is ignored",
            ds(),
            tainted("n", "dedicated", "PreferNoSchedule"),
            place(true, true),
        ),
        (
            "tolerated NoSchedule",
            ds_with(json!({"spec": {"template": {"spec": {"tolerations": [
                {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}}})),
            tainted("n", "dedicated", "NoSchedule"),
            place(true, true),
        ),
        (
            "cordoned nodes run daemons",
            ds(),
            tainted("n", TAINT_UNSCHEDULABLE, "NoSchedule"),
            place(true, true),
        ),
        (
            "not-ready NoExecute is tolerated",
            ds(),
            tainted("n", TAINT_NOT_READY, "NoExecute"),
            place(true, true),
        ),
        (
            "network-unavailable is tolerated only with hostNetwork",
            ds(),
            tainted("n", TAINT_NETWORK_UNAVAILABLE, "NoSchedule"),
            place(false, true),
        ),
        (
            "network-unavailable with hostNetwork",
            ds_with(json!({"spec": {"template": {"spec": {"hostNetwork": true}}}})),
            tainted("n", TAINT_NETWORK_UNAVAILABLE, "NoSchedule"),
            place(true, true),
        ),
    ];
    for (name, ds, node, want) in cases {
        assert_eq!(placement(&node, &ds), want, "{name}");
    }
}

#[test]
fn node_updates_matter_only_through_labels_and_taints() {
    let n = node("n");
    let heartbeat = node_with(
        "n",
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert!(!node_placement_inputs_changed(&n, &heartbeat));
    assert!(node_placement_inputs_changed(
        &n,
        &tainted("n", "k", "NoSchedule")
    ));
    assert!(node_placement_inputs_changed(
        &n,
        &node_with("n", json!({"metadata": {"labels": {"zone": "a"}}}))
    ));
    let gone = node_with("g", json!({"metadata": {"deletionTimestamp": Time(at(1))}}));
    let live = live_nodes(vec![node("b"), gone, node("a")]);
    let live: Vec<_> = live
        .iter()
        .map(|n| n.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(live, ["a", "b"]);
}

// ------------------------------------------------------------------------------------------------
// The pods
// ------------------------------------------------------------------------------------------------

#[test]
fn daemon_pods_are_pinned_tolerant_and_labelled() {
    let ds = ds_with(json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        {"key": "mine", "operator": "Exists"},
    ]}}}}));
    let pod = pod_for_node(&ds, "h1", "n1").expect("pod");
    let v = serde_json::to_value(&pod).expect("json");
    assert_eq!(v["metadata"]["generateName"], "agent-");
    assert_eq!(v["metadata"]["namespace"], "ns");
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app": "agent", "controller-revision-hash": "h1", "pod-template-generation": "2"})
    );
    assert_eq!(
        v["metadata"]["ownerReferences"],
        json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds-uid",
                "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        v["spec"]["affinity"],
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}})
    );
    // The user's not-ready toleration is replaced by the daemon one (no tolerationSeconds),
    // in place; the others are appended.
    let exists =
        |key: &str, effect: &str| json!({"key": key, "operator": "Exists", "effect": effect});
    assert_eq!(
        v["spec"]["tolerations"],
        json!([
            exists(TAINT_NOT_READY, "NoExecute"),
            {"key": "mine", "operator": "Exists"},
            exists(TAINT_UNREACHABLE, "NoExecute"),
            exists(TAINT_DISK_PRESSURE, "NoSchedule"),
            exists(TAINT_MEMORY_PRESSURE, "NoSchedule"),
            exists(TAINT_PID_PRESSURE, "NoSchedule"),
            exists(TAINT_UNSCHEDULABLE, "NoSchedule"),
        ])
    );
    assert_eq!(target_node(&pod).as_deref(), Some("n1"));

    let mut no_uid = ds.clone();
    no_uid.metadata.uid = None;
    assert!(pod_for_node(&no_uid, "h1", "n1").is_err());
}

#[test]
fn pinning_replaces_match_fields_in_every_term_or_adds_one() {
    let req = |node: &str| json!([{"key": "metadata.name", "operator": "In", "values": [node]}]);
    let cases: Vec<(&str, Option<Value>, Value)> = vec![
        (
            "no affinity",
            None,
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": req("n")}]}}}),
        ),
        (
            "pod affinity only",
            Some(json!({"podAffinity": {}})),
            json!({"podAffinity": {}, "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": req("n")}]}}}),
        ),
        (
            "preferred only",
            Some(json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}})),
            json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [],
                "requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": req("n")}]}}}),
        ),
        (
            "the required terms are replaced by the one pinning term",
            Some(
                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "Exists"}],
                     "matchFields": req("other")},
                    {"matchFields": req("old")},
                ]}}}),
            ),
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": req("n")}]}}}),
        ),
    ];
    for (name, input, want) in cases {
        let input: Option<Affinity> = input.map(|v| serde_json::from_value(v).expect("affinity"));
        let got = serde_json::to_value(pin_to_node(input, "n")).expect("json");
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn target_nodes_come_from_node_name_or_the_pinning_term() {
    let p = |spec: Value| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    };
    let fields = |values: Value| {
        json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": values}]}]}}}})
    };
    assert_eq!(
        target_node(&p(json!({"containers": [], "nodeName": "a"}))).as_deref(),
        Some("a")
    );
    assert_eq!(target_node(&p(fields(json!(["b"])))).as_deref(), Some("b"));
    assert_eq!(target_node(&p(fields(json!(["b", "c"])))), None);
    assert_eq!(target_node(&p(json!({"containers": []}))), None);
}

#[test]
fn updated_pods_carry_the_hash_or_the_generation() {
    let p = pod("p", "n", "h1", 0);
    assert!(is_pod_updated(&p, "h1", None));
    assert!(!is_pod_updated(&p, "h2", None));
    assert!(!is_pod_updated(&p, "", None));
    let with_gen = modified(
        &p,
        json!({"metadata": {"labels": {TEMPLATE_GENERATION_LABEL: "3"}}}),
    );
    assert!(is_pod_updated(&with_gen, "h2", Some(3)));
    assert!(!is_pod_updated(&with_gen, "h2", Some(4)));
}

// ------------------------------------------------------------------------------------------------
// Claiming
// ------------------------------------------------------------------------------------------------

#[test]
fn claims_adopt_matching_orphans_and_release_mismatches() {
    let ds = ds();
    let sel = crate::util::pod::selector(&ds.spec.as_ref().expect("spec").selector).expect("sel");
    let owned = pod("owned", "n", "h", 0);
    let orphan = modified(
        &pod("orphan", "n", "h", 0),
        json!({"metadata": {"ownerReferences": null}}),
    );
    let mut orphan_deleting = (*deleting(&orphan)).clone();
    orphan_deleting.metadata.name = Some("orphan-deleting".into());
    let stray = modified(
        &owned,
        json!({"metadata": {"name": "stray", "labels": {"app": "other"}}}),
    );
    let mut other = (*owned).clone();
    other.metadata.name = Some("other".into());
    other.metadata.owner_references.as_mut().expect("refs")[0].uid = "someone".into();
    let mut elsewhere = (*orphan).clone();
    elsewhere.metadata.namespace = Some("elsewhere".into());
    let all = vec![
        owned,
        orphan,
        Arc::new(orphan_deleting),
        stray,
        Arc::new(other),
        Arc::new(elsewhere),
        failed(&pod("failed", "n", "h", 0)),
    ];
    let c = claim(&ds, &sel, &all);
    assert_eq!(names(&c.owned), ["failed", "owned"]);
    assert_eq!(names(&c.adopt), ["orphan"]);
    assert_eq!(names(&c.release), ["stray"]);

    let mut gone = ds.clone();
    gone.metadata.deletion_timestamp = Some(Time(at(0)));
    let c = claim(&gone, &sel, &all);
    assert!(c.adopt.is_empty() && c.release.is_empty());
    assert_eq!(names(&c.owned), ["failed", "owned"]);
}

// ------------------------------------------------------------------------------------------------
// manage
// ------------------------------------------------------------------------------------------------

#[test]
fn manage_creates_deletes_and_prunes_as_kube() {
    let nodes = vec![
        node("a"),
        node("b"),
        tainted("c", "k", "NoSchedule"),
        tainted("d", "k", "NoExecute"),
    ];
    struct Case {
        name: &'static str,
        pods: Vec<Arc<Pod>>,
        create_on: Vec<&'static str>,
        delete: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "a pod on every eligible node",
            pods: vec![],
            create_on: vec!["a", "b"],
            delete: vec![],
        },
        Case {
            name: "NoSchedule keeps a running pod, NoExecute evicts it",
            pods: vec![pod("c1", "c", "h", 0), pod("d1", "d", "h", 0)],
            create_on: vec!["a", "b"],
            delete: vec!["d1"],
        },
        Case {
            name: "excess pods: all but the oldest",
            pods: vec![
                pod("a2", "a", "h", 20),
                pod("a1", "a", "h", 10),
                pod("a3", "a", "h", 30),
                pod("b1", "b", "h", 0),
            ],
            create_on: vec![],
            delete: vec!["a2", "a3"],
        },
        Case {
            name: "pods being deleted are waited for",
            pods: vec![deleting(&pod("a1", "a", "h", 0)), pod("b1", "b", "h", 0)],
            create_on: vec![],
            delete: vec![],
        },
        Case {
            name: "a failed pod is deleted (and recreated on a later sync)",
            pods: vec![failed(&pod("a1", "a", "h", 0)), pod("b1", "b", "h", 0)],
            create_on: vec![],
            delete: vec!["a1"],
        },
        Case {
            name: "a succeeded pod is deleted",
            pods: vec![
                modified(
                    &pod("a1", "a", "h", 0),
                    json!({"status": {"phase": "Succeeded"}}),
                ),
                pod("b1", "b", "h", 0),
            ],
            create_on: vec![],
            delete: vec!["a1"],
        },
        Case {
            name: "unscheduled pods pinned to a vanished node go",
            pods: vec![
                pod("a1", "a", "h", 0),
                pod("b1", "b", "h", 0),
                Arc::new(
                    pod_for_node(&ds(), "h", "gone")
                        .map(|mut p| {
                            p.metadata.name = Some("gone1".into());
                            p
                        })
                        .expect("pod"),
                ),
                pod("bound-to-gone", "gone2", "h", 0),
            ],
            create_on: vec![],
            delete: vec!["gone1"],
        },
    ];
    for c in cases {
        let out = run_manage(&ds(), &nodes, &c.pods, "h");
        assert_eq!(out.create_on, c.create_on, "{}: create", c.name);
        assert_eq!(names(&out.delete), c.delete, "{}: delete", c.name);
    }
}

#[test]
fn failed_pods_are_deleted_with_an_event_then_backed_off() {
    let ds = ds();
    let nodes = vec![node("a")];
    let pods = nodes_to_pods(&[failed(&pod("a1", "a", "h", 0))]);
    let mut backoff = FailedPodBackoff::default();
    let start = Instant::now();
    let clocks_at = |i: Instant| Clocks {
        now: at(1000),
        at: i,
    };

    let first = manage(&ds, &nodes, &pods, "h", clocks_at(start), &mut backoff);
    assert_eq!(names(&first.delete), ["a1"]);
    assert_eq!(
        first.events,
        [PlanEvent {
            warning: true,
            reason: FAILED_DAEMON_POD,
            message: "Found failed daemon pod ns/a1 on node a, will try to kill it".into(),
        }]
    );
    // The replacement failed too, within the second: left alone, a sync asked for later.
    let again = manage(
        &ds,
        &nodes,
        &pods,
        "h",
        clocks_at(start + Duration::from_millis(500)),
        &mut backoff,
    );
    assert!(again.delete.is_empty() && again.events.is_empty() && again.create_on.is_empty());
    assert_eq!(again.requeue_after, Some(Duration::from_secs(1)));
    // After the delay it goes, and the delay doubles.
    let later = manage(
        &ds,
        &nodes,
        &pods,
        "h",
        clocks_at(start + Duration::from_secs(2)),
        &mut backoff,
    );
    assert_eq!(names(&later.delete), ["a1"]);
    assert_eq!(
        backoff.delay(&FailedPodBackoff::key(&ds, "a")),
        Duration::from_secs(2)
    );
}

#[test]
fn the_failed_pod_backoff_doubles_to_fifteen_minutes_and_expires() {
    let mut b = FailedPodBackoff::default();
    let t0 = Instant::now();
    assert!(!b.in_backoff("k", t0));
    let mut t = t0;
    let mut delays = Vec::new();
    for _ in 0..12 {
        b.next("k", t);
        delays.push(b.delay("k").as_secs());
        t += Duration::from_secs(1);
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
    assert!(b.in_backoff("k", t));
    // Untouched for more than twice the maximum: expired, starts over, collected.
    let late = t + FAILED_POD_BACKOFF_MAX * 2 + Duration::from_secs(1);
    assert!(!b.in_backoff("k", late));
    b.gc(late);
    assert!(b.is_empty());
    b.next("k", late);
    assert_eq!(b.delay("k"), FAILED_POD_BACKOFF_INITIAL);
}

#[test]
fn creates_and_deletes_stop_at_the_burst() {
    let nodes: Vec<Arc<Node>> = (0..300).map(|i| node(&format!("n{i:03}"))).collect();
    let out = run_manage(&ds(), &nodes, &[], "h");
    assert_eq!(out.create_on.len(), BURST_REPLICAS);
}

/// (name, pods, pods deleted)
type SurgeCase = (&'static str, Vec<Arc<Pod>>, Vec<&'static str>);

#[test]
fn with_surge_manage_keeps_an_old_ready_pod_until_the_new_one_is_available() {
    let surge = ds_with(
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
    );
    let nodes = vec![node("a")];
    let old = pod("old", "a", "h0", 0);
    let new = pod("new", "a", "h1", 10);
    let cases: Vec<SurgeCase> = vec![
        (
            "new available: old goes",
            vec![old.clone(), new.clone()],
            vec!["old"],
        ),
        (
            "new not ready: both stay",
            vec![old.clone(), not_ready(&new)],
            vec![],
        ),
        (
            "old not ready: it goes",
            vec![not_ready(&old), not_ready(&new)],
            vec!["old"],
        ),
        (
            "extra pods of each kind go",
            vec![
                old.clone(),
                pod("old2", "a", "h0", 5),
                not_ready(&new),
                pod("new2", "a", "h1", 20),
            ],
            vec!["new2", "old2"],
        ),
    ];
    for (name, pods, delete) in cases {
        let out = run_manage(&surge, &nodes, &pods, "h1");
        assert_eq!(names(&out.delete), delete, "{name}");
        assert!(out.create_on.is_empty(), "{name}");
    }
    // With a surge, a pod being deleted does not hold its node: its successor starts at once.
    let out = run_manage(&surge, &nodes, &[deleting(&old)], "h1");
    assert_eq!(out.create_on, ["a"]);
    let out = run_manage(&ds(), &nodes, &[deleting(&old)], "h1");
    assert!(out.create_on.is_empty(), "without one, it is waited for");
}

// ------------------------------------------------------------------------------------------------
// rollingUpdate
// ------------------------------------------------------------------------------------------------

#[test]
fn rolling_update_without_surge_stays_within_max_unavailable() {
    let nodes: Vec<Arc<Node>> = ["a", "b", "c", "d"].iter().map(|n| node(n)).collect();
    let olds = || -> Vec<Arc<Pod>> {
        ["a", "b", "c", "d"]
            .iter()
            .map(|n| pod(&format!("{n}-old"), n, "h0", 0))
            .collect()
    };
    struct Case {
        name: &'static str,
        ds: DaemonSet,
        pods: Vec<Arc<Pod>>,
        delete: Vec<&'static str>,
    }
    let max_unavailable = |v: Value| {
        ds_with(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": v}}}}))
    };
    let cases = vec![
        Case {
            name: "one at a time",
            ds: ds(),
            pods: olds(),
            delete: vec!["a-old"],
        },
        Case {
            name: "two at a time",
            ds: max_unavailable(json!(2)),
            pods: olds(),
            delete: vec!["a-old", "b-old"],
        },
        Case {
            name: "percent rounds up: 30% of 4 is 2",
            ds: max_unavailable(json!("30%")),
            pods: olds(),
            delete: vec!["a-old", "b-old"],
        },
        Case {
            // They are not counted against maxUnavailable (kube's rule), so one available
            // old pod goes too.
            name: "unavailable old pods are replaced at once",
            ds: ds(),
            pods: vec![
                not_ready(&pod("a-old", "a", "h0", 0)),
                not_ready(&pod("b-old", "b", "h0", 0)),
                pod("c-old", "c", "h0", 0),
                pod("d-old", "d", "h0", 0),
            ],
            delete: vec!["a-old", "b-old", "c-old"],
        },
        Case {
            name: "an unavailable new pod uses up the budget",
            ds: ds(),
            pods: vec![
                not_ready(&pod("a-new", "a", "h1", 0)),
                pod("b-old", "b", "h0", 0),
                pod("c-old", "c", "h0", 0),
                pod("d-old", "d", "h0", 0),
            ],
            delete: vec![],
        },
        Case {
            name: "a node without a pod counts as unavailable",
            ds: max_unavailable(json!(2)),
            pods: vec![
                pod("b-old", "b", "h0", 0),
                pod("c-old", "c", "h0", 0),
                pod("d-old", "d", "h0", 0),
            ],
            delete: vec!["b-old"],
        },
        Case {
            name: "an available new pod frees the budget",
            ds: ds(),
            pods: vec![
                pod("a-new", "a", "h1", 0),
                pod("b-old", "b", "h0", 0),
                pod("c-old", "c", "h0", 0),
                pod("d-old", "d", "h0", 0),
            ],
            delete: vec!["b-old"],
        },
        Case {
            name: "all updated: nothing to do",
            ds: ds(),
            pods: ["a", "b", "c", "d"]
                .iter()
                .map(|n| pod(&format!("{n}-new"), n, "h1", 0))
                .collect(),
            delete: vec![],
        },
        Case {
            name: "the template generation label counts as updated",
            ds: ds(),
            pods: ["a", "b", "c", "d"]
                .iter()
                .map(|n| {
                    modified(
                        &pod(&format!("{n}-gen"), n, "h0", 0),
                        json!({"metadata": {"labels": {TEMPLATE_GENERATION_LABEL: "2"}}}),
                    )
                })
                .collect(),
            delete: vec![],
        },
    ];
    for c in cases {
        let out = rolling_update(&c.ds, &nodes, &nodes_to_pods(&c.pods), "h1", at(1000))
            .expect("rolling update");
        assert_eq!(names(&out.delete), c.delete, "{}", c.name);
        assert!(out.create_on.is_empty(), "{}", c.name);
    }
}

#[test]
fn rolling_update_respects_min_ready_seconds() {
    let ds = ds_with(json!({"spec": {"minReadySeconds": 60}}));
    let nodes = vec![node("a"), node("b")];
    // a's new pod has been ready 30 s of the 60: unavailable, so b waits.
    let pods = vec![pod("a-new", "a", "h1", 970), pod("b-old", "b", "h0", 0)];
    let out = rolling_update(&ds, &nodes, &nodes_to_pods(&pods), "h1", at(1000)).expect("ok");
    assert!(out.delete.is_empty());
    let out = rolling_update(&ds, &nodes, &nodes_to_pods(&pods), "h1", at(1031)).expect("ok");
    assert_eq!(names(&out.delete), ["b-old"]);
}

#[test]
fn rolling_update_with_surge_creates_alongside_and_deletes_when_available() {
    let surge = |v: Value| {
        ds_with(
            json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxSurge": v, "maxUnavailable": 0}}}}),
        )
    };
    let nodes: Vec<Arc<Node>> = ["a", "b", "c"].iter().map(|n| node(n)).collect();
    let olds = || -> Vec<Arc<Pod>> {
        ["a", "b", "c"]
            .iter()
            .map(|n| pod(&format!("{n}-old"), n, "h0", 0))
            .collect()
    };
    struct Case {
        name: &'static str,
        ds: DaemonSet,
        pods: Vec<Arc<Pod>>,
        create_on: Vec<&'static str>,
        delete: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "one surge pod",
            ds: surge(json!(1)),
            pods: olds(),
            create_on: vec!["a"],
            delete: vec![],
        },
        Case {
            name: "percent of 3 nodes rounds up: 50% is 2",
            ds: surge(json!("50%")),
            pods: olds(),
            create_on: vec!["a", "b"],
            delete: vec![],
        },
        Case {
            name: "an unavailable old pod gets its replacement beyond the surge",
            ds: surge(json!(1)),
            pods: vec![
                pod("a-old", "a", "h0", 0),
                not_ready(&pod("b-old", "b", "h0", 0)),
                pod("c-old", "c", "h0", 0),
            ],
            create_on: vec!["b", "a"],
            delete: vec![],
        },
        Case {
            name: "a surge pod not yet available holds the budget",
            ds: surge(json!(1)),
            pods: {
                let mut p = olds();
                p.push(not_ready(&pod("a-new", "a", "h1", 10)));
                p
            },
            create_on: vec![],
            delete: vec![],
        },
        Case {
            name: "an available surge pod retires the old one",
            ds: surge(json!(1)),
            pods: {
                let mut p = olds();
                p.push(pod("a-new", "a", "h1", 10));
                p
            },
            create_on: vec!["b"],
            delete: vec!["a-old"],
        },
    ];
    for c in cases {
        let out = rolling_update(&c.ds, &nodes, &nodes_to_pods(&c.pods), "h1", at(1000))
            .expect("rolling update");
        assert_eq!(out.create_on, c.create_on, "{}: create", c.name);
        assert_eq!(names(&out.delete), c.delete, "{}: delete", c.name);
    }
    let bad = ds_with(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxSurge": "x"}}}}));
    assert!(rolling_update(&bad, &nodes, &NodePods::new(), "h1", at(0)).is_err());
    let on_delete =
        ds_with(json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}}));
    assert!(!is_rolling_update(&on_delete));
    assert!(!allows_surge(&on_delete));
}

// ------------------------------------------------------------------------------------------------
// Status
// ------------------------------------------------------------------------------------------------

#[test]
fn status_counts_nodes_as_kube() {
    let ds = ds_with(json!({"spec": {"minReadySeconds": 10}}));
    let nodes = vec![
        node("a"),
        node("b"),
        node("c"),
        node("d"),
        tainted("e", "k", "NoSchedule"),
    ];
    let pods = vec![
        pod("a1", "a", "h1", 0),             // ready, available, updated
        pod("b1", "b", "h0", 995),           // ready 5 s: not available, old
        not_ready(&pod("c1", "c", "h1", 0)), // not ready, updated
        pod("e1", "e", "h1", 0),             // misscheduled
    ];
    let counts = count(&ds, &nodes, &nodes_to_pods(&pods), "h1", at(1000));
    assert_eq!(
        counts,
        Counts {
            desired: 4,
            current: 3,
            misscheduled: 1,
            ready: 2,
            updated: 2,
            available: 1,
            unavailable: 3,
        }
    );
    assert_eq!(
        availability_requeue(&ds, counts),
        Some(Duration::from_secs(10))
    );

    let status = next_status(None, counts, Some(2));
    let v = serde_json::to_value(&status).expect("json");
    assert_eq!(
        v,
        json!({"currentNumberScheduled": 3, "desiredNumberScheduled": 4, "numberMisscheduled": 1,
               "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 1,
               "numberUnavailable": 3, "observedGeneration": 2})
    );
    assert!(status_changed(&ds, &status));
    let mut written = ds.clone();
    written.status = Some(status.clone());
    assert!(!status_changed(&written, &status));

    // All available: numberUnavailable is omitted, as kube's omitempty; the generation is kept
    // when not observed; the collision count is kept.
    let done = Counts {
        desired: 2,
        current: 2,
        ready: 2,
        updated: 2,
        available: 2,
        ..Counts::default()
    };
    let mut with_collisions = status.clone();
    with_collisions.collision_count = Some(1);
    let next = next_status(Some(&with_collisions), done, None);
    assert_eq!(next.number_unavailable, None);
    assert_eq!(next.observed_generation, Some(2));
    assert_eq!(next.collision_count, Some(1));
    assert_eq!(availability_requeue(&ds, done), None);
}

// ------------------------------------------------------------------------------------------------
// History
// ------------------------------------------------------------------------------------------------

fn revision_of(ds: &DaemonSet, n: i64) -> Arc<ControllerRevision> {
    let mut rev = new_revision(ds, n).expect("revision");
    rev.metadata.creation_timestamp = Some(Time(at(n)));
    Arc::new(rev)
}

fn image(img: &str) -> DaemonSet {
    ds_with(json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": img}]}}}}))
}

#[test]
fn the_current_revision_holds_the_template_as_kubectl_undo_needs() {
    let ds = image("agent:1");
    let rev = new_revision(&ds, 1).expect("revision");
    let hash = template_hash(&ds);
    assert_eq!(
        rev.metadata.name.as_deref(),
        Some(format!("agent-{hash}").as_str())
    );
    assert_eq!(
        serde_json::to_value(&rev.metadata.labels).expect("json"),
        json!({"app": "agent", "controller-revision-hash": hash})
    );
    assert_eq!(rev.metadata.annotations, ds.metadata.annotations);
    assert_eq!(
        rev.metadata.owner_references.as_ref().expect("refs")[0].kind,
        "DaemonSet"
    );
    assert_eq!(
        rev.data.as_ref().expect("data").0,
        json!({"spec": {"template": {
            "metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "a", "image": "agent:1"}]},
            "$patch": "replace",
        }}})
    );
    assert!(revision_matches(&ds, &rev));
    assert!(!revision_matches(&image("agent:2"), &rev));
    // A collision count changes the hash, hence the name.
    let mut collided = ds.clone();
    collided.status = Some(DaemonSetStatus {
        collision_count: Some(1),
        ..DaemonSetStatus::default()
    });
    assert_ne!(template_hash(&collided), hash);
}

#[test]
fn history_creates_reuses_renumbers_and_dedups() {
    let v1 = image("agent:1");
    let v2 = image("agent:2");

    // No revision yet: create revision 1.
    let plan = plan_history(&v1, &[], &[]).expect("plan");
    match &plan.current {
        Current::Create(rev) => assert_eq!(rev.revision, 1),
        other => panic!("{other:?}"),
    }

    // A new template: revision 2 is created, 1 is old.
    let r1 = revision_of(&v1, 1);
    let plan = plan_history(&v2, std::slice::from_ref(&r1), &[]).expect("plan");
    match &plan.current {
        Current::Create(rev) => assert_eq!(rev.revision, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(plan.old.len(), 1);

    // The current template's revision exists and is the newest: nothing to do.
    let r2 = revision_of(&v2, 2);
    let plan = plan_history(&v2, &[r1.clone(), r2.clone()], &[]).expect("plan");
    assert!(matches!(&plan.current, Current::Existing(r) if r.revision == 2));
    assert_eq!(plan.bump_to, None);

    // Undo: the template is v1's again; revision 1 is current and becomes revision 3.
    let plan = plan_history(&v1, &[r1.clone(), r2.clone()], &[]).expect("plan");
    assert!(matches!(&plan.current, Current::Existing(r) if r.metadata.name == r1.metadata.name));
    assert_eq!(plan.bump_to, Some(3));
    assert_eq!(plan.old.len(), 1);

    // Two revisions hold v1 (say, one from an older collision count): the higher is kept, the
    // other deleted, its pods relabelled.
    let mut dup = (*revision_of(&v1, 4)).clone();
    dup.metadata.name = Some("agent-dup".into());
    dup.metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert(POD_REVISION_LABEL.into(), "dup".into());
    let dup = Arc::new(dup);
    let on_dup = pod("p-dup", "a", "dup", 0);
    let on_old = pod("p-old", "b", &revision_hash(&r2), 0);
    let plan = plan_history(
        &v1,
        &[r1.clone(), r2.clone(), dup.clone()],
        &[on_dup, on_old],
    )
    .expect("plan");
    assert!(
        matches!(&plan.current, Current::Existing(r) if r.metadata.name.as_deref() == Some("agent-dup"))
    );
    assert_eq!(plan.duplicates.len(), 1);
    assert_eq!(plan.duplicates[0].metadata.name, r1.metadata.name);
    assert!(
        plan.relabel.is_empty(),
        "no pod carries the deleted one's hash"
    );
    assert_eq!(plan.bump_to, None);

    let on_r1 = pod("p-r1", "a", &revision_hash(&r1), 0);
    let plan = plan_history(&v1, &[r1.clone(), dup], &[on_r1]).expect("plan");
    assert_eq!(names(&plan.relabel), ["p-r1"]);
    assert_eq!(
        relabel_patch("dup"),
        json!({"metadata": {"labels": {"controller-revision-hash": "dup"}}})
    );
}

#[test]
fn old_revisions_beyond_the_limit_go_oldest_first_unless_in_use() {
    let limited = |n: i32| ds_with(json!({"spec": {"revisionHistoryLimit": n}}));
    let old: Vec<Arc<ControllerRevision>> = (1..=5)
        .map(|i| revision_of(&image(&format!("agent:{i}")), i))
        .collect();
    let hash = |i: usize| revision_hash(&old[i]);
    let kill = |ds: &DaemonSet, pods: &[Arc<Pod>]| -> Vec<i64> {
        revisions_to_truncate(ds, &old, pods)
            .iter()
            .map(|r| r.revision)
            .collect()
    };
    assert_eq!(kill(&limited(10), &[]), Vec::<i64>::new());
    assert_eq!(kill(&limited(3), &[]), [1, 2]);
    assert_eq!(kill(&limited(0), &[]), [1, 2, 3, 4, 5]);
    // Revision 1 still runs somewhere: 2 and 3 go instead.
    assert_eq!(kill(&limited(3), &[pod("p", "a", &hash(0), 0)]), [2, 3]);
    let mut unlabelled = (*old[0]).clone();
    unlabelled.metadata.labels = None;
    assert_eq!(
        revision_hash(&unlabelled),
        unlabelled.metadata.name.clone().unwrap_or_default()
    );
}
