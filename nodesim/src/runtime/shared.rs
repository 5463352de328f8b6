//! What the runtime's tasks share: the registered nodes and the client ([`Shared`]), the one
//! way every write is made (a permit, a timeout, kubelet's field manager) and how a failed
//! write is classified.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{PatchParams, PostParams};
use kube::Client;
use mainstay_component::events::Recorder;
use tokio::sync::Semaphore;

use crate::config::NodesConfig;
use crate::node::{NodeIdentity, TransitionTimes};
use crate::pod::sim::Clock;

/// The longest any single write may take before it counts as failed (and is retried): a
/// hung request must not hold a write permit, or a node's queue, for long.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pod events waiting for one node's task (the dispatcher waits when it is full).
pub(crate) const NODE_QUEUE_CAPACITY: usize = 64;

/// One registered node.
pub(crate) struct NodeInfo {
    pub id: NodeIdentity,
    /// The Node object's UID (the Lease's owner).
    pub uid: String,
    pub boot_id: String,
    /// When its conditions last changed, as registration posted them.
    pub transitions: TransitionTimes,
    /// Kept only when pod Events are on: a recorder costs about 35 KB (its queue's first
    /// block of full Events), which would be most of a node's memory. Rare node Events use a
    /// recorder made for the occasion ([`Shared::recorder`]).
    pub recorder: Option<Recorder>,
}

/// What every task of the process shares.
pub(crate) struct Shared {
    pub client: Client,
    pub cfg: NodesConfig,
    pub writes: Arc<Semaphore>,
    pub nodes: Vec<NodeInfo>,
    pub clock: Clock,
    /// Which nodes are stopped (a dead machine: no heartbeats, no writes).
    pub control: crate::control::NodeControl,
}

impl Shared {
    /// The node's recorder, or one made for this Event (it writes what it was given, then
    /// ends).
    pub fn recorder(&self, slot: usize) -> Recorder {
        let node = &self.nodes[slot];
        match &node.recorder {
            Some(r) => r.clone(),
            None => Recorder::new(self.client.clone(), "kubelet", Some(node.id.name.clone())),
        }
    }
}

/// How a failed write failed, from the point of view of what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    NotFound,
    /// 409: already exists, or a failed precondition.
    Conflict,
    /// Another 4xx: the request will not succeed as it is.
    Refused,
    /// 429, 5xx, a timeout or connection trouble: try again later.
    Transient,
}

pub(crate) fn error_outcome(e: &kube::Error) -> Outcome {
    match e {
        kube::Error::Api(e) => match e.code {
            404 => Outcome::NotFound,
            409 => Outcome::Conflict,
            429 => Outcome::Transient,
            c if (400..500).contains(&c) => Outcome::Refused,
            _ => Outcome::Transient,
        },
        _ => Outcome::Transient,
    }
}

/// Writes are made as kubelet's (the `managedFields` manager kube would derive from kubelet's
/// user agent).
pub(crate) const FIELD_MANAGER: &str = "kubelet";

pub(crate) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

pub(crate) fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    }
}

/// Runs `f` holding a write permit, within [`WRITE_TIMEOUT`].
pub(crate) async fn write<T>(
    writes: &Semaphore,
    f: impl Future<Output = Result<T, kube::Error>>,
) -> Option<Result<T, kube::Error>> {
    // The semaphore is never closed.
    let _permit = writes.acquire().await.ok()?;
    tokio::time::timeout(WRITE_TIMEOUT, f).await.ok()
}

/// kubelet's reference for Events about its node: kind Node, the name, and the name again as
/// UID (kubelet's quirk, kept so `kubectl describe node` finds them the same way).
pub(crate) fn node_reference(name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Node".to_string()),
        name: Some(name.to_string()),
        uid: Some(name.to_string()),
        ..ObjectReference::default()
    }
}
