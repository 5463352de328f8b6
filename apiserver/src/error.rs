//! The apiserver's one error type and its rendering as a Kubernetes `Status` object: the reason,
//! code and message text kube-apiserver gives for the same failure, because clients (kubectl,
//! client-go, kube-rs) branch on `reason` and users read `message`.

use serde_json::{json, Value};

use crate::resources::ResourceInfo;

/// One invalid field, as a `StatusCause` (`FieldValueRequired`, `FieldValueInvalid`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `Invalid value: "x": <detail>`, as field.Invalid renders it.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            Value::Null => "null".to_string(),
            other => other.to_string(),
        };
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {detail}"),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &str, allowed: &[&str]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                allowed.join(", ")
            ),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value}"),
        }
    }

    /// `field: message` as it appears in an Invalid status message.
    fn render(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// An API error: everything a `Status` needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("apiserver: {reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    /// `StatusReason`; empty for a plain 500 without one.
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `pods` or `deployments.apps`, as kube names a group resource in messages.
pub fn qualified(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

fn resource_details(r: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": r.plural });
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(r: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(resource_details(r, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} {name:?} not found", qualified(r)),
            )
        }
    }

    /// A namespace that does not exist, when creating into it.
    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError {
            details: Some(json!({ "name": ns, "kind": "namespaces" })),
            ..Self::new(404, "NotFound", format!("namespaces {ns:?} not found"))
        }
    }

    pub fn already_exists(r: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(resource_details(r, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", qualified(r)),
            )
        }
    }

    pub fn conflict(r: &ResourceInfo, name: &str) -> Self {
        Self::conflict_with(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_with(r: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(resource_details(r, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: {why}",
                    qualified(r)
                ),
            )
        }
    }

    /// 422 Invalid: `Pod "x" is invalid: spec.containers: Required value` (several causes are
    /// listed as `[a, b]`, as kube's `ToAggregate` prints them).
    pub fn invalid(r: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes.iter().map(Cause::render).collect();
        let what = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut details = json!({
            "name": name,
            "kind": r.kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason, "message": c.message, "field": c.field,
            })).collect::<Vec<_>>(),
        });
        if !r.group.is_empty() {
            details["group"] = json!(r.group);
        }
        ApiError {
            details: Some(details),
            ..Self::new(
                422,
                "Invalid",
                format!("{} {name:?} is invalid: {what}", r.kind),
            )
        }
    }

    /// 422 Invalid for a kind that is not a served resource, e.g. `DeleteOptions.meta.k8s.io ""`
    /// (kube's `NewInvalid` with a group kind).
    pub fn invalid_group_kind(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes.iter().map(Cause::render).collect();
        let what = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let details = json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason, "message": c.message, "field": c.field,
            })).collect::<Vec<_>>(),
        });
        ApiError {
            details: Some(details),
            ..Self::new(
                422,
                "Invalid",
                format!("{kind}.{group} {name:?} is invalid: {what}"),
            )
        }
    }

    /// 403 Forbidden: `namespaces "default" is forbidden: <why>` (kube's `NewForbidden`).
    pub fn forbidden(r: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(resource_details(r, name)),
            ..Self::new(
                403,
                "Forbidden",
                format!("{} {name:?} is forbidden: {why}", qualified(r)),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410 for a continue token or list revision that was compacted away.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"),
        )
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn too_large(limit_bytes: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit_bytes}"),
        )
    }

    /// kube's answer when the in-flight budget is spent.
    pub fn too_many_requests(retry_after_seconds: u32) -> Self {
        ApiError {
            details: Some(json!({ "retryAfterSeconds": retry_after_seconds })),
            ..Self::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            )
        }
    }

    /// `details.retryAfterSeconds`, sent again as the `Retry-After` header.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.details.as_ref()?.get("retryAfterSeconds")?.as_u64()
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The `Status` object sent as the response body (or inside a watch ERROR event).
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl From<etcd_client::Error> for ApiError {
    fn from(e: etcd_client::Error) -> Self {
        // kube-apiserver reports a failed store call as a 500 with the store's text; a store that
        // cannot be reached at all is what /readyz reports.
        ApiError::internal(format!("etcd: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn messages_match_kube() {
        let pods = find("", "v1", "pods").unwrap();
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            ApiError::not_found(pods, "x").message,
            r#"pods "x" not found"#
        );
        assert_eq!(
            ApiError::already_exists(deploy, "web").message,
            r#"deployments.apps "web" already exists"#
        );
        let c = ApiError::conflict(deploy, "web");
        assert_eq!(c.code, 409);
        assert!(c
            .message
            .starts_with(r#"Operation cannot be fulfilled on deployments.apps "web": "#));
        let inv = ApiError::invalid(pods, "p", vec![Cause::required("spec.containers")]);
        assert_eq!(
            inv.message,
            r#"Pod "p" is invalid: spec.containers: Required value"#
        );
        let s = inv.status();
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.containers");
        let two = ApiError::invalid(
            pods,
            "p",
            vec![
                Cause::required("spec.containers[0].name"),
                Cause::required("spec.containers[0].image"),
            ],
        );
        assert_eq!(
            two.message,
            r#"Pod "p" is invalid: [spec.containers[0].name: Required value, spec.containers[0].image: Required value]"#
        );
    }
}
