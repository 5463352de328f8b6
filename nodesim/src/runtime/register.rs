//! Registration, as kubelet's `registerWithAPIServer`: create the Node, or take over an
//! existing one (add missing labels, keep its pod CIDR, post a fresh status), retrying
//! transient failures with backoff; then the first Lease and kubelet's start-up Events.

use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch};
use kube::Client;
use mainstay_component::events::{EventType, Recorder};
use tokio::sync::Semaphore;

use super::heartbeat;
use super::shared::{
    error_outcome, node_reference, patch_params, post_params, write, NodeInfo, Outcome,
};
use crate::config::NodesConfig;
use crate::error::Error;
use crate::node::{self, NodeIdentity, TransitionTimes, CONDITIONS};
use crate::schedule::{backoff, RETRY_INITIAL, RETRY_MAX};

/// Registers every node, `write_concurrency` at a time, in index order. Fails only when the
/// API server refuses a node for good.
pub(super) async fn register_all(
    client: &Client,
    cfg: &NodesConfig,
    ids: Vec<NodeIdentity>,
    writes: &Semaphore,
    process_start: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<NodeInfo>, Error> {
    stream::iter(ids)
        .map(|id| register_one(client, cfg, id, writes, process_start))
        .buffered(cfg.write_concurrency)
        .try_collect()
        .await
}

enum Failure {
    Transient(String),
    Fatal(kube::Error),
}

fn classify(e: kube::Error) -> Failure {
    match error_outcome(&e) {
        Outcome::Refused | Outcome::NotFound => Failure::Fatal(e),
        _ => Failure::Transient(e.to_string()),
    }
}

async fn register_one(
    client: &Client,
    cfg: &NodesConfig,
    mut id: NodeIdentity,
    writes: &Semaphore,
    process_start: chrono::DateTime<chrono::Utc>,
) -> Result<NodeInfo, Error> {
    let api: Api<Node> = Api::all(client.clone());
    let boot_id = node::boot_id(&id.name, process_start);
    let recorder = Recorder::new(client.clone(), "kubelet", Some(id.name.clone()));
    let node_ref = node_reference(&id.name);
    recorder.record(
        &node_ref,
        EventType::Normal,
        "Starting",
        "Starting kubelet.".to_string(),
    );
    let mut failures = 0u32;
    let (uid, was_ready, transitions) = loop {
        match try_register(&api, cfg, &mut id, &boot_id, writes).await {
            Ok(done) => break done,
            Err(Failure::Fatal(source)) => {
                return Err(Error::Register {
                    node: id.name.clone(),
                    source: Box::new(source),
                })
            }
            Err(Failure::Transient(why)) => {
                failures = failures.saturating_add(1);
                let wait = backoff(RETRY_INITIAL, RETRY_MAX, failures);
                tracing::warn!(node = %id.name, error = %why, retry_in_ms = wait.as_millis() as u64,
                    "registering node failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    };
    for (.., event) in CONDITIONS.iter().take(3) {
        recorder.record(
            &node_ref,
            EventType::Normal,
            event,
            format!("Node {} status is now: {event}", id.name),
        );
    }
    recorder.record(
        &node_ref,
        EventType::Normal,
        "NodeAllocatableEnforced",
        "Updated Node Allocatable limit across pods".to_string(),
    );
    if !was_ready {
        recorder.record(
            &node_ref,
            EventType::Normal,
            "NodeReady",
            format!("Node {} status is now: NodeReady", id.name),
        );
    }
    let info = NodeInfo {
        id,
        uid,
        boot_id,
        transitions,
        // Dropped otherwise: its writer sends the start-up Events above, then ends.
        recorder: cfg.pod_events.then_some(recorder),
    };
    // The first Lease now rather than at the first renewal; a failure here is retried by the
    // lease loop.
    if let Err(e) = heartbeat::renew_lease(client, cfg, &info, writes).await {
        tracing::debug!(node = %info.id.name, error = %e, "first lease write failed");
    }
    Ok(info)
}

/// One try: create, or take over. Returns the Node's UID, whether it was Ready before, and
/// the transition times of the status posted.
async fn try_register(
    api: &Api<Node>,
    cfg: &NodesConfig,
    id: &mut NodeIdentity,
    boot_id: &str,
    writes: &Semaphore,
) -> Result<(String, bool, TransitionTimes), Failure> {
    let now = chrono::Utc::now();
    let fresh = node::new_node(cfg, id, boot_id, now);
    match write(writes, api.create(&post_params(), &fresh)).await {
        None => return Err(Failure::Transient("create timed out".into())),
        Some(Ok(n)) => return Ok((n.metadata.uid.unwrap_or_default(), false, [now; 4])),
        Some(Err(e)) if error_outcome(&e) == Outcome::Conflict => {}
        Some(Err(e)) => return Err(classify(e)),
    }
    // It exists: take it over.
    let existing = match tokio::time::timeout(super::shared::WRITE_TIMEOUT, api.get(&id.name)).await
    {
        Err(_) => return Err(Failure::Transient("get timed out".into())),
        Ok(Err(e)) => {
            // Deleted in between: the next try creates it.
            return Err(match classify(e) {
                Failure::Fatal(e) if matches!(&e, kube::Error::Api(r) if r.code == 404) => {
                    Failure::Transient("node deleted while registering".into())
                }
                f => f,
            });
        }
        Ok(Ok(n)) => n,
    };
    let (patch, cidr) = node::adopt(cfg, id, &existing);
    id.pod_cidr = cidr;
    if let Some(p) = patch {
        match write(
            writes,
            api.patch(&id.name, &patch_params(), &Patch::Merge(&p)),
        )
        .await
        {
            None => return Err(Failure::Transient("patch timed out".into())),
            Some(Err(e)) => return Err(classify(e)),
            Some(Ok(_)) => {}
        }
    }
    let was_ready = node::conditions_out_of_place(existing.status.as_ref()) & 0b1000 == 0;
    let times = node::transition_times(existing.status.as_ref(), now);
    let status = node::status(cfg, id, boot_id, &times, now);
    let body = node::status_patch(&status);
    match write(
        writes,
        api.patch_status(&id.name, &patch_params(), &Patch::Strategic(&body)),
    )
    .await
    {
        None => Err(Failure::Transient("status patch timed out".into())),
        Some(Err(e)) => Err(classify(e)),
        Some(Ok(_)) => Ok((existing.metadata.uid.unwrap_or_default(), was_ready, times)),
    }
}
