//! What a Service's Endpoints should hold (kube's `endpoints_controller.go` `syncService`, and
//! the helpers it shares with the EndpointSlice controller in `endpointslice/util`): which pods
//! count, their addresses and ports, readiness, and the Endpoints object itself. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt};

use crate::util::pod::{is_pod_ready, labels, PHASE_FAILED, PHASE_SUCCEEDED};

/// The annotation with the time of the last change that led to this state.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Set to `truncated` when more addresses than [`MAX_CAPACITY`] were selected.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// kube's `maxCapacity`: addresses an Endpoints object holds at most.
pub const MAX_CAPACITY: usize = 1000;
/// The label marking headless services' Endpoints (and slices).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The Service's selector, when it has one (services without a selector are left alone).
pub fn service_selector(svc: &Service) -> Option<Selector> {
    let sel = svc.spec.as_ref()?.selector.as_ref()?;
    Some(sel.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Whether the controllers manage this Service's endpoints: it has a selector and is not of
/// type ExternalName.
pub fn is_managed(svc: &Service) -> bool {
    let external = svc
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "ExternalName");
    !external && service_selector(svc).is_some()
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Pods whose labels the Service selects.
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    service_selector(svc).is_some_and(|s| s.matches(labels(&pod.metadata)))
}

/// The pod's IPv4 address (status.podIPs, else status.podIP).
pub fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .chain(status.pod_ip.clone())
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
}

/// kube's `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless terminating pods are
/// wanted) not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some(PHASE_SUCCEEDED) | Some(PHASE_FAILED)) {
        return false;
    }
    if pod_ipv4(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// kube's `podutil.FindPort`: a named targetPort resolves through the pod's container ports
/// (same name and protocol); a number is itself; no targetPort is the service port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
        }
    }
}

/// The endpoint ports of `pod` for every service port it resolves.
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            find_port(pod, sp).map(|n| EndpointPort {
                name: sp.name.clone(),
                port: n,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The hostname a pod is published with: its `spec.hostname` when its subdomain is the Service.
pub fn hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| host.to_string())
}

pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The time of the newest change among the Service and its pods (kube's trigger time: the
/// pods' Ready transitions and creations, the Service's creation).
pub fn trigger_time(svc: &Service, pods: &[&Pod]) -> Option<DateTime<Utc>> {
    let svc_time = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
    pods.iter()
        .flat_map(|p| {
            let ready = crate::util::pod::ready_condition(p)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0);
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            [ready, created]
        })
        .chain([svc_time])
        .flatten()
        .max()
}

/// Labels of the Service's Endpoints/slices: the Service's own, plus the headless label.
pub fn endpoint_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        l.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        l.remove(HEADLESS_LABEL);
    }
    l
}

/// Subsets by identical port lists (kube's `RepackSubsets`): addresses sorted by IP, subsets by
/// their ports, so that equal contents compare equal.
fn repack(entries: Vec<(EndpointAddress, Vec<EndpointPort>, bool)>) -> Vec<EndpointSubset> {
    type PortKey = Vec<(String, i32, String)>;
    /// The ports, the ready and the not-ready addresses.
    type Group = (
        Vec<EndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut by_ports: BTreeMap<PortKey, Group> = BTreeMap::new();
    for (addr, mut ports, ready) in entries {
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = ports
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        let e = by_ports
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if ready {
            e.1.push(addr);
        } else {
            e.2.push(addr);
        }
    }
    by_ports
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            ready.dedup_by(|a, b| a.ip == b.ip);
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.dedup_by(|a, b| a.ip == b.ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Keeps at most [`MAX_CAPACITY`] addresses: ready ones first, then not-ready ones, in subset
/// order. True when something was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let total: usize = subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    if total <= MAX_CAPACITY {
        return false;
    }
    let mut room = MAX_CAPACITY;
    for s in subsets.iter_mut() {
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(room);
            room -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(room);
            room -= a.len();
        }
    }
    true
}

/// The Endpoints a Service should have, given the pods of its namespace (kube's `syncService`
/// from the pod loop on). The trigger-time annotation is set from the objects' times.
pub fn desired_endpoints(svc: &Service, pods: &[&Pod]) -> Endpoints {
    let tolerate_unready = publish_not_ready(svc);
    let service_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map_or(0, Vec::len);
    let mut entries = Vec::new();
    let mut selected = Vec::new();
    for pod in pods.iter().copied().filter(|p| selects(svc, p)) {
        selected.push(pod);
        if !should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let addr = EndpointAddress {
            ip,
            hostname: hostname(svc, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_reference(pod)),
        };
        let ready = tolerate_unready || is_pod_ready(pod);
        if service_ports == 0 {
            // Only headless services publish addresses without ports.
            if is_headless(svc) {
                entries.push((addr, Vec::new(), ready));
            }
            continue;
        }
        for port in endpoint_ports(svc, pod) {
            entries.push((addr.clone(), vec![port], ready));
        }
    }
    // One entry per (address, port): merge an address's ports before repacking.
    let mut by_ip: BTreeMap<(String, bool), (EndpointAddress, Vec<EndpointPort>)> = BTreeMap::new();
    for (addr, ports, ready) in entries {
        let e = by_ip
            .entry((addr.ip.clone(), ready))
            .or_insert_with(|| (addr, Vec::new()));
        e.1.extend(ports);
    }
    let mut subsets = repack(
        by_ip
            .into_iter()
            .map(|((_, ready), (addr, ports))| (addr, ports, ready))
            .collect(),
    );
    let truncated = truncate(&mut subsets);
    let mut annotations = BTreeMap::new();
    if let Some(t) = trigger_time(svc, &selected) {
        annotations.insert(
            TRIGGER_TIME_ANNOTATION.to_string(),
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    if truncated {
        annotations.insert(
            OVER_CAPACITY_ANNOTATION.to_string(),
            "truncated".to_string(),
        );
    }
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(endpoint_labels(svc)),
            annotations: Some(annotations),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// What to write: nothing when the existing Endpoints have these subsets, labels and
/// over-capacity state (the trigger time alone is no reason to write, as in kube).
pub fn needs_write(existing: Option<&Endpoints>, desired: &Endpoints) -> bool {
    let Some(e) = existing else { return true };
    let subsets = |x: &Endpoints| x.subsets.clone().filter(|s| !s.is_empty());
    let labels = |x: &Endpoints| x.metadata.labels.clone().unwrap_or_default();
    let over = |x: &Endpoints| {
        x.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OVER_CAPACITY_ANNOTATION).cloned())
    };
    subsets(e) != subsets(desired) || labels(e) != labels(desired) || over(e) != over(desired)
}

#[cfg(test)]
#[path = "desired_tests.rs"]
pub(crate) mod tests;
