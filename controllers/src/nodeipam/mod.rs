//! kube's node IPAM controller with the `RangeAllocator` (`pkg/controller/nodeipam`), IPv4:
//! with `--allocate-node-cidrs`, every Node without a pod CIDR gets the next free one of
//! `--cluster-cidr` with `--node-cidr-mask-size` in `spec.podCIDR` and `spec.podCIDRs`; CIDRs
//! Nodes already have are taken first (so none is given twice); a deleted Node's CIDR is
//! released. When the range is full the Node gets the Event `CIDRNotAvailable` and is tried
//! again later. Dual-stack (a second, IPv6 range) is not done.
//!
//! The allocator is [`cidrset`] (pure); this file watches Nodes and patches them.

pub mod cidrset;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use mainstay_component::events::{EventType, Recorder};
use mainstay_component::Leading;
use serde_json::json;

use self::cidrset::{Cidr, CidrSet};
use crate::nodeconfig::NodeControllersConfig;
use crate::nodelifecycle::{node_ref, strip};
use crate::util::cache::{Cache, Change};
use crate::util::queue::WorkQueue;
use crate::util::{is_not_found, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "node-ipam-controller";
/// kube's range allocator records as the node controller.
const EVENT_SOURCE: &str = "cidrAllocator";
/// A node that could not get a CIDR is tried again after this.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The node's pod CIDRs (`spec.podCIDRs`, else `spec.podCIDR`).
pub fn pod_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    match spec
        .and_then(|s| s.pod_cidrs.clone())
        .filter(|v| !v.is_empty())
    {
        Some(v) => v,
        None => spec
            .and_then(|s| s.pod_cidr.clone())
            .filter(|c| !c.is_empty())
            .into_iter()
            .collect(),
    }
}

struct Controller {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    nodes: Cache<Node>,
    queue: WorkQueue,
    state: Mutex<State>,
}

struct State {
    set: CidrSet,
    /// What each node holds, as this controller knows it.
    owned: HashMap<String, Cidr>,
}

/// Runs the node IPAM controller until `leading` is lost; without `--allocate-node-cidrs` it
/// does nothing (kube does not start it then).
pub async fn run(client: Client, cfg: NodeControllersConfig, leading: Leading) -> Result<()> {
    if !cfg.allocate_node_cidrs {
        tracing::info!(
            controller = CONTROLLER_NAME,
            "--allocate-node-cidrs is false: not started"
        );
        leading.lost().await;
        return Ok(());
    }
    let cluster = cfg
        .cluster_cidr
        .as_deref()
        .and_then(|s| s.split(',').find_map(Cidr::parse))
        .ok_or_else(|| {
            Error::Config(format!(
                "--cluster-cidr {:?} has no IPv4 CIDR",
                cfg.cluster_cidr
            ))
        })?;
    let set = CidrSet::new(cluster, cfg.node_cidr_mask_size_ipv4).map_err(Error::Config)?;
    let recorder = Recorder::new(client.clone(), EVENT_SOURCE, None).with_leading(leading.clone());
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        recorder,
        nodes: Cache::new(),
        queue: WorkQueue::default(),
        state: Mutex::new(State {
            set,
            owned: HashMap::new(),
        }),
    });
    tracing::info!(controller = CONTROLLER_NAME, %cluster, "starting");
    let watch = tokio::spawn(watch_nodes(ctl.clone()));
    tokio::select! {
        _ = leading.lost() => {}
        _ = ctl.nodes.synced() => {
            // Every CIDR already given is taken before any is handed out.
            for n in ctl.nodes.in_namespace("") {
                ctl.occupy(&n);
            }
            for n in ctl.nodes.in_namespace("") {
                ctl.queue.add(n.metadata.name.as_deref().unwrap_or(""));
            }
            tokio::select! {
                _ = leading.lost() => {}
                _ = worker(ctl.clone()) => {}
            }
        }
    }
    ctl.queue.shut_down();
    watch.abort();
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
                    match change {
                        Change::Added(n) | Change::Updated { new: n, .. } => {
                            if ctl.nodes.is_synced() {
                                ctl.occupy(&n);
                                ctl.queue.add(n.metadata.name.as_deref().unwrap_or(""));
                            }
                        }
                        Change::Deleted(n) => ctl.release(&n),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
        }
    }
}

async fn worker(ctl: Arc<Controller>) {
    while let Some(key) = ctl.queue.get().await {
        match ctl.sync(&key).await {
            Ok(()) => ctl.queue.forget(&key),
            Err(Error::NotLeading(_)) => {}
            Err(e) => {
                tracing::warn!(node = %key, error = %e, "pod CIDR not allocated; will retry");
                ctl.queue.add_after(&key, RETRY_AFTER);
            }
        }
        ctl.queue.done(&key);
    }
}

impl Controller {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn occupy(&self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut st = self.state();
        for c in pod_cidrs(node).iter().filter_map(|c| Cidr::parse(c)) {
            if st.set.occupy(&c) {
                st.owned.insert(name.clone(), c);
            }
        }
    }

    fn release(&self, node: &Node) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let mut st = self.state();
        if let Some(c) = st.owned.remove(name) {
            st.set.release(&c);
            tracing::info!(node = name, cidr = %c, "pod CIDR released");
        }
    }

    /// kube's `AllocateOrOccupyCIDR` for one node.
    async fn sync(&self, name: &str) -> Result<()> {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(());
        };
        if !pod_cidrs(&node).is_empty() {
            return Ok(());
        }
        let cidr = {
            let mut st = self.state();
            if let Some(c) = st.owned.get(name).copied() {
                // Given before, not yet in the cache: write it again rather than a new one.
                c
            } else {
                match st.set.allocate_next() {
                    Ok(c) => {
                        st.owned.insert(name.to_string(), c);
                        c
                    }
                    Err(e) => {
                        drop(st);
                        self.recorder.record(
                            &node_ref(name, node.metadata.uid.as_deref().unwrap_or("")),
                            EventType::Normal,
                            "CIDRNotAvailable",
                            format!("Node {name} status is now: CIDRNotAvailable"),
                        );
                        return Err(Error::Invalid(format!(
                            "failed to allocate cidr from cluster cidr at idx:0: {e}"
                        )));
                    }
                }
            }
        };
        let c = cidr.to_string();
        let patch = json!({"spec": {"podCIDR": c, "podCIDRs": [c]}});
        let api: Api<Node> = Api::all(self.client.clone());
        let (api, patch, params) = (&api, &patch, &PatchParams::default());
        match write_with_retry(&self.leading, || async move {
            api.patch(name, params, &Patch::Merge(patch)).await
        })
        .await
        {
            Ok(_) => {
                tracing::info!(node = name, cidr = %c, "pod CIDR allocated");
                Ok(())
            }
            Err(Error::Kube(e)) if is_not_found(&e) => {
                self.release(&node);
                Ok(())
            }
            Err(e) => {
                // kube releases the CIDR when the patch fails.
                let mut st = self.state();
                if let Some(c) = st.owned.remove(name) {
                    st.set.release(&c);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodelifecycle::taints::testing::node;

    #[test]
    fn pod_cidrs_prefer_the_list() {
        let mut n = node("a");
        assert!(pod_cidrs(&n).is_empty());
        n.spec.as_mut().unwrap().pod_cidr = Some("10.0.1.0/24".into());
        assert_eq!(pod_cidrs(&n), ["10.0.1.0/24"]);
        n.spec.as_mut().unwrap().pod_cidrs = Some(vec!["10.0.2.0/24".into(), "fd00::/64".into()]);
        assert_eq!(pod_cidrs(&n), ["10.0.2.0/24", "fd00::/64"]);
    }
}
