//! Node taints as kube's node lifecycle controller manages them (`pkg/util/taints`,
//! `controllerutil.SwapNodeControllerTaint`, `doNoScheduleTaintingPass`): the taints a node's
//! conditions call for, what to add and remove, and the node's new taint list. No I/O.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// kube's `nodeConditionToTaintKeyStatusMap`: (condition type, status, taint key).
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_DISK_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", TAINT_PID_PRESSURE),
];

/// A taint with a key and an effect and nothing else (kube's taint templates).
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        ..Taint::default()
    }
}

pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

pub fn conditions(node: &Node) -> &[NodeCondition] {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// The first condition of this type (`GetNodeCondition`).
pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    conditions(node).iter().find(|c| c.type_ == type_)
}

/// Ready=True (`nodeutil.IsNodeReady`).
pub fn is_node_ready(node: &Node) -> bool {
    condition(node, "Ready").is_some_and(|c| c.status == "True")
}

/// Same key and effect (`Taint.MatchTaint`).
pub fn matches(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// `taintutils.TaintExists`.
pub fn has_taint(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| matches(x, t))
}

/// The NoSchedule taints the node's conditions and `spec.unschedulable` call for
/// (TaintNodesByCondition).
pub fn wanted_no_schedule(node: &Node) -> Vec<Taint> {
    let mut out = Vec::new();
    for c in conditions(node) {
        for (type_, status, key) in CONDITION_TAINTS {
            if c.type_ == *type_ && c.status == *status {
                out.push(taint(key, NO_SCHEDULE));
            }
        }
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        out.push(taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

fn is_condition_taint_key(key: &str) -> bool {
    key == TAINT_UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == key)
}

/// What `doNoScheduleTaintingPass` changes: (to add, to remove) among the node's NoSchedule
/// taints that this controller owns.
pub fn no_schedule_diff(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let wanted = wanted_no_schedule(node);
    let have: Vec<&Taint> = node_taints(node)
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE && is_condition_taint_key(&t.key))
        .collect();
    let add = wanted
        .iter()
        .filter(|w| !have.iter().any(|h| matches(h, w)))
        .cloned()
        .collect();
    let del = have
        .iter()
        .filter(|h| !wanted.iter().any(|w| matches(h, w)))
        .map(|t| (*t).clone())
        .collect();
    (add, del)
}

/// The node's taints after adding `add` (stamped `timeAdded = now`, as
/// `SwapNodeControllerTaint` does) and removing `del`; `None` when nothing changes.
pub fn swap(
    current: &[Taint],
    add: &[Taint],
    del: &[Taint],
    now: DateTime<Utc>,
) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !del.iter().any(|d| matches(t, d)))
        .cloned()
        .collect();
    for a in add {
        let mut a = a.clone();
        a.time_added = Some(Time(now));
        match out.iter_mut().find(|t| matches(t, &a)) {
            // Already there with the same value: kept as it is (its original timeAdded).
            Some(t) if t.value == a.value => {}
            Some(t) => *t = a,
            None => out.push(a),
        }
    }
    (out != current).then_some(out)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for nodes in tests.
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time")
    }

    pub fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(at(0))),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus::default()),
        }
    }

    pub fn cond(type_: &str, status: &str, heartbeat: i64, transition: i64) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            last_heartbeat_time: Some(Time(at(heartbeat))),
            last_transition_time: Some(Time(at(transition))),
            ..NodeCondition::default()
        }
    }

    pub fn with_conditions(mut n: Node, c: Vec<NodeCondition>) -> Node {
        n.status.get_or_insert_with(Default::default).conditions = Some(c);
        n
    }

    pub fn with_taints(mut n: Node, t: Vec<Taint>) -> Node {
        n.spec.get_or_insert_with(Default::default).taints = Some(t);
        n
    }

    pub fn with_labels(mut n: Node, l: &[(&str, &str)]) -> Node {
        n.metadata.labels = Some(
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn keys(t: &[Taint]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn conditions_map_to_no_schedule_taints() {
        // kube's TestTaintsNodeByCondition cases.
        let cases: Vec<(Vec<NodeCondition>, bool, Vec<&str>)> = vec![
            (vec![cond("Ready", "True", 0, 0)], false, vec![]),
            (
                vec![cond("Ready", "False", 0, 0)],
                false,
                vec!["node.kubernetes.io/not-ready:NoSchedule"],
            ),
            (
                vec![cond("Ready", "Unknown", 0, 0)],
                false,
                vec!["node.kubernetes.io/unreachable:NoSchedule"],
            ),
            (
                vec![
                    cond("Ready", "True", 0, 0),
                    cond("MemoryPressure", "True", 0, 0),
                    cond("DiskPressure", "True", 0, 0),
                    cond("PIDPressure", "True", 0, 0),
                    cond("NetworkUnavailable", "True", 0, 0),
                ],
                false,
                vec![
                    "node.kubernetes.io/memory-pressure:NoSchedule",
                    "node.kubernetes.io/disk-pressure:NoSchedule",
                    "node.kubernetes.io/pid-pressure:NoSchedule",
                    "node.kubernetes.io/network-unavailable:NoSchedule",
                ],
            ),
            (
                vec![cond("Ready", "True", 0, 0)],
                true,
                vec!["node.kubernetes.io/unschedulable:NoSchedule"],
            ),
        ];
        for (conds, unschedulable, want) in cases {
            let mut n = with_conditions(node("n"), conds);
            n.spec.as_mut().unwrap().unschedulable = Some(unschedulable);
            assert_eq!(keys(&wanted_no_schedule(&n)), want);
        }
    }

    #[test]
    fn the_diff_touches_only_owned_no_schedule_taints() {
        let n = with_taints(
            with_conditions(node("n"), vec![cond("Ready", "Unknown", 0, 0)]),
            vec![
                taint(TAINT_NOT_READY, NO_SCHEDULE),
                taint(TAINT_UNREACHABLE, NO_EXECUTE),
                taint("example.com/mine", NO_SCHEDULE),
            ],
        );
        let (add, del) = no_schedule_diff(&n);
        assert_eq!(keys(&add), ["node.kubernetes.io/unreachable:NoSchedule"]);
        assert_eq!(keys(&del), ["node.kubernetes.io/not-ready:NoSchedule"]);
        let ready = with_conditions(n.clone(), vec![cond("Ready", "True", 0, 0)]);
        let (add, del) = no_schedule_diff(&ready);
        assert!(add.is_empty());
        assert_eq!(keys(&del), ["node.kubernetes.io/not-ready:NoSchedule"]);
    }

    #[test]
    fn swap_adds_with_time_and_removes_by_key_and_effect() {
        let cur = vec![
            taint(TAINT_NOT_READY, NO_EXECUTE),
            taint("other", NO_SCHEDULE),
        ];
        let out = swap(
            &cur,
            &[taint(TAINT_UNREACHABLE, NO_EXECUTE)],
            &[taint(TAINT_NOT_READY, NO_EXECUTE)],
            at(5),
        )
        .expect("changed");
        assert_eq!(
            keys(&out),
            [
                "other:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert_eq!(out[1].time_added, Some(Time(at(5))));
        // Adding what is there, removing what is not: no change.
        assert_eq!(
            swap(&out, &[taint(TAINT_UNREACHABLE, NO_EXECUTE)], &[], at(9)),
            None
        );
        assert_eq!(
            swap(&out, &[], &[taint(TAINT_NOT_READY, NO_EXECUTE)], at(9)),
            None
        );
        assert!(has_taint(&out, &taint(TAINT_UNREACHABLE, NO_EXECUTE)));
        assert!(!has_taint(&out, &taint(TAINT_UNREACHABLE, NO_SCHEDULE)));
    }
}
