//! Heartbeats: every node's Lease renewal and status post, each in one shared task driven by
//! a [`Periodic`] schedule, and one watch of Nodes that tells the status task when someone
//! else changed a node's conditions (kubelet compares with the API's copy every
//! `nodeStatusUpdateFrequency`; the watch gives the same answer without a GET per node).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use mainstay_component::events::EventType;

use super::shared::{
    error_outcome, node_reference, patch_params, post_params, write, NodeInfo, Outcome, Shared,
};
use crate::config::{NodesConfig, NODE_STATUS_UPDATE_FREQUENCY};
use crate::node::{self, TransitionTimes, CONDITIONS};
use crate::schedule::Periodic;

pub(super) const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The Ready condition's bit in a mask of [`CONDITIONS`].
const READY_BIT: u8 = 1 << 3;
/// Every bit of a mask of [`CONDITIONS`].
const ALL_CONDITIONS: u8 = 0b1111;
/// Changed-condition notices waiting for the status task. Beyond it a notice is dropped: the
/// node's next watch event or its periodic post catches up.
pub(super) const CHANGED_CAPACITY: usize = 1024;

/// Renews (or creates) the node's Lease: holder = the node, kubelet's duration, renewTime now.
/// A merge patch needs no read first; kubelet instead updates its cached copy (optimistic
/// concurrency), which matters only when something else writes the same Lease.
pub(super) async fn renew_lease(
    client: &Client,
    cfg: &NodesConfig,
    node: &NodeInfo,
    writes: &Semaphore,
) -> Result<(), String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let name = &node.id.name;
    let now = MicroTime(Utc::now());
    let patch = json!({"spec": {
        "holderIdentity": name,
        "leaseDurationSeconds": cfg.lease_duration_seconds,
        "renewTime": now.clone(),
    }});
    match write(
        writes,
        api.patch(name, &patch_params(), &Patch::Merge(&patch)),
    )
    .await
    {
        None => return Err("lease renewal timed out".into()),
        Some(Ok(_)) => return Ok(()),
        Some(Err(e)) if error_outcome(&e) == Outcome::NotFound => {}
        Some(Err(e)) => return Err(e.to_string()),
    }
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            // As kubelet: the Lease goes away with its Node.
            owner_references: (!node.uid.is_empty()).then(|| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid: node.uid.clone(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.clone()),
            lease_duration_seconds: Some(cfg.lease_duration_seconds),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    };
    match write(writes, api.create(&post_params(), &lease)).await {
        None => Err("lease create timed out".into()),
        Some(Ok(_)) => Ok(()),
        // Created meanwhile (a concurrent try): renewed on the next round.
        Some(Err(e)) if error_outcome(&e) == Outcome::Conflict => Ok(()),
        Some(Err(e)) => Err(e.to_string()),
    }
}

/// Renews every node's Lease every `lease_renew_interval` (jittered, spread over the
/// interval); a failed renewal is retried from 200 ms, doubling to 7 s.
pub(super) async fn lease_loop(shared: Arc<Shared>) -> &'static str {
    let n = shared.nodes.len();
    let mut sched = Periodic::new(n, Instant::now(), shared.cfg.lease_renew_interval, 0x1ea5e);
    let max_in_flight = shared.cfg.write_concurrency;
    let mut in_flight = FuturesUnordered::new();
    loop {
        let now = Instant::now();
        while in_flight.len() < max_in_flight {
            let Some(slot) = sched.pop_due(now) else {
                break;
            };
            if shared.control.is_stopped(slot) {
                // A dead machine renews nothing; its turn comes round again.
                sched.finish(slot, true, now);
                continue;
            }
            let shared = shared.clone();
            in_flight.push(async move {
                let node = &shared.nodes[slot];
                let r = renew_lease(&shared.client, &shared.cfg, node, &shared.writes).await;
                if let Err(e) = &r {
                    tracing::warn!(node = %node.id.name, error = %e, "lease renewal failed");
                }
                (slot, r.is_ok())
            });
        }
        let next = sched.next_due();
        let room = in_flight.len() < max_in_flight;
        tokio::select! {
            Some((slot, ok)) = in_flight.next(), if !in_flight.is_empty() => {
                sched.finish(slot, ok, Instant::now());
            }
            () = sleep_until_opt(next), if next.is_some() && room => {}
            else => std::future::pending::<()>().await,
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Posts every node's status every `status_report_interval` (spread and jittered), and
/// within `NODE_STATUS_UPDATE_FREQUENCY` of its last post when `changed` says someone else
/// changed its conditions. The changed conditions get a new transition time.
pub(super) async fn status_loop(
    shared: Arc<Shared>,
    mut changed: mpsc::Receiver<(usize, u8)>,
    mut restarts: mpsc::Receiver<usize>,
) -> &'static str {
    let n = shared.nodes.len();
    let mut sched = Periodic::new(n, Instant::now(), shared.cfg.status_report_interval, 0x57a7);
    let mut transitions: Vec<TransitionTimes> =
        shared.nodes.iter().map(|node| node.transitions).collect();
    // Conditions seen out of place since the slot's last post was built.
    let mut pending = vec![0u8; n];
    let max_in_flight = shared.cfg.write_concurrency;
    let mut in_flight = FuturesUnordered::new();
    let mut changed_open = true;
    let mut restarts_open = true;
    loop {
        let now = Instant::now();
        while in_flight.len() < max_in_flight {
            let Some(slot) = sched.pop_due(now) else {
                break;
            };
            if shared.control.is_stopped(slot) {
                sched.finish(slot, true, now);
                continue;
            }
            let wall = Utc::now();
            for (bit, t) in transitions[slot].iter_mut().enumerate() {
                if pending[slot] & (1 << bit) != 0 {
                    *t = wall;
                }
            }
            if pending[slot] & READY_BIT != 0 {
                let name = &shared.nodes[slot].id.name;
                shared.recorder(slot).record(
                    &node_reference(name),
                    EventType::Normal,
                    "NodeReady",
                    format!("Node {name} status is now: NodeReady"),
                );
            }
            pending[slot] = 0;
            let times = transitions[slot];
            let shared = shared.clone();
            in_flight.push(async move {
                let ok = post_status(&shared, slot, &times).await;
                (slot, ok)
            });
        }
        let next = sched.next_due();
        let room = in_flight.len() < max_in_flight;
        tokio::select! {
            Some((slot, ok)) = in_flight.next(), if !in_flight.is_empty() => {
                let now = Instant::now();
                sched.finish(slot, ok, now);
                if pending[slot] != 0 {
                    sched.expedite(slot, now, NODE_STATUS_UPDATE_FREQUENCY);
                }
            }
            slot = restarts.recv(), if restarts_open => match slot {
                // Back from the dead: every condition the node controller set Unknown
                // transitions now, and the status goes out at once.
                Some(slot) if slot < n => {
                    pending[slot] |= ALL_CONDITIONS;
                    sched.due_now(slot, Instant::now());
                }
                Some(_) => {}
                None => restarts_open = false,
            },
            msg = changed.recv(), if changed_open => match msg {
                Some((slot, mask)) if slot < n => {
                    pending[slot] |= mask;
                    sched.expedite(slot, Instant::now(), NODE_STATUS_UPDATE_FREQUENCY);
                }
                Some(_) => {}
                None => changed_open = false,
            },
            () = sleep_until_opt(next), if next.is_some() && room => {}
            else => std::future::pending::<()>().await,
        }
    }
}

/// One status post (a strategic merge patch of `nodes/<name>/status`); false when it should
/// be retried soon.
async fn post_status(shared: &Shared, slot: usize, times: &TransitionTimes) -> bool {
    let node = &shared.nodes[slot];
    let api: Api<Node> = Api::all(shared.client.clone());
    let status = node::status(&shared.cfg, &node.id, &node.boot_id, times, Utc::now());
    let body = node::status_patch(&status);
    let r = write(
        &shared.writes,
        api.patch_status(&node.id.name, &patch_params(), &Patch::Strategic(&body)),
    )
    .await;
    match r {
        Some(Ok(_)) => true,
        None => {
            tracing::warn!(node = %node.id.name, "node status post timed out");
            false
        }
        Some(Err(e)) => match error_outcome(&e) {
            // kubelet does not register again once registered: a deleted Node stays deleted,
            // and its next post is a report interval away rather than a retry.
            Outcome::NotFound => {
                tracing::debug!(node = %node.id.name, "node is gone; status not posted");
                true
            }
            _ => {
                tracing::warn!(node = %node.id.name, error = %e, "node status post failed");
                false
            }
        },
    }
}

/// Watches all Nodes; for ours whose conditions are not what they post, tells the status task.
pub(super) async fn watch_nodes(
    shared: Arc<Shared>,
    changed: mpsc::Sender<(usize, u8)>,
    queues: Vec<mpsc::Sender<super::pods::NodeMsg>>,
) -> &'static str {
    // The pod CIDR each node's task was last told (only when nodes wait for node IPAM's).
    let mut cidrs: Vec<Option<crate::ipam::Cidr>> = vec![None; shared.nodes.len()];
    let by_name: HashMap<&str, usize> = shared
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.name.as_str(), i))
        .collect();
    let api: Api<Node> = Api::all(shared.client.clone());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(events);
    while let Some(ev) = events.next().await {
        match ev {
            Ok(Event::Apply(n) | Event::InitApply(n)) => {
                let Some(&slot) = n.metadata.name.as_deref().and_then(|k| by_name.get(k)) else {
                    continue;
                };
                if !shared.cfg.register_pod_cidr {
                    let assigned = node::assigned_pod_cidr(&n);
                    if assigned.is_some() && assigned != cidrs[slot] {
                        cidrs[slot] = assigned;
                        if let (Some(c), Some(q)) = (assigned, queues.get(slot)) {
                            let _ = q.send(super::pods::NodeMsg::PodCidr(c)).await;
                        }
                    }
                }
                if shared.control.is_stopped(slot) {
                    continue;
                }
                let mask = node::conditions_out_of_place(n.status.as_ref());
                if mask != 0 {
                    let names: Vec<&str> = CONDITIONS
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, c)| c.0)
                        .collect();
                    tracing::info!(node = %shared.nodes[slot].id.name, conditions = ?names,
                        "node conditions changed by someone else; posting status");
                    if changed.try_send((slot, mask)).is_err() {
                        tracing::debug!(node = %shared.nodes[slot].id.name,
                            "status task busy; change left to the next event or post");
                    }
                }
            }
            Ok(Event::Delete(n)) => {
                if let Some(name) = n
                    .metadata
                    .name
                    .as_deref()
                    .filter(|k| by_name.contains_key(k))
                {
                    tracing::warn!(node = %name,
                        "node deleted; it is not registered again until this process restarts (as kubelet)");
                }
            }
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
        }
    }
    "node watch"
}
