//! PUT: replace an object (or its status, or its scale).

use std::sync::Arc;

use ::http::{HeaderMap, StatusCode};
use axum::extract::Request;
use serde_json::{json, Value};

use super::common::{body_object, strict_decode_error, write_opts, written, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::machinery::meta;
use crate::registry::{scale, store, ObjectRef};
use crate::request::info::Query;
use crate::request::negotiate::{decode_body, read_body};
use crate::resources::Subresource;

pub(super) async fn update(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    headers: &HeaderMap,
    req: Request,
) -> Result<Reply, ApiError> {
    let opts = write_opts(q, headers, "unknown")?;
    let (bytes, ct) = read_body(req).await?;
    let mut warnings = Vec::new();
    if t.subresource() == Some(Subresource::Scale) {
        let scale: Value = decode_body(t.r, &bytes, &ct)?;
        let replicas = scale::replicas(&scale)?;
        let rv = scale
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let updated = store::guaranteed_update(app, t, &opts, &mut warnings, |cur, _| {
            let mut new = cur.clone();
            new["spec"]["replicas"] = json!(replicas);
            Ok((new, rv.clone()))
        })
        .await?;
        return Ok(written(
            StatusCode::OK,
            scale::to_scale(&updated),
            &mut warnings,
        ));
    }
    let obj = body_object(t, &bytes, &ct)?;
    let rv = meta::meta_str(&obj, "resourceVersion").map(str::to_string);
    let updated = store::guaranteed_update(app, t, &opts, &mut warnings, |_, _| {
        Ok((obj.clone(), rv.clone()))
    })
    .await
    .map_err(|e| strict_decode_error(t.r, e))?;
    Ok(written(StatusCode::OK, updated, &mut warnings))
}
