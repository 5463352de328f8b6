//! The graph's reactions to changes, after kube's `garbagecollector_test.go` (TestProcessEvent,
//! TestConflictingData, TestGetAlternateOwnerIdentity) and `graph_builder_test.go`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::graph::*;
use super::identity::{Identity, Meta, FINALIZER_FOREGROUND, FINALIZER_ORPHAN};

fn id(api_version: &str, kind: &str, namespace: &str, name: &str, uid: &str) -> Identity {
    Identity {
        kind: kind.into(),
        api_version: api_version.into(),
        namespace: namespace.into(),
        name: name.into(),
        uid: uid.into(),
    }
}

fn cm(namespace: &str, name: &str) -> Identity {
    id(
        "v1",
        "ConfigMap",
        namespace,
        name,
        &format!("uid-{namespace}-{name}"),
    )
}

fn reference(owner: &Identity, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: owner.api_version.clone(),
        kind: owner.kind.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        block_owner_deletion: block.then_some(true),
        controller: None,
    }
}

fn meta(identity: &Identity, owners: Vec<OwnerReference>) -> Meta {
    Meta {
        identity: identity.clone(),
        owners,
        ..Default::default()
    }
}

fn upsert(m: Meta) -> Change {
    Change {
        kind: ChangeKind::Upsert,
        is_virtual: false,
        object: m,
    }
}

fn delete(m: Meta) -> Change {
    Change {
        kind: ChangeKind::Delete,
        is_virtual: false,
        object: m,
    }
}

fn virtual_delete(identity: &Identity) -> Change {
    Change {
        kind: ChangeKind::Delete,
        is_virtual: true,
        object: meta(identity, vec![]),
    }
}

fn deleting(mut m: Meta, finalizers: &[&str]) -> Meta {
    m.being_deleted = true;
    m.finalizers = finalizers.iter().map(|f| f.to_string()).collect();
    m
}

fn uids(ids: &[&Identity]) -> Vec<String> {
    ids.iter().map(|i| i.uid.clone()).collect()
}

#[test]
fn an_owner_seen_after_its_dependent_starts_virtual_and_is_checked() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    let dep = cm("ns", "dep");
    let fx = g.process(upsert(meta(&dep, vec![reference(&owner, false)])));
    assert_eq!(
        fx.attempt_to_delete,
        uids(&[&owner]),
        "the virtual owner is verified"
    );
    let n = g.node(&owner.uid).expect("virtual owner");
    assert!(n.is_virtual);
    assert_eq!(
        n.identity, owner,
        "coordinates from the reference, dependent's namespace"
    );
    assert!(n.dependents.contains(&dep.uid));

    let fx = g.process(upsert(meta(&owner, vec![])));
    assert_eq!(
        fx,
        Effects::default(),
        "observed with the coordinates it was named by"
    );
    assert!(!g.node(&owner.uid).expect("node").is_virtual);
    assert_eq!(g.node_count(), 2);
}

#[test]
fn an_owner_seen_first_makes_no_work_for_its_dependent() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    let dep = cm("ns", "dep");
    assert_eq!(g.process(upsert(meta(&owner, vec![]))), Effects::default());
    let fx = g.process(upsert(meta(&dep, vec![reference(&owner, true)])));
    assert_eq!(fx, Effects::default());
    let view = g.view(&owner.uid).expect("owner");
    assert_eq!(view.dependents.len(), 1);
    assert!(view.dependents[0].blocks_owner);
    assert_eq!(view.blocking_dependents().len(), 1);
}

#[test]
fn deleting_an_owner_queues_its_dependents_and_marks_it_absent() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    let (d1, d2) = (cm("ns", "d1"), cm("ns", "d2"));
    g.process(upsert(meta(&owner, vec![])));
    g.process(upsert(meta(&d1, vec![reference(&owner, false)])));
    g.process(upsert(meta(&d2, vec![reference(&owner, false)])));
    let fx = g.process(delete(meta(&owner, vec![])));
    assert_eq!(fx.attempt_to_delete, uids(&[&d1, &d2]));
    assert_eq!(fx.absent, vec![owner.clone()]);
    assert!(g.node(&owner.uid).is_none());

    // A deleted object without dependents is not remembered as absent.
    let fx = g.process(delete(meta(&d1, vec![reference(&owner, false)])));
    assert_eq!(fx, Effects::default());
    assert_eq!(g.node_count(), 1);
    // Deleting what is not in the graph does nothing.
    assert_eq!(g.process(delete(meta(&d1, vec![]))), Effects::default());
}

#[test]
fn a_dependent_in_another_namespace_than_its_observed_owner_is_reported() {
    let owner = cm("a", "owner");
    let dep = cm("b", "dep");
    let want = InvalidOwnerReference {
        dependent: dep.clone(),
        owner: Identity {
            namespace: "b".into(),
            ..owner.clone()
        },
    };
    assert_eq!(
        want.message(),
        "ownerRef [v1/ConfigMap, namespace: b, name: owner, uid: uid-a-owner] does not exist in namespace \"b\""
    );

    // Owner observed first (kube's "good parent, bad child" order).
    let mut g = Graph::new();
    g.process(upsert(meta(&owner, vec![])));
    let fx = g.process(upsert(meta(&dep, vec![reference(&owner, false)])));
    assert_eq!(fx.invalid_references, vec![want.clone()]);
    assert_eq!(
        fx.attempt_to_delete,
        uids(&[&dep]),
        "verified: the owner is absent in b"
    );

    // Dependent first: the virtual owner is placed in b, then seen in a.
    let mut g = Graph::new();
    let fx = g.process(upsert(meta(&dep, vec![reference(&owner, false)])));
    assert!(fx.invalid_references.is_empty());
    let fx = g.process(upsert(meta(&owner, vec![])));
    assert_eq!(fx.invalid_references, vec![want]);
    assert_eq!(fx.attempt_to_delete, uids(&[&dep]));
    assert_eq!(g.node(&owner.uid).expect("owner").identity, owner);
}

#[test]
fn a_cluster_scoped_owner_is_valid_from_any_namespace() {
    let node = id("v1", "Node", "", "n1", "node-uid");
    let pod = id("v1", "Pod", "ns", "p", "pod-uid");
    let mut g = Graph::new();
    let fx = g.process(upsert(meta(&pod, vec![reference(&node, false)])));
    assert_eq!(fx.attempt_to_delete, vec!["node-uid".to_string()]);
    assert_eq!(
        g.node("node-uid").expect("virtual").identity.namespace,
        "ns"
    );
    let fx = g.process(upsert(meta(&node, vec![])));
    assert_eq!(fx, Effects::default());
    assert_eq!(g.node("node-uid").expect("observed").identity, node);
    // Another pod in another namespace names it: nothing to report or check.
    let other = id("v1", "Pod", "other", "q", "pod2-uid");
    assert_eq!(
        g.process(upsert(meta(&other, vec![reference(&node, false)]))),
        Effects::default()
    );
}

#[test]
fn a_reference_with_wrong_coordinates_is_checked() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    g.process(upsert(meta(&owner, vec![])));
    let dep = cm("ns", "dep");
    let mut wrong = reference(&owner, false);
    wrong.name = "renamed".into();
    let fx = g.process(upsert(meta(&dep, vec![wrong])));
    assert_eq!(fx.attempt_to_delete, uids(&[&dep]));
    assert!(fx.invalid_references.is_empty());
}

#[test]
fn deletion_with_the_orphan_finalizer_queues_orphaning_once() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    g.process(upsert(meta(&owner, vec![])));
    let fx = g.process(upsert(deleting(meta(&owner, vec![]), &[FINALIZER_ORPHAN])));
    assert_eq!(fx.attempt_to_orphan, uids(&[&owner]));
    assert!(g.node(&owner.uid).expect("owner").being_deleted);
    let fx = g.process(upsert(deleting(meta(&owner, vec![]), &[FINALIZER_ORPHAN])));
    assert_eq!(fx, Effects::default(), "no transition the second time");
    // First seen already deleting (no old state): it is a transition.
    let other = cm("ns", "other");
    let fx = g.process(upsert(deleting(
        meta(&other, vec![]),
        &["x", FINALIZER_ORPHAN],
    )));
    assert_eq!(fx.attempt_to_orphan, uids(&[&other]));
}

#[test]
fn deletion_with_the_foreground_finalizer_queues_dependents_and_the_owner() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    let (d1, d2) = (cm("ns", "d1"), cm("ns", "d2"));
    g.process(upsert(meta(&owner, vec![])));
    g.process(upsert(meta(&d1, vec![reference(&owner, true)])));
    g.process(upsert(meta(&d2, vec![reference(&owner, false)])));
    let fx = g.process(upsert(deleting(
        meta(&owner, vec![]),
        &[FINALIZER_FOREGROUND],
    )));
    assert_eq!(fx.attempt_to_delete, uids(&[&d1, &d2, &owner]));
    let view = g.view(&owner.uid).expect("owner");
    assert!(view.deleting_dependents && view.being_deleted);
    assert_eq!(
        view.blocking_dependents()
            .iter()
            .map(|d| d.uid.as_str())
            .collect::<Vec<_>>(),
        [d1.uid.as_str()]
    );

    // The blocking dependent goes: the owner is looked at again; the other one does not block.
    let fx = g.process(delete(meta(&d1, vec![reference(&owner, true)])));
    assert_eq!(fx.attempt_to_delete, uids(&[&owner]));
    assert!(g
        .view(&owner.uid)
        .expect("owner")
        .blocking_dependents()
        .is_empty());
}

#[test]
fn a_blocking_reference_removed_or_unblocked_wakes_the_owner() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    let dep = cm("ns", "dep");
    g.process(upsert(meta(&owner, vec![])));
    g.process(upsert(meta(&dep, vec![reference(&owner, true)])));
    // blockOwnerDeletion true → false.
    let fx = g.process(upsert(meta(&dep, vec![reference(&owner, false)])));
    assert_eq!(fx.attempt_to_delete, uids(&[&owner]));
    // A non-blocking reference removed: nothing to wake.
    let fx = g.process(upsert(meta(&dep, vec![])));
    assert_eq!(fx, Effects::default());
    assert!(g.node(&owner.uid).expect("owner").dependents.is_empty());
    // Added again blocking, then removed.
    g.process(upsert(meta(&dep, vec![reference(&owner, true)])));
    assert!(g
        .node(&owner.uid)
        .expect("owner")
        .dependents
        .contains(&dep.uid));
    let fx = g.process(upsert(meta(&dep, vec![])));
    assert_eq!(fx.attempt_to_delete, uids(&[&owner]));
}

#[test]
fn a_virtual_delete_removes_a_virtual_owner_its_dependents_agree_on() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    let dep = cm("ns", "dep");
    g.process(upsert(meta(&dep, vec![reference(&owner, false)])));
    let fx = g.process(virtual_delete(&owner));
    assert!(g.node(&owner.uid).is_none());
    assert_eq!(fx.attempt_to_delete, uids(&[&dep]));
    assert_eq!(fx.absent, vec![owner]);
}

#[test]
fn a_virtual_delete_keeps_an_owner_named_with_other_coordinates() {
    // Two dependents name one uid as different kinds (kube's TestConflictingData "alternate
    // identities"): the absent one is marked and its dependent queued; the node takes the
    // other identity and is checked again after a backoff.
    let mut g = Graph::new();
    let as_cm = cm("ns", "owner");
    let as_secret = id("v1", "Secret", "ns", "owner", &as_cm.uid);
    let (d1, d2) = (cm("ns", "d1"), cm("ns", "d2"));
    g.process(upsert(meta(&d1, vec![reference(&as_cm, false)])));
    g.process(upsert(meta(&d2, vec![reference(&as_secret, false)])));
    assert_eq!(g.node(&as_cm.uid).expect("virtual").identity, as_cm);
    let fx = g.process(virtual_delete(&as_cm));
    assert_eq!(fx.absent, vec![as_cm.clone()]);
    assert_eq!(fx.attempt_to_delete, uids(&[&d1]));
    assert_eq!(fx.attempt_to_delete_rate_limited, uids(&[&as_cm]));
    let n = g.node(&as_cm.uid).expect("kept");
    assert!(n.is_virtual);
    assert_eq!(n.identity, as_secret);
}

#[test]
fn a_virtual_delete_does_not_remove_an_observed_owner() {
    let mut g = Graph::new();
    let owner = cm("ns", "owner");
    g.process(upsert(meta(&owner, vec![])));
    let dep = cm("ns", "dep");
    let mut wrong = reference(&owner, false);
    wrong.kind = "Secret".into();
    g.process(upsert(meta(&dep, vec![wrong])));
    let as_secret = id("v1", "Secret", "ns", "owner", &owner.uid);
    let fx = g.process(virtual_delete(&as_secret));
    assert!(
        g.node(&owner.uid).is_some(),
        "observed nodes go only by observed deletes"
    );
    assert_eq!(fx.absent, vec![as_secret]);
    assert_eq!(fx.attempt_to_delete, uids(&[&dep]));
    // A virtual delete with the node's own coordinates removes it (the object is gone).
    let fx = g.process(virtual_delete(&owner));
    assert!(g.node(&owner.uid).is_none());
    assert_eq!(fx.attempt_to_delete, uids(&[&dep]));
}

#[test]
fn alternate_identities_follow_kubes_order() {
    // kube's TestGetAlternateOwnerIdentity: the first identity after the absent one, else the
    // first; a cluster-scoped absent identity loses the namespace of same-kind alternates.
    let mut g = Graph::new();
    let absent = id("v1", "Kind-B", "ns", "n", "u");
    let a = id("v1", "Kind-A", "ns", "n", "u");
    let c = id("v1", "Kind-C", "ns", "n", "u");
    let (d1, d2, d3) = (cm("ns", "d1"), cm("ns", "d2"), cm("ns", "d3"));
    g.process(upsert(meta(&d1, vec![reference(&absent, false)])));
    g.process(upsert(meta(&d2, vec![reference(&a, false)])));
    g.process(upsert(meta(&d3, vec![reference(&c, false)])));
    let fx = g.process(virtual_delete(&absent));
    assert_eq!(fx.attempt_to_delete, uids(&[&d1]));
    assert_eq!(g.node("u").expect("kept").identity, c, "C follows B");
    // The collector deletes d1 (its owner is absent), then finds C absent too.
    g.process(delete(meta(&d1, vec![reference(&absent, false)])));
    let fx = g.process(virtual_delete(&c));
    assert_eq!(fx.attempt_to_delete, uids(&[&d3]));
    assert_eq!(
        g.node("u").expect("kept").identity,
        a,
        "nothing follows C: the first"
    );
    g.process(delete(meta(&d3, vec![reference(&c, false)])));
    // A is the last identity its dependents use: its virtual delete removes the node.
    let fx = g.process(virtual_delete(&a));
    assert!(g.node("u").is_none());
    assert_eq!(fx.attempt_to_delete, uids(&[&d2]));
}

#[test]
fn an_observed_kind_change_updates_the_identity() {
    let mut g = Graph::new();
    let v1 = id("example.com/v1", "Widget", "ns", "w", "w-uid");
    g.process(upsert(meta(&v1, vec![])));
    let v2 = id("example.com/v2", "Widget", "ns", "w", "w-uid");
    assert_eq!(g.process(upsert(meta(&v2, vec![]))), Effects::default());
    assert_eq!(g.node("w-uid").expect("node").identity, v2);
}

#[test]
fn objects_without_uid_are_ignored() {
    let mut g = Graph::new();
    let none = id("v1", "ConfigMap", "ns", "x", "");
    assert_eq!(g.process(upsert(meta(&none, vec![]))), Effects::default());
    assert_eq!(g.node_count(), 0);
}
