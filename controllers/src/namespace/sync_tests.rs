use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResourceList, Time};
use serde_json::json;

use super::*;

fn list(v: serde_json::Value) -> APIResourceList {
    serde_json::from_value(v).expect("an APIResourceList")
}

fn resource(name: &str, kind: &str, namespaced: bool, verbs: &[&str]) -> serde_json::Value {
    json!({"name": name, "singularName": "", "kind": kind, "namespaced": namespaced, "verbs": verbs})
}

const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn target(group: &str, resource: &str) -> Target {
    Target {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        kind: String::new(),
        delete_collection: true,
    }
}

fn time(secs: i64) -> Time {
    Time(chrono::DateTime::from_timestamp(secs, 0).expect("a time"))
}

#[test]
fn only_namespaced_listable_deletable_resources_are_emptied() {
    let core = list(json!({"groupVersion": "v1", "resources": [
        resource("pods", "Pod", true, ALL),
        resource("pods/status", "Pod", true, &["get", "patch", "update"]),
        resource("pods/binding", "Binding", true, &["create"]),
        resource("namespaces", "Namespace", false, &["create", "delete", "get", "list"]),
        resource("nodes", "Node", false, ALL),
        resource("events", "Event", true, ALL),
        resource("bindings", "Binding", true, &["create"]),
        resource("legacy", "Legacy", true, &["delete", "list"]),
    ]}));
    let apps = list(json!({"groupVersion": "apps/v1", "resources": [
        resource("deployments", "Deployment", true, ALL),
        resource("deployments/scale", "Scale", true, &["get", "update"]),
    ]}));
    let got = deletable_resources(&[core, apps]).expect("parses");
    let names: Vec<(String, String, bool)> = got
        .iter()
        .map(|t| (t.api_version(), t.resource.clone(), t.delete_collection))
        .collect();
    assert_eq!(
        names,
        vec![
            ("v1".into(), "events".into(), true),
            ("v1".into(), "legacy".into(), false),
            ("v1".into(), "pods".into(), true),
            ("apps/v1".into(), "deployments".into(), true),
        ]
    );
    assert_eq!(got[2].kind, "Pod");
}

#[test]
fn a_bad_group_version_fails_the_set_with_kubes_message() {
    let bad = list(json!({"groupVersion": "a/b/c", "resources": [resource("xs", "X", true, ALL)]}));
    assert_eq!(
        deletable_resources(&[bad]).unwrap_err(),
        "unexpected GroupVersion string: a/b/c"
    );
    assert_eq!(parse_group_version("v1").unwrap(), ("".into(), "v1".into()));
    assert_eq!(
        parse_group_version("apps/v1").unwrap(),
        ("apps".into(), "v1".into())
    );
}

#[test]
fn pod_estimate_is_the_longest_grace_until_it_has_passed() {
    let pod = |phase: &str, grace: Option<i64>| PodGrace {
        phase: Some(phase.into()),
        grace_seconds: grace,
    };
    let pods = vec![
        pod("Running", Some(30)),
        pod("Running", Some(10)),
        pod("Succeeded", Some(600)),
        pod("Failed", Some(600)),
        pod("Pending", None),
    ];
    let s = Duration::from_secs;
    assert_eq!(pod_estimate_seconds(&pods, s(0)), 30);
    assert_eq!(pod_estimate_seconds(&pods, s(29)), 30);
    assert_eq!(pod_estimate_seconds(&pods, s(30)), 0);
    assert_eq!(pod_estimate_seconds(&[], s(0)), 0);
    assert_eq!(
        pod_estimate_seconds(&pods[2..], s(0)),
        0,
        "terminal pods do not count"
    );
}

#[test]
fn remaining_content_is_explained_by_an_estimate_or_finalizers_or_an_error() {
    let t = target("apps", "deployments");
    let fins = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Nothing left.
    assert_eq!(remaining(&t, "team", 30, &[]), (Remaining::default(), None));
    // Graceful pods: the estimate stands.
    let (r, e) = remaining(&t, "team", 30, &[vec![], vec![]]);
    assert_eq!((r.count, r.estimate_seconds, e), (2, 30, None));
    // Finalizers: kube's default 15 s.
    let (r, e) = remaining(
        &t,
        "team",
        0,
        &[
            fins(&["foregroundDeletion"]),
            fins(&["foregroundDeletion", "x/y"]),
        ],
    );
    assert_eq!(r.estimate_seconds, FINALIZER_ESTIMATE_SECONDS);
    assert_eq!(
        r.finalizers,
        BTreeMap::from([("foregroundDeletion".into(), 2), ("x/y".into(), 1)])
    );
    assert_eq!(e, None);
    // Nothing explains it.
    let (r, e) = remaining(&t, "team", 0, &[vec![]]);
    assert_eq!(r.count, 1);
    assert_eq!(
        e.as_deref(),
        Some("unexpected items still remain in namespace: team for gvr: apps/v1, Resource=deployments")
    );
}

fn condition(pass: &Pass, kind: &str) -> (String, String, String) {
    let c = desired_conditions(pass)
        .into_iter()
        .find(|c| c.0 == kind)
        .expect("every type is reported");
    (c.1.to_string(), c.2, c.3)
}

#[test]
fn a_clean_pass_reports_every_condition_false_with_kubes_texts() {
    let pass = Pass::default();
    let got = desired_conditions(&pass);
    let want = [
        (
            "NamespaceDeletionDiscoveryFailure",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        (
            "NamespaceDeletionContentFailure",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        (
            "NamespaceContentRemaining",
            "ContentRemoved",
            "All content successfully removed",
        ),
        (
            "NamespaceFinalizersRemaining",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    ];
    assert_eq!(got.len(), 5);
    for ((kind, status, reason, message), (wk, wr, wm)) in got.iter().zip(want) {
        assert_eq!(
            (*kind, *status, reason.as_str(), message.as_str()),
            (wk, "False", wr, wm)
        );
    }
    assert_eq!(next(&pass), Next::Finalize);
}

#[test]
fn failures_and_remaining_content_are_reported_as_kube() {
    let mut pass = Pass {
        discovery_failure: Some(discovery_failure_message(&BTreeMap::from([(
            "metrics.k8s.io/v1beta1".to_string(),
            "the server is currently unable to handle the request".to_string(),
        )]))),
        ..Default::default()
    };
    pass.add(
        &target("", "pods"),
        &Remaining {
            estimate_seconds: 30,
            count: 2,
            finalizers: BTreeMap::new(),
        },
        None,
    );
    pass.add(
        &target("apps", "deployments"),
        &Remaining {
            estimate_seconds: 15,
            count: 1,
            finalizers: BTreeMap::from([("foregroundDeletion".into(), 1)]),
        },
        None,
    );
    pass.add(
        &target("", "configmaps"),
        &Remaining::default(),
        Some("boom b".into()),
    );
    pass.add(
        &target("", "secrets"),
        &Remaining::default(),
        Some("boom a".into()),
    );
    assert_eq!(
        condition(&pass, "NamespaceDeletionDiscoveryFailure"),
        ("True".into(), "DiscoveryFailed".into(),
         "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: the server is currently unable to handle the request".into())
    );
    assert_eq!(
        condition(&pass, "NamespaceDeletionContentFailure"),
        (
            "True".into(),
            "ContentDeletionFailed".into(),
            "Failed to delete all resource types, 2 remaining: boom a, boom b".into()
        )
    );
    assert_eq!(
        condition(&pass, "NamespaceContentRemaining"),
        ("True".into(), "SomeResourcesRemain".into(),
         "Some resources are remaining: deployments.apps has 1 resource instances, pods. has 2 resource instances".into())
    );
    assert_eq!(
        condition(&pass, "NamespaceFinalizersRemaining"),
        ("True".into(), "SomeFinalizersRemain".into(),
         "Some content in the namespace has finalizers remaining: foregroundDeletion in 1 resource instances".into())
    );
    assert_eq!(
        condition(&pass, "NamespaceDeletionGroupVersionParsingFailure").0,
        "False"
    );
    assert!(matches!(next(&pass), Next::Retry(_)));

    // Without the failures, the estimate decides: requeued after 30/2 + 1 s.
    pass.discovery_failure = None;
    pass.content_failures.clear();
    assert_eq!(next(&pass), Next::Requeue(Duration::from_secs(16)));
}

#[test]
fn conditions_change_only_when_they_differ_and_keep_transition_times() {
    let clean = desired_conditions(&Pass::default());
    let first = updated_conditions(&[], &clean, time(100)).expect("all new");
    assert_eq!(first.len(), 5);
    assert!(first
        .iter()
        .all(|c| c.last_transition_time == Some(time(100))));
    assert_eq!(
        updated_conditions(&first, &clean, time(200)),
        None,
        "no change"
    );

    let mut pass = Pass::default();
    pass.add(
        &target("", "pods"),
        &Remaining {
            estimate_seconds: 30,
            count: 1,
            finalizers: BTreeMap::new(),
        },
        None,
    );
    let second =
        updated_conditions(&first, &desired_conditions(&pass), time(300)).expect("changed");
    let remaining = second
        .iter()
        .find(|c| c.type_ == "NamespaceContentRemaining")
        .unwrap();
    assert_eq!(remaining.status, "True");
    assert_eq!(remaining.last_transition_time, Some(time(300)));
    let discovery = second
        .iter()
        .find(|c| c.type_ == "NamespaceDeletionDiscoveryFailure")
        .unwrap();
    assert_eq!(discovery.last_transition_time, Some(time(100)), "untouched");

    // Another count: message changes, status does not, the transition time stays.
    let mut more = pass.clone();
    more.remaining.insert(("".into(), "pods".into()), 3);
    let third =
        updated_conditions(&second, &desired_conditions(&more), time(400)).expect("changed");
    let remaining = third
        .iter()
        .find(|c| c.type_ == "NamespaceContentRemaining")
        .unwrap();
    assert_eq!(remaining.last_transition_time, Some(time(300)));
    assert!(remaining
        .message
        .as_deref()
        .unwrap()
        .contains("pods. has 3"));

    // Conditions of other types are kept.
    let foreign = NamespaceCondition {
        type_: "Other".into(),
        status: "True".into(),
        ..Default::default()
    };
    let with_foreign = updated_conditions(&[foreign.clone()], &clean, time(1)).unwrap();
    assert_eq!(with_foreign[0], foreign);
}

#[test]
fn finalizing_removes_only_this_controllers_token() {
    let ns = |deleting: bool, fins: &[&str]| -> Namespace {
        let mut v = json!({"metadata": {"name": "team"}, "spec": {"finalizers": fins}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    };
    assert!(needs_finalizing(&ns(true, &["kubernetes"])));
    assert!(needs_finalizing(&ns(true, &["example.com/x"])));
    assert!(!needs_finalizing(&ns(true, &[])));
    assert!(!needs_finalizing(&ns(false, &["kubernetes"])));
    assert_eq!(
        finalized_spec_finalizers(&ns(true, &["z/z", "kubernetes", "a/a"])),
        vec!["a/a".to_string(), "z/z".to_string()]
    );
    assert!(finalized_spec_finalizers(&ns(true, &["kubernetes"])).is_empty());
}
