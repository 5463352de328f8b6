//! What the garbage collector keeps of an object: its coordinates (kube's `objectReference`) and
//! the few metadata fields its decisions read — owner references, finalizers and whether it is
//! being deleted. Nothing else of an object is kept, whatever its kind or size.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// `metav1.FinalizerOrphanDependents`: the owner waits until its dependents are orphaned.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// `metav1.FinalizerDeleteDependents`: the owner waits until its blocking dependents are gone.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// An object's coordinates. Owner references carry no namespace: an owner is looked for in its
/// dependent's namespace (or cluster-wide when its kind is cluster-scoped).
///
/// The derived order is kube's `referenceLessThan`: kind, apiVersion, namespace, name, uid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub kind: String,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl fmt::Display for Identity {
    /// kube's `objectReference.String()`, which Event messages quote.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

impl Identity {
    /// The owner a reference names, placed in `namespace` (the dependent's).
    pub fn of_owner(reference: &OwnerReference, namespace: &str) -> Identity {
        Identity {
            kind: reference.kind.clone(),
            api_version: reference.api_version.clone(),
            namespace: namespace.to_string(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }

    /// kube's `ownerReferenceMatchesCoordinates`: uid, name, kind and apiVersion agree.
    pub fn matches(&self, reference: &OwnerReference) -> bool {
        self.uid == reference.uid
            && self.name == reference.name
            && self.kind == reference.kind
            && self.api_version == reference.api_version
    }
}

/// The metadata of one observed object, as far as the collector cares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    /// `deletionTimestamp` is set.
    pub being_deleted: bool,
    /// Read for the resourceVersion preconditions of writes; not kept in the graph.
    pub resource_version: String,
}

impl Meta {
    pub fn from_object_meta(api_version: &str, kind: &str, meta: &ObjectMeta) -> Meta {
        Meta {
            identity: Identity {
                kind: kind.to_string(),
                api_version: api_version.to_string(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
                uid: meta.uid.clone().unwrap_or_default(),
            },
            // Every field of a reference is small, so all are kept (`controller` goes back in
            // the unblocking patch).
            owners: meta.owner_references.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            being_deleted: meta.deletion_timestamp.is_some(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
        }
    }

    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted with the `foregroundDeletion` finalizer (kube's
    /// "waitingForDependentsDeletion").
    pub fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.has_finalizer(FINALIZER_FOREGROUND)
    }
}

/// `blockOwnerDeletion: true`.
pub fn blocks(reference: &OwnerReference) -> bool {
    reference.block_owner_deletion == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_print_and_order_as_kube() {
        let a = Identity {
            kind: "ReplicaSet".into(),
            api_version: "apps/v1".into(),
            namespace: "ns".into(),
            name: "rs".into(),
            uid: "u1".into(),
        };
        assert_eq!(
            a.to_string(),
            "[apps/v1/ReplicaSet, namespace: ns, name: rs, uid: u1]"
        );
        let mut b = a.clone();
        b.kind = "Pod".into();
        b.namespace = "a".into();
        assert!(b < a, "kind is more significant than namespace");
        let mut c = a.clone();
        c.name = "aa".into();
        assert!(c < a);
    }

    #[test]
    fn metadata_is_read_from_object_meta() {
        let om = ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("u".into()),
            resource_version: Some("7".into()),
            finalizers: Some(vec![FINALIZER_FOREGROUND.into()]),
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                chrono::Utc::now(),
            )),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "o".into(),
                block_owner_deletion: Some(true),
                controller: Some(true),
            }]),
            ..Default::default()
        };
        let m = Meta::from_object_meta("v1", "Pod", &om);
        assert_eq!(
            m.identity.to_string(),
            "[v1/Pod, namespace: ns, name: p, uid: u]"
        );
        assert!(m.deleting_dependents());
        assert!(!m.has_finalizer(FINALIZER_ORPHAN));
        assert!(blocks(&m.owners[0]));
        assert!(Identity::of_owner(&m.owners[0], "ns").matches(&m.owners[0]));
        assert_eq!(m.resource_version, "7");
    }
}
