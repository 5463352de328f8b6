//! The outer layer: connections (TLS, the connection cap), authentication, the in-flight
//! budgets, and the router that sends non-resource paths (health, version, discovery, OpenAPI,
//! metrics) to their answers and resource paths, parsed into a `RequestInfo`
//! (`request::info`), to `handlers::dispatch`. It records every request in the app's
//! `request::metrics` and renders them, with the caches' and budgets' numbers, at `/metrics`.

pub mod authn;
pub mod inflight;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

use ::http::{header, HeaderValue, Method, StatusCode};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

use crate::app::{version_info, App};
use crate::error::ApiError;
use crate::handlers::{self, discovery, openapi};
use crate::request::info::{flag, not_found_path, parse_query, Query, RequestInfo, RequestLabels};
use crate::request::negotiate::{error_response, json_response, plain};

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

/// The entry point for every request.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let is_watch = req.method() == Method::GET && flag(&parse_query(req.uri().query()), "watch");
    let public = authn::PUBLIC_PATHS.contains(&path.as_str());
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
        ["version"] => (json_response(StatusCode::OK, &version_info()), None),
        ["metrics"] => {
            let objects = app.cache_stats();
            let budgets = [inflight::Kind::ReadOnly, inflight::Kind::Mutating]
                .map(|kind| (kind.label(), app.inflight.current(kind)));
            let text = app.metrics.render(&objects, &budgets);
            let mut r = Response::new(Body::from(text));
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

/// A resource request: parsed into a `RequestInfo` (a path that names no resource is a 404
/// without labels), then handed to the handlers.
async fn resource_request(
    app: &Arc<App>,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Request,
    query: Query,
) -> (Response, Option<RequestLabels>) {
    let info = match RequestInfo::parse(group, version, rest, req.method(), req.headers(), &query) {
        Ok(i) => i,
        Err(e) => return (error_response(&e), None),
    };
    let labels = info.labels();
    (
        handlers::dispatch(app, &info, &query, req).await,
        Some(labels),
    )
}
