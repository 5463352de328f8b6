//! LIST: from the store (pages, continue tokens, `Exact`) or from the watch cache
//! (`resourceVersion` not older than).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::common::{include_object, list_kind, unix_now, Filter, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::machinery::meta;
use crate::registry::{printers, ObjectRef};
use crate::request::info::Query;
use crate::request::negotiate::Output;
use crate::storage::etcd::ContinueToken;

pub(super) async fn list(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    out: Output,
) -> Result<Reply, ApiError> {
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
            .filter(|o| pinned.is_none() || meta::meta_str(o, "name") == pinned.as_deref())
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
        Output::Metadata => crate::machinery::meta::partial_object_metadata_list(meta, &items),
        Output::Table => {
            let include = include_object(q)?;
            let mut tbl =
                printers::table(&t.r.api_version(), t.r.kind, &items, include, unix_now());
            tbl["metadata"] = meta;
            tbl
        }
    };
    Ok(Reply::ok(body))
}
