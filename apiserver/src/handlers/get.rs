//! GET of one object (or its scale).

use std::sync::Arc;

use serde_json::Value;

use super::common::{include_object, unix_now, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::registry::{printers, scale, ObjectRef};
use crate::request::info::Query;
use crate::request::negotiate::Output;
use crate::resources::Subresource;

pub(super) async fn get(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    out: Output,
) -> Result<Reply, ApiError> {
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
        return Ok(Reply::ok(scale::to_scale(&obj)));
    }
    Ok(Reply::ok(render_one(t, obj, out, q)?))
}

fn render_one(t: &ObjectRef, obj: Value, out: Output, q: &Query) -> Result<Value, ApiError> {
    Ok(match out {
        Output::Json => obj,
        Output::Metadata => crate::machinery::meta::partial_object_metadata(&obj),
        Output::Table => {
            let include = include_object(q)?;
            let rv = obj.pointer("/metadata/resourceVersion").cloned();
            let mut tbl =
                printers::table(&t.r.api_version(), t.r.kind, &[obj], include, unix_now());
            if let Some(rv) = rv {
                tbl["metadata"]["resourceVersion"] = rv;
            }
            tbl
        }
    })
}
