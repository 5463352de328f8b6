//! POST: create (with generateName), and the pod `binding` subresource.

use std::sync::Arc;

use ::http::{HeaderMap, StatusCode};
use axum::extract::Request;
use serde_json::{json, Value};

use super::common::{body_object, strict_decode_error, write_opts, written, Reply};
use crate::app::App;
use crate::error::{ApiError, Cause};
use crate::machinery::{apply, meta};
use crate::registry::store::{self, WriteOpts};
use crate::registry::strategy::FieldValidation;
use crate::registry::ObjectRef;
use crate::request::info::Query;
use crate::request::negotiate::{decode_body, read_body};

pub(super) async fn create(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    headers: &HeaderMap,
    req: Request,
) -> Result<Reply, ApiError> {
    let opts = write_opts(q, headers, "unknown")?;
    let (bytes, ct) = read_body(req).await?;
    let mut obj = body_object(t, &bytes, &ct)?;
    let mut warnings = Vec::new();
    {
        let m = meta::meta_mut(&mut obj);
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
                    json!(format!("{base}{}", meta::name_suffix())),
                );
            }
        }
        m.remove("managedFields");
    }
    let mut obj = store::prepare_new(t, obj, opts.validation, &mut warnings)
        .map_err(|e| strict_decode_error(t.r, e))?;
    let now = meta::now();
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
    let name = meta::meta_str(&obj, "name").unwrap_or("").to_string();
    let created = store::insert_new(app, t, obj, opts.dry_run)
        .await?
        .ok_or_else(|| ApiError::already_exists(t.r, &name))?;
    Ok(written(StatusCode::CREATED, created, &mut warnings))
}

pub(super) async fn bind(
    app: &Arc<App>,
    t: &ObjectRef,
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
    store::guaranteed_update(app, t, &WriteOpts { validation: FieldValidation::Ignore, ..opts }, &mut warnings, |cur, _| {
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
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now()}));
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
