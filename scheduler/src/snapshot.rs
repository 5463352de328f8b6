//! What the scheduling algorithm reads: one [`NodeInfo`] per node (the node's labels, taints and
//! allocatable, plus the sums of the pods placed on it — assumed ones included) and an index of
//! pods by owner for spreading. kube's `framework.NodeInfo` and `internal/cache.Snapshot`.
//!
//! Pure: no I/O, no clock. The [`Cache`](crate::cache::Cache) owns the one `Snapshot` and
//! updates it **in place**, one node or pod at a time, so scheduling a pod never copies or
//! rebuilds the cluster's state (kube copies changed `NodeInfo`s into a snapshot per cycle
//! because its cache is shared with other goroutines; here the scheduling loop owns both).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use crate::resources::{PodRequests, Resources};

/// `0.0.0.0`: a host port bound on every address.
pub const ALL_HOST_IPS: &str = "0.0.0.0";

/// A host port a pod wants (kube's `ProtocolPort` under a host IP), sanitized as kube does: an
/// empty IP is `0.0.0.0`, an empty protocol is `TCP`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

/// The host ports of a pod's containers (kube's `getContainerPorts`: app containers only, ports
/// with `hostPort > 0`).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(port) = p.host_port.filter(|&hp| hp > 0) else {
                continue;
            };
            let ip = p
                .host_ip
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(ALL_HOST_IPS);
            let protocol = p
                .protocol
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("TCP");
            out.push(HostPort {
                ip: ip.to_string(),
                protocol: protocol.to_string(),
                port,
            });
        }
    }
    out
}

/// The owner whose pods a pod is spread against by the default topology spreading: its first
/// ownerReference (what kube's `PodsWithOwnerRef` fast path keys on), when that owner is a
/// ReplicaSet, StatefulSet or ReplicationController — the kinds whose selector kube's
/// `DefaultSelector` uses. Services are not looked at (see the crate docs).
pub fn spread_owner(pod: &Pod) -> Option<String> {
    let o = pod.metadata.owner_references.as_ref()?.first()?;
    matches!(
        o.kind.as_str(),
        "ReplicaSet" | "StatefulSet" | "ReplicationController"
    )
    .then(|| o.uid.clone())
    .filter(|u| !u.is_empty())
}

/// The parts of a pod the snapshot keeps for a pod placed on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
    pub spread_owner: Option<String>,
    /// Being deleted: still holds its resources, but kube's spreading does not count it.
    pub terminating: bool,
}

impl PodInfo {
    pub fn of(pod: &Pod) -> PodInfo {
        let requests = pod.spec.as_ref().map(PodRequests::of).unwrap_or_default();
        PodInfo {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            requests,
            host_ports: host_ports(pod),
            spread_owner: spread_owner(pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// The parts of a Node the algorithm reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
}

impl NodeView {
    pub fn of(node: &Node) -> NodeView {
        NodeView {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default(),
            unschedulable: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            allocatable: Resources::allocatable(
                node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
            ),
        }
    }
}

/// Host ports in use on a node, counted (several pods may bind one port on different IPs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsedPorts {
    exact: HashMap<HostPort, u32>,
    /// (protocol, port) on any IP: what a `0.0.0.0` request conflicts with.
    any_ip: HashMap<(String, i32), u32>,
}

impl UsedPorts {
    fn add(&mut self, p: &HostPort) {
        *self.exact.entry(p.clone()).or_insert(0) += 1;
        *self.any_ip.entry((p.protocol.clone(), p.port)).or_insert(0) += 1;
    }

    fn remove(&mut self, p: &HostPort) {
        if let Some(n) = self.exact.get_mut(p) {
            *n -= 1;
            if *n == 0 {
                self.exact.remove(p);
            }
        }
        let k = (p.protocol.clone(), p.port);
        if let Some(n) = self.any_ip.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                self.any_ip.remove(&k);
            }
        }
    }

    /// kube's `HostPortInfo.CheckConflict`: `0.0.0.0` conflicts with the port on any IP; a
    /// specific IP conflicts with the same IP and with `0.0.0.0`.
    pub fn conflicts(&self, want: &HostPort) -> bool {
        if want.port <= 0 {
            return false;
        }
        if want.ip == ALL_HOST_IPS {
            return self
                .any_ip
                .contains_key(&(want.protocol.clone(), want.port));
        }
        let all = HostPort {
            ip: ALL_HOST_IPS.to_string(),
            ..want.clone()
        };
        self.exact.contains_key(want) || self.exact.contains_key(&all)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }
}

/// One node and the sums over the pods placed on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods name a node the watch has not shown (or no longer shows): such an
    /// entry is kept for its sums but is not offered to the algorithm.
    pub node: Option<NodeView>,
    /// Sum of the pods' requests (kube's `Requested`).
    pub requested: Resources,
    /// Sum of the pods' non-zero cpu and memory requests (kube's `NonZeroRequested`).
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    /// Pods placed here, assumed ones included.
    pub pod_count: i64,
    pub used_ports: UsedPorts,
}

impl NodeInfo {
    fn add_pod(&mut self, p: &PodInfo) {
        self.requested.add(&p.requests.requests);
        self.non_zero_milli_cpu = self
            .non_zero_milli_cpu
            .saturating_add(p.requests.non_zero_milli_cpu);
        self.non_zero_memory = self
            .non_zero_memory
            .saturating_add(p.requests.non_zero_memory);
        self.pod_count += 1;
        for hp in &p.host_ports {
            self.used_ports.add(hp);
        }
    }

    fn remove_pod(&mut self, p: &PodInfo) {
        self.requested.sub(&p.requests.requests);
        self.non_zero_milli_cpu = self
            .non_zero_milli_cpu
            .saturating_sub(p.requests.non_zero_milli_cpu);
        self.non_zero_memory = self
            .non_zero_memory
            .saturating_sub(p.requests.non_zero_memory);
        self.pod_count -= 1;
        for hp in &p.host_ports {
            self.used_ports.remove(hp);
        }
    }

    fn is_unused(&self) -> bool {
        self.node.is_none() && self.pod_count == 0
    }
}

/// All nodes, in the order the algorithm walks them (rotating from a start index), and the
/// owner index for spreading.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    slots: Vec<NodeInfo>,
    free_slots: Vec<usize>,
    by_name: HashMap<String, usize>,
    /// Slots holding a node the watch shows, in walk order.
    listed: Vec<usize>,
    /// For each slot, its position in `listed`.
    listed_pos: Vec<Option<usize>>,
    /// Spread owner → node name → pods of that owner on the node (not terminating).
    owners: HashMap<String, HashMap<String, u32>>,
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Nodes offered to the algorithm.
    pub fn num_nodes(&self) -> usize {
        self.listed.len()
    }

    /// The `i`-th node in walk order (`i < num_nodes()`).
    pub fn node_at(&self, i: usize) -> &NodeInfo {
        &self.slots[self.listed[i]]
    }

    /// Iterates the listed nodes in walk order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> + '_ {
        self.listed.iter().map(|&s| &self.slots[s])
    }

    pub fn get(&self, name: &str) -> Option<&NodeInfo> {
        self.by_name.get(name).map(|&s| &self.slots[s])
    }

    /// Pods of `owner` (not terminating) on node `name`.
    pub fn owner_pods_on(&self, owner: &str, name: &str) -> u32 {
        self.owners
            .get(owner)
            .and_then(|m| m.get(name))
            .copied()
            .unwrap_or(0)
    }

    /// Node name → pods of `owner` (not terminating) on it.
    pub fn owner_counts(&self, owner: &str) -> Option<&HashMap<String, u32>> {
        self.owners.get(owner)
    }

    /// Nodes holding pods of `owner`, with their counts.
    pub fn owner_nodes(&self, owner: &str) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.owners
            .get(owner)
            .into_iter()
            .flat_map(|m| m.iter().map(|(n, c)| (n.as_str(), *c)))
    }

    fn slot_for(&mut self, name: &str) -> usize {
        if let Some(&s) = self.by_name.get(name) {
            return s;
        }
        let info = NodeInfo {
            name: name.to_string(),
            ..Default::default()
        };
        let s = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s] = info;
                s
            }
            None => {
                self.slots.push(info);
                self.listed_pos.push(None);
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), s);
        s
    }

    fn release_if_unused(&mut self, s: usize) {
        if self.slots[s].is_unused() {
            let name = std::mem::take(&mut self.slots[s].name);
            self.by_name.remove(&name);
            self.slots[s] = NodeInfo::default();
            self.free_slots.push(s);
        }
    }

    /// Adds or replaces a node's own fields; the sums of its pods stay. Returns the previous
    /// view, if the node was listed.
    pub fn set_node(&mut self, name: &str, view: NodeView) -> Option<NodeView> {
        let s = self.slot_for(name);
        let old = self.slots[s].node.replace(view);
        if self.listed_pos[s].is_none() {
            self.listed_pos[s] = Some(self.listed.len());
            self.listed.push(s);
        }
        old
    }

    /// Removes a node; the sums of pods still naming it are kept until those pods go.
    pub fn remove_node(&mut self, name: &str) -> bool {
        let Some(&s) = self.by_name.get(name) else {
            return false;
        };
        let had = self.slots[s].node.take().is_some();
        if let Some(pos) = self.listed_pos[s].take() {
            self.listed.swap_remove(pos);
            if let Some(&moved) = self.listed.get(pos) {
                self.listed_pos[moved] = Some(pos);
            }
        }
        self.release_if_unused(s);
        had
    }

    /// Adds a pod's requests, ports and owner to node `node`.
    pub fn add_pod(&mut self, node: &str, p: &PodInfo) {
        let s = self.slot_for(node);
        self.slots[s].add_pod(p);
        if let (Some(owner), false) = (&p.spread_owner, p.terminating) {
            *self
                .owners
                .entry(owner.clone())
                .or_default()
                .entry(node.to_string())
                .or_insert(0) += 1;
        }
    }

    /// Removes what `add_pod(node, p)` added.
    pub fn remove_pod(&mut self, node: &str, p: &PodInfo) {
        let Some(&s) = self.by_name.get(node) else {
            return;
        };
        self.slots[s].remove_pod(p);
        if let (Some(owner), false) = (&p.spread_owner, p.terminating) {
            if let Some(m) = self.owners.get_mut(owner) {
                if let Some(c) = m.get_mut(node) {
                    *c -= 1;
                    if *c == 0 {
                        m.remove(node);
                    }
                }
                if m.is_empty() {
                    self.owners.remove(owner);
                }
            }
        }
        self.release_if_unused(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;

    fn view(cpu: i64) -> NodeView {
        NodeView {
            allocatable: Resources {
                milli_cpu: cpu,
                pods: 110,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod(uid: &str, cpu: i64, owner: Option<&str>) -> PodInfo {
        let mut requests = PodRequests::default();
        requests.requests.milli_cpu = cpu;
        requests.non_zero_milli_cpu = cpu.max(100);
        PodInfo {
            uid: uid.into(),
            namespace: "ns".into(),
            name: uid.into(),
            requests,
            host_ports: vec![HostPort {
                ip: ALL_HOST_IPS.into(),
                protocol: "TCP".into(),
                port: 80,
            }],
            spread_owner: owner.map(str::to_string),
            terminating: false,
        }
    }

    #[test]
    fn pods_add_and_remove_sums_and_owner_counts() {
        let mut s = Snapshot::new();
        s.set_node("a", view(1000));
        let p = pod("p1", 300, Some("rs1"));
        s.add_pod("a", &p);
        let a = s.get("a").unwrap();
        assert_eq!(
            (a.requested.milli_cpu, a.non_zero_milli_cpu, a.pod_count),
            (300, 300, 1)
        );
        assert!(!a.used_ports.is_empty());
        assert_eq!(s.owner_pods_on("rs1", "a"), 1);
        s.remove_pod("a", &p);
        let a = s.get("a").unwrap();
        assert_eq!((a.requested.milli_cpu, a.pod_count), (0, 0));
        assert!(a.used_ports.is_empty());
        assert_eq!(s.owner_pods_on("rs1", "a"), 0);
        assert_eq!(s.owner_nodes("rs1").count(), 0);
    }

    #[test]
    fn a_removed_node_keeps_its_pods_sums_until_they_go() {
        let mut s = Snapshot::new();
        s.set_node("a", view(1000));
        s.set_node("b", view(1000));
        let p = pod("p1", 300, None);
        s.add_pod("a", &p);
        assert!(s.remove_node("a"));
        assert_eq!(s.num_nodes(), 1);
        assert_eq!(s.node_at(0).name, "b");
        // Re-added: the pod's sums are still there.
        s.set_node("a", view(2000));
        assert_eq!(s.get("a").unwrap().requested.milli_cpu, 300);
        assert_eq!(s.num_nodes(), 2);
        s.remove_node("a");
        s.remove_pod("a", &p);
        assert!(
            s.get("a").is_none(),
            "an entry with no node and no pods is dropped"
        );
    }

    #[test]
    fn pods_may_arrive_before_their_node() {
        let mut s = Snapshot::new();
        s.add_pod("late", &pod("p1", 500, None));
        assert_eq!(s.num_nodes(), 0);
        s.set_node("late", view(1000));
        assert_eq!(s.num_nodes(), 1);
        assert_eq!(s.node_at(0).requested.milli_cpu, 500);
    }

    #[test]
    fn listed_order_survives_swap_remove() {
        let mut s = Snapshot::new();
        for n in ["a", "b", "c", "d"] {
            s.set_node(n, view(1000));
        }
        s.remove_node("b");
        let names: Vec<_> = s.nodes().map(|n| n.name.clone()).collect();
        assert_eq!(names, ["a", "d", "c"]);
        s.remove_node("a");
        s.remove_node("c");
        let names: Vec<_> = s.nodes().map(|n| n.name.clone()).collect();
        assert_eq!(names, ["d"]);
        s.set_node("e", view(1));
        assert_eq!(s.num_nodes(), 2);
        assert_eq!(s.get("e").unwrap().name, "e");
    }

    #[test]
    fn port_conflicts_follow_kube() {
        let mut u = UsedPorts::default();
        let hp = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        u.add(&hp("10.0.0.1", "TCP", 8080));
        assert!(
            u.conflicts(&hp("0.0.0.0", "TCP", 8080)),
            "all-IPs wants every IP free"
        );
        assert!(u.conflicts(&hp("10.0.0.1", "TCP", 8080)));
        assert!(
            !u.conflicts(&hp("10.0.0.2", "TCP", 8080)),
            "another IP is free"
        );
        assert!(
            !u.conflicts(&hp("10.0.0.1", "UDP", 8080)),
            "another protocol is free"
        );
        u.add(&hp("0.0.0.0", "UDP", 53));
        assert!(
            u.conflicts(&hp("10.0.0.9", "UDP", 53)),
            "0.0.0.0 holds every IP"
        );
        assert!(
            !u.conflicts(&hp("10.0.0.9", "UDP", 0)),
            "port 0 never conflicts"
        );
        u.remove(&hp("10.0.0.1", "TCP", 8080));
        assert!(!u.conflicts(&hp("0.0.0.0", "TCP", 8080)));
    }
}
