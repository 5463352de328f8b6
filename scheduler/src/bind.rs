//! The scheduler's writes (thin I/O): `POST pods/<name>/binding` (kube's DefaultBinder) and the
//! `PodScheduled` condition through `pods/<name>/status`. Each checks `leading.ensure()` just
//! before it writes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use mainstay_component::Leading;
use serde_json::Value;

use crate::error::Error;
use crate::pods;

/// How a bind call ended.
#[derive(Debug)]
pub enum BindOutcome {
    Bound,
    /// 404 or 409: the pod is gone, already bound, or being deleted — nothing to retry.
    Gone(kube::Error),
    /// Anything else: retry after backoff.
    Failed(Error),
    NotLeading,
}

pub async fn bind(client: kube::Client, leading: &Leading, pod: &Pod, node: &str) -> BindOutcome {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let body = match serde_json::to_vec(&pods::binding(pod, node)) {
        Ok(b) => b,
        Err(e) => return BindOutcome::Failed(e.into()),
    };
    if leading.ensure().is_err() {
        return BindOutcome::NotLeading;
    }
    let api: Api<Pod> = Api::namespaced(client, ns);
    match api
        .create_subresource::<Value>("binding", name, &PostParams::default(), body)
        .await
    {
        Ok(_) => BindOutcome::Bound,
        Err(kube::Error::Api(resp)) if resp.code == 404 || resp.code == 409 => {
            BindOutcome::Gone(kube::Error::Api(resp))
        }
        Err(e) => BindOutcome::Failed(e.into()),
    }
}

/// Writes `PodScheduled=False/Unschedulable` with `message`, unless the pod already says so.
pub async fn mark_unschedulable(
    client: kube::Client,
    leading: &Leading,
    pod: Arc<Pod>,
    message: String,
) -> Result<(), Error> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let Some(patch) = pods::unschedulable_condition_patch(&pod, &message, &now) else {
        return Ok(());
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    leading.ensure()?;
    let api: Api<Pod> = Api::namespaced(client, ns);
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}
