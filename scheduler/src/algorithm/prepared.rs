//! The pod as the plugins read it ([`PreparedPod`]: requests, ports, affinity and tolerations
//! taken once per scheduling attempt) and the plugins' names ([`Plugin`], [`PluginSet`]), which
//! the filters, the scores and the queue's hints share.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, Pod, PreferredSchedulingTerm, Toleration};

use crate::resources::PodRequests;
use crate::snapshot::{host_ports, spread_owner, HostPort};

/// The plugins this scheduler runs (kube's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plugin {
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
}

impl Plugin {
    pub fn name(self) -> &'static str {
        match self {
            Plugin::NodeUnschedulable => "NodeUnschedulable",
            Plugin::NodeName => "NodeName",
            Plugin::TaintToleration => "TaintToleration",
            Plugin::NodeAffinity => "NodeAffinity",
            Plugin::NodePorts => "NodePorts",
            Plugin::NodeResourcesFit => "NodeResourcesFit",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of plugins (kube's `UnschedulablePlugins`: which filters rejected a pod, so that only
/// cluster events that may change their verdict requeue it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PluginSet(u8);

impl PluginSet {
    pub const EMPTY: PluginSet = PluginSet(0);

    pub fn of(plugins: &[Plugin]) -> PluginSet {
        let mut s = PluginSet::EMPTY;
        for p in plugins {
            s.insert(*p);
        }
        s
    }

    pub fn insert(&mut self, p: Plugin) {
        self.0 |= p.bit();
    }

    pub fn contains(self, p: Plugin) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn intersects(self, other: PluginSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: PluginSet) -> PluginSet {
        PluginSet(self.0 | other.0)
    }
}

/// What the algorithm needs from the pod being scheduled, computed once per attempt (kube's
/// PreFilter/PreScore states).
#[derive(Debug, Clone)]
pub struct PreparedPod<'a> {
    pub pod: &'a Pod,
    pub namespace: &'a str,
    pub node_name: Option<&'a str>,
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
    pub tolerations: &'a [Toleration],
    pub node_selector: Option<&'a BTreeMap<String, String>>,
    pub required_affinity: Option<&'a NodeSelector>,
    pub preferred_affinity: &'a [PreferredSchedulingTerm],
    /// The owner to spread against with the default constraints, unless the pod brings its own
    /// `topologySpreadConstraints` (which this scheduler does not evaluate; see the crate docs).
    pub spread_owner: Option<String>,
}

impl<'a> PreparedPod<'a> {
    pub fn new(pod: &'a Pod) -> PreparedPod<'a> {
        let spec = pod.spec.as_ref();
        let node_affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        let own_constraints = spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        PreparedPod {
            pod,
            namespace: pod.metadata.namespace.as_deref().unwrap_or(""),
            node_name: spec.and_then(|s| s.node_name.as_deref()),
            requests: spec.map(PodRequests::of).unwrap_or_default(),
            host_ports: host_ports(pod),
            tolerations: spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]),
            node_selector: spec
                .and_then(|s| s.node_selector.as_ref())
                .filter(|m| !m.is_empty()),
            required_affinity: node_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            preferred_affinity: node_affinity
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_deref()
                })
                .unwrap_or(&[]),
            spread_owner: if own_constraints {
                None
            } else {
                spread_owner(pod)
            },
        }
    }
}
