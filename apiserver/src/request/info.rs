//! The request, parsed once: the query string, the path into an `ObjectRef`, and the verb
//! (kube's `endpoints/request/requestinfo.go`). Handlers and metrics read the result; nothing
//! here knows about handlers.

use std::collections::HashMap;

use ::http::{header, HeaderMap, Method};
use serde_json::json;

use crate::error::ApiError;
use crate::machinery::validation;
use crate::registry::ObjectRef;
use crate::resources;

pub type Query = HashMap<String, String>;

pub fn parse_query(q: Option<&str>) -> Query {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub fn flag(q: &Query, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

/// What a resource request asks for, as kube's RequestInfo names it (the metric label is the
/// HTTP-flavoured name kube-apiserver's `apiserver_request_total` uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Apply,
    Delete,
    DeleteCollection,
    Other,
}

impl Verb {
    /// The `verb` label of kube-apiserver's request metrics.
    pub fn metric_label(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch => "PATCH",
            Verb::Apply => "APPLY",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
            Verb::Other => "OTHER",
        }
    }
}

/// A resource request: its verb and the object (or collection) it names.
#[derive(Debug)]
pub struct RequestInfo {
    pub verb: Verb,
    pub object: ObjectRef,
}

impl RequestInfo {
    /// Parses `/api/v1/<rest>` or `/apis/<group>/<version>/<rest>` and the method (with the
    /// query's `watch` and, for PATCH, the Content-Type, which tells apply from patch).
    pub fn parse(
        group: &str,
        version: &str,
        rest: &[&str],
        method: &Method,
        headers: &HeaderMap,
        query: &Query,
    ) -> Result<Self, ApiError> {
        let object = parse_target(group, version, rest)?;
        let watch = flag(query, "watch");
        let verb = match (method, object.name.is_some()) {
            (&Method::GET, true) => Verb::Get,
            (&Method::GET, false) if watch => Verb::Watch,
            (&Method::GET, false) => Verb::List,
            (&Method::POST, _) => Verb::Create,
            (&Method::PUT, _) => Verb::Update,
            (&Method::PATCH, _) => {
                let ct = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if ct.starts_with("application/apply-patch") {
                    Verb::Apply
                } else {
                    Verb::Patch
                }
            }
            (&Method::DELETE, true) => Verb::Delete,
            (&Method::DELETE, false) => Verb::DeleteCollection,
            _ => Verb::Other,
        };
        Ok(RequestInfo { verb, object })
    }

    /// The metric labels of this request.
    pub fn labels(&self) -> RequestLabels {
        let t = &self.object;
        RequestLabels {
            verb: self.verb.metric_label(),
            group: t.r.group,
            version: t.r.version,
            resource: t.r.plural,
            subresource: t.sub.clone().unwrap_or_default(),
            scope: if t.name.is_some() {
                "resource"
            } else if t.namespace.is_some() {
                "namespace"
            } else {
                "cluster"
            },
        }
    }
}

/// Metric labels of one resource request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub verb: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: String,
    pub scope: &'static str,
}

pub fn not_found_path() -> ApiError {
    ApiError {
        details: Some(json!({})),
        ..ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
}

/// `/api/v1/...` or `/apis/<g>/<v>/...` → resource target.
fn parse_target(group: &str, version: &str, rest: &[&str]) -> Result<ObjectRef, ApiError> {
    let find = |plural: &str| resources::find(group, version, plural).ok_or_else(not_found_path);
    let seg_ok = |s: &str| {
        if validation::path_segment_ok(s) {
            Ok(s.to_string())
        } else {
            Err(not_found_path())
        }
    };
    match rest {
        [res] => Ok(ObjectRef {
            r: find(res)?,
            namespace: None,
            name: None,
            sub: None,
        }),
        // kube's namespaceSubresources: `namespaces/{name}/status` and `/finalize` are the
        // namespace's own subresources, not a resource listed in a namespace.
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => Ok(ObjectRef {
            r: find("namespaces")?,
            namespace: None,
            name: Some(seg_ok(name)?),
            sub: Some(sub.to_string()),
        }),
        ["namespaces", ns, res] => {
            let r = find(res)?;
            if !r.namespaced {
                return Err(not_found_path());
            }
            Ok(ObjectRef {
                r,
                namespace: Some(seg_ok(ns)?),
                name: None,
                sub: None,
            })
        }
        ["namespaces", ns, res, name] => {
            let r = find(res)?;
            if !r.namespaced {
                return Err(not_found_path());
            }
            Ok(ObjectRef {
                r,
                namespace: Some(seg_ok(ns)?),
                name: Some(seg_ok(name)?),
                sub: None,
            })
        }
        ["namespaces", ns, res, name, sub] => {
            let r = find(res)?;
            if !r.namespaced {
                return Err(not_found_path());
            }
            Ok(ObjectRef {
                r,
                namespace: Some(seg_ok(ns)?),
                name: Some(seg_ok(name)?),
                sub: Some(sub.to_string()),
            })
        }
        [res, name] => {
            let r = find(res)?;
            if r.namespaced {
                return Err(not_found_path());
            }
            Ok(ObjectRef {
                r,
                namespace: None,
                name: Some(seg_ok(name)?),
                sub: None,
            })
        }
        [res, name, sub] => {
            let r = find(res)?;
            if r.namespaced {
                return Err(not_found_path());
            }
            Ok(ObjectRef {
                r,
                namespace: None,
                name: Some(seg_ok(name)?),
                sub: Some(sub.to_string()),
            })
        }
        _ => Err(not_found_path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Subresource;

    #[test]
    fn paths_parse_into_targets() {
        let t = parse_target("", "v1", &["namespaces", "default", "pods", "p", "status"]).unwrap();
        assert_eq!(t.r.plural, "pods");
        assert_eq!(t.ns(), Some("default"));
        assert_eq!(t.subresource(), Some(Subresource::Status));
        let ns = parse_target("", "v1", &["namespaces", "kube-system"]).unwrap();
        assert_eq!(ns.r.plural, "namespaces");
        assert_eq!(ns.name(), "kube-system");
        assert!(
            parse_target("", "v1", &["pods", "x"]).is_err(),
            "namespaced object without namespace"
        );
        assert!(parse_target("apps", "v1", &["namespaces", "d", "pods"]).is_err());
        assert!(parse_target("", "v1", &["namespaces", "..", "pods"]).is_err());
        // A namespace's own subresources.
        for sub in ["status", "finalize"] {
            let t = parse_target("", "v1", &["namespaces", "team", sub]).unwrap();
            assert_eq!(t.r.plural, "namespaces");
            assert_eq!(
                (t.ns(), t.name(), t.sub.as_deref()),
                (None, "team", Some(sub))
            );
        }
        let pods = parse_target("", "v1", &["namespaces", "team", "pods"]).unwrap();
        assert_eq!((pods.r.plural, pods.ns()), ("pods", Some("team")));
    }
}
