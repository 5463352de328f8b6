//! DELETE of one object and DELETECOLLECTION.

use std::sync::Arc;

use axum::extract::Request;
use serde_json::{json, Value};

use super::common::{list_kind, Filter, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::machinery::meta;
use crate::registry::deletion::DeleteOptions;
use crate::registry::{store, ObjectRef};
use crate::request::info::Query;
use crate::request::negotiate::read_body;

/// DeleteOptions from the body (kubectl sends them there) or the query, validated as kube's
/// `ValidateDeleteOptions` does.
async fn delete_options(q: &Query, req: Request) -> Result<DeleteOptions, ApiError> {
    let (bytes, _) = read_body(req).await?;
    let mut o = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?
    };
    for k in [
        "propagationPolicy",
        "gracePeriodSeconds",
        "dryRun",
        "orphanDependents",
    ] {
        if let Some(v) = q.get(k) {
            o[k] = match k {
                "gracePeriodSeconds" => json!(v
                    .parse::<i64>()
                    .map_err(|_| ApiError::bad_request("gracePeriodSeconds must be an integer"))?),
                "orphanDependents" => json!(v
                    .parse::<bool>()
                    .map_err(|_| ApiError::bad_request("orphanDependents must be a boolean"))?),
                "dryRun" => json!([v]),
                _ => json!(v),
            };
        }
    }
    DeleteOptions::parse(&o)
}

pub(super) async fn delete(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    req: Request,
) -> Result<Reply, ApiError> {
    let opts = delete_options(q, req).await?;
    store::delete_one(app, t.r, t.ns(), t.name(), &opts)
        .await
        .map(Reply::ok)
}

pub(super) async fn delete_collection(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    req: Request,
) -> Result<Reply, ApiError> {
    let filter = Filter::new(t.r, q)?;
    let opts = delete_options(q, req).await?;
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
        let name = meta::meta_str(&s.object, "name").unwrap_or("").to_string();
        let ns = meta::meta_str(&s.object, "namespace").map(str::to_string);
        match store::delete_one(app, t.r, ns.as_deref(), &name, &opts).await {
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
