//! The autoscaling/v1 Scale view of a Deployment, ReplicaSet, StatefulSet or
//! ReplicationController (kube's `scaleUpdatedObjectInfo` reads and writes `spec.replicas`
//! through it).

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::machinery::meta;
use crate::machinery::selectors::{format_labels, LabelSelector};

/// The autoscaling/v1 Scale view of a Deployment, ReplicaSet, StatefulSet or
/// ReplicationController (whose selector is a plain label map).
pub fn to_scale(obj: &Value) -> Value {
    let m = meta::meta(obj).cloned().unwrap_or_default();
    let selector = if obj.get("kind").and_then(Value::as_str) == Some("ReplicationController") {
        let labels = obj.pointer("/spec/selector").and_then(Value::as_object);
        match labels.filter(|l| !l.is_empty()) {
            Some(l) => format_labels(Some(l)),
            None => String::new(),
        }
    } else {
        obj.pointer("/spec/selector")
            .and_then(|s| LabelSelector::from_json(s).ok())
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"),
            "namespace": m.get("namespace"),
            "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"),
            "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub fn replicas(scale: &Value) -> Result<i64, ApiError> {
    match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 && n <= i32::MAX as i64 => Ok(n),
            _ => Err(ApiError::new(
                422,
                "Invalid",
                format!("Scale.autoscaling \"\" is invalid: spec.replicas: Invalid value: {v}: must be greater than or equal to 0"),
            )),
        },
    }
}
