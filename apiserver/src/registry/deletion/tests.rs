use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::resources::find;

fn opts(v: Value) -> DeleteOptions {
    DeleteOptions::parse(&v).expect("valid options")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn fins(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn both_policies_are_kubes_422() {
    let e =
        DeleteOptions::parse(&json!({"orphanDependents": true, "propagationPolicy": "Foreground"}))
            .unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(e.reason, "Invalid");
    assert_eq!(
        e.message,
        r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Foreground": orphanDependents and deletionPropagation cannot be both set"#
    );
    let d = e.details.unwrap();
    assert_eq!(d["kind"], "DeleteOptions");
    assert_eq!(d["group"], "meta.k8s.io");
    assert_eq!(d["causes"][0]["field"], "propagationPolicy");
    assert_eq!(d["causes"][0]["reason"], "FieldValueInvalid");

    let e = DeleteOptions::parse(&json!({"propagationPolicy": "Sideways"})).unwrap_err();
    assert_eq!(
        e.message,
        r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": supported values: "Foreground", "Background", "Orphan", "nil""#
    );
    assert_eq!(
        opts(json!({"propagationPolicy": "Orphan", "gracePeriodSeconds": 5, "dryRun": ["All"]})),
        DeleteOptions {
            propagation: Some(Propagation::Orphan),
            grace_period_seconds: Some(5),
            dry_run: true,
            ..Default::default()
        }
    );
}

#[test]
fn default_policies_are_kubes_per_kind() {
    let cases = [
        ("", "pods", GcPolicy::DeleteDependents),
        ("apps", "deployments", GcPolicy::DeleteDependents),
        ("apps", "replicasets", GcPolicy::DeleteDependents),
        ("", "events", GcPolicy::Unsupported),
    ];
    for (g, plural, want) in cases {
        assert_eq!(
            default_gc_policy(find(g, "v1", plural).unwrap()),
            want,
            "{plural}"
        );
    }
}

#[test]
fn gc_finalizers_follow_options_then_finalizers_then_default() {
    use GcPolicy::*;
    let none = DeleteOptions::default();
    let fg = opts(json!({"propagationPolicy": "Foreground"}));
    let bg = opts(json!({"propagationPolicy": "Background"}));
    let orphan = opts(json!({"propagationPolicy": "Orphan"}));
    let od_true = opts(json!({"orphanDependents": true}));
    let od_false = opts(json!({"orphanDependents": false}));
    let cases: Vec<(GcPolicy, Vec<&str>, &DeleteOptions, Option<Vec<&str>>)> = vec![
        (DeleteDependents, vec![], &none, None),
        (DeleteDependents, vec![], &bg, None),
        (
            DeleteDependents,
            vec![],
            &fg,
            Some(vec!["foregroundDeletion"]),
        ),
        (DeleteDependents, vec![], &orphan, Some(vec!["orphan"])),
        (DeleteDependents, vec![], &od_true, Some(vec!["orphan"])),
        (DeleteDependents, vec![], &od_false, None),
        // Another finalizer stays, in its place.
        (
            DeleteDependents,
            vec!["x/y"],
            &fg,
            Some(vec!["x/y", "foregroundDeletion"]),
        ),
        // A policy switches the finalizers.
        (
            DeleteDependents,
            vec!["orphan"],
            &fg,
            Some(vec!["foregroundDeletion"]),
        ),
        (
            DeleteDependents,
            vec!["foregroundDeletion"],
            &orphan,
            Some(vec!["orphan"]),
        ),
        (
            DeleteDependents,
            vec!["foregroundDeletion", "x/y"],
            &bg,
            Some(vec!["x/y"]),
        ),
        // Without options the object's finalizers decide.
        (DeleteDependents, vec!["orphan"], &none, None),
        (DeleteDependents, vec!["foregroundDeletion"], &none, None),
        // Kinds that orphan by default.
        (OrphanDependents, vec![], &none, Some(vec!["orphan"])),
        (OrphanDependents, vec![], &bg, None),
        (OrphanDependents, vec!["foregroundDeletion"], &none, None),
        // Events take no part.
        (Unsupported, vec![], &fg, None),
        (Unsupported, vec![], &orphan, None),
    ];
    for (policy, have, o, want) in cases {
        let got = gc_finalizers(policy, &fins(&have), o);
        assert_eq!(got, want.map(|w| fins(&w)), "{policy:?} {have:?} {o:?}");
    }
}

#[test]
fn namespace_finalizers_follow_only_the_options() {
    let none = DeleteOptions::default();
    let fg = opts(json!({"propagationPolicy": "Foreground"}));
    let od_false = opts(json!({"orphanDependents": false}));
    assert_eq!(namespace_gc_finalizers(&[], &none), None);
    assert_eq!(
        namespace_gc_finalizers(&[], &fg),
        Some(fins(&["foregroundDeletion"]))
    );
    assert_eq!(
        namespace_gc_finalizers(&fins(&["orphan", "a/b"]), &od_false),
        Some(fins(&["a/b", "foregroundDeletion"]))
    );
    assert_eq!(namespace_gc_finalizers(&fins(&["orphan"]), &none), None);
}

fn cm(meta: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
}

#[test]
fn objects_with_finalizers_stay_marked_with_grace_zero() {
    let cms = find("", "v1", "configmaps").unwrap();
    let none = DeleteOptions::default();
    // No finalizers: gone.
    assert_eq!(
        plan(cms, &cm(json!({"name": "a"})), &none, at(100)).unwrap(),
        Plan::Remove
    );
    // A finalizer: stays, marked now with grace 0.
    let Plan::Update(o) = plan(
        cms,
        &cm(json!({"name": "a", "finalizers": ["x/y"]})),
        &none,
        at(100),
    )
    .unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(o["metadata"]["deletionTimestamp"], "1970-01-01T00:01:40Z");
    assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(o["metadata"]["finalizers"], json!(["x/y"]));
    // Deleted again later: the first timestamp stays.
    let Plan::Update(again) = plan(cms, &o, &none, at(200)).unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(
        again["metadata"]["deletionTimestamp"],
        "1970-01-01T00:01:40Z"
    );
}

#[test]
fn foreground_and_orphan_leave_the_object_with_their_finalizer() {
    let deploys = find("apps", "v1", "deployments").unwrap();
    let d = json!({"metadata": {"name": "web", "generation": 3}});
    let fg = opts(json!({"propagationPolicy": "Foreground"}));
    let Plan::Update(o) = plan(deploys, &d, &fg, at(100)).unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(o["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert_eq!(o["metadata"]["deletionTimestamp"], "1970-01-01T00:01:40Z");
    assert_eq!(
        o["metadata"]["generation"], 4,
        "marking bumps the generation once"
    );

    // Deleting the foreground-deleting object with Orphan switches its finalizer.
    let orphan = opts(json!({"propagationPolicy": "Orphan"}));
    let Plan::Update(o2) = plan(deploys, &o, &orphan, at(150)).unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(o2["metadata"]["finalizers"], json!(["orphan"]));
    assert_eq!(o2["metadata"]["deletionTimestamp"], "1970-01-01T00:01:40Z");
    assert_eq!(o2["metadata"]["generation"], 4);
    // ... and with Background it has no finalizer left: gone.
    let bg = opts(json!({"propagationPolicy": "Background"}));
    assert_eq!(plan(deploys, &o2, &bg, at(150)).unwrap(), Plan::Remove);
    // Deleting it again with the same policy changes nothing but is still an update (kube's
    // no-op update), keeping the finalizer.
    let Plan::Update(o3) = plan(deploys, &o, &fg, at(150)).unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(o3, o);
}

#[test]
fn pods_delete_gracefully_once_scheduled() {
    let pods = find("", "v1", "pods").unwrap();
    let none = DeleteOptions::default();
    let pending = json!({"metadata": {"name": "p"}, "spec": {"terminationGracePeriodSeconds": 30}});
    assert_eq!(plan(pods, &pending, &none, at(100)).unwrap(), Plan::Remove);

    let bound = json!({"metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30},
        "status": {"phase": "Running"}});
    let Plan::Update(o) = plan(pods, &bound, &none, at(100)).unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(o["metadata"]["deletionTimestamp"], "1970-01-01T00:02:10Z");
    assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 30);
    // Deleted again without a shorter period: nothing changes, even the policy.
    let fg = opts(json!({"propagationPolicy": "Foreground"}));
    assert_eq!(plan(pods, &o, &fg, at(110)).unwrap(), Plan::Unchanged);
    // A shorter period moves the deadline.
    let Plan::Update(short) =
        plan(pods, &o, &opts(json!({"gracePeriodSeconds": 10})), at(110)).unwrap()
    else {
        panic!("expected an update")
    };
    assert_eq!(
        short["metadata"]["deletionTimestamp"],
        "1970-01-01T00:01:50Z"
    );
    assert_eq!(short["metadata"]["deletionGracePeriodSeconds"], 10);
    // Grace 0 removes it.
    assert_eq!(
        plan(pods, &o, &opts(json!({"gracePeriodSeconds": 0})), at(110)).unwrap(),
        Plan::Remove
    );
    // A terminated pod goes at once.
    let mut done = bound.clone();
    done["status"]["phase"] = json!("Succeeded");
    assert_eq!(plan(pods, &done, &none, at(100)).unwrap(), Plan::Remove);
    // A pod with a finalizer and grace 0 stays.
    let mut fin = bound.clone();
    fin["metadata"]["finalizers"] = json!(["batch.kubernetes.io/job-tracking"]);
    let Plan::Update(o) =
        plan(pods, &fin, &opts(json!({"gracePeriodSeconds": 0})), at(100)).unwrap()
    else {
        panic!("expected an update")
    };
    assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 0);
}

#[test]
fn namespaces_terminate_until_their_finalizers_are_done() {
    let nss = find("", "v1", "namespaces").unwrap();
    let none = DeleteOptions::default();
    let ns = json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}});
    let Plan::Update(t) = plan(nss, &ns, &none, at(100)).unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(t["status"]["phase"], "Terminating");
    assert_eq!(t["metadata"]["deletionTimestamp"], "1970-01-01T00:01:40Z");
    assert!(t["metadata"].get("deletionGracePeriodSeconds").is_none());
    assert!(t["metadata"].get("finalizers").is_none());
    // While spec.finalizers holds `kubernetes`, deleting again changes nothing.
    assert_eq!(plan(nss, &t, &none, at(200)).unwrap(), Plan::Unchanged);
    // Once finalized, the generic delete removes it.
    let mut done = t.clone();
    done["spec"]["finalizers"] = json!([]);
    assert_eq!(plan(nss, &done, &none, at(200)).unwrap(), Plan::Remove);

    // propagationPolicy on the first delete sets metadata.finalizers.
    let fg = opts(json!({"propagationPolicy": "Foreground"}));
    let Plan::Update(t) = plan(nss, &ns, &fg, at(100)).unwrap() else {
        panic!("expected an update")
    };
    assert_eq!(t["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    // Finalized, with the GC finalizer left: it stays.
    let mut done = t.clone();
    done["spec"]["finalizers"] = json!([]);
    assert!(matches!(
        plan(nss, &done, &none, at(200)).unwrap(),
        Plan::Update(_)
    ));
}

#[test]
fn system_namespaces_may_not_be_deleted() {
    let nss = find("", "v1", "namespaces").unwrap();
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let e = plan(
            nss,
            &json!({"metadata": {"name": name}}),
            &DeleteOptions::default(),
            at(1),
        )
        .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            format!("namespaces {name:?} is forbidden: this namespace may not be deleted")
        );
    }
    assert!(plan(
        nss,
        &json!({"metadata": {"name": "kube-nodes"}}),
        &DeleteOptions::default(),
        at(1)
    )
    .is_ok());
}
