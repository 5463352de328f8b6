//! PATCH: JSON, merge and strategic merge patches, and server-side apply (which may create).

use std::sync::Arc;

use ::http::{HeaderMap, StatusCode};
use axum::extract::Request;
use serde_json::json;

use super::common::{write_opts, written, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::machinery::{apply, meta, patch};
use crate::registry::{scale, store, strategy, ObjectRef};
use crate::request::info::{flag, Query};
use crate::request::negotiate::{decode_body, read_body};
use crate::resources::Subresource;

/// Server-side apply's Content-Type (the other PATCH types are `PatchType`).
const APPLY_PATCH_CONTENT_TYPE: &str = "application/apply-patch+yaml";

/// The body of a non-apply PATCH, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchType {
    Json,
    Merge,
    StrategicMerge,
}

impl PatchType {
    fn parse(ct: &str) -> Result<Self, ApiError> {
        match ct {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

pub(super) async fn patch_object(
    app: &Arc<App>,
    t: &ObjectRef,
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
    if ct == APPLY_PATCH_CONTENT_TYPE {
        if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(ApiError::bad_request(
                "PATCH /apis: fieldManager is required for apply requests",
            ));
        }
        let applied = decode_body(t.r, &bytes, &ct)?;
        let key = app.storage.key(t.r, t.ns(), t.name());
        let now = meta::now();
        // Apply may create the object.
        if !is_scale && app.storage.get(&key).await?.is_none() {
            let mut obj = applied.clone();
            strategy::check_type(t.r, &mut obj)?;
            strategy::check_namespace(t.r, &mut obj, t.ns())?;
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
            let created = store::prepare_new(t, created, opts.validation, &mut warnings)?;
            if let Some(created) = store::insert_new(app, t, created, opts.dry_run).await? {
                return Ok(written(StatusCode::CREATED, created, &mut warnings));
            }
            // Created meanwhile: apply to it below.
        }
        let updated = store::guaranteed_update(app, t, &opts, &mut warnings, |cur, _| {
            let mut obj = applied.clone();
            if !is_scale {
                strategy::check_type(t.r, &mut obj)?;
            }
            let base = if is_scale {
                scale::to_scale(cur)
            } else {
                cur.clone()
            };
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
                new["spec"]["replicas"] = json!(scale::replicas(&out)?);
                Ok((new, None))
            } else {
                Ok((out, None))
            }
        })
        .await?;
        let body = if is_scale {
            scale::to_scale(&updated)
        } else {
            updated
        };
        return Ok(written(StatusCode::OK, body, &mut warnings));
    }
    let patch_type = PatchType::parse(&ct)?;
    let updated = store::guaranteed_update(app, t, &opts, &mut warnings, |cur, _| {
        let doc = if is_scale {
            scale::to_scale(cur)
        } else {
            cur.clone()
        };
        let patched = match patch_type {
            PatchType::Json => patch::json_patch(&doc, &bytes),
            PatchType::Merge => patch::merge_patch(&doc, &bytes),
            PatchType::StrategicMerge => {
                patch::strategic_merge_patch(&av_of_doc, kind_of_doc, &doc, &bytes)
            }
        }
        .map_err(|e| ApiError::new(e.status_code(), e.reason(), e.message()))?;
        // A patch that sets metadata.resourceVersion makes it a precondition.
        let rv = meta::meta_str(&patched, "resourceVersion")
            .filter(|rv| Some(*rv) != meta::meta_str(&doc, "resourceVersion"))
            .map(str::to_string);
        if is_scale {
            let mut new = cur.clone();
            new["spec"]["replicas"] = json!(scale::replicas(&patched)?);
            return Ok((new, rv));
        }
        let mut patched = patched;
        strategy::check_type(t.r, &mut patched)?;
        strategy::check_namespace(t.r, &mut patched, t.ns())?;
        Ok((patched, rv))
    })
    .await?;
    let body = if is_scale {
        scale::to_scale(&updated)
    } else {
        updated
    };
    Ok(written(StatusCode::OK, body, &mut warnings))
}

fn apply_error(t: &ObjectRef, e: apply::ApplyError) -> ApiError {
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
