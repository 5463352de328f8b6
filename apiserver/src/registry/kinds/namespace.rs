//! Namespaces (kube's `pkg/registry/core/namespace`): created Active with the `kubernetes`
//! finalizer in `spec.finalizers`; a DELETE only marks them Terminating (`deletion::plan`);
//! the namespace controller empties them and takes `kubernetes` out through the `finalize`
//! subresource, the one write that changes `spec.finalizers`; the namespace is removed once
//! `spec.finalizers` and `metadata.finalizers` are both empty. Nothing here deletes a
//! namespace's content: that is the controller's job.

use serde_json::{json, Value};

use crate::registry::ObjectRef;
use crate::resources::ResourceInfo;

/// `v1.FinalizerKubernetes`: the namespace controller's finalizer.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

fn is_namespaces(r: &ResourceInfo) -> bool {
    r.group.is_empty() && r.plural == "namespaces"
}

/// The namespace strategy's `PrepareForCreate`: status is `{phase: Active}` whatever was sent,
/// and `kubernetes` is in `spec.finalizers` (appended to any others).
pub fn prepare_for_create(obj: &mut Value) {
    obj["status"] = json!({"phase": "Active"});
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    match spec.get_mut("finalizers") {
        Some(Value::Array(f)) => {
            if !f.iter().any(|x| x == FINALIZER_KUBERNETES) {
                f.push(json!(FINALIZER_KUBERNETES));
            }
        }
        Some(Value::Null) | None => spec["finalizers"] = json!([FINALIZER_KUBERNETES]),
        Some(_) => {} // not a list: decoding reports it
    }
}

/// What an update keeps from the stored namespace: a plain update cannot change
/// `spec.finalizers` or `status` (the strategy's `PrepareForUpdate`); the `finalize`
/// subresource changes `spec.finalizers` only. (The status subresource is `carry_over`'s.)
pub fn carry_over(t: &ObjectRef, old: &Value, new: &mut Value) {
    if t.sub.as_deref() == Some("finalize") {
        let finalizers = new
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or_else(|| json!([]));
        let finalizers = if finalizers.is_null() {
            json!([])
        } else {
            finalizers
        };
        *new = old.clone();
        if !new.get("spec").is_some_and(Value::is_object) {
            new["spec"] = json!({});
        }
        new["spec"]["finalizers"] = finalizers;
        return;
    }
    match old.pointer("/spec/finalizers") {
        Some(f) => {
            if !new.get("spec").is_some_and(Value::is_object) {
                new["spec"] = json!({});
            }
            new["spec"]["finalizers"] = f.clone();
        }
        None => {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
    }
    match old.get("status") {
        Some(s) => new["status"] = s.clone(),
        None => {
            if let Some(o) = new.as_object_mut() {
                o.remove("status");
            }
        }
    }
}

/// kube's `ShouldDeleteNamespaceDuringUpdate` on top of the generic rule: a namespace is removed
/// by an update only once its `spec.finalizers` are empty. True for every other kind.
pub fn spec_finalizers_done(r: &ResourceInfo, new: &Value) -> bool {
    !is_namespaces(r)
        || new
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn ns_ref(sub: Option<&str>) -> ObjectRef {
        ObjectRef {
            r: find("", "v1", "namespaces").unwrap(),
            namespace: None,
            name: Some("team".into()),
            sub: sub.map(str::to_string),
        }
    }

    #[test]
    fn created_active_with_the_kubernetes_finalizer() {
        let mut ns = json!({"metadata": {"name": "team"}, "status": {"phase": "Terminating"}});
        prepare_for_create(&mut ns);
        assert_eq!(ns["status"], json!({"phase": "Active"}));
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        let mut ns =
            json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["example.com/x"]}});
        prepare_for_create(&mut ns);
        assert_eq!(
            ns["spec"]["finalizers"],
            json!(["example.com/x", "kubernetes"])
        );
        let mut ns = json!({"spec": {"finalizers": ["kubernetes"]}});
        prepare_for_create(&mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    }

    #[test]
    fn a_plain_update_keeps_spec_finalizers_and_status() {
        let old = json!({"metadata": {"name": "team", "labels": {"a": "1"}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}});
        let mut new = json!({"metadata": {"name": "team", "labels": {"a": "2"}},
            "spec": {"finalizers": []}, "status": {"phase": "Active"}});
        carry_over(&ns_ref(None), &old, &mut new);
        assert_eq!(new["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(new["status"]["phase"], "Terminating");
        assert_eq!(new["metadata"]["labels"]["a"], "2");
    }

    #[test]
    fn finalize_changes_only_spec_finalizers() {
        let old = json!({"metadata": {"name": "team", "labels": {"a": "1"}},
            "spec": {"finalizers": ["kubernetes", "example.com/x"]}, "status": {"phase": "Terminating"}});
        let mut new = json!({"metadata": {"name": "team", "labels": {"a": "2"}},
            "spec": {"finalizers": ["example.com/x"]}, "status": {"phase": "Active"}});
        carry_over(&ns_ref(Some("finalize")), &old, &mut new);
        assert_eq!(new["spec"]["finalizers"], json!(["example.com/x"]));
        assert_eq!(new["metadata"]["labels"]["a"], "1");
        assert_eq!(new["status"]["phase"], "Terminating");
        // Go clients omit an empty list: no finalizers at all.
        let mut new = json!({"metadata": {"name": "team"}, "spec": {}});
        carry_over(&ns_ref(Some("finalize")), &old, &mut new);
        assert_eq!(new["spec"]["finalizers"], json!([]));
    }

    #[test]
    fn only_namespaces_wait_for_spec_finalizers() {
        let nss = find("", "v1", "namespaces").unwrap();
        let pods = find("", "v1", "pods").unwrap();
        let held = json!({"spec": {"finalizers": ["kubernetes"]}});
        assert!(!spec_finalizers_done(nss, &held));
        assert!(spec_finalizers_done(
            nss,
            &json!({"spec": {"finalizers": []}})
        ));
        assert!(spec_finalizers_done(nss, &json!({"spec": {}})));
        assert!(spec_finalizers_done(pods, &held));
    }
}
