//! kube's EndpointSlice reconciler (`staging/src/k8s.io/endpointslice/reconciler.go`,
//! `reconcileByAddressType`), pure: from a Service, its pods and its current slices, the slices
//! to create, update and delete, changing as few slices as it can.
//!
//! Endpoints are grouped by their port list (one set of slices per distinct list). Per group:
//! existing slices keep the endpoints still wanted (updated in place when their conditions or
//! fields changed) and lose the others (a slice left empty is deleted); the endpoints not yet
//! in any slice first fill the slices already being updated (fullest first), then one unchanged
//! slice that can take all of them, and only then go into new slices of at most
//! `max_per_slice`. A new slice takes the place of one being deleted when there is one (an
//! update instead of a create and a delete). A Service with no endpoints keeps one empty
//! placeholder slice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::endpoint::desired::{
    endpoint_labels, endpoint_ports, hostname, is_headless, pod_ipv4, pod_reference,
    publish_not_ready, selects, should_be_in_endpoints, TRIGGER_TIME_ANNOTATION,
};
use crate::util::pod::is_pod_ready;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const ADDRESS_TYPE: &str = "IPv4";
/// kube's `--max-endpoints-per-slice` default.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

type PortKey = Vec<(String, i32, String)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut k: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    k.sort();
    k
}

fn sorted_ports(mut ports: Vec<EndpointPort>) -> Vec<EndpointPort> {
    ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
    ports
}

/// An endpoint's identity within a slice: its first address.
fn endpoint_key(e: &Endpoint) -> &str {
    e.addresses.first().map_or("", String::as_str)
}

/// The endpoints a Service wants, grouped by port list: (ports, endpoints by address).
pub fn desired(
    svc: &Service,
    pods: &[&Pod],
) -> BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> {
    let mut groups: BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> =
        BTreeMap::new();
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    for pod in pods.iter().copied().filter(|p| selects(svc, p)) {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let ports: Vec<EndpointPort> = endpoint_ports(svc, pod)
            .into_iter()
            .map(|p| EndpointPort {
                name: p.name,
                port: Some(p.port),
                protocol: p.protocol,
                app_protocol: p.app_protocol,
            })
            .collect();
        if ports.is_empty() && (has_ports || !is_headless(svc)) {
            continue;
        }
        let serving = is_pod_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let endpoint = Endpoint {
            addresses: vec![ip.clone()],
            conditions: Some(EndpointConditions {
                // Never ready while terminating, unless not-ready addresses are published.
                ready: Some(publish_not_ready(svc) || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: hostname(svc, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_reference(pod)),
            ..Default::default()
        };
        let ports = sorted_ports(ports);
        groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()))
            .1
            .insert(ip, endpoint);
    }
    groups
}

/// What to write.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The labels a managed slice of `svc` carries.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = endpoint_labels(svc);
    l.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    l.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    l
}

/// A new slice of `svc` (generateName `<svc>-`, owned by the Service).
fn new_slice(
    svc: &Service,
    ports: &[EndpointPort],
    endpoints: Vec<Endpoint>,
    trigger: Option<&str>,
) -> EndpointSlice {
    let name = svc.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            annotations: trigger
                .map(|t| [(TRIGGER_TIME_ANNOTATION.to_string(), t.to_string())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name,
                uid: svc.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: ADDRESS_TYPE.into(),
        endpoints,
        ports: (!ports.is_empty()).then(|| ports.to_vec()),
    }
}

/// An existing slice with new contents (and the Service's labels).
fn updated(
    svc: &Service,
    old: &EndpointSlice,
    ports: &[EndpointPort],
    endpoints: Vec<Endpoint>,
    trigger: Option<&str>,
) -> EndpointSlice {
    let mut s = old.clone();
    s.endpoints = endpoints;
    s.ports = (!ports.is_empty()).then(|| ports.to_vec());
    s.metadata.labels = Some(slice_labels(svc));
    if let Some(t) = trigger {
        s.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(TRIGGER_TIME_ANNOTATION.into(), t.into());
    }
    s
}

/// kube's reconciler over the Service's current IPv4 slices.
pub fn reconcile(
    svc: &Service,
    existing: &[Arc<EndpointSlice>],
    mut want: BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)>,
    max_per_slice: usize,
    trigger: Option<&str>,
) -> Changes {
    let max = max_per_slice.max(1);
    let labels = slice_labels(svc);
    let mut changes = Changes::default();
    let mut existing: Vec<&Arc<EndpointSlice>> = existing.iter().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    // Slices of another address type, or of port lists no longer wanted, go.
    let (mut of_type, other): (Vec<_>, Vec<_>) = existing
        .into_iter()
        .partition(|s| s.address_type == ADDRESS_TYPE);
    changes.delete.extend(other.into_iter().cloned());

    if want.values().all(|(_, e)| e.is_empty()) {
        // Keep (or make) one empty placeholder.
        let placeholder = of_type
            .iter()
            .position(|s| s.endpoints.is_empty() && s.ports.as_ref().is_none_or(Vec::is_empty));
        match placeholder {
            Some(i) => {
                let p = of_type.remove(i);
                if p.metadata.labels.as_ref() != Some(&labels) {
                    changes
                        .update
                        .push(updated(svc, p, &[], Vec::new(), trigger));
                }
            }
            None if !of_type.is_empty() => {
                let first = of_type.remove(0);
                changes
                    .update
                    .push(updated(svc, first, &[], Vec::new(), trigger));
            }
            None => changes
                .create
                .push(new_slice(svc, &[], Vec::new(), trigger)),
        }
        changes.delete.extend(of_type.into_iter().cloned());
        return changes;
    }
    want.retain(|_, (_, e)| !e.is_empty());

    let mut by_key: BTreeMap<PortKey, Vec<&Arc<EndpointSlice>>> = BTreeMap::new();
    for s in of_type {
        let key = port_key(s.ports.as_deref().unwrap_or(&[]));
        if want.contains_key(&key) {
            by_key.entry(key).or_default().push(s);
        } else {
            changes.delete.push(s.clone());
        }
    }

    let mut to_create: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for (key, (ports, mut remaining)) in want {
        let mut updating: Vec<EndpointSlice> = Vec::new();
        let mut unchanged: Vec<&Arc<EndpointSlice>> = Vec::new();
        let mut placed: HashSet<String> = HashSet::new();
        for slice in by_key.remove(&key).unwrap_or_default() {
            let mut kept = Vec::with_capacity(slice.endpoints.len());
            let mut changed = false;
            for e in &slice.endpoints {
                let k = endpoint_key(e).to_string();
                match remaining.remove(&k) {
                    Some(w) if placed.insert(k) => {
                        changed |= &w != e;
                        kept.push(w);
                    }
                    _ => changed = true,
                }
            }
            if kept.is_empty() && !slice.endpoints.is_empty() {
                changes.delete.push(slice.clone());
            } else if changed || slice.metadata.labels.as_ref() != Some(&labels) {
                updating.push(updated(svc, slice, &ports, kept, trigger));
            } else {
                unchanged.push(slice);
            }
        }
        let mut left: Vec<Endpoint> = remaining.into_values().collect();
        // 1. Fill the slices being updated anyway, fullest first.
        updating.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
        for s in updating.iter_mut() {
            while s.endpoints.len() < max && !left.is_empty() {
                s.endpoints.push(left.remove(0));
            }
        }
        // 2. One unchanged slice that can take all that is left (the fullest such).
        if !left.is_empty() {
            unchanged.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
            if let Some(i) = unchanged
                .iter()
                .position(|s| s.endpoints.len() + left.len() <= max)
            {
                let s = unchanged.remove(i);
                let mut eps = s.endpoints.clone();
                eps.append(&mut left);
                updating.push(updated(svc, s, &ports, eps, trigger));
            }
        }
        // 3. New slices for the rest.
        for chunk in left.chunks(max) {
            to_create.push((ports.clone(), chunk.to_vec()));
        }
        changes.update.extend(updating);
    }
    // New slices take the place of deleted ones where they can.
    for (ports, eps) in to_create {
        let reusable = changes
            .delete
            .iter()
            .position(|s| s.address_type == ADDRESS_TYPE);
        match reusable {
            Some(i) => {
                let old = changes.delete.remove(i);
                changes
                    .update
                    .push(updated(svc, &old, &ports, eps, trigger));
            }
            None => changes.create.push(new_slice(svc, &ports, eps, trigger)),
        }
    }
    changes
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
