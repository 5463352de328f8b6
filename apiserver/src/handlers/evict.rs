//! POST `pods/<name>/eviction` (kube's `EvictionREST.Create`): delete a pod only as its
//! PodDisruptionBudget allows. The decisions are `registry::kinds::pdb`'s; here are the reads
//! and writes: the pod, the budgets of its namespace, the budget's status CAS (retried on
//! conflict), the pod's `DisruptionTarget` condition, and the delete with the Eviction's
//! deleteOptions.

use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, StatusCode};
use axum::extract::Request;
use serde_json::{json, Value};

use super::common::{write_opts, Reply};
use crate::app::App;
use crate::error::ApiError;
use crate::machinery::meta;
use crate::registry::kinds::pdb::{self, Plan};
use crate::registry::store::{self, WriteOpts};
use crate::registry::strategy::FieldValidation;
use crate::registry::ObjectRef;
use crate::request::info::Query;
use crate::request::negotiate::{decode_body, read_body};
use crate::resources;

/// kube's `EvictionsRetry`: 20 steps, 500 ms apart.
const EVICTION_TRIES: usize = 20;
const EVICTION_RETRY_PAUSE: Duration = Duration::from_millis(500);

fn success() -> Reply {
    Reply {
        code: StatusCode::CREATED,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        warnings: Vec::new(),
    }
}

fn is_conflict(e: &ApiError) -> bool {
    e.code == 409
}

fn rv_precondition(opts: &Value) -> Option<&str> {
    opts.pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// kube's `propagateDryRun`: the Eviction's deleteOptions, with the request's dryRun.
fn delete_options(eviction: &Value, dry_run: bool) -> Result<Value, ApiError> {
    let query_dry_run = if dry_run { json!(["All"]) } else { json!([]) };
    let mut opts = match eviction.get("deleteOptions") {
        Some(o) if o.is_object() => o.clone(),
        _ => json!({}),
    };
    let body_dry_run = opts
        .get("dryRun")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned();
    match body_dry_run {
        None => opts["dryRun"] = query_dry_run,
        Some(d) if dry_run && json!(d) != query_dry_run => return Err(ApiError::internal(
            "createOptions.DryRun and eviction.DeleteOptions.DryRun are both set and do not match",
        )),
        Some(_) => {}
    }
    Ok(opts)
}

fn is_dry_run(opts: &Value) -> bool {
    opts.get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

pub(super) async fn evict(
    app: &Arc<App>,
    t: &ObjectRef,
    q: &Query,
    headers: &HeaderMap,
    req: Request,
) -> Result<Reply, ApiError> {
    let wopts = write_opts(q, headers, "unknown")?;
    let (bytes, ct) = read_body(req).await?;
    let eviction = decode_body(t.r, &bytes, &ct)?;
    match eviction.get("apiVersion").and_then(Value::as_str) {
        None | Some("" | "policy/v1" | "policy/v1beta1") => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "no kind \"Eviction\" is registered for version \"{v}\""
            )))
        }
    }
    match eviction.get("kind").and_then(Value::as_str) {
        None | Some("" | "Eviction") => {}
        Some(k) => return Err(ApiError::bad_request(format!("not a Eviction object: {k}"))),
    }
    if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(t.name()) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let original = delete_options(&eviction, wopts.dry_run)?;
    let dry_run = is_dry_run(&original);
    let pod_ref = ObjectRef {
        r: t.r,
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        sub: Some("status".into()),
    };
    let pod_key = app.storage.key(t.r, t.ns(), t.name());
    let may_retry = rv_precondition(&original).is_none();

    // Pods no budget protects are deleted at once (retried on conflict, as kube does).
    let mut pod = Value::Null;
    let mut pod_rv = String::new();
    for attempt in 0..EVICTION_TRIES {
        let stored = app
            .storage
            .get(&pod_key)
            .await?
            .ok_or_else(|| ApiError::not_found(t.r, t.name()))?;
        pod = stored.object;
        pod_rv = stored.mod_revision.to_string();
        let Plan::DeleteIgnoringBudgets {
            pin_resource_version,
        } = pdb::plan(&pod, &[])
        else {
            break;
        };
        let mut opts = original.clone();
        if pin_resource_version && may_retry {
            opts["preconditions"]["resourceVersion"] = json!(pod_rv);
        }
        match condition_and_delete(app, &pod_ref, &wopts, opts, dry_run).await {
            Ok(()) => return Ok(success()),
            Err(e) if is_conflict(&e) && may_retry && attempt + 1 < EVICTION_TRIES => {
                tokio::time::sleep(EVICTION_RETRY_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }

    let pdbr = resources::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))?;
    let prefix = app.storage.list_prefix(pdbr, t.ns());
    let budgets: Vec<Value> = app
        .storage
        .list(&prefix, 0, None, 0, &|_| true, false)
        .await?
        .items
        .into_iter()
        .map(|s| s.object)
        .collect();
    let mut opts = original.clone();
    let mut unhealthy_budget = None;
    match pdb::plan(&pod, &budgets) {
        // (DeleteIgnoringBudgets was handled by the loop above, on this same pod.)
        Plan::DeleteIgnoringBudgets { .. } | Plan::NoBudget => {}
        Plan::MultipleBudgets => {
            return Ok(Reply {
                code: StatusCode::INTERNAL_SERVER_ERROR,
                body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": pdb::MULTIPLE_BUDGETS, "code": 500}),
                warnings: Vec::new(),
            })
        }
        Plan::DeleteUnhealthy { budget } => {
            // Pinned to the version read: a pod that became Ready meanwhile is not deleted.
            opts["preconditions"]["resourceVersion"] = json!(pod_rv);
            unhealthy_budget = Some(budget);
        }
        Plan::Decrement { budget } => {
            decrement(app, pdbr, t.ns(), &budget, t.name(), dry_run).await?;
        }
    }
    match condition_and_delete(app, &pod_ref, &wopts, opts, dry_run).await {
        Ok(()) => Ok(success()),
        Err(e) if is_conflict(&e) && may_retry && unhealthy_budget.is_some() => Err(
            pdb::still_processing(unhealthy_budget.as_deref().unwrap_or_default()),
        ),
        Err(e) => Err(e),
    }
}

/// Spends one disruption of the budget (a CAS on its status, retried on conflict with a fresh
/// read); in a dry run only checks that it could.
async fn decrement(
    app: &Arc<App>,
    pdbr: &'static resources::ResourceInfo,
    ns: Option<&str>,
    budget: &str,
    pod_name: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let now = meta::now();
    if dry_run {
        let stored = app
            .storage
            .get(&app.storage.key(pdbr, ns, budget))
            .await?
            .ok_or_else(|| ApiError::not_found(pdbr, budget))?;
        return pdb::check_and_decrement(&stored.object, pod_name, &now).map(|_| ());
    }
    let budget_ref = ObjectRef {
        r: pdbr,
        namespace: ns.map(str::to_string),
        name: Some(budget.to_string()),
        sub: Some("status".into()),
    };
    let opts = WriteOpts {
        dry_run: false,
        validation: FieldValidation::Ignore,
        manager: "kube-apiserver".into(),
    };
    let mut warnings = Vec::new();
    store::guaranteed_update(app, &budget_ref, &opts, &mut warnings, |cur, _| {
        Ok((pdb::check_and_decrement(cur, pod_name, &now)?, None))
    })
    .await
    .map_err(|e| {
        if is_conflict(&e) {
            ApiError::timeout(format!(
                "couldn't update PodDisruptionBudget {budget:?} due to conflicts"
            ))
        } else {
            e
        }
    })?;
    Ok(())
}

/// kube's `addConditionAndDeletePod`: the `DisruptionTarget` condition on the latest pod
/// (checking the deleteOptions' preconditions against it), then the delete — whose
/// resourceVersion precondition, if any, moves to the version the condition wrote.
async fn condition_and_delete(
    app: &Arc<App>,
    pod_ref: &ObjectRef,
    wopts: &WriteOpts,
    mut opts: Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if !dry_run {
        let uid = opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let rv = rv_precondition(&opts).map(str::to_string);
        let now = meta::now();
        let pods = pod_ref.r;
        let name = pod_ref.name().to_string();
        let condition_opts = WriteOpts {
            dry_run: false,
            validation: FieldValidation::Ignore,
            manager: wopts.manager.clone(),
        };
        let mut warnings = Vec::new();
        let updated = store::guaranteed_update(
            app,
            pod_ref,
            &condition_opts,
            &mut warnings,
            |cur, _| {
                let have_uid = meta::meta_str(cur, "uid").unwrap_or("");
                if let Some(uid) = &uid {
                    if uid != have_uid {
                        return Err(ApiError::conflict_with(pods, &name, &format!(
                            "the UID in the precondition ({uid}) does not match the UID in record ({have_uid}). The object might have been deleted and then recreated"
                        )));
                    }
                }
                let have_rv = meta::meta_str(cur, "resourceVersion").unwrap_or("");
                if let Some(rv) = &rv {
                    if rv != have_rv {
                        return Err(ApiError::conflict_with(pods, &name, &format!(
                            "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({have_rv}). The object might have been modified"
                        )));
                    }
                }
                let mut new = cur.clone();
                pdb::add_disruption_target(&mut new, &now);
                Ok((new, None))
            },
        )
        .await?;
        if rv.is_some() {
            if let Some(new_rv) = meta::meta_str(&updated, "resourceVersion") {
                opts["preconditions"]["resourceVersion"] = json!(new_rv);
            }
        }
    }
    // The Eviction's deleteOptions, validated as a DELETE's are; the request's own dryRun
    // counts too.
    let mut parsed = crate::registry::deletion::DeleteOptions::parse(&opts)?;
    parsed.dry_run |= dry_run;
    store::delete_one(app, pod_ref.r, pod_ref.ns(), pod_ref.name(), &parsed)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requests_dry_run_reaches_the_delete_options() {
        // No deleteOptions: the request's dryRun.
        let o = delete_options(&json!({}), true).unwrap();
        assert!(is_dry_run(&o));
        let o = delete_options(&json!({}), false).unwrap();
        assert!(!is_dry_run(&o));
        // The Eviction's own options are kept, with the request's dryRun added.
        let ev = json!({"deleteOptions": {"gracePeriodSeconds": 5, "preconditions": {"uid": "u"}}});
        let o = delete_options(&ev, true).unwrap();
        assert_eq!(o["gracePeriodSeconds"], 5);
        assert_eq!(o["preconditions"]["uid"], "u");
        assert!(is_dry_run(&o));
        // Both set and equal is fine; set in the body only is kept.
        let ev = json!({"deleteOptions": {"dryRun": ["All"]}});
        assert!(is_dry_run(&delete_options(&ev, true).unwrap()));
        assert!(is_dry_run(&delete_options(&ev, false).unwrap()));
        assert_eq!(
            rv_precondition(&json!({"preconditions": {"resourceVersion": ""}})),
            None
        );
        assert_eq!(
            rv_precondition(&json!({"preconditions": {"resourceVersion": "7"}})),
            Some("7")
        );
    }
}
