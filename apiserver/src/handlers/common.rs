//! What the verb files share: the `Reply` a verb returns, the write options read from the query
//! and headers, label and field selectors as one `Filter`, `includeObject`, and a write body
//! decoded and checked against its `ObjectRef`.

use ::http::{header, HeaderMap, StatusCode};
use serde_json::Value;

use crate::error::ApiError;
use crate::machinery::selectors::{FieldSelector, LabelSelector};
use crate::registry::printers::IncludeObject;
use crate::registry::store::WriteOpts;
use crate::registry::strategy::{self, FieldValidation};
use crate::registry::ObjectRef;
use crate::request::info::Query;
use crate::request::negotiate::decode_body;
use crate::resources::ResourceInfo;

/// A verb's answer: the status code, the body and the warnings for `Warning` headers.
pub(super) struct Reply {
    pub(super) code: StatusCode,
    pub(super) body: Value,
    pub(super) warnings: Vec<String>,
}

impl Reply {
    pub(super) fn ok(body: Value) -> Self {
        Reply {
            code: StatusCode::OK,
            body,
            warnings: Vec::new(),
        }
    }
}

/// A written object's reply: its body and the warnings the write gathered.
pub(super) fn written(code: StatusCode, body: Value, warnings: &mut Vec<String>) -> Reply {
    Reply {
        code,
        body,
        warnings: std::mem::take(warnings),
    }
}

/// kube's transformDecodeError: a create or update (not a patch) whose body fails strict
/// decoding says which kind could not be decoded.
pub(super) fn strict_decode_error(r: &ResourceInfo, mut e: ApiError) -> ApiError {
    if e.code == 400 && e.message.starts_with("strict decoding error: ") {
        e.message = format!(
            "{} in version {:?} cannot be handled as a {}: {}",
            r.kind, r.version, r.kind, e.message
        );
    }
    e
}

pub(super) fn write_opts(
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

pub(super) struct Filter {
    labels: Option<LabelSelector>,
    pub(super) fields: Option<FieldSelector>,
    api_version: String,
    kind: &'static str,
}

impl Filter {
    pub(super) fn new(r: &ResourceInfo, q: &Query) -> Result<Self, ApiError> {
        Ok(Filter {
            labels: label_selector(q)?,
            fields: field_selector(r, q)?,
            api_version: r.api_version(),
            kind: r.kind,
        })
    }
    pub(super) fn selective(&self) -> bool {
        self.labels.is_some() || self.fields.is_some()
    }
    pub(super) fn matches(&self, obj: &Value) -> bool {
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

pub(super) fn include_object(q: &Query) -> Result<IncludeObject, ApiError> {
    match q.get("includeObject") {
        None => Ok(IncludeObject::Metadata),
        Some(s) => IncludeObject::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("unrecognized includeObject value: {s:?}"))
        }),
    }
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn list_kind(r: &ResourceInfo) -> String {
    format!("{}List", r.kind)
}

/// Parses and checks a write's body for `t`.
pub(super) fn body_object(t: &ObjectRef, bytes: &[u8], ct: &str) -> Result<Value, ApiError> {
    let mut obj = decode_body(t.r, bytes, ct)?;
    strategy::check_type(t.r, &mut obj)?;
    strategy::check_namespace(t.r, &mut obj, t.ns())?;
    Ok(obj)
}
