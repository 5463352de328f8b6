//! The dependency graph (kube's `GraphBuilder.processGraphChanges` and `graph.go`): one node per
//! uid, with the owner references the object holds and the uids of the objects that name it as
//! an owner. An owner named before it is observed gets a *virtual* node (its coordinates taken
//! from the reference, in the dependent's namespace) that the collector checks against the API.
//!
//! Pure: [`Graph::process`] applies one change (an observed add/update/delete, or a *virtual*
//! delete the collector produced after the API said an object is absent) and returns what must
//! happen next — which uids go to the attempt-to-delete and attempt-to-orphan queues, which
//! identities are known absent, and which invalid cross-namespace references to report.
//!
//! Bound: one node per object of a monitored resource plus one per owner uid named by one; each
//! node holds the object's coordinates, owner references and finalizers only.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::identity::{blocks, Identity, Meta, FINALIZER_FOREGROUND, FINALIZER_ORPHAN};

/// One object (or a virtual owner) in the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub identity: Identity,
    /// The owner references the object holds (none for a virtual node).
    pub owners: Vec<OwnerReference>,
    /// Uids of the nodes whose owner references name this node's uid.
    pub dependents: BTreeSet<String>,
    /// Being deleted with the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// `deletionTimestamp` was seen set (a one-way trip).
    pub being_deleted: bool,
    /// Never observed through a watch: known only from references to it.
    pub is_virtual: bool,
    /// The finalizers last observed, for the transitions of the next update.
    pub finalizers: Vec<String>,
}

impl Node {
    fn virtual_owner(identity: Identity) -> Node {
        Node {
            identity,
            owners: Vec::new(),
            dependents: BTreeSet::new(),
            deleting_dependents: false,
            being_deleted: false,
            is_virtual: true,
            finalizers: Vec::new(),
        }
    }
}

/// Whether a change was observed or produced by the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// An add or update from a watch.
    Upsert,
    Delete,
}

/// One change for the graph (kube's `event`).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Produced by the collector after the API answered that the object is absent (only
    /// deletes are virtual).
    pub is_virtual: bool,
    pub object: Meta,
}

/// A dependent whose owner reference names an owner that lives in another namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOwnerReference {
    pub dependent: Identity,
    /// The owner as the reference names it, in the dependent's namespace.
    pub owner: Identity,
}

impl InvalidOwnerReference {
    /// The Event reason kube records on the dependent.
    pub const REASON: &'static str = "OwnerRefInvalidNamespace";

    /// kube's message: `ownerRef %s does not exist in namespace %q`.
    pub fn message(&self) -> String {
        format!(
            "ownerRef {} does not exist in namespace {:?}",
            self.owner, self.dependent.namespace
        )
    }
}

/// What processing one change asks for, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    /// Uids to add to attemptToDelete.
    pub attempt_to_delete: Vec<String>,
    /// Uids to add to attemptToDelete after their backoff.
    pub attempt_to_delete_rate_limited: Vec<String>,
    /// Uids to add to attemptToOrphan.
    pub attempt_to_orphan: Vec<String>,
    /// Identities now known not to exist (the absent-owner cache).
    pub absent: Vec<Identity>,
    /// Warning Events to record on dependents.
    pub invalid_references: Vec<InvalidOwnerReference>,
}

/// A dependent as the collector's workers see it.
#[derive(Clone, Debug, PartialEq)]
pub struct DependentView {
    pub uid: String,
    pub identity: Identity,
    pub deleting_dependents: bool,
    /// One of its references to the owner has `blockOwnerDeletion: true`.
    pub blocks_owner: bool,
}

/// A copy of one node and its dependents, taken under the graph's lock.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemView {
    pub identity: Identity,
    pub is_virtual: bool,
    pub being_deleted: bool,
    pub deleting_dependents: bool,
    pub owners: Vec<OwnerReference>,
    pub dependents: Vec<DependentView>,
}

impl ItemView {
    /// kube's `blockingDependents`.
    pub fn blocking_dependents(&self) -> Vec<&DependentView> {
        self.dependents.iter().filter(|d| d.blocks_owner).collect()
    }
}

/// The uid → node map.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Nodes in the graph, virtual ones included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    #[cfg(test)]
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The node of `uid` with its dependents, for a worker.
    pub fn view(&self, uid: &str) -> Option<ItemView> {
        let n = self.nodes.get(uid)?;
        let dependents = n
            .dependents
            .iter()
            .filter_map(|d| self.nodes.get(d).map(|dn| (d, dn)))
            .map(|(d, dn)| DependentView {
                uid: d.clone(),
                identity: dn.identity.clone(),
                deleting_dependents: dn.deleting_dependents,
                blocks_owner: dn.owners.iter().any(|o| o.uid == uid && blocks(o)),
            })
            .collect();
        Some(ItemView {
            identity: n.identity.clone(),
            is_virtual: n.is_virtual,
            being_deleted: n.being_deleted,
            deleting_dependents: n.deleting_dependents,
            owners: n.owners.clone(),
            dependents,
        })
    }

    /// Applies one change (kube's `processGraphChanges`).
    pub fn process(&mut self, change: Change) -> Effects {
        let mut fx = Effects::default();
        let object = change.object;
        let uid = object.identity.uid.clone();
        if uid.is_empty() {
            return fx;
        }
        // The state the object had when last observed: kube compares against the informer's
        // old object; a virtual node has none.
        let old = self
            .nodes
            .get(&uid)
            .filter(|n| !n.is_virtual)
            .map(|n| (n.being_deleted, n.finalizers.clone()));

        if !change.is_virtual {
            self.mark_observed(&object.identity, &mut fx);
        }
        let found = self.nodes.contains_key(&uid);
        match (change.kind, found) {
            (ChangeKind::Upsert, false) => {
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity: object.identity.clone(),
                        owners: object.owners.clone(),
                        dependents: BTreeSet::new(),
                        deleting_dependents: object.deleting_dependents(),
                        being_deleted: object.being_deleted,
                        is_virtual: false,
                        finalizers: object.finalizers.clone(),
                    },
                );
                self.add_dependent_to_owners(&uid, &object.owners, &mut fx);
                self.process_transitions(None, &object, &mut fx);
            }
            (ChangeKind::Upsert, true) => {
                let previous_owners = {
                    let n = self.nodes.get_mut(&uid).expect("found above");
                    if n.identity.api_version != object.identity.api_version
                        || n.identity.kind != object.identity.kind
                    {
                        n.identity.api_version = object.identity.api_version.clone();
                        n.identity.kind = object.identity.kind.clone();
                    }
                    n.owners.clone()
                };
                let diff = references_diff(&previous_owners, &object.owners);
                if !diff.is_empty() {
                    self.add_unblocked_owners(&diff, &mut fx);
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.owners = object.owners.clone();
                    }
                    self.add_dependent_to_owners(&uid, &diff.added, &mut fx);
                    self.remove_dependent_from_owners(&uid, &diff.removed);
                }
                if let Some(n) = self.nodes.get_mut(&uid) {
                    if object.being_deleted {
                        n.being_deleted = true;
                    }
                    n.finalizers = object.finalizers.clone();
                }
                self.process_transitions(old, &object, &mut fx);
            }
            (ChangeKind::Delete, false) => {}
            (ChangeKind::Delete, true) => self.process_delete(&object, change.is_virtual, &mut fx),
        }
        fx
    }

    /// An observed event for a node that was virtual: it is real now; if the coordinates its
    /// dependents used were wrong, those dependents are checked again (and a dependent in
    /// another namespace than a namespaced owner is reported).
    fn mark_observed(&mut self, observed: &Identity, fx: &mut Effects) {
        let Some(existing) = self.nodes.get(&observed.uid) else {
            return;
        };
        if !existing.is_virtual {
            return;
        }
        if existing.identity != *observed {
            let deps: Vec<String> = existing.dependents.iter().cloned().collect();
            let (_, nonmatching) = self.partition_dependents(&deps, observed);
            for dep in nonmatching {
                let dep_namespace = self.nodes.get(&dep).map(|d| d.identity.namespace.clone());
                if !observed.namespace.is_empty()
                    && dep_namespace.as_deref() != Some(observed.namespace.as_str())
                {
                    self.report_invalid_namespace(&dep, &observed.uid, fx);
                }
                fx.attempt_to_delete.push(dep);
            }
        }
        if let Some(n) = self.nodes.get_mut(&observed.uid) {
            n.identity = observed.clone();
            n.is_virtual = false;
        }
    }

    fn process_delete(&mut self, object: &Meta, is_virtual: bool, fx: &mut Effects) {
        let uid = &object.identity.uid;
        let deleted = &object.identity;
        let Some(existing) = self.nodes.get(uid).cloned() else {
            return;
        };
        let mut remove = true;
        if is_virtual {
            let deps: Vec<String> = existing.dependents.iter().cloned().collect();
            if existing.is_virtual {
                // Not sure of our coordinates: do dependents name this uid otherwise?
                let (matching, nonmatching) = self.partition_dependents(&deps, deleted);
                if !nonmatching.is_empty() {
                    remove = false;
                    if !matching.is_empty() {
                        fx.absent.push(deleted.clone());
                        fx.attempt_to_delete.extend(matching);
                    }
                    if existing.identity == *deleted {
                        if let Some(replacement) =
                            self.alternate_owner_identity(&nonmatching, deleted)
                        {
                            if let Some(n) = self.nodes.get_mut(uid) {
                                n.identity = replacement;
                            }
                            fx.attempt_to_delete_rate_limited.push(uid.clone());
                        }
                    }
                }
            } else if existing.identity != *deleted {
                // A real node is not removed by a virtual delete of other coordinates.
                remove = false;
                let (matching, _) = self.partition_dependents(&deps, deleted);
                if !matching.is_empty() {
                    fx.absent.push(deleted.clone());
                    fx.attempt_to_delete.extend(matching);
                }
            }
        }
        if !remove {
            return;
        }
        self.nodes.remove(uid);
        self.remove_dependent_from_owners(uid, &existing.owners);
        if !existing.dependents.is_empty() {
            fx.absent.push(deleted.clone());
        }
        fx.attempt_to_delete
            .extend(existing.dependents.iter().cloned());
        for owner in &existing.owners {
            if let Some(on) = self.nodes.get(&owner.uid) {
                if on.deleting_dependents {
                    // Let the owner see whether its last blocking dependent is gone.
                    fx.attempt_to_delete.push(owner.uid.clone());
                }
            }
        }
    }

    /// kube's `addDependentToOwners`.
    fn add_dependent_to_owners(&mut self, uid: &str, owners: &[OwnerReference], fx: &mut Effects) {
        let Some(dependent) = self.nodes.get(uid).map(|n| n.identity.clone()) else {
            return;
        };
        let mut potentially_invalid = false;
        for owner in owners {
            match self.nodes.get_mut(&owner.uid) {
                None => {
                    let mut n =
                        Node::virtual_owner(Identity::of_owner(owner, &dependent.namespace));
                    n.dependents.insert(uid.to_string());
                    self.nodes.insert(owner.uid.clone(), n);
                    // The collector asks the API whether this owner exists.
                    fx.attempt_to_delete.push(owner.uid.clone());
                }
                Some(on) => {
                    on.dependents.insert(uid.to_string());
                    if potentially_invalid {
                        continue;
                    }
                    let owner_namespaced = !on.identity.namespace.is_empty();
                    let observed = !on.is_virtual;
                    if owner_namespaced && on.identity.namespace != dependent.namespace {
                        if observed {
                            self.report_invalid_namespace(uid, &owner.uid, fx);
                        }
                        potentially_invalid = true;
                    } else if !on.identity.matches(owner) {
                        potentially_invalid = true;
                    } else if !owner_namespaced
                        && on.identity.namespace != dependent.namespace
                        && !observed
                    {
                        // Possibly a namespaced kind referenced by a cluster-scoped dependent.
                        potentially_invalid = true;
                    }
                }
            }
        }
        if potentially_invalid {
            fx.attempt_to_delete.push(uid.to_string());
        }
    }

    fn remove_dependent_from_owners(&mut self, uid: &str, owners: &[OwnerReference]) {
        for owner in owners {
            if let Some(on) = self.nodes.get_mut(&owner.uid) {
                on.dependents.remove(uid);
            }
        }
    }

    /// kube's `addUnblockedOwnersToDeleteQueue`: an owner waiting for its dependents is looked
    /// at again when a blocking reference to it goes away or stops blocking.
    fn add_unblocked_owners(&self, diff: &ReferencesDiff, fx: &mut Effects) {
        let removed = diff.removed.iter().filter(|r| blocks(r));
        let unblocked = diff
            .changed
            .iter()
            .filter(|(old, new)| blocks(old) && !blocks(new))
            .map(|(_, new)| new);
        for r in removed.chain(unblocked) {
            if self.nodes.contains_key(&r.uid) {
                fx.attempt_to_delete.push(r.uid.clone());
            }
        }
    }

    /// kube's `processTransitions`: deletion starting with the `orphan` finalizer queues the
    /// owner for orphaning; with `foregroundDeletion`, its dependents and itself for deletion.
    fn process_transitions(
        &mut self,
        old: Option<(bool, Vec<String>)>,
        new: &Meta,
        fx: &mut Effects,
    ) {
        let starts = |finalizer: &str| {
            new.being_deleted
                && new.has_finalizer(finalizer)
                && match &old {
                    None => true,
                    Some((was_deleted, fins)) => {
                        !*was_deleted || !fins.iter().any(|f| f == finalizer)
                    }
                }
        };
        let uid = &new.identity.uid;
        if starts(FINALIZER_ORPHAN) {
            fx.attempt_to_orphan.push(uid.clone());
            return;
        }
        if starts(FINALIZER_FOREGROUND) {
            if let Some(n) = self.nodes.get_mut(uid) {
                n.deleting_dependents = true;
                fx.attempt_to_delete.extend(n.dependents.iter().cloned());
            }
            fx.attempt_to_delete.push(uid.clone());
        }
    }

    fn report_invalid_namespace(&self, dependent_uid: &str, owner_uid: &str, fx: &mut Effects) {
        let Some(dep) = self.nodes.get(dependent_uid) else {
            return;
        };
        let Some(reference) = dep.owners.iter().find(|o| o.uid == owner_uid) else {
            return;
        };
        fx.invalid_references.push(InvalidOwnerReference {
            dependent: dep.identity.clone(),
            owner: Identity::of_owner(reference, &dep.identity.namespace),
        });
    }

    /// kube's `partitionDependents`: dependents whose reference to `owner.uid` matches the
    /// identity, and those with one that does not (a dependent can be in both).
    fn partition_dependents(
        &self,
        dependents: &[String],
        owner: &Identity,
    ) -> (Vec<String>, Vec<String>) {
        let owner_namespaced = !owner.namespace.is_empty();
        let mut matching = Vec::new();
        let mut nonmatching = Vec::new();
        for uid in dependents {
            let Some(dep) = self.nodes.get(uid) else {
                continue;
            };
            let (mut found_match, mut found_mismatch) = (false, false);
            if owner_namespaced && owner.namespace != dep.identity.namespace {
                found_mismatch = true;
            } else {
                for r in dep.owners.iter().filter(|r| r.uid == owner.uid) {
                    if owner.matches(r) {
                        found_match = true;
                    } else {
                        found_mismatch = true;
                    }
                }
            }
            if found_match {
                matching.push(uid.clone());
            }
            if found_mismatch {
                nonmatching.push(uid.clone());
            }
        }
        (matching, nonmatching)
    }

    /// kube's `getAlternateOwnerIdentity`: among the coordinates dependents use for the absent
    /// uid, the first one following `absent` in kube's order, else the first.
    fn alternate_owner_identity(
        &self,
        dependents: &[String],
        absent: &Identity,
    ) -> Option<Identity> {
        let cluster_scoped = absent.namespace.is_empty();
        let mut seen: BTreeSet<Identity> = BTreeSet::new();
        seen.insert(absent.clone());
        let mut first: Option<Identity> = None;
        let mut first_following: Option<Identity> = None;
        for uid in dependents {
            let Some(dep) = self.nodes.get(uid) else {
                continue;
            };
            for r in dep.owners.iter().filter(|r| r.uid == absent.uid) {
                if absent.matches(r)
                    && (cluster_scoped || absent.namespace == dep.identity.namespace)
                {
                    continue;
                }
                let mut candidate = Identity::of_owner(r, &dep.identity.namespace);
                if cluster_scoped
                    && candidate.api_version == absent.api_version
                    && candidate.kind == absent.kind
                {
                    candidate.namespace.clear();
                }
                if !seen.insert(candidate.clone()) {
                    continue;
                }
                if first.as_ref().is_none_or(|f| candidate < *f) {
                    first = Some(candidate.clone());
                }
                if *absent < candidate && first_following.as_ref().is_none_or(|f| candidate < *f) {
                    first_following = Some(candidate);
                }
            }
        }
        first_following.or(first)
    }
}

/// kube's `referencesDiffs`, keyed by uid.
#[derive(Debug, Default, PartialEq)]
struct ReferencesDiff {
    added: Vec<OwnerReference>,
    removed: Vec<OwnerReference>,
    changed: Vec<(OwnerReference, OwnerReference)>,
}

impl ReferencesDiff {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn references_diff(old: &[OwnerReference], new: &[OwnerReference]) -> ReferencesDiff {
    let mut diff = ReferencesDiff::default();
    let mut old_by_uid: HashMap<&str, &OwnerReference> =
        old.iter().map(|r| (r.uid.as_str(), r)).collect();
    for r in new {
        match old_by_uid.remove(r.uid.as_str()) {
            Some(o) if o != r => diff.changed.push((o.clone(), r.clone())),
            Some(_) => {}
            None => diff.added.push(r.clone()),
        }
    }
    // In the old order, so results do not depend on hashing.
    diff.removed = old
        .iter()
        .filter(|r| old_by_uid.contains_key(r.uid.as_str()))
        .cloned()
        .collect();
    diff
}
