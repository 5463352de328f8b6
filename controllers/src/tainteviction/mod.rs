//! kube's taint eviction controller (`pkg/controller/tainteviction`, a controller of its own
//! since 1.29): pods on nodes with NoExecute taints they do not tolerate are deleted at once;
//! pods that tolerate them for `tolerationSeconds` are deleted when that runs out, unless the
//! taint goes first or the pod is gone. Before deleting, the Event `TaintManagerEviction`
//! ("Marking for deletion Pod ns/name") and the pod condition `DisruptionTarget` (reason
//! `DeletionByTaintManager`); a cancelled deletion records "Cancelling deletion of Pod ns/name".
//!
//! Pure parts: [`tolerations`] (what is tolerated and how long) and [`timed`] (the per-pod
//! deletion times). This file watches Nodes and Pods, keeps the timers and deletes.

pub mod timed;
pub mod tolerations;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::events::{EventType, Recorder};
use mainstay_component::Leading;
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::timed::Timed;
use self::tolerations::Verdict;
use crate::nodelifecycle::pods::{node_name, PodsByNode};
use crate::nodelifecycle::strip;
use crate::nodelifecycle::taints::node_taints;
use crate::util::cache::{Cache, Change};
use crate::util::pod::{object_key, split_key};
use crate::util::{is_not_found, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "taint-eviction-controller";
pub const REASON_DELETION: &str = "DeletionByTaintManager";
pub const MESSAGE_DELETION: &str = "Taint manager: deleting due to NoExecute taint";
/// Deletions in flight at once.
const DELETIONS_IN_FLIGHT: usize = 16;
/// kube's `retries` of one deletion, 10 ms apart.
const DELETE_TRIES: usize = 5;

/// The status patch adding a `DisruptionTarget` condition (kube's `UpdatePodCondition` on a
/// copy, then `PatchPodStatus`); None when the pod already has it so. `failed` also sets the
/// phase Failed (pod GC's `markFailedAndDeletePod`).
pub fn disruption_patch(
    pod: &Pod,
    condition: Option<(&str, &str)>,
    failed: bool,
    now: DateTime<Utc>,
) -> Option<Value> {
    let mut status = serde_json::Map::new();
    if let Some((reason, message)) = condition {
        let have = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionTarget"));
        let same = have.is_some_and(|c| {
            c.status == "True"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        });
        if !same {
            status.insert(
                "conditions".into(),
                json!([{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": Time(now),
                }]),
            );
        }
    }
    if failed {
        status.insert("phase".into(), json!("Failed"));
    }
    (!status.is_empty()).then(|| json!({ "status": status }))
}

fn pod_ref(key: &str) -> ObjectReference {
    let (ns, name) = split_key(key).unwrap_or(("", key));
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..ObjectReference::default()
    }
}

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    nodes: Cache<Node>,
    pods: Cache<Pod>,
    by_node: PodsByNode,
    timed: Mutex<Timed>,
    wake: Notify,
}

/// Runs the taint eviction controller until `leading` is lost.
pub async fn run(client: Client, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        recorder,
        nodes: Cache::new(),
        pods: Cache::new(),
        by_node: PodsByNode::default(),
        timed: Mutex::new(Timed::default()),
        wake: Notify::new(),
    });
    tracing::info!(controller = CONTROLLER_NAME, "starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(watch_nodes(ctl.clone()));
    tasks.spawn(watch_pods(ctl.clone()));
    let synced = async {
        ctl.nodes.synced().await;
        ctl.pods.synced().await;
    };
    tokio::select! {
        _ = leading.lost() => {}
        _ = synced => {
            // Everything listed so far, as the handlers would have seen it.
            for n in ctl.nodes.in_namespace("") {
                ctl.handle_node(n.metadata.name.as_deref().unwrap_or(""));
            }
            tasks.spawn(fire_loop(ctl.clone()));
            supervise(&mut tasks, &leading, CONTROLLER_NAME).await;
        }
    }
    tasks.shutdown().await;
    tracing::info!(controller = CONTROLLER_NAME, "stopped");
    Ok(())
}

async fn watch_nodes(ctl: Arc<Controller>) {
    let api: Api<Node> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.nodes.apply(event.modify(strip)) {
                    if !ctl.nodes.is_synced() || !ctl.pods.is_synced() {
                        continue;
                    }
                    let (name, changed) = match &change {
                        Change::Added(n) => (n.metadata.name.clone(), true),
                        Change::Updated { old, new } => (
                            new.metadata.name.clone(),
                            tolerations::no_execute(node_taints(old))
                                != tolerations::no_execute(node_taints(new)),
                        ),
                        Change::Deleted(n) => (n.metadata.name.clone(), true),
                    };
                    if changed {
                        ctl.handle_node(name.as_deref().unwrap_or(""));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
        }
    }
}

async fn watch_pods(ctl: Arc<Controller>) {
    let api: Api<Pod> = Api::all(ctl.client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in ctl.pods.apply(event.modify(strip)) {
                    ctl.by_node.apply(&change);
                    if !ctl.nodes.is_synced() || !ctl.pods.is_synced() {
                        continue;
                    }
                    match &change {
                        Change::Added(p) => ctl.handle_pod(p),
                        Change::Updated { old, new } => {
                            let tol = |p: &Pod| p.spec.as_ref().and_then(|s| s.tolerations.clone());
                            if node_name(old) != node_name(new) || tol(old) != tol(new) {
                                ctl.handle_pod(new);
                            }
                        }
                        Change::Deleted(p) => ctl.cancel(&object_key(&p.metadata)),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

/// Sleeps until the next deletion is due, then starts the due ones (at most
/// [`DELETIONS_IN_FLIGHT`] at once).
async fn fire_loop(ctl: Arc<Controller>) {
    let permits = Arc::new(Semaphore::new(DELETIONS_IN_FLIGHT));
    let mut running = JoinSet::new();
    loop {
        let notified = ctl.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (due, next) = {
            let mut t = ctl.timed();
            let due = t.take_due(Instant::now());
            (due, t.next_due())
        };
        for key in due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let ctl = ctl.clone();
            running.spawn(async move {
                let _permit = permit;
                ctl.delete(&key).await;
            });
        }
        while running.try_join_next().is_some() {}
        tokio::select! {
            _ = &mut notified => {}
            _ = sleep_until(next) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Controller {
    fn timed(&self) -> MutexGuard<'_, Timed> {
        self.timed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cancel(&self, key: &str) {
        if self.timed().cancel(key) {
            self.cancel_event(key);
        }
    }

    fn cancel_event(&self, key: &str) {
        self.recorder.record(
            &pod_ref(key),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Cancelling deletion of Pod {key}"),
        );
    }

    fn taints_of(&self, node: &str) -> Vec<k8s_openapi::api::core::v1::Taint> {
        self.nodes
            .get("", node)
            .map(|n| tolerations::no_execute(node_taints(&n)))
            .unwrap_or_default()
    }

    /// kube's `processPodOnNode`.
    fn process(&self, pod: &Pod, taints: &[k8s_openapi::api::core::v1::Taint], now: Instant) {
        let key = object_key(&pod.metadata);
        let tols = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let verdict = tolerations::verdict(taints, tols);
        if verdict == Verdict::DeleteNow {
            tracing::info!(pod = %key, node = node_name(pod), "not all NoExecute taints tolerated: deleting");
        }
        let (cancelled, scheduled) = self.timed().apply(&key, verdict, now);
        if cancelled {
            self.cancel_event(&key);
        }
        if scheduled {
            self.wake.notify_one();
        }
    }

    /// kube's `handleNodeUpdate`.
    fn handle_node(&self, node: &str) {
        let taints = self.taints_of(node);
        let pods = self.by_node.on_node(node);
        let now = Instant::now();
        for p in pods {
            if taints.is_empty() {
                self.cancel(&object_key(&p.metadata));
            } else {
                self.process(&p, &taints, now);
            }
        }
    }

    /// kube's `handlePodUpdate`.
    fn handle_pod(&self, pod: &Pod) {
        let node = node_name(pod);
        if node.is_empty() {
            return;
        }
        let taints = self.taints_of(node);
        if taints.is_empty() {
            return;
        }
        self.process(pod, &taints, Instant::now());
    }

    /// kube's `deletePodHandler`.
    async fn delete(&self, key: &str) {
        self.recorder.record(
            &pod_ref(key),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {key}"),
        );
        let mut last = None;
        for _ in 0..DELETE_TRIES {
            match self.condition_and_delete(key).await {
                Ok(()) => {
                    tracing::info!(pod = %key, "deleted pod on a NoExecute-tainted node");
                    return;
                }
                Err(Error::NotLeading(_)) => return,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(e) = last {
            tracing::warn!(pod = %key, error = %e, "pod not deleted");
        }
        self.timed().failed(key);
    }

    async fn condition_and_delete(&self, key: &str) -> Result<()> {
        let (ns, name) = split_key(key).unwrap_or(("", key));
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod = match api.get(name).await {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let params = PatchParams::default();
        if let Some(patch) = disruption_patch(
            &pod,
            Some((REASON_DELETION, MESSAGE_DELETION)),
            false,
            Utc::now(),
        ) {
            let (api, patch, params) = (&api, &patch, &params);
            write_with_retry(&self.leading, || async move {
                api.patch_status(name, params, &Patch::Strategic(patch))
                    .await
            })
            .await?;
        }
        let (api, dp) = (&api, &DeleteParams::default());
        match write_with_retry(&self.leading, || async move { api.delete(name, dp).await }).await {
            Ok(_) => Ok(()),
            Err(Error::Kube(e)) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::pod::testing::{at, pod};

    #[test]
    fn the_disruption_condition_is_added_once() {
        let p = pod("a");
        let patch = disruption_patch(&p, Some((REASON_DELETION, MESSAGE_DELETION)), false, at(1))
            .expect("added");
        let c = &patch["status"]["conditions"][0];
        assert_eq!(c["type"], "DisruptionTarget");
        assert_eq!(c["status"], "True");
        assert_eq!(c["reason"], "DeletionByTaintManager");
        assert_eq!(
            c["message"],
            "Taint manager: deleting due to NoExecute taint"
        );
        assert!(patch["status"].get("phase").is_none());
        let mut has = p.clone();
        has.status.as_mut().unwrap().conditions =
            Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some(REASON_DELETION.into()),
                message: Some(MESSAGE_DELETION.into()),
                ..Default::default()
            }]);
        assert!(disruption_patch(
            &has,
            Some((REASON_DELETION, MESSAGE_DELETION)),
            false,
            at(1)
        )
        .is_none());
        let failed = disruption_patch(&has, None, true, at(1)).expect("phase");
        assert_eq!(failed, json!({"status": {"phase": "Failed"}}));
    }

    #[test]
    fn pod_references_name_the_pod() {
        let r = pod_ref("ns/a");
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(r.name.as_deref(), Some("a"));
        assert_eq!(r.kind.as_deref(), Some("Pod"));
    }
}
