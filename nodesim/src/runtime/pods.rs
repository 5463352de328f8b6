//! Pods: one watch of every pod bound to a node (`spec.nodeName!=`), whose events go to the
//! bounded queue of the node that holds the pod (pods of nodes this process does not hold are
//! dropped unread), and one task per node running [`NodePods`] and sending its writes, one at
//! a time, as kubelet's status manager does.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, Preconditions};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use mainstay_component::events::EventType;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;

use super::shared::{
    error_outcome, patch_params, write, NodeInfo, Outcome, Shared, NODE_QUEUE_CAPACITY,
};
use crate::ipam::Ipam;
use crate::pod::observe::{observe, Observed};
use crate::pod::sim::{NodePods, SimConfig, SimEvent, Write, WriteAction, WriteOutcome};

/// How often a stopped node's task looks whether it was started again.
const STOPPED_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// What the dispatcher tells a node.
#[derive(Debug)]
pub(super) enum NodeMsg {
    /// Boxed so that queue slots stay small (a channel allocates them in blocks up front).
    Pod(Box<Observed>),
    Gone(Box<str>),
    ResyncBegin,
    ResyncDone,
    /// The node's pod CIDR, assigned after registration (node IPAM).
    PodCidr(crate::ipam::Cidr),
}

/// The field selector of the shared pod watch: one node's pods, or every bound pod.
pub(crate) fn pod_selector(node_names: &[&str]) -> String {
    match node_names {
        [one] => format!("spec.nodeName={one}"),
        _ => "spec.nodeName!=".to_string(),
    }
}

/// Watches the pods bound to nodes and hands those of our nodes to their queues. Waits when a
/// queue is full (the watch then slows down rather than anything growing).
pub(super) async fn dispatch(
    shared: Arc<Shared>,
    queues: Vec<mpsc::Sender<NodeMsg>>,
) -> &'static str {
    let names: Vec<&str> = shared.nodes.iter().map(|n| n.id.name.as_str()).collect();
    let by_name: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let selector = pod_selector(&names);
    let api: Api<Pod> = Api::all(shared.client.clone());
    let events = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    futures::pin_mut!(events);
    let slot_of = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| by_name.get(n).copied())
    };
    while let Some(ev) = events.next().await {
        match ev {
            Ok(Event::Apply(p) | Event::InitApply(p)) => {
                let Some(slot) = slot_of(&p) else {
                    continue;
                };
                if let Some((_, o)) = observe(&p) {
                    // A closed queue means the node's task ended; `run` reports that.
                    let _ = queues[slot].send(NodeMsg::Pod(Box::new(o))).await;
                }
            }
            Ok(Event::Delete(p)) => {
                let (Some(slot), Some(uid)) = (slot_of(&p), p.metadata.uid.as_deref()) else {
                    continue;
                };
                let _ = queues[slot].send(NodeMsg::Gone(uid.into())).await;
            }
            Ok(Event::Init) => {
                for q in &queues {
                    let _ = q.send(NodeMsg::ResyncBegin).await;
                }
            }
            Ok(Event::InitDone) => {
                for q in &queues {
                    let _ = q.send(NodeMsg::ResyncDone).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
    "pod watch"
}

fn handle(core: &mut NodePods, msg: NodeMsg) {
    match msg {
        NodeMsg::Pod(o) => core.observe(*o, Instant::now()),
        NodeMsg::Gone(uid) => core.forget(&uid),
        NodeMsg::ResyncBegin => core.resync_begin(),
        NodeMsg::ResyncDone => core.resync_done(),
        NodeMsg::PodCidr(c) => {
            if core.set_pod_cidr(Ipam::new(c)) {
                tracing::info!(cidr = %c, "pod CIDR assigned");
            }
        }
    }
}

/// One node's pods: take queued events, run due transitions, send the oldest pending write,
/// and otherwise sleep until the next event or transition.
pub(super) async fn node_loop(
    shared: Arc<Shared>,
    slot: usize,
    mut queue: mpsc::Receiver<NodeMsg>,
) -> &'static str {
    let node = &shared.nodes[slot];
    let cfg = SimConfig {
        start_delay: shared.cfg.pod_start_delay,
        crash_loop_backoff: shared.cfg.crash_loop_backoff,
        max_pods: shared.cfg.pods,
        pod_events: shared.cfg.pod_events,
    };
    // Without a registered CIDR, no address until the node IPAM controller assigns one.
    let cidr = if shared.cfg.register_pod_cidr {
        node.id.pod_cidr
    } else {
        crate::ipam::Cidr {
            network: std::net::Ipv4Addr::UNSPECIFIED,
            prefix_len: 32,
        }
    };
    let mut core = NodePods::new(cfg, node.id.internal_ip, Ipam::new(cidr), shared.clock);
    loop {
        // What is queued now, but no more than a queue's worth, so writes are not starved.
        for _ in 0..NODE_QUEUE_CAPACITY {
            match queue.try_recv() {
                Ok(msg) => handle(&mut core, msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return "pod dispatcher",
            }
        }
        if shared.control.is_stopped(slot) {
            // A dead machine: it follows the watch (so nothing waits on its queue) but runs
            // and writes nothing until it is started again.
            tokio::select! {
                msg = queue.recv() => match msg {
                    Some(msg) => handle(&mut core, msg),
                    None => return "pod dispatcher",
                },
                () = tokio::time::sleep(STOPPED_POLL) => {}
            }
            continue;
        }
        let now = Instant::now();
        core.advance(now);
        record(node, core.take_events());
        if let Some(w) = core.next_write(now) {
            // Boxed: a request's future is many kilobytes, and unboxed it would be part of
            // every node's task for the task's whole life.
            let outcome = Box::pin(execute(&shared, &w)).await;
            core.write_done(&w, outcome, Instant::now());
            continue;
        }
        let wake = core.next_wakeup(now);
        tokio::select! {
            msg = queue.recv() => match msg {
                Some(msg) => handle(&mut core, msg),
                None => return "pod dispatcher",
            },
            () = sleep_until_opt(wake), if wake.is_some() => {}
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Sends one write: the status patch, or kubelet's final delete (grace 0, UID precondition).
async fn execute(shared: &Shared, w: &Write) -> WriteOutcome {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &w.key.namespace);
    let r = match &w.action {
        WriteAction::PatchStatus(body) => write(
            &shared.writes,
            api.patch_status(&w.key.name, &patch_params(), &Patch::Strategic(body)),
        )
        .await
        .map(|r| r.map(drop)),
        WriteAction::Delete => {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(w.key.uid.to_string()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            write(&shared.writes, api.delete(&w.key.name, &dp))
                .await
                .map(|r| r.map(drop))
        }
    };
    let what = match w.action {
        WriteAction::PatchStatus(_) => "pod status patch",
        WriteAction::Delete => "pod delete",
    };
    let pod = format!("{}/{}", w.key.namespace, w.key.name);
    let Some(r) = r else {
        tracing::warn!(%pod, "{what} timed out");
        return WriteOutcome::Retry;
    };
    let Err(e) = r else {
        return WriteOutcome::Done;
    };
    match error_outcome(&e) {
        Outcome::NotFound => WriteOutcome::Gone,
        // The UID precondition failed: a new pod took the name; ours is gone.
        Outcome::Conflict if e.to_string().contains("Precondition failed") => WriteOutcome::Gone,
        Outcome::Conflict | Outcome::Transient => {
            tracing::debug!(%pod, error = %e,
                "{what} failed; retrying");
            WriteOutcome::Retry
        }
        Outcome::Refused => {
            tracing::warn!(%pod, error = %e,
                "{what} refused; not sent again");
            WriteOutcome::Refused
        }
    }
}

/// Hands the node's pod Events to its recorder (which never waits).
fn record(node: &NodeInfo, events: Vec<SimEvent>) {
    // Pod Events exist only when they are on, and then the node keeps a recorder.
    let Some(recorder) = &node.recorder else {
        return;
    };
    for e in events {
        let reference = ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Pod".to_string()),
            namespace: Some(e.pod.namespace.to_string()),
            name: Some(e.pod.name.to_string()),
            uid: Some(e.pod.uid.to_string()),
            field_path: e.container.map(|c| format!("spec.containers{{{c}}}")),
            ..ObjectReference::default()
        };
        let kind = if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        recorder.record(&reference, kind, e.reason, e.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodesConfig;
    use crate::node::NodeIdentity;
    use crate::pod::sim::Clock;

    /// A node's task lives as long as the process: its future must stay small (the
    /// benchmark counts memory per node).
    #[tokio::test]
    async fn a_node_task_is_small() {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let cfg = NodesConfig::default();
        let id = NodeIdentity::new(&cfg, 0);
        let shared = Arc::new(Shared {
            client,
            writes: Arc::new(tokio::sync::Semaphore::new(1)),
            nodes: vec![NodeInfo {
                id,
                uid: String::new(),
                boot_id: String::new(),
                transitions: [chrono::Utc::now(); 4],
                recorder: None,
            }],
            cfg,
            clock: Clock {
                instant: Instant::now(),
                wall: chrono::Utc::now(),
            },
            control: crate::control::NodeControl::new(&NodesConfig::default()),
        });
        let (_tx, rx) = mpsc::channel(NODE_QUEUE_CAPACITY);
        let task = node_loop(shared, 0, rx);
        let size = std::mem::size_of_val(&task);
        println!("node task future: {size} B");
        assert!(size < 2048, "node task future is {size} B");
    }

    #[test]
    fn one_node_watches_its_own_pods_many_watch_all_bound_pods() {
        assert_eq!(pod_selector(&["n-1"]), "spec.nodeName=n-1");
        assert_eq!(pod_selector(&["n-1", "n-2"]), "spec.nodeName!=");
        assert_eq!(pod_selector(&[]), "spec.nodeName!=");
    }
}
