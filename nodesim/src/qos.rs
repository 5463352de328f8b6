//! A pod's QoS class, computed as kube's `ComputePodQOS` (`pkg/apis/core/helper/qos`) does.
//! No I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// `status.qosClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Only cpu and memory decide the class; other resources (ephemeral-storage, extended
/// resources, hugepages) are ignored, as in kube.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// kube's rules, over containers and init containers (ephemeral containers have no resources):
/// - no positive cpu/memory request or limit anywhere: BestEffort;
/// - every container limits both cpu and memory, and the summed requests equal the summed
///   limits for each: Guaranteed;
/// - otherwise Burstable.
///
/// Quantities are compared by value (`1` equals `1000m`); one that does not parse counts as
/// absent (the API server validates them, so this does not happen with its objects).
pub fn qos_class(spec: &PodSpec) -> QosClass {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for c in spec.containers.iter().chain(init) {
        let (req, lim) = resources(c);
        // The API server's defaulting copies a limit into a missing request; do the same so
        // an object that skipped defaulting gets the class it would have had.
        let defaulted = |name: &&str| req.is_none_or(|r| !r.contains_key(*name));
        let from_limits = positive(lim).filter(|(name, _)| defaulted(name));
        for (name, v) in positive(req).chain(from_limits) {
            *requests.entry(name).or_default() += v;
        }
        let mut limited = 0;
        for (name, v) in positive(lim) {
            *limits.entry(name).or_default() += v;
            limited += 1;
        }
        if limited < QOS_RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

type ResourceList = BTreeMap<String, Quantity>;

fn resources(c: &Container) -> (Option<&ResourceList>, Option<&ResourceList>) {
    match &c.resources {
        Some(r) => (r.requests.as_ref(), r.limits.as_ref()),
        None => (None, None),
    }
}

/// The cpu and memory entries of a resource list with a positive value.
fn positive(list: Option<&ResourceList>) -> impl Iterator<Item = (&'static str, i128)> + '_ {
    QOS_RESOURCES.iter().filter_map(move |name| {
        let v = quantity::parse_nanos(&list?.get(*name)?.0)?;
        (v > 0).then_some((*name, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }
    }

    #[test]
    fn best_effort_when_nothing_positive_is_asked() {
        assert_eq!(
            qos_class(&spec(vec![container(&[], &[])], vec![])),
            QosClass::BestEffort
        );
        // Zero quantities and resources other than cpu/memory do not count.
        let c = container(&[("cpu", "0"), ("ephemeral-storage", "1Gi")], &[]);
        assert_eq!(qos_class(&spec(vec![c], vec![])), QosClass::BestEffort);
    }

    #[test]
    fn guaranteed_compares_values_not_spellings() {
        let c = container(
            &[("cpu", "1"), ("memory", "1Gi")],
            &[("cpu", "1000m"), ("memory", "1073741824")],
        );
        assert_eq!(qos_class(&spec(vec![c], vec![])), QosClass::Guaranteed);
        // Limits only: the API server copies them into requests, and so does the rule.
        let c = container(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(qos_class(&spec(vec![c], vec![])), QosClass::Guaranteed);
    }

    #[test]
    fn burstable_cases() {
        let only_cpu_limit = container(&[("cpu", "1")], &[("cpu", "1")]);
        assert_eq!(
            qos_class(&spec(vec![only_cpu_limit], vec![])),
            QosClass::Burstable
        );
        let less_requested = container(
            &[("cpu", "500m"), ("memory", "1Gi")],
            &[("cpu", "1"), ("memory", "1Gi")],
        );
        assert_eq!(
            qos_class(&spec(vec![less_requested], vec![])),
            QosClass::Burstable
        );
        // One guaranteed container and one best-effort init container: Burstable.
        let g = container(
            &[("cpu", "1"), ("memory", "1Gi")],
            &[("cpu", "1"), ("memory", "1Gi")],
        );
        assert_eq!(
            qos_class(&spec(vec![g.clone()], vec![container(&[], &[])])),
            QosClass::Burstable
        );
        assert_eq!(
            qos_class(&spec(vec![g.clone(), g], vec![])),
            QosClass::Guaranteed
        );
    }
}
