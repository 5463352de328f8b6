//! Request routing and the REST verbs: the URL is parsed into a resource, namespace, name and
//! subresource, the method into a verb, and each verb is one function below. Responses are JSON
//! objects, `Status` errors, Tables (when kubectl asks for them) or newline-delimited watch events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::cache::{EventKind, Start};
use crate::error::{ApiError, Cause};
use crate::objects::{self, FieldValidation};
use crate::resources::{self, ResourceInfo, Subresource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::storage::{ContinueToken, WriteOutcome};
use crate::table::{self, IncludeObject};
use crate::{apply, discovery, inflight, openapi, patch, App};

/// kube-apiserver's limit on a request body (3 MiB).
pub const REQUEST_BODY_BYTES_MAX: usize = 3 * 1024 * 1024;
/// Conflicting writes retried by one unconditional update or patch before it reports 409.
const UPDATE_RETRIES: usize = 16;
/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// kube-apiserver's `--min-request-timeout`: a watch without timeoutSeconds ends between 1800
/// and 3600 s.
const WATCH_TIMEOUT_MIN_SECS: u64 = 1800;

type Query = HashMap<String, String>;

fn parse_query(q: Option<&str>) -> Query {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn flag(q: &Query, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

/// The parsed target of a resource request.
#[derive(Debug)]
struct Target {
    r: &'static ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

impl Target {
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn subresource(&self) -> Option<Subresource> {
        match self.sub.as_deref() {
            Some("status") => Some(Subresource::Status),
            Some("scale") => Some(Subresource::Scale),
            Some("binding") => Some(Subresource::Binding),
            _ => None,
        }
    }
}

fn not_found_path() -> ApiError {
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
fn parse_target(group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let find = |plural: &str| resources::find(group, version, plural).ok_or_else(not_found_path);
    let seg_ok = |s: &str| {
        if objects::path_segment_ok(s) {
            Ok(s.to_string())
        } else {
            Err(not_found_path())
        }
    };
    match rest {
        [res] => Ok(Target {
            r: find(res)?,
            namespace: None,
            name: None,
            sub: None,
        }),
        ["namespaces", ns, res] => {
            let r = find(res)?;
            if !r.namespaced {
                return Err(not_found_path());
            }
            Ok(Target {
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
            Ok(Target {
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
            Ok(Target {
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
            Ok(Target {
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
            Ok(Target {
                r,
                namespace: None,
                name: Some(seg_ok(name)?),
                sub: Some(sub.to_string()),
            })
        }
        _ => Err(not_found_path()),
    }
}

/// What the response should be encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Json,
    Table,
}

fn negotiate(headers: &HeaderMap) -> Result<Output, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(Output::Json);
    }
    let mut json_ok = false;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let ps: Vec<(&str, &str)> = params.filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| ps.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        if media == "application/json" && get("as") == Some("Table") {
            if get("g") == Some("meta.k8s.io") && matches!(get("v"), Some("v1" | "v1beta1")) {
                return Ok(Output::Table);
            }
            continue;
        }
        if get("as").is_none()
            && matches!(
                media,
                "application/json" | "*/*" | "application/*" | "application/yaml"
            )
        {
            json_ok = true;
        }
    }
    if json_ok {
        Ok(Output::Json)
    } else {
        Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        ))
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    );
    if let Some(secs) = e.retry_after_seconds() {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// How much of a body beyond REQUEST_BODY_BYTES_MAX is read (and dropped) before answering 413,
/// so that a client still writing its body reads the answer instead of a reset connection (Go's
/// server drains up to 256 KiB of an unread body the same way). A larger body closes the connection.
const REQUEST_BODY_DRAIN_BYTES_MAX: usize = 256 * 1024;

/// Reads the body (at most REQUEST_BODY_BYTES_MAX) and decodes JSON or YAML.
async fn read_body(req: Request) -> Result<(Bytes, String), ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if let Some(len) = declared {
        // A client waiting for "100 Continue" has sent nothing yet; one whose body could not
        // be drained would lose the answer anyway. Both are refused before reading.
        if len > REQUEST_BODY_BYTES_MAX
            && (expects_continue || len > REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX)
        {
            return Err(ApiError::too_large(REQUEST_BODY_BYTES_MAX));
        }
    }
    let bytes = axum::body::to_bytes(
        req.into_body(),
        REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX,
    )
    .await
    .map_err(|_| ApiError::too_large(REQUEST_BODY_BYTES_MAX))?;
    if bytes.len() > REQUEST_BODY_BYTES_MAX {
        return Err(ApiError::too_large(REQUEST_BODY_BYTES_MAX));
    }
    Ok((bytes, ct))
}

fn decode_body(r: &ResourceInfo, bytes: &[u8], ct: &str) -> Result<Value, ApiError> {
    let cannot = |e: String| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            r.kind, r.version, r.kind
        ))
    };
    match ct {
        "application/json" | "" => serde_json::from_slice(bytes).map_err(|e| cannot(e.to_string())),
        "application/yaml" | "application/apply-patch+yaml" => {
            serde_yaml::from_slice::<Value>(bytes).map_err(|e| cannot(e.to_string()))
        }
        "application/vnd.kubernetes.protobuf" => {
            crate::protobuf::decode_object(bytes).map_err(|e| match e {
                crate::protobuf::DecodeError::Malformed(m) => cannot(m),
                crate::protobuf::DecodeError::Unsupported(m) => {
                    ApiError::new(415, "UnsupportedMediaType", m)
                }
            })
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Warnings for unknown fields, or the Strict error.
fn field_checks(
    unknown: &[String],
    mode: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    if unknown.is_empty() || mode == FieldValidation::Ignore {
        return Ok(());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        )));
    }
    warnings.extend(msgs);
    Ok(())
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

/// Everything a write needs from the query string.
struct WriteOpts {
    dry_run: bool,
    validation: FieldValidation,
    manager: String,
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

/// The entry point for every request.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let is_watch = req.method() == Method::GET && flag(&parse_query(req.uri().query()), "watch");
    let public = crate::PUBLIC_PATHS.contains(&path.as_str());
    let (resp, labels) = match app.authenticate(req.headers()) {
        Err(e) if !public => (error_response(&e), None),
        // Watches and probes are not counted against the in-flight budgets.
        _ if is_watch || public => route(&app, req).await,
        _ => match app.inflight.admit(inflight::Kind::of(req.method())) {
            Ok(_slot) => route(&app, req).await,
            Err(e) => (error_response(&e), None),
        },
    };
    if let Some(l) = labels {
        if !is_watch {
            app.metrics
                .observe(&l, resp.status().as_u16(), started.elapsed());
        } else {
            app.metrics.count(&l, resp.status().as_u16());
        }
    }
    resp
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

async fn route(app: &Arc<App>, req: Request) -> (Response, Option<RequestLabels>) {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query = parse_query(req.uri().query());
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let get_only = |req: &Request| {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            Some(error_response(&ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )))
        } else {
            None
        }
    };
    match segs.as_slice() {
        ["healthz"] | ["livez"] => (plain(StatusCode::OK, "ok"), None),
        ["readyz"] => {
            if app.ready().await {
                (plain(StatusCode::OK, "ok"), None)
            } else {
                (
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "[-]etcd failed: the store did not answer\nreadyz check failed",
                    ),
                    None,
                )
            }
        }
        ["version"] => (json_response(StatusCode::OK, &crate::version_info()), None),
        ["metrics"] => {
            let mut r = Response::new(Body::from(app.metrics.render(app)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            (r, None)
        }
        ["api"] | ["apis"] => {
            if let Some(r) = get_only(&req) {
                return (r, None);
            }
            let legacy = segs[0] == "api";
            if discovery::wants_aggregated(&accept) {
                let mut r = json_response(StatusCode::OK, &discovery::aggregated(legacy));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
                );
                (r, None)
            } else if legacy {
                (
                    json_response(StatusCode::OK, &discovery::api_versions()),
                    None,
                )
            } else {
                (
                    json_response(StatusCode::OK, &discovery::api_group_list()),
                    None,
                )
            }
        }
        ["api", "v1"] => match discovery::api_resource_list("", "v1") {
            Some(v) => (json_response(StatusCode::OK, &v), None),
            None => (error_response(&not_found_path()), None),
        },
        ["apis", g] => match discovery::api_group(g) {
            Some(v) => (json_response(StatusCode::OK, &v), None),
            None => (error_response(&not_found_path()), None),
        },
        ["apis", g, v] => match discovery::api_resource_list(g, v) {
            Some(d) => (json_response(StatusCode::OK, &d), None),
            None => (error_response(&not_found_path()), None),
        },
        ["openapi", "v2"] => {
            // An empty swagger 2.0 document: kubectl falls back to it to validate `kind: List`
            // manifests (each item is then validated by the server through OpenAPI v3).
            let mut r = Response::new(Body::from(openapi::v2_protobuf()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(openapi::V2_PROTOBUF_CONTENT_TYPE),
            );
            (r, None)
        }
        ["openapi", "v3"] => (json_response(StatusCode::OK, &openapi::v3_root()), None),
        ["openapi", "v3", rest @ ..] => {
            let p = rest.join("/");
            match openapi::v3_document(&p) {
                Some((doc, hash)) => {
                    let mut r = Response::new(Body::from(doc.as_ref().clone()));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                        r.headers_mut().insert(header::ETAG, v);
                    }
                    let immutable = query.get("hash").is_some_and(|h| *h == hash);
                    r.headers_mut().insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(if immutable {
                            "public, immutable"
                        } else {
                            "no-cache, private"
                        }),
                    );
                    (r, None)
                }
                None => (error_response(&not_found_path()), None),
            }
        }
        ["api", "v1", rest @ ..] => resource_request(app, "", "v1", rest, req, query).await,
        ["apis", g, v, rest @ ..] => {
            let (g, v) = (g.to_string(), v.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            resource_request(app, &g, &v, &rest, req, query).await
        }
        _ => (error_response(&not_found_path()), None),
    }
}

fn plain(code: StatusCode, text: &str) -> Response {
    let mut r = Response::new(Body::from(text.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn resource_request(
    app: &Arc<App>,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Request,
    query: Query,
) -> (Response, Option<RequestLabels>) {
    let t = match parse_target(group, version, rest) {
        Ok(t) => t,
        Err(e) => return (error_response(&e), None),
    };
    let method = req.method().clone();
    let watch = flag(&query, "watch");
    let verb: &'static str = match (&method, t.name.is_some()) {
        (&Method::GET, true) => "GET",
        (&Method::GET, false) if watch => "WATCH",
        (&Method::GET, false) => "LIST",
        (&Method::POST, _) => "POST",
        (&Method::PUT, _) => "PUT",
        (&Method::PATCH, _) => {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if ct.starts_with("application/apply-patch") {
                "APPLY"
            } else {
                "PATCH"
            }
        }
        (&Method::DELETE, true) => "DELETE",
        (&Method::DELETE, false) => "DELETECOLLECTION",
        _ => "OTHER",
    };
    let labels = RequestLabels {
        verb,
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
    };
    let headers = req.headers().clone();
    let out = match negotiate(&headers) {
        Ok(o) => o,
        Err(e) => return (error_response(&e), Some(labels)),
    };
    if let Some(sub) = &t.sub {
        let known = t.subresource().is_some_and(|s| t.r.has(s))
            || (t.r.plural == "namespaces" && sub == "finalize");
        if !known {
            return (error_response(&not_found_path()), Some(labels));
        }
    }
    let result = match verb {
        "GET" => get(app, &t, &query, out).await,
        "LIST" => list(app, &t, &query, out).await,
        "WATCH" => return (watch_response(app, &t, &query, out).await, Some(labels)),
        "POST" if t.sub.as_deref() == Some("binding") => bind(app, &t, &query, &headers, req).await,
        "POST" if t.name.is_none() => create(app, &t, &query, &headers, req).await,
        "PUT" if t.name.is_some() => update(app, &t, &query, &headers, req).await,
        "PATCH" | "APPLY" if t.name.is_some() => patch_object(app, &t, &query, &headers, req).await,
        "DELETE" if t.sub.is_none() => delete(app, &t, &query, req).await,
        "DELETECOLLECTION" if t.r.verbs().contains(&"deletecollection") => {
            delete_collection(app, &t, &query, req).await
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    };
    let resp = match result {
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
    };
    (resp, Some(labels))
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

fn include_object(q: &Query) -> Result<IncludeObject, ApiError> {
    match q.get("includeObject") {
        None => Ok(IncludeObject::Metadata),
        Some(s) => IncludeObject::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("unrecognized includeObject value: {s:?}"))
        }),
    }
}

fn render_one(t: &Target, obj: Value, out: Output, q: &Query) -> Result<Value, ApiError> {
    Ok(match out {
        Output::Json => obj,
        Output::Table => {
            let include = include_object(q)?;
            let rv = obj.pointer("/metadata/resourceVersion").cloned();
            let mut tbl = table::table(&t.r.api_version(), t.r.kind, &[obj], include, unix_now());
            if let Some(rv) = rv {
                tbl["metadata"]["resourceVersion"] = rv;
            }
            tbl
        }
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn get(app: &Arc<App>, t: &Target, q: &Query, out: Output) -> Result<Reply, ApiError> {
    let key = app.storage.key(t.r, t.ns(), t.name());
    let stored = if q.get("resourceVersion").is_some_and(|v| v == "0") {
        app.cache(t.r)
            .and_then(|c| c.get(&key))
            .map(|o| (*o).clone())
    } else {
        app.storage.get(&key).await?.map(|s| s.object)
    };
    let obj = stored.ok_or_else(|| ApiError::not_found(t.r, t.name()))?;
    if t.subresource() == Some(Subresource::Scale) {
        return Ok(Reply::ok(scale_of(&obj)));
    }
    Ok(Reply::ok(render_one(t, obj, out, q)?))
}

/// The autoscaling/v1 Scale view of a Deployment or ReplicaSet.
fn scale_of(obj: &Value) -> Value {
    let m = objects::meta(obj).cloned().unwrap_or_default();
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| LabelSelector::from_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
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

fn list_kind(r: &ResourceInfo) -> String {
    format!("{}List", r.kind)
}

async fn list(app: &Arc<App>, t: &Target, q: &Query, out: Output) -> Result<Reply, ApiError> {
    let filter = Filter::new(t.r, q)?;
    let limit: i64 = match q.get("limit").filter(|s| !s.is_empty()) {
        None => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("limit: Invalid value: {l:?}")))?
            .max(0),
    };
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty()).cloned();
    let rv_match = q
        .get("resourceVersionMatch")
        .filter(|s| !s.is_empty())
        .cloned();
    let cont = q.get("continue").filter(|s| !s.is_empty()).cloned();
    let prefix = app.storage.list_prefix(t.r, t.ns());
    // fieldSelector=metadata.name=x (kubectl get -w x) narrows the range to one key.
    let pinned = filter
        .fields
        .as_ref()
        .and_then(|f| f.name_pinned().map(str::to_string));
    let rv_num = match &rv {
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {v:?}: must be a non-negative integer"
            ))
        })?),
        None => None,
    };
    if let Some(m) = &rv_match {
        if !matches!(m.as_str(), "NotOlderThan" | "Exact") {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if rv.is_none() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
    }
    let (items, revision, token, remaining) = if let Some(c) = cont {
        if rv.as_deref().is_some_and(|v| v != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let tok = ContinueToken::decode(&c)?;
        let page = app
            .storage
            .list(&prefix, tok.revision, Some(&tok.start), limit, &|o| filter.matches(o), filter.selective())
            .await
            .map_err(|e| {
                if e.code == 410 {
                    ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                } else {
                    e
                }
            })?;
        (
            page.items.into_iter().map(|s| s.object).collect::<Vec<_>>(),
            page.revision,
            page.continue_token,
            page.remaining,
        )
    } else if rv_num.is_some() && rv_match.as_deref() != Some("Exact") && app.cache(t.r).is_some() {
        // Any state at least as new as resourceVersion: the watch cache serves it.
        let cache = app
            .cache(t.r)
            .ok_or_else(|| ApiError::internal("no cache"))?;
        cache
            .wait_for(rv_num.unwrap_or(0), Duration::from_secs(3))
            .await?;
        let key_prefix = match &pinned {
            Some(n) => app.storage.key(t.r, t.ns(), n),
            None => prefix.clone(),
        };
        let (objs, rev) = cache.snapshot(&key_prefix);
        let items: Vec<Value> = objs
            .into_iter()
            .filter(|o| pinned.is_none() || objects::meta_str(o, "name") == pinned.as_deref())
            .filter(|o| filter.matches(o))
            .map(|o| (*o).clone())
            .collect();
        (items, rev, None, None)
    } else {
        let at = if rv_match.as_deref() == Some("Exact") {
            rv_num.unwrap_or(0)
        } else {
            0
        };
        let page = app
            .storage
            .list(
                &prefix,
                at,
                None,
                limit,
                &|o| filter.matches(o),
                filter.selective(),
            )
            .await?;
        (
            page.items.into_iter().map(|s| s.object).collect(),
            page.revision,
            page.continue_token,
            page.remaining,
        )
    };
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(tok) = token {
        meta["continue"] = json!(tok);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let body = match out {
        Output::Json => json!({
            "kind": list_kind(t.r),
            "apiVersion": t.r.api_version(),
            "metadata": meta,
            "items": items,
        }),
        Output::Table => {
            let include = include_object(q)?;
            let mut tbl = table::table(&t.r.api_version(), t.r.kind, &items, include, unix_now());
            tbl["metadata"] = meta;
            tbl
        }
    };
    Ok(Reply::ok(body))
}

/// A watch: NDJSON events from the watch cache, filtered by namespace and selectors.
async fn watch_response(app: &Arc<App>, t: &Target, q: &Query, out: Output) -> Response {
    match watch_stream(app, t, q, out).await {
        Ok(r) => r,
        Err(e) if e.code == 410 => {
            // As kube-apiserver: a watch from a compacted version is a 200 with one ERROR event.
            let line = json!({"type": "ERROR", "object": e.status()});
            let mut body = serde_json::to_vec(&line).unwrap_or_default();
            body.push(b'\n');
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => error_response(&e),
    }
}

async fn watch_stream(
    app: &Arc<App>,
    t: &Target,
    q: &Query,
    out: Output,
) -> Result<Response, ApiError> {
    let filter = Filter::new(t.r, q)?;
    let cache = app.cache(t.r);
    let bookmarks = flag(q, "allowWatchBookmarks");
    let send_initial = flag(q, "sendInitialEvents");
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty()).cloned();
    let timeout = match q.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()) {
        Some(s) => Duration::from_secs(s),
        None => Duration::from_secs(
            WATCH_TIMEOUT_MIN_SECS + rand::random::<u64>() % WATCH_TIMEOUT_MIN_SECS,
        ),
    };
    let start = match (rv.as_deref(), cache) {
        (None, Some(cache)) => {
            // Unset: the state now, then changes; "now" is the store's, so wait for the cache.
            let now = app.storage.current_revision().await?;
            cache.wait_for(now, Duration::from_secs(3)).await?;
            Start::Now
        }
        (None | Some("0"), _) => Start::Now,
        (Some(v), cache) => {
            let n: i64 = v.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: {v:?}: must be a non-negative integer"
                ))
            })?;
            match cache {
                Some(cache) if send_initial => {
                    cache.wait_for(n, Duration::from_secs(3)).await?;
                    Start::Now
                }
                None if send_initial => Start::Now,
                Some(cache) => {
                    if n > cache.revision() {
                        cache.wait_for(n, Duration::from_secs(3)).await?;
                    } else if n < cache.revision() {
                        app.storage.check_not_compacted(n).await?;
                    }
                    Start::After(n)
                }
                None => {
                    app.storage.check_not_compacted(n).await?;
                    Start::After(n)
                }
            }
        }
    };
    if send_initial && !bookmarks {
        return Err(ApiError::invalid(
            t.r,
            "",
            vec![Cause::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }
    let pinned = filter
        .fields
        .as_ref()
        .and_then(|f| f.name_pinned().map(str::to_string));
    let key_prefix = match &pinned {
        Some(n) => app.storage.key(t.r, t.ns(), n),
        None => app.storage.list_prefix(t.r, t.ns()),
    };
    let mut sub = match cache {
        Some(cache) => cache.subscribe(&key_prefix, start)?,
        // --watch-cache=false: this request gets its own store watch.
        None => crate::cache::direct_watch(&app.storage, &key_prefix, start).await?,
    };
    let start_revision = sub.start_revision;
    let initial = std::mem::take(&mut sub.initial);
    let api_version = t.r.api_version();
    let kind = t.r.kind;
    let include = include_object(q)?;
    let mut wrote_header = false;
    let mut encode = move |typ: &str, obj: &Value| -> Bytes {
        let object = match out {
            Output::Json => obj.clone(),
            Output::Table if typ == "BOOKMARK" || typ == "ERROR" => obj.clone(),
            Output::Table => {
                let mut tbl = table::table(
                    &api_version,
                    kind,
                    std::slice::from_ref(obj),
                    include,
                    unix_now(),
                );
                if wrote_header {
                    tbl["columnDefinitions"] = json!([]);
                }
                wrote_header = true;
                if let Some(rv) = obj.pointer("/metadata/resourceVersion") {
                    tbl["metadata"]["resourceVersion"] = rv.clone();
                }
                tbl
            }
        };
        let mut line =
            serde_json::to_vec(&json!({"type": typ, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    };
    let bookmark_api_version = t.r.api_version();
    let bookmark = move |rev: i64, initial_end: bool| -> Value {
        let mut m = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": kind, "apiVersion": bookmark_api_version, "metadata": m})
    };
    let pinned_name = pinned.clone();
    let stream = async_stream_events(
        sub,
        initial,
        start_revision,
        filter,
        pinned_name,
        bookmarks,
        send_initial,
        timeout,
        app.metrics.watch_guard(),
    )
    .map(move |item| {
        let bytes = match item {
            WatchItem::Event(typ, obj) => encode(typ, &obj),
            WatchItem::Bookmark(rev, end) => encode("BOOKMARK", &bookmark(rev, end)),
        };
        Ok::<Bytes, std::io::Error>(bytes)
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

enum WatchItem {
    Event(&'static str, Value),
    Bookmark(i64, bool),
}

/// The watch as a stream: initial events, then live ones, bookmarks, until timeout or until the
/// cache drops the subscription.
#[allow(clippy::too_many_arguments)]
fn async_stream_events(
    mut sub: crate::cache::Subscription,
    initial: Vec<Arc<crate::cache::Event>>,
    start_revision: i64,
    filter: Filter,
    pinned: Option<String>,
    bookmarks: bool,
    send_initial: bool,
    timeout: Duration,
    guard: crate::metrics::WatchGuard,
) -> impl futures::Stream<Item = WatchItem> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<WatchItem>(64);
    tokio::spawn(async move {
        let _guard = guard;
        let deadline = tokio::time::Instant::now() + timeout;
        let keep = |e: &crate::cache::Event| -> Option<(&'static str, Value)> {
            if let Some(n) = &pinned {
                if objects::meta_str(&e.object, "name") != Some(n.as_str()) {
                    return None;
                }
            }
            let cur = filter.matches(&e.object);
            let prev = e.prev.as_ref().map(|p| filter.matches(p));
            match e.kind {
                EventKind::Added => cur.then(|| ("ADDED", (*e.object).clone())),
                EventKind::Modified => match (prev.unwrap_or(false), cur) {
                    (true, true) => Some(("MODIFIED", (*e.object).clone())),
                    (false, true) => Some(("ADDED", (*e.object).clone())),
                    (true, false) => Some(("DELETED", (*e.object).clone())),
                    (false, false) => None,
                },
                EventKind::Deleted => {
                    (prev.unwrap_or(cur)).then(|| ("DELETED", (*e.object).clone()))
                }
            }
        };
        let mut last_sent = start_revision;
        for e in &initial {
            if let Some((typ, obj)) = keep(e) {
                if tx.send(WatchItem::Event(typ, obj)).await.is_err() {
                    return;
                }
            }
        }
        if send_initial
            && tx
                .send(WatchItem::Bookmark(start_revision, true))
                .await
                .is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(BOOKMARK_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = sub.rx.recv() => {
                    let Some(ev) = ev else { return };
                    if ev.revision <= start_revision {
                        continue;
                    }
                    last_sent = last_sent.max(ev.revision);
                    if let Some((typ, obj)) = keep(&ev) {
                        if tx.send(WatchItem::Event(typ, obj)).await.is_err() {
                            return;
                        }
                    }
                }
                _ = tick.tick(), if bookmarks => {
                    // Every event up to the cache's revision is already queued: drain them
                    // first so the bookmark never claims a version not yet delivered.
                    let rev = sub.cache_revision();
                    while let Ok(ev) = sub.rx.try_recv() {
                        if ev.revision <= start_revision { continue; }
                        last_sent = last_sent.max(ev.revision);
                        if let Some((typ, obj)) = keep(&ev) {
                            if tx.send(WatchItem::Event(typ, obj)).await.is_err() {
                                return;
                            }
                        }
                    }
                    let rev = rev.max(last_sent);
                    if tx.send(WatchItem::Bookmark(rev, false)).await.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Parses and checks a write's body for `t`.
fn body_object(t: &Target, bytes: &[u8], ct: &str) -> Result<Value, ApiError> {
    let mut obj = decode_body(t.r, bytes, ct)?;
    objects::check_type(t.r, &mut obj)?;
    objects::check_namespace(t.r, &mut obj, t.ns())?;
    Ok(obj)
}

/// Decodes against the type, applies defaults and validates; `Ok` is the object to store.
fn finish_object(
    t: &Target,
    obj: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let (mut typed, unknown) = objects::decode_typed(t.r, &obj)?;
    field_checks(&unknown, validation, warnings)?;
    objects::apply_defaults(t.r, &mut typed);
    let mut causes = Vec::new();
    objects::validate_meta(t.r, &typed, &mut causes);
    objects::validate_kind(t.r, &typed, &mut causes);
    if !causes.is_empty() {
        let name = objects::meta_str(&typed, "name").unwrap_or("").to_string();
        return Err(ApiError::invalid(t.r, &name, causes));
    }
    Ok(typed)
}

async fn require_namespace(app: &Arc<App>, t: &Target) -> Result<(), ApiError> {
    let Some(ns) = t.ns() else { return Ok(()) };
    let nsr = resources::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("no namespaces"))?;
    match app.storage.get(&app.storage.key(nsr, None, ns)).await? {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(s) if s.object.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError {
            details: Some(json!({"causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})),
            ..ApiError::new(403, "Forbidden", format!(
                "{} {:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                crate::error::qualified(t.r), t.name()
            ))
        }),
        Some(_) => Ok(()),
    }
}

/// Everything a new object gets before it is stored: server-set metadata, its initial status,
/// decoding against its type, defaults and validation. (Services get their addresses when they
/// are stored, in `insert_new`.)
fn prepare_new(
    t: &Target,
    mut obj: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    {
        let m = objects::meta_mut(&mut obj);
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(k);
        }
        m.insert("uid".into(), json!(objects::new_uid()));
        m.insert("creationTimestamp".into(), json!(objects::now()));
        if objects::tracks_generation(t.r) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    objects::initial_status(t.r, &mut obj);
    let obj = finish_object(t, obj, validation, warnings)?;
    let name = objects::meta_str(&obj, "name").unwrap_or("").to_string();
    if !objects::path_segment_ok(&name) {
        return Err(ApiError::invalid(
            t.r,
            &name,
            vec![Cause::invalid(
                "metadata.name",
                &json!(name),
                "may not contain '/' or '%'",
            )],
        ));
    }
    Ok(obj)
}

/// Stores a prepared new object (Txn on mod_revision 0). `None`: the name is taken. A service
/// gets its cluster IP and node ports here, reserved in the same transaction; an address another
/// service took meanwhile is allocated again, one the client asked for is refused (422).
async fn insert_new(
    app: &Arc<App>,
    t: &Target,
    obj: Value,
    dry_run: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<Reply>, ApiError> {
    require_namespace(app, t).await?;
    let mut created = |body| Reply {
        code: StatusCode::CREATED,
        body,
        warnings: std::mem::take(warnings),
    };
    // A service's addresses as the client sent them; each try allocates the rest afresh.
    let unallocated = t.r.is_service().then(|| obj.clone());
    let requested = app.storage.reservations(t.r, &obj);
    let mut taken: Vec<String> = Vec::new();
    let name = objects::meta_str(&obj, "name").unwrap_or("").to_string();
    let key = app.storage.key(t.r, t.ns(), &name);
    const ALLOCATION_TRIES: usize = 8;
    let mut obj = obj;
    for _ in 0..ALLOCATION_TRIES {
        if let Some(unallocated) = &unallocated {
            obj = unallocated.clone();
            app.allocate_service_addresses(&mut obj, &taken)?;
        }
        if dry_run {
            return Ok(Some(created(obj)));
        }
        let lease = if t.r.plural == "events" {
            Some(app.event_lease().await?)
        } else {
            None
        };
        let reserve = app.storage.reservations(t.r, &obj);
        match app.storage.create(&key, &obj, lease, &reserve).await? {
            WriteOutcome::Done { revision } => {
                crate::storage::set_resource_version(&mut obj, revision);
                return Ok(Some(created(obj)));
            }
            WriteOutcome::Mismatch { .. } => return Ok(None),
            WriteOutcome::Taken { reservation } if requested.contains(&reservation) => {
                return Err(reservation_taken(t.r, &name, &reservation, &obj));
            }
            WriteOutcome::Taken { reservation } => taken.push(reservation),
        }
    }
    Err(ApiError::internal(format!(
        "failed to allocate addresses for {} {name:?}: {ALLOCATION_TRIES} tries found them taken",
        crate::error::qualified(t.r)
    )))
}

/// The 422 for an address another object holds, worded as kube's allocators word it.
fn reservation_taken(r: &ResourceInfo, name: &str, reservation: &str, obj: &Value) -> ApiError {
    let cause = if reservation.contains("/serviceips/") {
        let ips: Vec<String> = obj
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| format!("{s:?}"))
                    .collect()
            })
            .unwrap_or_default();
        let ip = reservation.rsplit('/').next().unwrap_or("");
        Cause {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs".into(),
            message: format!(
                "Invalid value: []string{{{}}}: failed to allocate IP {ip}: provided IP is already allocated",
                ips.join(", ")
            ),
        }
    } else {
        let port: u64 = reservation
            .rsplit('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let index = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .position(|p| p.get("nodePort").and_then(Value::as_u64) == Some(port))
            })
            .unwrap_or(0);
        Cause::invalid(
            format!("spec.ports[{index}].nodePort"),
            &json!(port),
            "provided port is already allocated",
        )
    };
    ApiError::invalid(r, name, vec![cause])
}

async fn create(
    app: &Arc<App>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    req: Request,
) -> Result<Reply, ApiError> {
    let opts = write_opts(q, headers, "unknown")?;
    let (bytes, ct) = read_body(req).await?;
    let mut obj = body_object(t, &bytes, &ct)?;
    let mut warnings = Vec::new();
    {
        let m = objects::meta_mut(&mut obj);
        let has_name = m
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !has_name {
            if let Some(g) = m
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                let base: String = g.chars().take(63 - 5).collect();
                m.insert(
                    "name".into(),
                    json!(format!("{base}{}", objects::name_suffix())),
                );
            }
        }
        m.remove("managedFields");
    }
    let mut obj = prepare_new(t, obj, opts.validation, &mut warnings)
        .map_err(|e| strict_decode_error(t.r, e))?;
    let now = objects::now();
    apply::record_update(
        &t.r.api_version(),
        t.r.kind,
        None,
        &mut obj,
        &apply::ApplyOptions {
            manager: &opts.manager,
            force: false,
            now: &now,
            subresource: None,
        },
    );
    let name = objects::meta_str(&obj, "name").unwrap_or("").to_string();
    insert_new(app, t, obj, opts.dry_run, &mut warnings)
        .await?
        .ok_or_else(|| ApiError::already_exists(t.r, &name))
}

/// Server-owned fields an update keeps from the stored object.
fn carry_over(t: &Target, old: &Value, new: &mut Value, status_write: bool) {
    let old_meta = objects::meta(old).cloned().unwrap_or_default();
    if status_write {
        // The status subresource changes only .status (kube's ResetObjectMetaForStatus keeps
        // labels, annotations, finalizers, owners from the stored object too).
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        return;
    }
    let m = objects::meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    if t.r.has(Subresource::Status) && t.r.plural != "namespaces" {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if t.r.is_service() {
        keep_allocated_values(old, new);
    }
    if t.r.plural == "namespaces" {
        // A namespace's status is its phase, set by the server.
        if let Some(s) = old.get("status") {
            new["status"] = s.clone();
        }
    }
    if objects::tracks_generation(t.r) && old.get("spec") != new.get("spec") {
        let g = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        objects::meta_mut(new).insert("generation".into(), json!(g + 1));
    }
}

/// kube's `patchAllocatedValues`: an update that leaves out a service's cluster IP, or a node
/// port of a port that keeps its number and protocol, keeps the one allocated.
fn keep_allocated_values(old: &Value, new: &mut Value) {
    let typ = |s: &Value| {
        s.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let (old_type, new_type) = (typ(old), typ(new));
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if old_type != "ExternalName" && new_type != "ExternalName" {
        let unset = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset {
            for k in ["clusterIP", "clusterIPs"] {
                if let Some(v) = old.pointer(&format!("/spec/{k}")) {
                    spec.insert(k.into(), v.clone());
                }
            }
        }
    }
    let node_ports = |t: &str| matches!(t, "NodePort" | "LoadBalancer");
    if !(node_ports(&old_type) && node_ports(&new_type)) {
        return;
    }
    let protocol = |p: &Value| {
        p.get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string()
    };
    let old_ports = old.pointer("/spec/ports").and_then(Value::as_array);
    let Some(new_ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for p in new_ports.iter_mut().filter(|p| p.is_object()) {
        if p.get("nodePort")
            .and_then(Value::as_u64)
            .is_some_and(|n| n != 0)
        {
            continue;
        }
        let was = old_ports
            .into_iter()
            .flatten()
            .find(|o| o.get("port") == p.get("port") && protocol(o) == protocol(p));
        if let Some(n) = was.and_then(|o| o.get("nodePort")).filter(|n| n.is_u64()) {
            p["nodePort"] = n.clone();
        }
    }
}

/// Compares two objects ignoring resourceVersion and managedFields timestamps.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

/// The update loop shared by PUT and PATCH: read, transform, CAS; retry on a concurrent write
/// unless the caller pinned a resourceVersion.
async fn guaranteed_update<F>(
    app: &Arc<App>,
    t: &Target,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
    mut transform: F,
) -> Result<Reply, ApiError>
where
    F: FnMut(&Value, &mut Vec<String>) -> Result<(Value, Option<String>), ApiError>,
{
    let key = app.storage.key(t.r, t.ns(), t.name());
    let status_write = t.subresource() == Some(Subresource::Status);
    for _ in 0..UPDATE_RETRIES {
        let current = app
            .storage
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(t.r, t.name()))?;
        let (mut new, precondition_rv) = transform(&current.object, warnings)?;
        if let Some(rv) = &precondition_rv {
            if *rv != current.mod_revision.to_string() {
                return Err(ApiError::conflict(t.r, t.name()));
            }
        }
        if objects::meta_str(&new, "name") != Some(t.name()) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({})",
                objects::meta_str(&new, "name").unwrap_or(""),
                t.name()
            )));
        }
        carry_over(t, &current.object, &mut new, status_write);
        let mut new = finish_object(t, new, opts.validation, warnings)?;
        // Addresses the client's object names; any others are allocated here.
        let requested = app.storage.reservations(t.r, &new);
        if t.r.is_service() && !status_write {
            // A service turned NodePort, or away from ExternalName, gets what it now needs.
            app.allocate_service_addresses(&mut new, &[])?;
        }
        let now = objects::now();
        if !same_content(&current.object, &new) {
            apply::record_update(
                &t.r.api_version(),
                t.r.kind,
                Some(&current.object),
                &mut new,
                &apply::ApplyOptions {
                    manager: &opts.manager,
                    force: false,
                    now: &now,
                    subresource: t.sub.as_deref(),
                },
            );
        }
        if same_content(&current.object, &new)
            && new.pointer("/metadata/managedFields")
                == current.object.pointer("/metadata/managedFields")
        {
            return Ok(Reply {
                code: StatusCode::OK,
                body: current.object,
                warnings: std::mem::take(warnings),
            });
        }
        if opts.dry_run {
            return Ok(Reply {
                code: StatusCode::OK,
                body: new,
                warnings: std::mem::take(warnings),
            });
        }
        // Removing the last finalizer of an object being deleted deletes it, unless a grace
        // period is still running (a pod waiting for its kubelet): kube's ShouldDeleteDuringUpdate.
        let finalizers_done = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty())
            && current
                .object
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_none_or(|g| g == 0);
        let held = app.storage.reservations(t.r, &current.object);
        let outcome = if finalizers_done {
            app.storage
                .delete(&key, current.mod_revision, &held)
                .await?
        } else {
            // A changed node port or address is reserved, and the old one given back, with it.
            let wanted = app.storage.reservations(t.r, &new);
            let reserve: Vec<String> = wanted
                .iter()
                .filter(|k| !held.contains(k))
                .cloned()
                .collect();
            let release: Vec<String> = held
                .iter()
                .filter(|k| !wanted.contains(k))
                .cloned()
                .collect();
            app.storage
                .update(&key, &new, current.mod_revision, None, &reserve, &release)
                .await?
        };
        match outcome {
            WriteOutcome::Done { revision } => {
                crate::storage::set_resource_version(&mut new, revision);
                return Ok(Reply {
                    code: StatusCode::OK,
                    body: new,
                    warnings: std::mem::take(warnings),
                });
            }
            WriteOutcome::Mismatch { current: None } => {
                return Err(ApiError::not_found(t.r, t.name()))
            }
            WriteOutcome::Mismatch { .. } if precondition_rv.is_some() => {
                return Err(ApiError::conflict(t.r, t.name()))
            }
            WriteOutcome::Mismatch { .. } => continue,
            WriteOutcome::Taken { reservation } if requested.contains(&reservation) => {
                return Err(reservation_taken(t.r, t.name(), &reservation, &new))
            }
            // One allocated here was taken meanwhile: read again and allocate again.
            WriteOutcome::Taken { .. } => continue,
        }
    }
    Err(ApiError::conflict(t.r, t.name()))
}

async fn update(
    app: &Arc<App>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    req: Request,
) -> Result<Reply, ApiError> {
    let opts = write_opts(q, headers, "unknown")?;
    let (bytes, ct) = read_body(req).await?;
    let mut warnings = Vec::new();
    if t.subresource() == Some(Subresource::Scale) {
        let scale: Value = decode_body(t.r, &bytes, &ct)?;
        let replicas = scale_replicas(&scale)?;
        let rv = scale
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let reply = guaranteed_update(app, t, &opts, &mut warnings, |cur, _| {
            let mut new = cur.clone();
            new["spec"]["replicas"] = json!(replicas);
            Ok((new, rv.clone()))
        })
        .await?;
        return Ok(Reply {
            body: scale_of(&reply.body),
            ..reply
        });
    }
    let obj = body_object(t, &bytes, &ct)?;
    let rv = objects::meta_str(&obj, "resourceVersion").map(str::to_string);
    guaranteed_update(app, t, &opts, &mut warnings, |_, _| {
        Ok((obj.clone(), rv.clone()))
    })
    .await
    .map_err(|e| strict_decode_error(t.r, e))
}

fn scale_replicas(scale: &Value) -> Result<i64, ApiError> {
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

async fn patch_object(
    app: &Arc<App>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    req: Request,
) -> Result<Reply, ApiError> {
    let opts = write_opts(q, headers, "unknown")?;
    let (bytes, ct) = read_body(req).await?;
    let mut warnings = Vec::new();
    let api_version = t.r.api_version();
    let kind = t.r.kind;
    let is_scale = t.subresource() == Some(Subresource::Scale);
    let kind_of_doc = if is_scale { "Scale" } else { kind };
    let av_of_doc = if is_scale {
        "autoscaling/v1".to_string()
    } else {
        api_version.clone()
    };
    let force = flag(q, "force");
    if ct == "application/apply-patch+yaml" {
        if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(ApiError::bad_request(
                "PATCH /apis: fieldManager is required for apply requests",
            ));
        }
        let applied = decode_body(t.r, &bytes, &ct)?;
        let key = app.storage.key(t.r, t.ns(), t.name());
        let now = objects::now();
        // Apply may create the object.
        if !is_scale && app.storage.get(&key).await?.is_none() {
            let mut obj = applied.clone();
            objects::check_type(t.r, &mut obj)?;
            objects::check_namespace(t.r, &mut obj, t.ns())?;
            let created = apply::server_side_apply(
                &api_version,
                kind,
                None,
                &obj,
                &apply::ApplyOptions {
                    manager: &opts.manager,
                    force,
                    now: &now,
                    subresource: None,
                },
            )
            .map_err(|e| apply_error(t, e))?;
            let created = prepare_new(t, created, opts.validation, &mut warnings)?;
            if let Some(reply) = insert_new(app, t, created, opts.dry_run, &mut warnings).await? {
                return Ok(reply);
            }
            // Created meanwhile: apply to it below.
        }
        let reply = guaranteed_update(app, t, &opts, &mut warnings, |cur, _| {
            let mut obj = applied.clone();
            if !is_scale {
                objects::check_type(t.r, &mut obj)?;
            }
            let base = if is_scale { scale_of(cur) } else { cur.clone() };
            let out = apply::server_side_apply(
                &av_of_doc,
                kind_of_doc,
                Some(&base),
                &obj,
                &apply::ApplyOptions {
                    manager: &opts.manager,
                    force,
                    now: &now,
                    subresource: t.sub.as_deref(),
                },
            )
            .map_err(|e| apply_error(t, e));
            let out = out?;
            if is_scale {
                let mut new = cur.clone();
                new["spec"]["replicas"] = json!(scale_replicas(&out)?);
                Ok((new, None))
            } else {
                Ok((out, None))
            }
        })
        .await?;
        if is_scale {
            return Ok(Reply {
                body: scale_of(&reply.body),
                ..reply
            });
        }
        return Ok(reply);
    }
    let kind_patch = match ct.as_str() {
        "application/json-patch+json" => 0,
        "application/merge-patch+json" => 1,
        "application/strategic-merge-patch+json" => 2,
        other => {
            return Err(ApiError::unsupported_media_type(other));
        }
    };
    let reply = guaranteed_update(app, t, &opts, &mut warnings, |cur, _| {
        let doc = if is_scale { scale_of(cur) } else { cur.clone() };
        let patched = match kind_patch {
            0 => patch::json_patch(&doc, &bytes),
            1 => patch::merge_patch(&doc, &bytes),
            _ => patch::strategic_merge_patch(&av_of_doc, kind_of_doc, &doc, &bytes),
        }
        .map_err(|e| ApiError::new(e.status_code(), e.reason(), e.message()))?;
        // A patch that sets metadata.resourceVersion makes it a precondition.
        let rv = objects::meta_str(&patched, "resourceVersion")
            .filter(|rv| Some(*rv) != objects::meta_str(&doc, "resourceVersion"))
            .map(str::to_string);
        if is_scale {
            let mut new = cur.clone();
            new["spec"]["replicas"] = json!(scale_replicas(&patched)?);
            return Ok((new, rv));
        }
        let mut patched = patched;
        objects::check_type(t.r, &mut patched)?;
        objects::check_namespace(t.r, &mut patched, t.ns())?;
        Ok((patched, rv))
    })
    .await?;
    if is_scale {
        return Ok(Reply {
            body: scale_of(&reply.body),
            ..reply
        });
    }
    Ok(reply)
}

fn apply_error(t: &Target, e: apply::ApplyError) -> ApiError {
    match &e {
        apply::ApplyError::Conflict { conflicts } => ApiError {
            details: Some(json!({
                "name": t.name(),
                "kind": t.r.plural,
                "causes": conflicts.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {:?}", c.manager),
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ..ApiError::new(409, "Conflict", e.message())
        },
        apply::ApplyError::Invalid(_) => ApiError::new(422, "Invalid", e.message()),
    }
}

async fn bind(
    app: &Arc<App>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    req: Request,
) -> Result<Reply, ApiError> {
    let opts = write_opts(q, headers, "unknown")?;
    let (bytes, ct) = read_body(req).await?;
    let binding = decode_body(t.r, &bytes, &ct)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid(t.r, t.name(), vec![Cause::required("target.name")]))?
        .to_string();
    let mut warnings = Vec::new();
    let node_name = node.clone();
    // kube's binding storage: refuses a pod already bound or being deleted.
    guaranteed_update(app, t, &WriteOpts { validation: FieldValidation::Ignore, ..opts }, &mut warnings, |cur, _| {
        if cur.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict_with(t.r, t.name(), "pod is being deleted, cannot be assigned to a host"));
        }
        match cur.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => {
                return Err(ApiError::conflict_with(t.r, t.name(), &format!("pod {} is already assigned to node {n:?}", t.name())))
            }
            _ => {}
        }
        let mut new = cur.clone();
        new["spec"]["nodeName"] = json!(node_name);
        let conds = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now()}));
        new["status"]["conditions"] = json!(conds);
        Ok((new, None))
    })
    .await?;
    Ok(Reply {
        code: StatusCode::CREATED,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        warnings,
    })
}

/// DeleteOptions from the body (kubectl sends them there) or the query.
async fn delete_options(q: &Query, req: Request) -> Result<Value, ApiError> {
    let (bytes, _) = read_body(req).await?;
    let mut o = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?
    };
    for k in ["propagationPolicy", "gracePeriodSeconds", "dryRun"] {
        if let Some(v) = q.get(k) {
            o[k] = match k {
                "gracePeriodSeconds" => json!(v
                    .parse::<i64>()
                    .map_err(|_| ApiError::bad_request("gracePeriodSeconds must be an integer"))?),
                "dryRun" => json!([v]),
                _ => json!(v),
            };
        }
    }
    if let Some(p) = o.get("propagationPolicy").and_then(Value::as_str) {
        if !["Orphan", "Background", "Foreground"].contains(&p) {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(o)
}

async fn delete(app: &Arc<App>, t: &Target, q: &Query, req: Request) -> Result<Reply, ApiError> {
    let opts = delete_options(q, req).await?;
    let dry_run = opts
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    delete_one(app, t.r, t.ns(), t.name(), &opts, dry_run)
        .await
        .map(Reply::ok)
}

pub(crate) async fn delete_one(
    app: &Arc<App>,
    r: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let key = app.storage.key(r, ns, name);
    for _ in 0..UPDATE_RETRIES {
        let cur = app
            .storage
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(r, name))?;
        if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
            let have = objects::meta_str(&cur.object, "uid").unwrap_or("");
            if uid != have {
                return Err(ApiError::conflict_with(r, name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}")));
            }
        }
        if let Some(rv) = opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            if rv != cur.mod_revision.to_string() {
                return Err(ApiError::conflict_with(r, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", cur.mod_revision)));
            }
        }
        let finalizers = cur
            .object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let graceful = r.plural == "pods"
            && cur
                .object
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
            && opts
                .get("gracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                > 0;
        let namespace = r.plural == "namespaces";
        if dry_run {
            return Ok(cur.object);
        }
        if finalizers || graceful || namespace {
            if cur.object.pointer("/metadata/deletionTimestamp").is_some() {
                // Already being deleted. A namespace's finalization is started again: the
                // replica that started it may have died.
                if namespace {
                    tokio::spawn(app.clone().finalize_namespace(name.to_string()));
                }
                return Ok(cur.object);
            }
            let mut new = cur.object.clone();
            let grace = if graceful {
                opts.get("gracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or_else(|| {
                        cur.object
                            .pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                            .unwrap_or(30)
                    })
            } else {
                0
            };
            let when = std::time::SystemTime::now() + Duration::from_secs(grace.max(0) as u64);
            let m = objects::meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(objects::rfc3339(when)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            if namespace {
                new["status"]["phase"] = json!("Terminating");
            }
            match app
                .storage
                .update(&key, &new, cur.mod_revision, None, &[], &[])
                .await?
            {
                WriteOutcome::Done { revision } => {
                    crate::storage::set_resource_version(&mut new, revision);
                    if namespace {
                        let app = app.clone();
                        let ns_name = name.to_string();
                        tokio::spawn(app.finalize_namespace(ns_name));
                    }
                    return Ok(new);
                }
                WriteOutcome::Mismatch { current: None } => {
                    return Err(ApiError::not_found(r, name))
                }
                // Only metadata changed: no reservation was asked for.
                WriteOutcome::Mismatch { .. } | WriteOutcome::Taken { .. } => continue,
            }
        }
        let held = app.storage.reservations(r, &cur.object);
        match app.storage.delete(&key, cur.mod_revision, &held).await? {
            WriteOutcome::Done { .. } => return Ok(cur.object),
            WriteOutcome::Mismatch { current: None } => return Err(ApiError::not_found(r, name)),
            WriteOutcome::Mismatch { .. } | WriteOutcome::Taken { .. } => continue,
        }
    }
    Err(ApiError::conflict(r, name))
}

async fn delete_collection(
    app: &Arc<App>,
    t: &Target,
    q: &Query,
    req: Request,
) -> Result<Reply, ApiError> {
    let filter = Filter::new(t.r, q)?;
    let opts = delete_options(q, req).await?;
    let dry_run = opts
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let prefix = app.storage.list_prefix(t.r, t.ns());
    let page = app
        .storage
        .list(
            &prefix,
            0,
            None,
            0,
            &|o| filter.matches(o),
            filter.selective(),
        )
        .await?;
    let mut deleted = Vec::new();
    for s in page.items {
        let name = objects::meta_str(&s.object, "name")
            .unwrap_or("")
            .to_string();
        let ns = objects::meta_str(&s.object, "namespace").map(str::to_string);
        match delete_one(app, t.r, ns.as_deref(), &name, &opts, dry_run).await {
            Ok(o) => deleted.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::ok(json!({
        "kind": list_kind(t.r),
        "apiVersion": t.r.api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": deleted,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn accept_headers_choose_tables() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert_eq!(negotiate(&h).unwrap(), Output::Table);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert_eq!(negotiate(&h).unwrap(), Output::Json);
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(negotiate(&h).unwrap_err().code, 406);
    }

    fn body_request(len: usize, expect_continue: bool, body: Body) -> Request {
        let mut b = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, len.to_string());
        if expect_continue {
            b = b.header(header::EXPECT, "100-continue");
        }
        b.body(body).unwrap()
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_read_then_refused() {
        let ok = vec![b' '; REQUEST_BODY_BYTES_MAX];
        let (got, ct) = read_body(body_request(ok.len(), false, Body::from(ok)))
            .await
            .unwrap();
        assert_eq!(
            (got.len(), ct.as_str()),
            (REQUEST_BODY_BYTES_MAX, "application/json")
        );

        // Just over: drained, then 413 (the client gets to read the answer).
        let over = vec![b' '; REQUEST_BODY_BYTES_MAX + 1024];
        let e = read_body(body_request(over.len(), false, Body::from(over)))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);

        // Far over, or waiting for 100 Continue: refused without touching the body.
        let untouched = || {
            Body::from_stream(futures::stream::once(async {
                panic!("the body was read");
                #[allow(unreachable_code)]
                Ok::<Bytes, std::io::Error>(Bytes::new())
            }))
        };
        let far = REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX + 1;
        let e = read_body(body_request(far, false, untouched()))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);
        let e = read_body(body_request(REQUEST_BODY_BYTES_MAX + 1, true, untouched()))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);

        // A body longer than it declared is still bounded.
        let liar = vec![b' '; REQUEST_BODY_BYTES_MAX + REQUEST_BODY_DRAIN_BYTES_MAX + 1];
        let e = read_body(body_request(10, false, Body::from(liar)))
            .await
            .unwrap_err();
        assert_eq!(e.code, 413);
    }

    #[test]
    fn an_update_without_addresses_keeps_the_allocated_ones() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.7",
            "clusterIPs": ["10.96.0.7"],
            "ports": [{"port": 80, "nodePort": 30001}, {"port": 53, "protocol": "UDP", "nodePort": 30002}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80}, {"port": 53, "protocol": "TCP"}, {"port": 90, "nodePort": 30009}]}});
        keep_allocated_values(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30001);
        // Same number, other protocol: not the same port.
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
        assert_eq!(new["spec"]["ports"][2]["nodePort"], 30009);

        // Turned ClusterIP: node ports are not carried over; the address is.
        let mut to_cluster_ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        keep_allocated_values(&old, &mut to_cluster_ip);
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.96.0.7");
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());

        // A new address asked for is the client's to ask (the reservation decides).
        let mut moved = json!({"spec": {"clusterIP": "10.96.0.9"}});
        keep_allocated_values(&old, &mut moved);
        assert_eq!(moved["spec"]["clusterIP"], "10.96.0.9");
        assert!(moved["spec"].get("clusterIPs").is_none());
    }
}
