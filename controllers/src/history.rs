//! kube's controller history (`pkg/controller/history`): the ControllerRevisions DaemonSets and
//! StatefulSets keep of their pod templates, so a rollout can be undone (`kubectl rollout undo`
//! patches the owner with a revision's `data`). Pure functions only: naming, hashing, ordering,
//! equality, the next revision number, and the patch a revision stores; the controllers do the
//! writes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Value};

use crate::deployment::util::{fnv1a32, safe_encode};

/// The label every revision carries with its hash (`history.ControllerRevisionHashLabel`).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The label a DaemonSet's or StatefulSet's pods carry naming their revision
/// (`apps.ControllerRevisionHashLabelKey`; the DaemonSet's `DefaultDaemonSetUniqueLabelKey`).
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";

/// The longest prefix a revision name keeps, so `<prefix>-<hash>` fits a DNS subdomain
/// (`ControllerRevisionName`).
const MAX_PREFIX: usize = 223;

/// `ControllerRevisionName`: `<prefix>-<hash>`, the prefix cut to 223 bytes.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// The patch a revision stores and `kubectl rollout undo` applies (strategic merge) to the
/// owner: `{"spec":{"template":{…,"$patch":"replace"}}}` — kube's `getPatch` for DaemonSets and
/// StatefulSets. `template` is the owner's `spec.template` as JSON.
pub fn template_patch(template: &Value) -> Value {
    let mut template = template.clone();
    if let Value::Object(m) = &mut template {
        m.insert("$patch".into(), Value::String("replace".into()));
    }
    json!({ "spec": { "template": template } })
}

/// The template a revision's patch holds (without the `$patch` directive), if it holds one.
pub fn template_of(rev: &ControllerRevision) -> Option<Value> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    Some(t)
}

/// `HashControllerRevision`: FNV-1a over the revision's data (canonical JSON) and then the
/// decimal collision count, safe-encoded.
pub fn hash_revision(data: &Value, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    let probe = collision_count.map(|c| c.to_string());
    let hash = match &probe {
        Some(p) => fnv1a32(&[&bytes, p.as_bytes()]),
        None => fnv1a32(&[&bytes]),
    };
    safe_encode(&hash.to_string())
}

/// `NewControllerRevision`: a revision of `owner` (its controller reference built from
/// `api_version`/`kind`) holding `data`, labelled with the template's labels and its hash, named
/// `<owner>-<hash>`.
pub fn new_revision(
    owner: &ObjectMeta,
    api_version: &str,
    kind: &str,
    template_labels: &BTreeMap<String, String>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let hash = hash_revision(&data, collision_count);
    let mut labels = template_labels.clone();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(
                owner.name.as_deref().unwrap_or_default(),
                &hash,
            )),
            namespace: owner.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![controller_ref(owner, api_version, kind)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// The controller reference a dependent of `owner` carries.
pub fn controller_ref(owner: &ObjectMeta, api_version: &str, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `SortControllerRevisions`' order: by revision, then creation time, then name.
pub fn by_revision(a: &ControllerRevision, b: &ControllerRevision) -> Ordering {
    a.revision
        .cmp(&b.revision)
        .then_with(|| {
            let t = |r: &ControllerRevision| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `EqualRevision`: two revisions are equal when their hash labels (if both have one) agree and
/// their data is the same.
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    let hash = |r: &ControllerRevision| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL).cloned())
    };
    if let (Some(ha), Some(hb)) = (hash(a), hash(b)) {
        if ha != hb {
            return false;
        }
    }
    a.data.as_ref().map(|d| &d.0) == b.data.as_ref().map(|d| &d.0)
}

/// `FindEqualRevisions`: the revisions equal to `needle`.
pub fn equal_revisions<'a>(
    revisions: &'a [ControllerRevision],
    needle: &ControllerRevision,
) -> Vec<&'a ControllerRevision> {
    revisions
        .iter()
        .filter(|r| equal_revision(r, needle))
        .collect()
}

/// `nextRevision`: one more than the highest revision, 1 when there are none.
pub fn next_revision(revisions: &[ControllerRevision]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        }
    }

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn rev(image: &str, n: i64) -> ControllerRevision {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        new_revision(
            &meta("web"),
            "apps/v1",
            "StatefulSet",
            &labels,
            template_patch(&template(image)),
            n,
            None,
        )
    }

    #[test]
    fn the_patch_replaces_the_whole_template_and_round_trips() {
        let p = template_patch(&template("a"));
        assert_eq!(p.pointer("/spec/template/$patch"), Some(&json!("replace")));
        assert_eq!(
            p.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("a"))
        );
        assert_eq!(template_of(&rev("a", 1)), Some(template("a")));
    }

    #[test]
    fn revisions_are_named_by_owner_and_hash_and_labelled() {
        let r = rev("a", 1);
        let hash = r.metadata.labels.as_ref().unwrap()[CONTROLLER_REVISION_HASH_LABEL].clone();
        assert_eq!(
            r.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(r.metadata.labels.as_ref().unwrap()["app"], "web");
        let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("StatefulSet", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        // The same data hashes the same; other data or a collision count does not.
        assert_eq!(rev("a", 2).metadata.name, r.metadata.name);
        assert_ne!(rev("b", 1).metadata.name, r.metadata.name);
        let data = template_patch(&template("a"));
        assert_ne!(hash_revision(&data, Some(1)), hash_revision(&data, None));
        assert_ne!(hash_revision(&data, Some(1)), hash_revision(&data, Some(2)));
    }

    #[test]
    fn long_owner_names_are_cut_to_fit() {
        let long = "x".repeat(300);
        let name = revision_name(&long, "abc");
        assert_eq!(name.len(), 223 + 4);
        assert!(name.ends_with("-abc"));
    }

    #[test]
    fn equality_ordering_and_the_next_revision() {
        let (a1, b2, a3) = (rev("a", 1), rev("b", 2), rev("a", 3));
        assert!(equal_revision(&a1, &a3));
        assert!(!equal_revision(&a1, &b2));
        let all = vec![a3.clone(), a1.clone(), b2.clone()];
        assert_eq!(equal_revisions(&all, &a1).len(), 2);
        assert_eq!(next_revision(&all), 4);
        assert_eq!(next_revision(&[]), 1);
        let mut sorted = all.clone();
        sorted.sort_by(by_revision);
        assert_eq!(
            sorted.iter().map(|r| r.revision).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }
}
