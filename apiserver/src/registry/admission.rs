//! The admission plugins this apiserver runs, as pure functions over the object (kube's
//! `plugin/pkg/admission` and `apiserver/pkg/admission/plugin`): DefaultTolerationSeconds, and
//! NamespaceLifecycle's refusal to create content in a namespace being terminated. (Its
//! refusal to delete the system namespaces is part of the delete plan, `deletion::plan`.)

use serde_json::{json, Value};

use crate::error::{qualified, ApiError};
use crate::machinery::meta;
use crate::resources::ResourceInfo;

/// `node.kubernetes.io/not-ready` (`v1.TaintNodeNotReady`).
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable` (`v1.TaintNodeUnreachable`).
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The DefaultTolerationSeconds plugin's settings (`--default-not-ready-toleration-seconds`,
/// `--default-unreachable-toleration-seconds`, both 300 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTolerationSeconds {
    pub not_ready_seconds: i64,
    pub unreachable_seconds: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds {
            not_ready_seconds: 300,
            unreachable_seconds: 300,
        }
    }
}

/// kube's DefaultTolerationSeconds `Admit` on a pod create or update (not its subresources):
/// a pod that does not already tolerate `not-ready:NoExecute` (or `unreachable:NoExecute`) —
/// by that key or an empty key, with effect NoExecute or an empty effect — gets an `Exists`
/// toleration of it for the configured seconds, appended.
pub fn default_toleration_seconds(pod: &mut Value, cfg: DefaultTolerationSeconds) {
    let tolerates = |pod: &Value, key: &str| {
        pod.pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|t| {
                let k = t.get("key").and_then(Value::as_str).unwrap_or("");
                let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
                (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
            })
    };
    let missing: Vec<Value> = [
        (TAINT_NODE_NOT_READY, cfg.not_ready_seconds),
        (TAINT_NODE_UNREACHABLE, cfg.unreachable_seconds),
    ]
    .into_iter()
    .filter(|(key, _)| !tolerates(pod, key))
    .map(|(key, secs)| {
        json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs})
    })
    .collect();
    if missing.is_empty() {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return; // no spec: validation reports it
    };
    match spec.get_mut("tolerations") {
        Some(Value::Array(list)) => list.extend(missing),
        Some(Value::Null) | None => {
            spec.insert("tolerations".into(), Value::Array(missing));
        }
        Some(_) => {} // not a list: decoding reports it
    }
}

/// The name admission reports for an object being created: its name, else its generateName
/// (admission runs before a name is generated), else `Unknown` (kube's `extractResourceName`).
pub fn admission_name(obj: &Value, generated: bool) -> String {
    let name = meta::meta_str(obj, "name").filter(|n| !n.is_empty());
    let generate = meta::meta_str(obj, "generateName").filter(|n| !n.is_empty());
    match (name, generate) {
        (Some(_), Some(g)) if generated => g.to_string(),
        (Some(n), _) => n.to_string(),
        (None, Some(g)) => g.to_string(),
        (None, None) => "Unknown".to_string(),
    }
}

/// NamespaceLifecycle's refusal of a create in a Terminating namespace: 403 with kube's message
/// and a `NamespaceTerminating` cause.
pub fn namespace_terminating(r: &ResourceInfo, name: &str, ns: &str) -> ApiError {
    let mut details = json!({
        "name": name,
        "kind": r.plural,
        "causes": [{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace",
        }],
    });
    if !r.group.is_empty() {
        details["group"] = json!(r.group);
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                qualified(r)
            ),
        )
    }
}

/// Whether a namespace object is Terminating (NamespaceLifecycle reads the phase).
pub fn is_terminating(ns: &Value) -> bool {
    ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn pod(tolerations: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}})
    }

    fn added(tolerations: Value) -> Vec<Value> {
        let before = tolerations.as_array().map_or(0, Vec::len);
        let mut p = pod(tolerations);
        default_toleration_seconds(&mut p, DefaultTolerationSeconds::default());
        p["spec"]["tolerations"].as_array().unwrap()[before..].to_vec()
    }

    fn exists(key: &str) -> Value {
        json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    }

    #[test]
    fn both_tolerations_are_added_unless_already_tolerated() {
        let nr = exists(TAINT_NODE_NOT_READY);
        let un = exists(TAINT_NODE_UNREACHABLE);
        let cases: Vec<(Value, Vec<Value>)> = vec![
            (Value::Null, vec![nr.clone(), un.clone()]),
            (json!([]), vec![nr.clone(), un.clone()]),
            // Another key or effect does not count.
            (
                json!([{"key": "other", "operator": "Exists"}]),
                vec![nr.clone(), un.clone()],
            ),
            (
                json!([{"key": TAINT_NODE_NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]),
                vec![nr.clone(), un.clone()],
            ),
            // The key with NoExecute, or with any effect.
            (
                json!([{"key": TAINT_NODE_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]),
                vec![un.clone()],
            ),
            (
                json!([{"key": TAINT_NODE_UNREACHABLE, "operator": "Exists"}]),
                vec![nr.clone()],
            ),
            // An empty key tolerates every taint of its effect.
            (
                json!([{"operator": "Exists", "effect": "NoExecute"}]),
                vec![],
            ),
            (json!([{"operator": "Exists"}]), vec![]),
            (
                json!([{"operator": "Exists", "effect": "NoSchedule"}]),
                vec![nr.clone(), un.clone()],
            ),
        ];
        for (have, want) in cases {
            assert_eq!(added(have.clone()), want, "{have}");
        }
    }

    #[test]
    fn the_seconds_are_the_flags() {
        let mut p = pod(Value::Null);
        default_toleration_seconds(
            &mut p,
            DefaultTolerationSeconds {
                not_ready_seconds: 7,
                unreachable_seconds: 9,
            },
        );
        assert_eq!(p["spec"]["tolerations"][0]["tolerationSeconds"], 7);
        assert_eq!(p["spec"]["tolerations"][1]["tolerationSeconds"], 9);
        // Idempotent: a second admission adds nothing.
        let once = p.clone();
        default_toleration_seconds(&mut p, DefaultTolerationSeconds::default());
        assert_eq!(p, once);
    }

    #[test]
    fn terminating_namespaces_refuse_content_as_kube() {
        let pods = find("", "v1", "pods").unwrap();
        let e = namespace_terminating(pods, "p", "team");
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            r#"pods "p" is forbidden: unable to create new content in namespace team because it is being terminated"#
        );
        let d = e.details.unwrap();
        assert_eq!(d["kind"], "pods");
        assert_eq!(d["name"], "p");
        assert_eq!(d["causes"][0]["reason"], "NamespaceTerminating");
        assert_eq!(
            d["causes"][0]["message"],
            "namespace team is being terminated"
        );
        assert_eq!(d["causes"][0]["field"], "metadata.namespace");
        let deploys = find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            namespace_terminating(deploys, "d", "t").details.unwrap()["group"],
            "apps"
        );
    }

    #[test]
    fn admission_names_the_object_as_sent() {
        let named = json!({"metadata": {"name": "a"}});
        let generated = json!({"metadata": {"name": "web-x7k2p", "generateName": "web-"}});
        assert_eq!(admission_name(&named, false), "a");
        assert_eq!(admission_name(&generated, true), "web-");
        assert_eq!(admission_name(&generated, false), "web-x7k2p");
        assert_eq!(admission_name(&json!({"metadata": {}}), false), "Unknown");
    }
}
