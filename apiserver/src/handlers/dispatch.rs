//! The entry point of the verbs: negotiates the output, checks the subresource, runs the verb's
//! handler and turns its `Reply` (with its warnings) or error into the response.

use std::sync::Arc;

use ::http::{header, HeaderValue};
use axum::extract::Request;
use axum::response::Response;

use super::common::Reply;
use super::{create, delete, evict, get, list, patch, update, watch};
use crate::app::App;
use crate::error::ApiError;
use crate::request::info::{not_found_path, Query, RequestInfo, Verb};
use crate::request::negotiate::{error_response, json_response, negotiate, Output};

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
    // `namespaces/{name}/finalize` takes only PUT (kube's FinalizeREST is an Updater).
    if t.sub.as_deref() == Some("finalize") && info.verb != Verb::Update {
        return error_response(&ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let result = match info.verb {
        Verb::Get => get::get(app, t, query, out).await,
        Verb::List => list::list(app, t, query, out).await,
        Verb::Watch => return watch::watch_response(app, t, query, out).await,
        Verb::Create if t.sub.as_deref() == Some("binding") => {
            create::bind(app, t, query, &headers, req).await
        }
        Verb::Create if t.sub.as_deref() == Some("eviction") => {
            evict::evict(app, t, query, &headers, req).await
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
            mut body,
            warnings,
        }) => {
            // get and list render it themselves; a write's answer is reduced here.
            if out == Output::Metadata && !matches!(info.verb, Verb::Get | Verb::List) {
                body = match body.get("items").and_then(|i| i.as_array()) {
                    Some(items) => crate::machinery::meta::partial_object_metadata_list(
                        body.get("metadata").cloned().unwrap_or_default(),
                        items,
                    ),
                    None => crate::machinery::meta::partial_object_metadata(&body),
                };
            }
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
