//! Builders for nodes, pods and snapshots in the crate's unit tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodSpec, PreferredSchedulingTerm,
    ResourceRequirements, Taint, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::prepared::PreparedPod;
use crate::snapshot::{NodeInfo, NodeView, PodInfo, Snapshot};

pub struct TestNode(pub Node);

/// A node with `milli_cpu` and `memory` bytes allocatable and room for 110 pods.
pub fn node(name: &str, milli_cpu: i64, memory: i64) -> TestNode {
    let mut alloc = BTreeMap::new();
    alloc.insert("cpu".to_string(), Quantity(format!("{milli_cpu}m")));
    alloc.insert("memory".to_string(), Quantity(memory.to_string()));
    alloc.insert("pods".to_string(), Quantity("110".into()));
    TestNode(Node {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(alloc),
            ..Default::default()
        }),
    })
}

impl TestNode {
    fn alloc(&mut self) -> &mut BTreeMap<String, Quantity> {
        self.0
            .status
            .get_or_insert_with(Default::default)
            .allocatable
            .get_or_insert_with(Default::default)
    }

    pub fn unschedulable(mut self) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.to_string()),
                effect: effect.into(),
                time_added: None,
            });
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    pub fn pods(mut self, n: i64) -> Self {
        self.alloc().insert("pods".into(), Quantity(n.to_string()));
        self
    }

    pub fn ephemeral(mut self, bytes: i64) -> Self {
        self.alloc()
            .insert("ephemeral-storage".into(), Quantity(bytes.to_string()));
        self
    }

    pub fn scalar(mut self, name: &str, n: i64) -> Self {
        self.alloc().insert(name.into(), Quantity(n.to_string()));
        self
    }

    pub fn name(&self) -> String {
        self.0.metadata.name.clone().unwrap_or_default()
    }

    /// A lone NodeInfo with no pods.
    pub fn info(self) -> NodeInfo {
        NodeInfo {
            name: self.name(),
            node: Some(NodeView::of(&self.0)),
            ..Default::default()
        }
    }
}

pub fn snapshot(nodes: Vec<TestNode>) -> Snapshot {
    let mut s = Snapshot::new();
    for n in nodes {
        s.set_node(&n.name(), NodeView::of(&n.0));
    }
    s
}

/// Places a pod on a node of the snapshot.
pub fn place(s: &mut Snapshot, node: &str, p: TestPod) {
    s.add_pod(node, &PodInfo::of(&p.0));
}

pub struct TestPod(pub Pod);

/// A pod in namespace `ns` with one container and no requests.
pub fn pod(name: &str) -> TestPod {
    TestPod(Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    })
}

pub fn term(exprs: &[(&str, &str, &[&str])], fields: &[(&str, &str, &[&str])]) -> NodeSelectorTerm {
    let reqs = |items: &[(&str, &str, &[&str])]| -> Option<Vec<NodeSelectorRequirement>> {
        (!items.is_empty()).then(|| {
            items
                .iter()
                .map(|(k, op, vals)| NodeSelectorRequirement {
                    key: k.to_string(),
                    operator: op.to_string(),
                    values: (!vals.is_empty())
                        .then(|| vals.iter().map(|v| v.to_string()).collect()),
                })
                .collect()
        })
    };
    NodeSelectorTerm {
        match_expressions: reqs(exprs),
        match_fields: reqs(fields),
    }
}

impl TestPod {
    pub fn prepare(&self) -> PreparedPod<'_> {
        PreparedPod::new(&self.0)
    }

    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    fn request(mut self, name: &str, q: &str) -> Self {
        let c = &mut self.spec().containers[0];
        c.resources
            .get_or_insert_with(ResourceRequirements::default)
            .requests
            .get_or_insert_with(Default::default)
            .insert(name.into(), Quantity(q.into()));
        self
    }

    pub fn cpu(self, q: &str) -> Self {
        self.request("cpu", q)
    }

    pub fn mem(self, q: &str) -> Self {
        self.request("memory", q)
    }

    pub fn ephemeral(self, q: &str) -> Self {
        self.request("ephemeral-storage", q)
    }

    pub fn scalar_req(self, name: &str, q: &str) -> Self {
        self.request(name, q)
    }

    pub fn init_cpu(mut self, q: &str) -> Self {
        let mut reqs = BTreeMap::new();
        reqs.insert("cpu".to_string(), Quantity(q.into()));
        self.spec()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(Container {
                name: "init".into(),
                resources: Some(ResourceRequirements {
                    requests: Some(reqs),
                    ..Default::default()
                }),
                ..Default::default()
            });
        self
    }

    pub fn overhead_cpu(mut self, q: &str) -> Self {
        self.spec()
            .overhead
            .get_or_insert_with(Default::default)
            .insert("cpu".into(), Quantity(q.into()));
        self
    }

    pub fn on_node(mut self, n: &str) -> Self {
        self.spec().node_name = Some(n.into());
        self
    }

    pub fn tolerate(mut self, key: &str, op: &str, value: &str, effect: &str) -> Self {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        self.spec()
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: opt(key),
                operator: opt(op),
                value: opt(value),
                effect: opt(effect),
                toleration_seconds: None,
            });
        self
    }

    pub fn selector(mut self, key: &str, value: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    fn node_affinity(&mut self) -> &mut NodeAffinity {
        self.spec()
            .affinity
            .get_or_insert_with(Affinity::default)
            .node_affinity
            .get_or_insert_with(NodeAffinity::default)
    }

    pub fn require(mut self, terms: Vec<NodeSelectorTerm>) -> Self {
        self.node_affinity()
            .required_during_scheduling_ignored_during_execution = Some(NodeSelector {
            node_selector_terms: terms,
        });
        self
    }

    pub fn prefer(mut self, weight: i32, preference: NodeSelectorTerm) -> Self {
        self.node_affinity()
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(PreferredSchedulingTerm { weight, preference });
        self
    }

    pub fn host_port(mut self, ip: &str, protocol: &str, port: i32) -> Self {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        self.spec().containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                host_ip: opt(ip),
                protocol: opt(protocol),
                name: None,
            });
        self
    }

    pub fn container_port(mut self, port: i32) -> Self {
        self.spec().containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: port,
                ..Default::default()
            });
        self
    }

    pub fn owner(mut self, kind: &str, uid: &str) -> Self {
        self.0
            .metadata
            .owner_references
            .get_or_insert_with(Vec::new)
            .push(OwnerReference {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                name: uid.into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            });
        self
    }

    pub fn own_spread_constraint(mut self) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "kubernetes.io/hostname".into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                ..Default::default()
            });
        self
    }

    pub fn priority(mut self, p: i32) -> Self {
        self.spec().priority = Some(p);
        self
    }
}
