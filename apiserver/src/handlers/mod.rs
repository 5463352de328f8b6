//! The REST verbs, one file each (kube's `endpoints/handlers/*.go`): each turns a parsed request
//! into registry calls and a `Reply`. No per-kind branches here beyond choosing the subresource;
//! what a write means lives in `registry`.

pub mod discovery;
pub mod openapi;

mod create;
mod delete;
mod get;
mod list;
mod patch;
mod update;
mod watch;

use std::sync::Arc;

use ::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::extract::Request;
use axum::response::Response;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::negotiate::{decode_body, error_response, json_response, negotiate};
use crate::http::request_info::{not_found_path, Query, RequestInfo, Verb};
use crate::machinery::selectors::{FieldSelector, LabelSelector};
use crate::registry::printers::IncludeObject;
use crate::registry::store::WriteOpts;
use crate::registry::strategy::{self, FieldValidation};
use crate::registry::ObjectRef;
use crate::resources::ResourceInfo;
use crate::App;

/// Negotiates the output, checks the subresource, and runs the verb's handler.
pub async fn dispatch(app: &Arc<App>, info: &RequestInfo, query: &Query, req: Request) -> Response {
    let t = &info.object;
    let headers = req.headers().clone();
    let out = match negotiate(&headers) {
        Ok(o) => o,
        Err(e) => return error_response(&e),
    };
    if let Some(sub) = &t.sub {
        let known = t.subresource().is_some_and(|s| t.r.has(s))
            || (t.r.plural == "namespaces" && sub == "finalize");
        if !known {
            return error_response(&not_found_path());
        }
    }
    let result = match info.verb {
        Verb::Get => get::get(app, t, query, out).await,
        Verb::List => list::list(app, t, query, out).await,
        Verb::Watch => return watch::watch_response(app, t, query, out).await,
        Verb::Create if t.sub.as_deref() == Some("binding") => {
            create::bind(app, t, query, &headers, req).await
        }
        Verb::Create if t.name.is_none() => create::create(app, t, query, &headers, req).await,
        Verb::Update if t.name.is_some() => update::update(app, t, query, &headers, req).await,
        Verb::Patch | Verb::Apply if t.name.is_some() => {
            patch::patch_object(app, t, query, &headers, req).await
        }
        Verb::Delete if t.sub.is_none() => delete::delete(app, t, query, req).await,
        Verb::DeleteCollection if t.r.verbs().contains(&"deletecollection") => {
            delete::delete_collection(app, t, query, req).await
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    };
    match result {
        Ok(Reply {
            code,
            body,
            warnings,
        }) => {
            let mut r = json_response(code, &body);
            for w in warnings.iter().take(32) {
                if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
                    r.headers_mut().append(header::WARNING, v);
                }
            }
            r
        }
        Err(e) => error_response(&e),
    }
}

struct Reply {
    code: StatusCode,
    body: Value,
    warnings: Vec<String>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply {
            code: StatusCode::OK,
            body,
            warnings: Vec::new(),
        }
    }
}

/// A written object's reply: its body and the warnings the write gathered.
fn written(code: StatusCode, body: Value, warnings: &mut Vec<String>) -> Reply {
    Reply {
        code,
        body,
        warnings: std::mem::take(warnings),
    }
}

/// kube's transformDecodeError: a create or update (not a patch) whose body fails strict
/// decoding says which kind could not be decoded.
fn strict_decode_error(r: &ResourceInfo, mut e: ApiError) -> ApiError {
    if e.code == 400 && e.message.starts_with("strict decoding error: ") {
        e.message = format!(
            "{} in version {:?} cannot be handled as a {}: {}",
            r.kind, r.version, r.kind, e.message
        );
    }
    e
}

fn write_opts(
    q: &Query,
    headers: &HeaderMap,
    default_manager: &str,
) -> Result<WriteOpts, ApiError> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            )))
        }
    };
    let manager = match q.get("fieldManager") {
        Some(m) if m.len() > 128 => {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: may not be more than 128 bytes",
            ))
        }
        Some(m) if !m.is_empty() => m.clone(),
        _ => headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default_manager.to_string()),
    };
    Ok(WriteOpts {
        dry_run,
        validation: FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?,
        manager,
    })
}

fn label_selector(q: &Query) -> Result<Option<LabelSelector>, ApiError> {
    match q.get("labelSelector").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => LabelSelector::parse(s)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

fn field_selector(r: &ResourceInfo, q: &Query) -> Result<Option<FieldSelector>, ApiError> {
    match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            let f = FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
            f.validate_for(&r.api_version(), r.kind)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(Some(f))
        }
    }
}

struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    api_version: String,
    kind: &'static str,
}

impl Filter {
    fn new(r: &ResourceInfo, q: &Query) -> Result<Self, ApiError> {
        Ok(Filter {
            labels: label_selector(q)?,
            fields: field_selector(r, q)?,
            api_version: r.api_version(),
            kind: r.kind,
        })
    }
    fn selective(&self) -> bool {
        self.labels.is_some() || self.fields.is_some()
    }
    fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.labels {
            let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
            if !l.matches(labels) {
                return false;
            }
        }
        if let Some(f) = &self.fields {
            if !f.matches(&self.api_version, self.kind, obj) {
                return false;
            }
        }
        true
    }
}

fn include_object(q: &Query) -> Result<IncludeObject, ApiError> {
    match q.get("includeObject") {
        None => Ok(IncludeObject::Metadata),
        Some(s) => IncludeObject::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("unrecognized includeObject value: {s:?}"))
        }),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn list_kind(r: &ResourceInfo) -> String {
    format!("{}List", r.kind)
}

/// Parses and checks a write's body for `t`.
fn body_object(t: &ObjectRef, bytes: &[u8], ct: &str) -> Result<Value, ApiError> {
    let mut obj = decode_body(t.r, bytes, ct)?;
    strategy::check_type(t.r, &mut obj)?;
    strategy::check_namespace(t.r, &mut obj, t.ns())?;
    Ok(obj)
}
