//! What a simulated node says about itself: its name and addresses, the Node object kubelet
//! registers (labels, taints, pod CIDR, capacity, conditions, nodeInfo), the status it posts,
//! and how it tells that someone else changed its conditions. No I/O; time is passed in.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{json, Value};

use crate::config::NodesConfig;
use crate::ids;
use crate::ipam::Cidr;

pub const KUBELET_VERSION: &str = "v1.32.0";
pub const KUBELET_PORT: i32 = 10250;
/// Containers "run" in this crate; its version stands for the runtime's.
pub const CONTAINER_RUNTIME_VERSION: &str = concat!("mainstay://", env!("CARGO_PKG_VERSION"));

/// The four conditions kubelet posts, in its order: (type, status, reason, message, the Event
/// reason kubelet records when the condition takes that status).
pub const CONDITIONS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
        "NodeHasSufficientMemory",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
        "NodeHasNoDiskPressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
        "NodeHasSufficientPID",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
        "NodeReady",
    ),
];

/// One node's fixed facts, derived from its index so that every process holding a disjoint
/// index range gives distinct addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub index: usize,
    pub name: String,
    pub internal_ip: Ipv4Addr,
    /// The pod CIDR: ours by index, or the one an existing Node already has.
    pub pod_cidr: Cidr,
}

impl NodeIdentity {
    pub fn new(cfg: &NodesConfig, index: usize) -> NodeIdentity {
        NodeIdentity {
            index,
            name: cfg.node_name(index),
            internal_ip: internal_ip(index),
            pod_cidr: default_pod_cidr(index),
        }
    }
}

/// `172.16.0.0/12`, from `172.16.0.10` on: distinct for the first million indexes.
pub fn internal_ip(index: usize) -> Ipv4Addr {
    const BASE: u32 = u32::from_be_bytes([172, 16, 0, 0]);
    const SPAN: u32 = (1 << 20) - 20;
    Ipv4Addr::from(BASE + 10 + (index % SPAN as usize) as u32)
}

/// `10.<128 + index / 256>.<index % 256>.0/24`: inside `10.128.0.0/9`, away from the usual
/// service range (`10.96.0.0/12`); distinct for the first 32,768 indexes.
pub fn default_pod_cidr(index: usize) -> Cidr {
    let i = (index % 32_768) as u32;
    Cidr {
        network: Ipv4Addr::new(10, (128 + i / 256) as u8, (i % 256) as u8, 0),
        prefix_len: 24,
    }
}

/// kubelet's own labels plus the configured ones (configured ones win, as in kubelet's
/// `--node-labels`, except that they cannot remove the hostname label).
pub fn labels(cfg: &NodesConfig, name: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/os", "linux"),
    ] {
        l.insert(k.to_string(), v.to_string());
    }
    l.extend(cfg.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    l.insert("kubernetes.io/hostname".to_string(), name.to_string());
    l
}

/// When each of the four conditions last changed (kept per node by the status poster).
pub type TransitionTimes = [DateTime<Utc>; 4];

/// The status kubelet posts: capacity = allocatable, the four conditions with `now` as their
/// heartbeat, addresses, the kubelet endpoint and nodeInfo.
pub fn status(
    cfg: &NodesConfig,
    id: &NodeIdentity,
    boot_id: &str,
    transitions: &TransitionTimes,
    now: DateTime<Utc>,
) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", cfg.cpu.clone()),
        ("ephemeral-storage", cfg.ephemeral_storage.clone()),
        ("hugepages-1Gi", "0".to_string()),
        ("hugepages-2Mi", "0".to_string()),
        ("memory", cfg.memory.clone()),
        ("pods", cfg.pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    let conditions = CONDITIONS
        .iter()
        .zip(transitions)
        .map(|((t, s, reason, message, _), since)| NodeCondition {
            type_: t.to_string(),
            status: s.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(Time(*since)),
        })
        .collect();
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: id.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: id.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: boot_id.to_string(),
            container_runtime_version: CONTAINER_RUNTIME_VERSION.into(),
            kernel_version: "6.1.0-mainstay".into(),
            kube_proxy_version: KUBELET_VERSION.into(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: ids::hex(&[b"machine", id.name.as_bytes()], 32),
            operating_system: "linux".into(),
            os_image: "Mainstay simulated node".into(),
            system_uuid: ids::uuid(&[b"system", id.name.as_bytes()]),
        }),
        ..NodeStatus::default()
    }
}

/// A boot ID for one run of the process (kubelet's changes on each reboot).
pub fn boot_id(name: &str, process_start: DateTime<Utc>) -> String {
    let t = process_start.timestamp_nanos_opt().unwrap_or_default();
    ids::uuid(&[b"boot", name.as_bytes(), &t.to_le_bytes()])
}

/// The Node to create: labels, the attach-detach annotation kubelet sets, taints, pod CIDR
/// and a full status (kube lets the creator of a Node set its status).
pub fn new_node(cfg: &NodesConfig, id: &NodeIdentity, boot_id: &str, now: DateTime<Utc>) -> Node {
    let cidr = id.pod_cidr.to_string();
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(labels(cfg, &id.name)),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: cfg.register_pod_cidr.then(|| cidr.clone()),
            pod_cidrs: cfg.register_pod_cidr.then(|| vec![cidr]),
            taints: (!cfg.taints.is_empty()).then(|| cfg.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(status(cfg, id, boot_id, &[now; 4], now)),
    }
}

/// What registering over an existing Node changes (kubelet's `updateDefaultLabels` and
/// the CMAD annotation), as a merge patch, and the pod CIDR the node then uses: the existing
/// one when it has a valid one (kube forbids changing it), else ours, set by the patch.
/// None when nothing needs patching.
pub fn adopt(cfg: &NodesConfig, id: &NodeIdentity, existing: &Node) -> (Option<Value>, Cidr) {
    let mut patch = serde_json::Map::new();
    let have = existing.metadata.labels.clone().unwrap_or_default();
    let want = labels(cfg, &id.name);
    let missing: serde_json::Map<String, Value> = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut meta = serde_json::Map::new();
    if !missing.is_empty() {
        meta.insert("labels".into(), Value::Object(missing));
    }
    let cmad = "volumes.kubernetes.io/controller-managed-attach-detach";
    let annotated = existing
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.get(cmad).map(String::as_str) == Some("true"));
    if !annotated {
        meta.insert("annotations".into(), json!({ cmad: "true" }));
    }
    if !meta.is_empty() {
        patch.insert("metadata".into(), Value::Object(meta));
    }
    let existing_cidr = existing
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|s| !s.is_empty());
    let cidr = match existing_cidr.and_then(Cidr::parse) {
        Some(c) => c,
        None => {
            if existing_cidr.is_none() && cfg.register_pod_cidr {
                let c = id.pod_cidr.to_string();
                patch.insert("spec".into(), json!({"podCIDR": c, "podCIDRs": [c]}));
            }
            id.pod_cidr
        }
    };
    ((!patch.is_empty()).then_some(Value::Object(patch)), cidr)
}

/// The node's pod CIDR, when it has one (set by kubelet's registration or the node IPAM
/// controller).
pub fn assigned_pod_cidr(node: &Node) -> Option<Cidr> {
    node.spec
        .as_ref()?
        .pod_cidr
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(Cidr::parse)
}

/// A bit per entry of [`CONDITIONS`] whose status in `status` is not ours (missing counts):
/// someone else (the node lifecycle controller) changed it, and the node must post again.
pub fn conditions_out_of_place(status: Option<&NodeStatus>) -> u8 {
    let conds = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut mask = 0u8;
    for (i, (t, want, ..)) in CONDITIONS.iter().enumerate() {
        let ok = conds.iter().any(|c| c.type_ == *t && c.status == *want);
        if !ok {
            mask |= 1 << i;
        }
    }
    mask
}

/// Transition times for the status posted over an existing Node: a condition already as ours
/// keeps its time, any other changes `now` (as kubelet's condition setters do).
pub fn transition_times(existing: Option<&NodeStatus>, now: DateTime<Utc>) -> TransitionTimes {
    let conds = existing
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut out = [now; 4];
    for (slot, (t, want, ..)) in out.iter_mut().zip(CONDITIONS.iter()) {
        if let Some(c) = conds.iter().find(|c| c.type_ == *t && c.status == *want) {
            if let Some(Time(since)) = &c.last_transition_time {
                *slot = *since;
            }
        }
    }
    out
}

/// The merge-patch body kubelet's status post amounts to (a strategic merge patch, whose
/// `conditions` merge by type).
pub fn status_patch(status: &NodeStatus) -> Value {
    json!({ "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NodesConfig {
        NodesConfig {
            labels: BTreeMap::from([("zone".to_string(), "z1".to_string())]),
            taints: vec![crate::config::parse_taint("sim=yes:NoSchedule").unwrap()],
            ..NodesConfig::default()
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn addresses_and_cidrs_are_distinct_per_index() {
        let mut ips = std::collections::HashSet::new();
        let mut cidrs = std::collections::HashSet::new();
        for i in 0..5000 {
            assert!(ips.insert(internal_ip(i)));
            assert!(cidrs.insert(default_pod_cidr(i).to_string()));
        }
        assert_eq!(default_pod_cidr(0).to_string(), "10.128.0.0/24");
        assert_eq!(default_pod_cidr(257).to_string(), "10.129.1.0/24");
        assert_eq!(internal_ip(0), Ipv4Addr::new(172, 16, 0, 10));
    }

    #[test]
    fn the_registered_node_looks_like_kubelets() {
        let c = cfg();
        let id = NodeIdentity::new(&c, 3);
        let n = new_node(&c, &id, "boot", at(1_700_000_000));
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["metadata"]["name"], "mainstay-node-3");
        let l = &v["metadata"]["labels"];
        assert_eq!(l["kubernetes.io/hostname"], "mainstay-node-3");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["beta.kubernetes.io/arch"], "amd64");
        assert_eq!(l["zone"], "z1");
        assert_eq!(v["spec"]["podCIDR"], "10.128.3.0/24");
        assert_eq!(v["spec"]["podCIDRs"][0], "10.128.3.0/24");
        assert_eq!(v["spec"]["taints"][0]["key"], "sim");
        let s = &v["status"];
        assert_eq!(s["capacity"], s["allocatable"]);
        assert_eq!(s["capacity"]["cpu"], "8");
        assert_eq!(s["capacity"]["memory"], "32Gi");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["capacity"]["ephemeral-storage"], "100Gi");
        let conds = s["conditions"].as_array().unwrap();
        let ready = conds.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["message"], "kubelet is posting ready status");
        let mem = conds
            .iter()
            .find(|c| c["type"] == "MemoryPressure")
            .unwrap();
        assert_eq!(mem["status"], "False");
        assert_eq!(mem["reason"], "KubeletHasSufficientMemory");
        assert_eq!(s["addresses"][0]["type"], "InternalIP");
        assert_eq!(s["addresses"][0]["address"], "172.16.0.13");
        assert_eq!(s["addresses"][1]["type"], "Hostname");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.32.0");
        assert_eq!(s["nodeInfo"]["operatingSystem"], "linux");
        assert!(s["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("mainstay://"));
        assert_eq!(s["nodeInfo"]["machineID"].as_str().unwrap().len(), 32);
    }

    #[test]
    fn status_keeps_transition_times_and_refreshes_heartbeats() {
        let c = cfg();
        let id = NodeIdentity::new(&c, 0);
        let s = status(&c, &id, "b", &[at(10), at(20), at(30), at(40)], at(100));
        let conds = s.conditions.unwrap();
        assert_eq!(conds[3].type_, "Ready");
        assert_eq!(conds[3].last_transition_time, Some(Time(at(40))));
        assert!(conds
            .iter()
            .all(|c| c.last_heartbeat_time == Some(Time(at(100)))));
    }

    #[test]
    fn out_of_place_conditions_are_found() {
        let c = cfg();
        let id = NodeIdentity::new(&c, 0);
        let mut s = status(&c, &id, "b", &[at(0); 4], at(0));
        assert_eq!(conditions_out_of_place(Some(&s)), 0);
        // The node lifecycle controller marks Ready Unknown.
        s.conditions.as_mut().unwrap()[3].status = "Unknown".into();
        assert_eq!(conditions_out_of_place(Some(&s)), 0b1000);
        s.conditions.as_mut().unwrap().remove(0);
        assert_eq!(conditions_out_of_place(Some(&s)), 0b1001);
        assert_eq!(conditions_out_of_place(None), 0b1111);
    }

    #[test]
    fn transition_times_survive_only_for_unchanged_conditions() {
        let c = cfg();
        let id = NodeIdentity::new(&c, 0);
        let mut s = status(&c, &id, "b", &[at(5); 4], at(5));
        s.conditions.as_mut().unwrap()[3].status = "Unknown".into();
        assert_eq!(
            transition_times(Some(&s), at(100)),
            [at(5), at(5), at(5), at(100)]
        );
        assert_eq!(transition_times(None, at(100)), [at(100); 4]);
    }

    #[test]
    fn adopting_keeps_an_existing_cidr_and_adds_missing_labels() {
        let c = cfg();
        let id = NodeIdentity::new(&c, 5);
        let mut existing = new_node(&c, &id, "b", at(0));
        let (patch, cidr) = adopt(&c, &id, &existing);
        assert_eq!(patch, None);
        assert_eq!(cidr, id.pod_cidr);

        existing.spec.as_mut().unwrap().pod_cidr = Some("10.9.9.0/24".into());
        existing.metadata.labels.as_mut().unwrap().remove("zone");
        let (patch, cidr) = adopt(&c, &id, &existing);
        assert_eq!(cidr.to_string(), "10.9.9.0/24");
        let patch = patch.unwrap();
        assert_eq!(patch["metadata"]["labels"], json!({"zone": "z1"}));
        assert!(
            patch.get("spec").is_none(),
            "a set podCIDR is never changed"
        );

        existing.spec = None;
        let (patch, cidr) = adopt(&c, &id, &existing);
        assert_eq!(cidr, id.pod_cidr);
        assert_eq!(patch.unwrap()["spec"]["podCIDR"], "10.128.5.0/24");
        assert_eq!(assigned_pod_cidr(&existing), None);
    }

    #[test]
    fn without_registering_a_cidr_the_node_waits_for_the_controllers() {
        let c = NodesConfig {
            register_pod_cidr: false,
            ..cfg()
        };
        let id = NodeIdentity::new(&c, 5);
        let mut n = new_node(&c, &id, "b", at(0));
        assert_eq!(n.spec.as_ref().unwrap().pod_cidr, None);
        assert_eq!(n.spec.as_ref().unwrap().pod_cidrs, None);
        let (patch, _) = adopt(&c, &id, &n);
        assert!(patch.is_none_or(|p| p.get("spec").is_none()));
        assert_eq!(assigned_pod_cidr(&n), None);
        n.spec.as_mut().unwrap().pod_cidr = Some("10.244.7.0/24".into());
        assert_eq!(assigned_pod_cidr(&n).unwrap().to_string(), "10.244.7.0/24");
    }
}
