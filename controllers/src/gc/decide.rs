//! The collector's decisions for one item, given what the API answered (kube's
//! `attemptToDeleteItem`, `classifyReferences`, `isDangling`, `processDeletingDependentsItem`),
//! and the bodies of its writes (kube's `patch.go` and `removeFinalizer`). Pure: the worker in
//! `mod.rs` does the reads these take and the writes they return.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{json, Value};

use super::identity::{blocks, Meta, FINALIZER_FOREGROUND, FINALIZER_ORPHAN};

/// `metav1.DeletionPropagation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

/// Where an owner is looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerLookup {
    /// GET it by name, in this namespace (`None`: its kind is cluster-scoped).
    Get { namespace: Option<String> },
    /// A cluster-scoped item naming a namespaced owner: invalid, and retrying will not help
    /// (kube's `namespacedOwnerOfClusterScopedObjectErr`; the item is never collected).
    NamespacedOwnerOfClusterScopedItem,
}

/// kube's `isDangling`, the part before the GET: an owner is looked for in its dependent's
/// namespace, since references carry none.
pub fn owner_lookup(item_namespace: &str, owner_namespaced: bool) -> OwnerLookup {
    match (owner_namespaced, item_namespace.is_empty()) {
        (false, _) => OwnerLookup::Get { namespace: None },
        (true, true) => OwnerLookup::NamespacedOwnerOfClusterScopedItem,
        (true, false) => OwnerLookup::Get {
            namespace: Some(item_namespace.to_string()),
        },
    }
}

/// What one owner reference points at, as the API answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents' deletion.
    Solid,
    /// Absent: not found, or found with another uid.
    Dangling,
    /// Being deleted with the `foregroundDeletion` finalizer.
    WaitingForDependentsDeletion,
}

/// kube's `isDangling` after the GET and `classifyReferences`: `live` is the object found at the
/// owner's name (`None` when the API answered 404).
pub fn owner_state(reference: &OwnerReference, live: Option<&Meta>) -> OwnerState {
    match live {
        None => OwnerState::Dangling,
        Some(owner) if owner.identity.uid != reference.uid => OwnerState::Dangling,
        Some(owner) if owner.deleting_dependents() => OwnerState::WaitingForDependentsDeletion,
        Some(_) => OwnerState::Solid,
    }
}

/// The references of an item sorted by their owners' state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Classified {
    pub solid: Vec<OwnerReference>,
    pub dangling: Vec<OwnerReference>,
    pub waiting: Vec<OwnerReference>,
}

impl Classified {
    pub fn push(&mut self, reference: OwnerReference, state: OwnerState) {
        match state {
            OwnerState::Solid => self.solid.push(reference),
            OwnerState::Dangling => self.dangling.push(reference),
            OwnerState::WaitingForDependentsDeletion => self.waiting.push(reference),
        }
    }
}

/// What attemptToDelete does with an item whose owners were classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do: it has no owners, or only solid ones.
    Keep,
    /// Some owners are solid: drop the references to the dangling owners and to those waiting
    /// for their dependents' deletion (else those would wait for this item forever).
    RemoveReferences { owner_uids: Vec<String> },
    /// No solid owner, some wait for their dependents, and this item has dependents itself: it
    /// is deleted in the foreground. `unblock_first`: one of its dependents also deletes its
    /// dependents, so (against a cycle) its own blocking references are made non-blocking
    /// first.
    DeleteForeground { unblock_first: bool },
    /// No solid owner: delete it, with the propagation its own finalizers ask for.
    Delete(Propagation),
}

/// kube's decision in `attemptToDeleteItem` once the references are classified. `latest` is the
/// item as just read; `has_dependents` and `a_dependent_deletes_dependents` come from the graph.
pub fn decide(
    latest: &Meta,
    classified: &Classified,
    has_dependents: bool,
    a_dependent_deletes_dependents: bool,
) -> Action {
    if latest.owners.is_empty() {
        return Action::Keep;
    }
    if !classified.solid.is_empty() {
        if classified.dangling.is_empty() && classified.waiting.is_empty() {
            return Action::Keep;
        }
        let owner_uids = classified
            .dangling
            .iter()
            .chain(&classified.waiting)
            .map(|r| r.uid.clone())
            .collect();
        return Action::RemoveReferences { owner_uids };
    }
    if !classified.waiting.is_empty() && has_dependents {
        return Action::DeleteForeground {
            unblock_first: a_dependent_deletes_dependents,
        };
    }
    let policy = if latest.has_finalizer(FINALIZER_ORPHAN) {
        Propagation::Orphan
    } else if latest.has_finalizer(FINALIZER_FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Action::Delete(policy)
}

/// An owner being deleted in the foreground (kube's `processDeletingDependentsItem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Foreground {
    /// No dependent blocks it any more: remove `foregroundDeletion`.
    RemoveFinalizer,
    /// These blocking dependents (those not already deleting their own) go to attemptToDelete.
    DeleteDependents(Vec<String>),
}

/// `blocking`: (uid, deleting its own dependents) of each dependent whose reference to the
/// owner has `blockOwnerDeletion: true`.
pub fn foreground(blocking: &[(String, bool)]) -> Foreground {
    if blocking.is_empty() {
        return Foreground::RemoveFinalizer;
    }
    Foreground::DeleteDependents(
        blocking
            .iter()
            .filter(|(_, deleting)| !deleting)
            .map(|(uid, _)| uid.clone())
            .collect(),
    )
}

/// kube's `GenerateDeleteOwnerRefStrategicMergeBytes`: removes the references to `owner_uids`;
/// the dependent's uid in the body makes the patch fail on another object of the same name.
pub fn delete_references_strategic(dependent_uid: &str, owner_uids: &[String]) -> Value {
    let refs: Vec<Value> = owner_uids
        .iter()
        .map(|u| json!({"$patch": "delete", "uid": u}))
        .collect();
    json!({"metadata": {"ownerReferences": refs, "uid": dependent_uid}})
}

/// kube's `deleteOwnerRefJSONMergePatch`, for resources without strategic merge patch: the
/// whole remaining list, guarded by the resourceVersion it was computed from.
pub fn delete_references_merge(latest: &Meta, owner_uids: &[String]) -> Value {
    let remaining: Vec<&OwnerReference> = latest
        .owners
        .iter()
        .filter(|r| !owner_uids.contains(&r.uid))
        .collect();
    json!({"metadata": {
        "resourceVersion": latest.resource_version,
        "ownerReferences": if remaining.is_empty() { Value::Null } else { json!(remaining) },
    }})
}

/// kube's `unblockOwnerReferencesStrategicMergePatch`: every blocking reference again, with
/// `blockOwnerDeletion: false`.
pub fn unblock_references_strategic(item_uid: &str, owners: &[OwnerReference]) -> Value {
    let refs: Vec<OwnerReference> = owners
        .iter()
        .filter(|r| blocks(r))
        .map(|r| OwnerReference {
            block_owner_deletion: Some(false),
            ..r.clone()
        })
        .collect();
    json!({"metadata": {"ownerReferences": refs, "uid": item_uid}})
}

/// kube's `unblockOwnerReferencesJSONMergePatch`: all references, none blocking.
pub fn unblock_references_merge(latest: &Meta) -> Value {
    let refs: Vec<OwnerReference> = latest
        .owners
        .iter()
        .map(|r| OwnerReference {
            block_owner_deletion: Some(false),
            ..r.clone()
        })
        .collect();
    json!({"metadata": {"resourceVersion": latest.resource_version, "ownerReferences": refs}})
}

/// kube's `removeFinalizer` body: a JSON merge patch of the finalizers without `finalizer`,
/// guarded by the resourceVersion they were read at. `None` when it is not there.
pub fn remove_finalizer_patch(latest: &Meta, finalizer: &str) -> Option<Value> {
    if !latest.has_finalizer(finalizer) {
        return None;
    }
    let rest: Vec<&String> = latest
        .finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    // Go marshals the nil slice left when it was the only one as `null`.
    let finalizers = if rest.is_empty() {
        Value::Null
    } else {
        json!(rest)
    };
    Some(json!({"metadata": {
        "resourceVersion": latest.resource_version,
        "finalizers": finalizers,
    }}))
}

/// kube's `deleteObject` on a 409: the delete is tried again without the resourceVersion
/// precondition only when the object is the same one and its owner references did not change
/// since they were read.
pub fn retry_delete_without_version(read: &Meta, live: &Meta) -> bool {
    live.identity.uid == read.identity.uid
        && live.resource_version != read.resource_version
        && live.owners == read.owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::identity::Identity;

    fn owner(uid: &str, block: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block,
            controller: Some(true),
        }
    }

    fn item(owners: Vec<OwnerReference>, finalizers: &[&str]) -> Meta {
        Meta {
            identity: Identity {
                kind: "Pod".into(),
                api_version: "v1".into(),
                namespace: "ns".into(),
                name: "p".into(),
                uid: "item".into(),
            },
            owners,
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            being_deleted: false,
            resource_version: "42".into(),
        }
    }

    fn live(uid: &str, deleting: bool, finalizers: &[&str]) -> Meta {
        let mut m = item(vec![], finalizers);
        m.identity.uid = uid.into();
        m.being_deleted = deleting;
        m
    }

    #[test]
    fn owners_are_looked_up_in_the_dependents_namespace() {
        assert_eq!(
            owner_lookup("ns", true),
            OwnerLookup::Get {
                namespace: Some("ns".into())
            }
        );
        assert_eq!(
            owner_lookup("ns", false),
            OwnerLookup::Get { namespace: None }
        );
        assert_eq!(
            owner_lookup("", false),
            OwnerLookup::Get { namespace: None }
        );
        assert_eq!(
            owner_lookup("", true),
            OwnerLookup::NamespacedOwnerOfClusterScopedItem
        );
    }

    #[test]
    fn owner_states_as_is_dangling_and_classify_references() {
        let r = owner("o", None);
        assert_eq!(owner_state(&r, None), OwnerState::Dangling, "404");
        assert_eq!(
            owner_state(&r, Some(&live("other", false, &[]))),
            OwnerState::Dangling,
            "same name, another uid"
        );
        assert_eq!(
            owner_state(&r, Some(&live("o", false, &[]))),
            OwnerState::Solid
        );
        assert_eq!(
            owner_state(&r, Some(&live("o", true, &[]))),
            OwnerState::Solid,
            "being deleted without foregroundDeletion"
        );
        assert_eq!(
            owner_state(&r, Some(&live("o", false, &[FINALIZER_FOREGROUND]))),
            OwnerState::Solid,
            "the finalizer without a deletionTimestamp"
        );
        assert_eq!(
            owner_state(&r, Some(&live("o", true, &[FINALIZER_FOREGROUND]))),
            OwnerState::WaitingForDependentsDeletion
        );
    }

    fn classified(solid: &[&str], dangling: &[&str], waiting: &[&str]) -> Classified {
        let refs = |v: &[&str]| v.iter().map(|u| owner(u, Some(true))).collect();
        Classified {
            solid: refs(solid),
            dangling: refs(dangling),
            waiting: refs(waiting),
        }
    }

    #[test]
    fn decisions_follow_attempt_to_delete_item() {
        let one = vec![owner("a", Some(true))];
        struct Case {
            name: &'static str,
            latest: Meta,
            classified: Classified,
            has_dependents: bool,
            dep_deleting: bool,
            want: Action,
        }
        let cases = [
            Case {
                name: "no owners",
                latest: item(vec![], &[]),
                classified: classified(&[], &[], &[]),
                has_dependents: false,
                dep_deleting: false,
                want: Action::Keep,
            },
            Case {
                name: "all owners solid",
                latest: item(one.clone(), &[]),
                classified: classified(&["a"], &[], &[]),
                has_dependents: true,
                dep_deleting: false,
                want: Action::Keep,
            },
            Case {
                name: "solid and dangling: the dangling reference is removed",
                latest: item(one.clone(), &[]),
                classified: classified(&["a"], &["b"], &[]),
                has_dependents: false,
                dep_deleting: false,
                want: Action::RemoveReferences {
                    owner_uids: vec!["b".into()],
                },
            },
            Case {
                name: "solid, dangling and waiting: both removed",
                latest: item(one.clone(), &[]),
                classified: classified(&["a"], &["b"], &["c"]),
                has_dependents: true,
                dep_deleting: false,
                want: Action::RemoveReferences {
                    owner_uids: vec!["b".into(), "c".into()],
                },
            },
            Case {
                name: "all dangling: background",
                latest: item(one.clone(), &[]),
                classified: classified(&[], &["a", "b"], &[]),
                has_dependents: true,
                dep_deleting: false,
                want: Action::Delete(Propagation::Background),
            },
            Case {
                name: "dangling, own orphan finalizer honoured",
                latest: item(one.clone(), &[FINALIZER_ORPHAN]),
                classified: classified(&[], &["a"], &[]),
                has_dependents: true,
                dep_deleting: false,
                want: Action::Delete(Propagation::Orphan),
            },
            Case {
                name: "dangling, own foreground finalizer honoured",
                latest: item(one.clone(), &["x", FINALIZER_FOREGROUND]),
                classified: classified(&[], &["a"], &[]),
                has_dependents: false,
                dep_deleting: false,
                want: Action::Delete(Propagation::Foreground),
            },
            Case {
                name: "owner waiting, item with dependents: foreground",
                latest: item(one.clone(), &[]),
                classified: classified(&[], &["b"], &["a"]),
                has_dependents: true,
                dep_deleting: false,
                want: Action::DeleteForeground {
                    unblock_first: false,
                },
            },
            Case {
                name: "owner waiting, a dependent deleting its own: unblock, then foreground",
                latest: item(one.clone(), &[]),
                classified: classified(&[], &[], &["a"]),
                has_dependents: true,
                dep_deleting: true,
                want: Action::DeleteForeground {
                    unblock_first: true,
                },
            },
            Case {
                name: "owner waiting, item without dependents: background",
                latest: item(one.clone(), &[]),
                classified: classified(&[], &[], &["a"]),
                has_dependents: false,
                dep_deleting: false,
                want: Action::Delete(Propagation::Background),
            },
        ];
        for c in cases {
            assert_eq!(
                decide(&c.latest, &c.classified, c.has_dependents, c.dep_deleting),
                c.want,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn a_foreground_owner_waits_for_blocking_dependents_only() {
        assert_eq!(foreground(&[]), Foreground::RemoveFinalizer);
        assert_eq!(
            foreground(&[("a".into(), false), ("b".into(), true)]),
            Foreground::DeleteDependents(vec!["a".into()]),
            "a dependent deleting its own dependents is not queued again"
        );
        assert_eq!(
            foreground(&[("b".into(), true)]),
            Foreground::DeleteDependents(vec![]),
            "still blocked"
        );
    }

    #[test]
    fn patch_bodies_are_kubes() {
        assert_eq!(
            delete_references_strategic("dep", &["a".into(), "b".into()]),
            json!({"metadata": {"ownerReferences": [
                {"$patch": "delete", "uid": "a"}, {"$patch": "delete", "uid": "b"}], "uid": "dep"}})
        );
        let latest = item(vec![owner("a", Some(true)), owner("b", None)], &[]);
        let merge = delete_references_merge(&latest, &["a".into()]);
        assert_eq!(merge["metadata"]["resourceVersion"], "42");
        assert_eq!(merge["metadata"]["ownerReferences"][0]["uid"], "b");
        assert_eq!(
            merge["metadata"]["ownerReferences"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(
            delete_references_merge(&latest, &["a".into(), "b".into()])["metadata"]
                ["ownerReferences"],
            Value::Null
        );

        let unblock = unblock_references_strategic("item", &latest.owners);
        assert_eq!(unblock["metadata"]["uid"], "item");
        let refs = unblock["metadata"]["ownerReferences"]
            .as_array()
            .expect("list");
        assert_eq!(refs.len(), 1, "only the blocking references");
        assert_eq!(refs[0]["uid"], "a");
        assert_eq!(refs[0]["blockOwnerDeletion"], false);
        assert_eq!(refs[0]["controller"], true);
        let unblock = unblock_references_merge(&latest);
        assert_eq!(
            unblock["metadata"]["ownerReferences"][1]["blockOwnerDeletion"],
            false
        );

        let owner = item(vec![], &["x", FINALIZER_FOREGROUND]);
        assert_eq!(
            remove_finalizer_patch(&owner, FINALIZER_FOREGROUND),
            Some(json!({"metadata": {"resourceVersion": "42", "finalizers": ["x"]}}))
        );
        let owner = item(vec![], &[FINALIZER_ORPHAN]);
        assert_eq!(
            remove_finalizer_patch(&owner, FINALIZER_ORPHAN),
            Some(json!({"metadata": {"resourceVersion": "42", "finalizers": null}}))
        );
        assert_eq!(remove_finalizer_patch(&owner, FINALIZER_FOREGROUND), None);
    }

    #[test]
    fn a_conflicting_delete_is_retried_only_when_the_owners_did_not_change() {
        let read = item(vec![owner("a", None)], &[]);
        let mut live = read.clone();
        live.resource_version = "43".into();
        assert!(retry_delete_without_version(&read, &live));
        let mut adopted = live.clone();
        adopted.owners.push(owner("b", None));
        assert!(!retry_delete_without_version(&read, &adopted));
        let mut recreated = live.clone();
        recreated.identity.uid = "new".into();
        assert!(!retry_delete_without_version(&read, &recreated));
    }
}
