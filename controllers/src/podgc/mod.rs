//! kube's pod garbage collector (`pkg/controller/podgc`): every 20 s it force-deletes
//! (grace 0, after marking them Failed) terminated pods beyond `--terminated-pod-gc-threshold`
//! (evicted and oldest first), terminating pods on not-Ready nodes with the
//! `node.kubernetes.io/out-of-service` taint, pods bound to nodes that no longer exist (after a
//! 40 s quarantine and a GET; with the `DisruptionTarget` condition, reason `DeletionByPodGC`),
//! and terminating pods never scheduled.
//!
//! The choices are in [`select`] (pure); this file watches Pods and Nodes and deletes.

pub mod select;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::Leading;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::select::{Quarantine, GC_CHECK_PERIOD};
use crate::nodeconfig::NodeControllersConfig;
use crate::nodelifecycle::pods::{node_name, PodsByNode};
use crate::nodelifecycle::strip;
use crate::tainteviction::disruption_patch;
use crate::util::cache::Cache;
use crate::util::{is_not_found, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "pod-garbage-collector";
pub const REASON_ORPHANED: &str = "DeletionByPodGC";
pub const MESSAGE_ORPHANED: &str = "PodGC: node no longer exists";
/// Deletions in flight at once.
const DELETIONS_IN_FLIGHT: usize = 16;

struct Controller {
    client: Client,
    leading: Leading,
    threshold: i64,
    nodes: Cache<Node>,
    pods: Cache<Pod>,
    by_node: PodsByNode,
}

/// Runs the pod garbage collector until `leading` is lost.
pub async fn run(client: Client, cfg: NodeControllersConfig, leading: Leading) -> Result<()> {
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        threshold: cfg.terminated_pod_gc_threshold,
        nodes: Cache::new(),
        pods: Cache::new(),
        by_node: PodsByNode::default(),
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
            tasks.spawn(gc_loop(ctl.clone()));
            supervise(&mut tasks, &leading, CONTROLLER_NAME).await;
        }
    }
    tasks.shutdown().await;
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
                ctl.nodes.apply(event.modify(strip));
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
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

async fn gc_loop(ctl: Arc<Controller>) {
    let mut quarantine = Quarantine::default();
    let mut tick = tokio::time::interval(GC_CHECK_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(Error::NotLeading(_)) = ctl.gc(&mut quarantine).await {
            return;
        }
    }
}

impl Controller {
    async fn gc(&self, quarantine: &mut Quarantine) -> Result<()> {
        let pods = self.by_node.all();
        let nodes: HashMap<String, Arc<Node>> = self
            .nodes
            .in_namespace("")
            .into_iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
            .collect();
        let existing: HashSet<String> = nodes.keys().cloned().collect();

        let terminated = select::terminated_beyond(&pods, self.threshold);
        if !terminated.is_empty() {
            tracing::info!(
                pods = terminated.len(),
                "garbage collecting terminated pods"
            );
        }
        self.delete_all(terminated, None).await?;
        self.delete_all(select::terminating_out_of_service(&pods, &nodes), None)
            .await?;

        quarantine.add_missing(&pods, &existing, Instant::now());
        let mut gone = Vec::new();
        for name in quarantine.take_due(&existing, Instant::now()) {
            let api: Api<Node> = Api::all(self.client.clone());
            match api.get(&name).await {
                Err(e) if is_not_found(&e) => gone.push(name),
                Err(e) => tracing::warn!(node = %name, error = %e, "node not checked"),
                Ok(_) => {}
            }
        }
        for name in gone {
            let orphans = self.by_node.on_node(&name);
            tracing::info!(node = %name, pods = orphans.len(), "deleting pods bound to a node that no longer exists");
            self.delete_all(orphans, Some((REASON_ORPHANED, MESSAGE_ORPHANED)))
                .await?;
        }
        self.delete_all(select::unscheduled_terminating(&pods), None)
            .await?;
        Ok(())
    }

    async fn delete_all(&self, pods: Vec<Arc<Pod>>, condition: Option<(&str, &str)>) -> Result<()> {
        let results: Vec<Result<()>> = stream::iter(pods)
            .map(|p| async move { self.mark_failed_and_delete(&p, condition).await })
            .buffer_unordered(DELETIONS_IN_FLIGHT)
            .collect()
            .await;
        for r in results {
            match r {
                Err(Error::NotLeading(e)) => return Err(e.into()),
                Err(e) => tracing::warn!(error = %e, "pod not garbage collected"),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// kube's `markFailedAndDeletePodWithCondition`.
    async fn mark_failed_and_delete(
        &self,
        pod: &Pod,
        condition: Option<(&str, &str)>,
    ) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        tracing::info!(pod = %format!("{ns}/{name}"), node = node_name(pod), "PodGC is force deleting Pod");
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if !finished {
            if let Some(patch) = disruption_patch(pod, condition, true, Utc::now()) {
                let (api, patch, params) = (&api, &patch, &PatchParams::default());
                match write_with_retry(&self.leading, || async move {
                    api.patch_status(name, params, &Patch::Strategic(patch))
                        .await
                })
                .await
                {
                    Err(Error::Kube(e)) if is_not_found(&e) => return Ok(()),
                    r => {
                        r?;
                    }
                }
            }
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let (api, dp) = (&api, &dp);
        match write_with_retry(&self.leading, || async move { api.delete(name, dp).await }).await {
            Ok(_) => Ok(()),
            Err(Error::Kube(e)) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
