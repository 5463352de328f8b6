//! kube's default Filter plugins, in kube's order: NodeUnschedulable, NodeName,
//! TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit. A node is rejected by the first
//! plugin that rejects it (kube's `RunFilterPlugins`), with that plugin's reasons; only
//! NodeResourcesFit gives several reasons at once (`Insufficient cpu` and `Insufficient memory`).
//!
//! The reason texts are kube 1.32's, word for word: they end up in `FailedScheduling` Events and
//! the `PodScheduled` condition, where people and tools match on them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};

use super::prepared::{Plugin, PreparedPod};
use crate::snapshot::{NodeInfo, NodeView};

pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_REASON_NODE_PORTS: &str =
    "node(s) didn't have free ports for the requested pod ports";
pub const ERR_REASON_TOO_MANY_PODS: &str = "Too many pods";

/// The taint an unschedulable (cordoned) node is treated as having.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";

/// A node's rejection: the plugin and its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub plugin: Plugin,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Rejection {
    fn one(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            plugin,
            reasons: vec![reason.into()],
        }
    }
}

/// Runs the filters on one listed node.
pub fn run_filters(pod: &PreparedPod<'_>, info: &NodeInfo) -> Result<(), Rejection> {
    let Some(node) = &info.node else {
        // Not offered by the snapshot; kube's "node(s) had unknown conditions" case.
        return Err(Rejection::one(
            Plugin::NodeUnschedulable,
            "node(s) had unknown conditions",
        ));
    };
    node_unschedulable(pod, node)?;
    node_name(pod, &info.name)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, &info.name, node)?;
    node_ports(pod, info)?;
    node_resources_fit(pod, info, node)?;
    Ok(())
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &PreparedPod<'_>, node: &NodeView) -> Result<(), Rejection> {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: TAINT_NODE_UNSCHEDULABLE.to_string(),
        effect: NO_SCHEDULE.to_string(),
        ..Default::default()
    };
    if pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
        Ok(())
    } else {
        Err(Rejection::one(
            Plugin::NodeUnschedulable,
            ERR_REASON_UNSCHEDULABLE,
        ))
    }
}

/// NodeName: a pod naming a node fits only that node.
pub fn node_name(pod: &PreparedPod<'_>, name: &str) -> Result<(), Rejection> {
    match pod.node_name {
        Some(want) if !want.is_empty() && want != name => {
            Err(Rejection::one(Plugin::NodeName, ERR_REASON_NODE_NAME))
        }
        _ => Ok(()),
    }
}

/// kube's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// TaintToleration: the first NoSchedule or NoExecute taint the pod does not tolerate rejects
/// the node, named as `{key: value}`.
pub fn taint_toleration(pod: &PreparedPod<'_>, node: &NodeView) -> Result<(), Rejection> {
    for taint in &node.taints {
        if taint.effect != NO_SCHEDULE && taint.effect != NO_EXECUTE {
            continue;
        }
        if !pod.tolerations.iter().any(|t| tolerates(t, taint)) {
            return Err(Rejection::one(
                Plugin::TaintToleration,
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    taint.key,
                    taint.value.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    Ok(())
}

/// One `matchExpressions` requirement against node labels (kube's
/// `nodeSelectorRequirementsAsSelector`). A malformed requirement (unknown operator, wrong
/// number of values, a non-integer for Gt/Lt) matches nothing, as kube skips a term it cannot
/// parse.
pub fn label_requirement_matches(
    r: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let label = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => !values.is_empty() && label.is_some_and(|v| values.contains(v)),
        "NotIn" => !values.is_empty() && label.is_none_or(|v| !values.contains(v)),
        "Exists" => values.is_empty() && label.is_some(),
        "DoesNotExist" => values.is_empty() && label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [want] = values else {
                return false;
            };
            let Ok(want) = want.parse::<i64>() else {
                return false;
            };
            let Some(have) = label.and_then(|v| v.parse::<i64>().ok()) else {
                return false;
            };
            if op == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// One `matchFields` requirement: only `metadata.name` exists on a node; In and NotIn take
/// exactly one value (kube's `nodeSelectorRequirementsAsFieldSelector`).
pub fn field_requirement_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let [want] = values else {
        return false;
    };
    let have = if r.key == "metadata.name" {
        node_name
    } else {
        ""
    };
    match r.operator.as_str() {
        "In" => have == want,
        "NotIn" => have != want,
        _ => false,
    }
}

fn term_is_empty(t: &NodeSelectorTerm) -> bool {
    t.match_expressions.as_ref().is_none_or(Vec::is_empty)
        && t.match_fields.as_ref().is_none_or(Vec::is_empty)
}

/// A node selector term: all its expressions and fields match; an empty term matches nothing.
pub fn term_matches(
    t: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    if term_is_empty(t) {
        return false;
    }
    t.match_expressions
        .iter()
        .flatten()
        .all(|r| label_requirement_matches(r, labels))
        && t.match_fields
            .iter()
            .flatten()
            .all(|r| field_requirement_matches(r, node_name))
}

/// kube's `GetRequiredNodeAffinity(pod).Match(node)`: `nodeSelector` labels all equal, and any
/// one required affinity term matches.
pub fn required_affinity_matches(
    pod: &PreparedPod<'_>,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    if let Some(sel) = pod.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    match pod.required_affinity {
        None => true,
        Some(ns) => ns
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node_name, labels)),
    }
}

/// NodeAffinity (Filter): `nodeSelector` and required node affinity.
pub fn node_affinity(pod: &PreparedPod<'_>, name: &str, node: &NodeView) -> Result<(), Rejection> {
    if required_affinity_matches(pod, name, &node.labels) {
        Ok(())
    } else {
        Err(Rejection::one(
            Plugin::NodeAffinity,
            ERR_REASON_NODE_AFFINITY,
        ))
    }
}

/// NodePorts: every wanted host port must be free (kube's `CheckConflict`).
pub fn node_ports(pod: &PreparedPod<'_>, info: &NodeInfo) -> Result<(), Rejection> {
    if pod.host_ports.iter().any(|p| info.used_ports.conflicts(p)) {
        Err(Rejection::one(Plugin::NodePorts, ERR_REASON_NODE_PORTS))
    } else {
        Ok(())
    }
}

/// NodeResourcesFit: the pod count, then cpu, memory, ephemeral storage and scalar resources
/// against allocatable minus what the node's pods (assumed ones included) request; every
/// shortfall is a reason (kube's `fitsRequest`).
pub fn node_resources_fit(
    pod: &PreparedPod<'_>,
    info: &NodeInfo,
    node: &NodeView,
) -> Result<(), Rejection> {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let alloc = &node.allocatable;
    let used = &info.requested;
    if info.pod_count.saturating_add(1) > alloc.pods {
        reasons.push(ERR_REASON_TOO_MANY_PODS.into());
    }
    let want = &pod.requests.requests;
    let nothing_requested = want.milli_cpu == 0
        && want.memory == 0
        && want.ephemeral_storage == 0
        && want.scalar.values().all(|v| *v == 0);
    if !nothing_requested {
        if want.milli_cpu > 0 && want.milli_cpu > alloc.milli_cpu.saturating_sub(used.milli_cpu) {
            reasons.push("Insufficient cpu".into());
        }
        if want.memory > 0 && want.memory > alloc.memory.saturating_sub(used.memory) {
            reasons.push("Insufficient memory".into());
        }
        if want.ephemeral_storage > 0
            && want.ephemeral_storage
                > alloc
                    .ephemeral_storage
                    .saturating_sub(used.ephemeral_storage)
        {
            reasons.push("Insufficient ephemeral-storage".into());
        }
        for (name, amount) in &want.scalar {
            if *amount == 0 {
                continue;
            }
            let free = alloc
                .scalar
                .get(name)
                .copied()
                .unwrap_or(0)
                .saturating_sub(used.scalar.get(name).copied().unwrap_or(0));
            if *amount > free {
                reasons.push(format!("Insufficient {name}").into());
            }
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            plugin: Plugin::NodeResourcesFit,
            reasons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::testing::*;

    fn reasons(r: Result<(), Rejection>) -> Vec<String> {
        match r {
            Ok(()) => vec![],
            Err(rej) => rej.reasons.into_iter().map(|c| c.into_owned()).collect(),
        }
    }

    #[test]
    fn node_unschedulable_unless_tolerated() {
        let info = node("n1", 4000, 8 << 30).unschedulable().info();
        let p = pod("p");
        let prep = p.prepare();
        assert_eq!(
            reasons(run_filters(&prep, &info)),
            ["node(s) were unschedulable"]
        );
        let p = pod("p").tolerate(TAINT_NODE_UNSCHEDULABLE, "Exists", "", NO_SCHEDULE);
        assert!(run_filters(&p.prepare(), &info).is_ok());
        // Tolerating with another effect does not help.
        let p = pod("p").tolerate(TAINT_NODE_UNSCHEDULABLE, "Exists", "", NO_EXECUTE);
        assert!(run_filters(&p.prepare(), &info).is_err());
        // An empty key with Exists tolerates everything.
        let p = pod("p").tolerate("", "Exists", "", "");
        assert!(run_filters(&p.prepare(), &info).is_ok());
    }

    #[test]
    fn node_name_must_match() {
        let info = node("n1", 4000, 8 << 30).info();
        let p = pod("p").on_node("n2");
        let e = run_filters(&p.prepare(), &info).unwrap_err();
        assert_eq!(e.plugin, Plugin::NodeName);
        assert_eq!(e.reasons, ["node(s) didn't match the requested node name"]);
        let p = pod("p").on_node("n1");
        assert!(run_filters(&p.prepare(), &info).is_ok());
    }

    #[test]
    fn taints_noschedule_and_noexecute_reject_prefer_does_not() {
        let info = node("n1", 4000, 8 << 30)
            .taint("soft", "x", PREFER_NO_SCHEDULE)
            .taint("dedicated", "gpu", NO_SCHEDULE)
            .taint("evict", "", NO_EXECUTE)
            .info();
        let p = pod("p");
        assert_eq!(
            reasons(run_filters(&p.prepare(), &info)),
            ["node(s) had untolerated taint {dedicated: gpu}"]
        );
        let p = pod("p").tolerate("dedicated", "Equal", "gpu", NO_SCHEDULE);
        assert_eq!(
            reasons(run_filters(&p.prepare(), &info)),
            ["node(s) had untolerated taint {evict: }"]
        );
        let p = pod("p")
            .tolerate("dedicated", "Equal", "gpu", "")
            .tolerate("evict", "Exists", "", NO_EXECUTE);
        assert!(run_filters(&p.prepare(), &info).is_ok());
        // A wrong value does not tolerate.
        let p = pod("p")
            .tolerate("dedicated", "Equal", "cpu", NO_SCHEDULE)
            .tolerate("evict", "Exists", "", NO_EXECUTE);
        assert!(run_filters(&p.prepare(), &info).is_err());
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let info = node("n1", 4000, 8 << 30)
            .label("zone", "a")
            .label("cores", "8")
            .info();
        let fails = |p: TestPod| reasons(run_filters(&p.prepare(), &info));
        let ok = Vec::<String>::new();
        let no = vec![ERR_REASON_NODE_AFFINITY.to_string()];
        assert_eq!(fails(pod("p").selector("zone", "a")), ok);
        assert_eq!(fails(pod("p").selector("zone", "b")), no);
        assert_eq!(fails(pod("p").selector("missing", "a")), no);
        let expr = |key: &str, op: &str, vals: &[&str]| {
            pod("p").require(vec![term(&[(key, op, vals)], &[])])
        };
        assert_eq!(fails(expr("zone", "In", &["a", "b"])), ok);
        assert_eq!(fails(expr("zone", "In", &["b"])), no);
        assert_eq!(fails(expr("zone", "In", &[])), no, "In needs values");
        assert_eq!(fails(expr("zone", "NotIn", &["b"])), ok);
        assert_eq!(fails(expr("zone", "NotIn", &["a"])), no);
        assert_eq!(
            fails(expr("other", "NotIn", &["a"])),
            ok,
            "NotIn matches a missing label"
        );
        assert_eq!(fails(expr("zone", "Exists", &[])), ok);
        assert_eq!(fails(expr("other", "Exists", &[])), no);
        assert_eq!(fails(expr("other", "DoesNotExist", &[])), ok);
        assert_eq!(fails(expr("zone", "DoesNotExist", &[])), no);
        assert_eq!(fails(expr("cores", "Gt", &["4"])), ok);
        assert_eq!(fails(expr("cores", "Gt", &["8"])), no);
        assert_eq!(fails(expr("cores", "Lt", &["9"])), ok);
        assert_eq!(fails(expr("cores", "Lt", &["8"])), no);
        assert_eq!(
            fails(expr("zone", "Gt", &["1"])),
            no,
            "a non-integer label never compares"
        );
        assert_eq!(fails(expr("cores", "Gt", &["x"])), no);
        assert_eq!(fails(expr("cores", "Gt", &["1", "2"])), no);
        assert_eq!(fails(expr("zone", "Bogus", &["a"])), no);
        // matchFields on metadata.name.
        let field = |op: &str, vals: &[&str]| {
            pod("p").require(vec![term(&[], &[("metadata.name", op, vals)])])
        };
        assert_eq!(fails(field("In", &["n1"])), ok);
        assert_eq!(fails(field("In", &["n2"])), no);
        assert_eq!(fails(field("NotIn", &["n2"])), ok);
        assert_eq!(fails(field("NotIn", &["n1"])), no);
        assert_eq!(fails(field("In", &["n1", "n2"])), no, "one value only");
        // Terms are ORed; requirements within a term are ANDed; empty terms match nothing.
        let p = pod("p").require(vec![
            term(&[("zone", "In", &["b"])], &[]),
            term(&[("zone", "In", &["a"]), ("cores", "Gt", &["2"])], &[]),
        ]);
        assert_eq!(fails(p), ok);
        let p = pod("p").require(vec![term(
            &[("zone", "In", &["a"]), ("cores", "Gt", &["20"])],
            &[],
        )]);
        assert_eq!(fails(p), no);
        assert_eq!(fails(pod("p").require(vec![term(&[], &[])])), no);
        assert_eq!(
            fails(pod("p").require(vec![])),
            no,
            "no terms match nothing"
        );
        // nodeSelector and affinity both apply.
        let p = pod("p")
            .selector("zone", "b")
            .require(vec![term(&[("zone", "In", &["a"])], &[])]);
        assert_eq!(fails(p), no);
    }

    #[test]
    fn host_ports_conflict() {
        let mut snap = snapshot(vec![node("n1", 4000, 8 << 30)]);
        place(&mut snap, "n1", pod("old").host_port("", "", 8080));
        let info = snap.get("n1").unwrap().clone();
        let fails = |p: TestPod| reasons(run_filters(&p.prepare(), &info));
        assert_eq!(
            fails(pod("p").host_port("", "TCP", 8080)),
            [ERR_REASON_NODE_PORTS]
        );
        assert_eq!(
            fails(pod("p").host_port("10.1.1.1", "", 8080)),
            [ERR_REASON_NODE_PORTS]
        );
        assert!(fails(pod("p").host_port("", "UDP", 8080)).is_empty());
        assert!(fails(pod("p").host_port("", "", 8081)).is_empty());
        assert!(
            fails(pod("p").container_port(8080)).is_empty(),
            "no hostPort, no conflict"
        );
    }

    #[test]
    fn resources_fit_every_shortfall_is_a_reason() {
        let mut snap = snapshot(vec![node("n1", 2000, 4 << 30)
            .pods(2)
            .ephemeral(10 << 30)
            .scalar("example.com/gpu", 1)]);
        place(&mut snap, "n1", pod("old").cpu("1500m").mem("3Gi"));
        let info = snap.get("n1").unwrap().clone();
        let fails = |p: TestPod| reasons(run_filters(&p.prepare(), &info));
        assert!(
            fails(pod("p").cpu("500m").mem("1Gi")).is_empty(),
            "exactly full fits"
        );
        assert_eq!(fails(pod("p").cpu("501m")), ["Insufficient cpu"]);
        assert_eq!(fails(pod("p").mem("1025Mi")), ["Insufficient memory"]);
        assert_eq!(
            fails(
                pod("p")
                    .cpu("2")
                    .mem("2Gi")
                    .ephemeral("11Gi")
                    .scalar_req("example.com/gpu", "2")
            ),
            [
                "Insufficient cpu",
                "Insufficient memory",
                "Insufficient ephemeral-storage",
                "Insufficient example.com/gpu"
            ]
        );
        assert_eq!(
            fails(pod("p").scalar_req("example.com/tpu", "1")),
            ["Insufficient example.com/tpu"]
        );
        assert!(fails(pod("p").scalar_req("example.com/gpu", "1")).is_empty());
        // The pod count: 1 placed + 1 new = 2 allowed; a third does not fit.
        place(&mut snap, "n1", pod("old2"));
        let info = snap.get("n1").unwrap().clone();
        assert_eq!(
            reasons(run_filters(&pod("p").prepare(), &info)),
            ["Too many pods"]
        );
        assert_eq!(
            reasons(run_filters(&pod("p").cpu("1").prepare(), &info)),
            ["Too many pods", "Insufficient cpu"]
        );
    }

    #[test]
    fn init_containers_and_overhead_count() {
        let info = node("n1", 1000, 4 << 30).info();
        let fails = |p: TestPod| reasons(run_filters(&p.prepare(), &info));
        assert!(fails(pod("p").cpu("500m").init_cpu("1")).is_empty());
        assert_eq!(
            fails(pod("p").cpu("500m").init_cpu("1001m")),
            ["Insufficient cpu"]
        );
        assert_eq!(
            fails(pod("p").cpu("900m").overhead_cpu("101m")),
            ["Insufficient cpu"]
        );
    }

    #[test]
    fn first_failing_filter_wins() {
        let info = node("n1", 100, 1 << 20)
            .unschedulable()
            .taint("k", "v", NO_SCHEDULE)
            .info();
        let e = run_filters(&pod("p").cpu("1").prepare(), &info).unwrap_err();
        assert_eq!(e.plugin, Plugin::NodeUnschedulable);
        assert_eq!(e.reasons.len(), 1);
    }
}
