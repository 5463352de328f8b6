//! The scheduling algorithm: filter nodes, score the feasible ones, pick the best (kube's
//! `schedulePod`, `findNodesThatFitPod`, `prioritizeNodes` and `selectHost` with the default
//! plugins). Pure: it reads a [`Snapshot`] and a pod and returns a decision, with no I/O, no
//! clock, and randomness only from the seeded [`Rng`] it is given.

pub mod filter;
pub mod prepared;
pub mod score;
#[cfg(test)]
pub(crate) mod testing;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;

use crate::snapshot::Snapshot;
pub use prepared::{Plugin, PluginSet, PreparedPod};
pub use score::{select_host, Rng};

/// kube's `minFeasibleNodesToFind`: below this many nodes all are evaluated.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// kube's `minFeasibleNodesPercentageToFind`.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Why no node fits: per reason, how many nodes gave it (kube's `FitError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub reasons: BTreeMap<Cow<'static, str>, usize>,
    /// The filters that rejected some node.
    pub plugins: PluginSet,
}

impl fmt::Display for FitError {
    /// kube's `FitError.Error()` without the PostFilter (preemption) part:
    /// `0/<n> nodes are available: <count> <reason>, ....` with the "count reason" strings
    /// sorted bytewise, as Go's `sort.Strings` sorts them. With no nodes at all it is kube's
    /// `ErrNoNodesAvailable` text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        parts.sort();
        if !parts.is_empty() {
            write!(f, " {}.", parts.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

/// Where the pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    /// Nodes the filters ran on (advance the start index by this much).
    pub evaluated: usize,
    /// Of those, the ones that fit.
    pub feasible: usize,
}

/// kube's `numFeasibleNodesToFind`: all nodes below 100; else `percentage` of them (when unset
/// or zero, the adaptive `max(5, 50 - nodes/125)` percent), but at least 100.
pub fn num_feasible_nodes_to_find(percentage: Option<u32>, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = percentage.unwrap_or(0) as usize;
    if pct == 0 {
        pct = 50usize
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let n = num_all_nodes.saturating_mul(pct.min(100)) / 100;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The scheduling algorithm with its settings and its tie-breaking generator.
#[derive(Debug, Clone)]
pub struct Algorithm {
    /// kube's `percentageOfNodesToScore` (unset or 0: adaptive).
    pub percentage_of_nodes_to_score: Option<u32>,
    rng: Rng,
}

impl Algorithm {
    pub fn new(percentage_of_nodes_to_score: Option<u32>, seed: u64) -> Algorithm {
        Algorithm {
            percentage_of_nodes_to_score,
            rng: Rng::new(seed),
        }
    }

    /// Picks a node for `pod`, walking the snapshot's nodes from `start_index` (kube's
    /// `nextStartNodeIndex`: the caller advances it by `evaluated`, so every node gets its turn)
    /// and stopping once enough feasible nodes are found.
    pub fn schedule(
        &mut self,
        pod: &Pod,
        snapshot: &Snapshot,
        start_index: usize,
    ) -> Result<ScheduleResult, FitError> {
        let prepared = PreparedPod::new(pod);
        self.schedule_prepared(&prepared, snapshot, start_index)
    }

    pub fn schedule_prepared(
        &mut self,
        pod: &PreparedPod<'_>,
        snapshot: &Snapshot,
        start_index: usize,
    ) -> Result<ScheduleResult, FitError> {
        let n = snapshot.num_nodes();
        if n == 0 {
            return Err(FitError {
                num_all_nodes: 0,
                reasons: BTreeMap::new(),
                plugins: PluginSet::EMPTY,
            });
        }
        let to_find = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, n);
        let mut feasible: Vec<usize> = Vec::with_capacity(to_find.min(n));
        let mut reasons: BTreeMap<Cow<'static, str>, usize> = BTreeMap::new();
        let mut plugins = PluginSet::EMPTY;
        let mut evaluated = 0;
        let start = start_index % n;
        for i in 0..n {
            let idx = (start + i) % n;
            evaluated += 1;
            match filter::run_filters(pod, snapshot.node_at(idx)) {
                Ok(()) => {
                    feasible.push(idx);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Err(rejection) => {
                    plugins.insert(rejection.plugin);
                    for r in rejection.reasons {
                        *reasons.entry(r).or_insert(0) += 1;
                    }
                }
            }
        }
        match feasible.len() {
            0 => Err(FitError {
                num_all_nodes: n,
                reasons,
                plugins,
            }),
            1 => Ok(ScheduleResult {
                node: snapshot.node_at(feasible[0]).name.clone(),
                evaluated,
                feasible: 1,
            }),
            count => {
                let scores = score::score_nodes(pod, snapshot, &feasible);
                let best = select_host(&scores, &mut self.rng);
                Ok(ScheduleResult {
                    node: snapshot.node_at(feasible[best]).name.clone(),
                    evaluated,
                    feasible: count,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn adaptive_node_count() {
        assert_eq!(num_feasible_nodes_to_find(None, 0), 0);
        assert_eq!(num_feasible_nodes_to_find(None, 99), 99);
        // 100 nodes: 50 - 0 = 50% → 50, raised to the minimum of 100.
        assert_eq!(num_feasible_nodes_to_find(None, 100), 100);
        // 1000 nodes: 50 - 8 = 42% → 420.
        assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
        // 5000 nodes: 50 - 40 = 10% → 500.
        assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
        // 6000 nodes: 50 - 48 = 2% → floor of 5% → 300.
        assert_eq!(num_feasible_nodes_to_find(None, 6000), 300);
        // 15000 nodes: 5% → 750.
        assert_eq!(num_feasible_nodes_to_find(None, 15000), 750);
        // Explicit percentages, still at least 100; 0 means adaptive.
        assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
        assert_eq!(num_feasible_nodes_to_find(Some(1), 5000), 100);
        assert_eq!(num_feasible_nodes_to_find(Some(30), 1000), 300);
        assert_eq!(num_feasible_nodes_to_find(Some(0), 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(Some(250), 1000), 1000);
    }

    #[test]
    fn fit_error_message_mixed_reasons() {
        let snap = snapshot(vec![
            node("n1", 4000, 8 << 30).unschedulable(),
            node("n2", 1000, 8 << 30),
            node("n3", 1000, 8 << 30),
        ]);
        let p = pod("p").cpu("2");
        let err = Algorithm::new(None, 1)
            .schedule(&p.0, &snap, 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
        );
        assert!(err.plugins.contains(Plugin::NodeUnschedulable));
        assert!(err.plugins.contains(Plugin::NodeResourcesFit));
        assert!(!err.plugins.contains(Plugin::NodePorts));
    }

    #[test]
    fn fit_error_sorts_like_go_and_counts_each_reason() {
        let mut nodes = vec![];
        for i in 0..10 {
            nodes.push(node(&format!("c{i}"), 100, 1 << 20).label("zone", "a"));
        }
        nodes.push(node("t", 4000, 8 << 30).taint("dedicated", "gpu", "NoSchedule"));
        nodes.push(node("s", 4000, 8 << 30).label("zone", "b"));
        let snap = snapshot(nodes);
        let p = pod("p").cpu("1").mem("1Gi").selector("zone", "a");
        let err = Algorithm::new(None, 1)
            .schedule(&p.0, &snap, 5)
            .unwrap_err();
        // Go sorts the "count reason" strings bytewise: "1 node(s)..." before "10 ..." because
        // ' ' (0x20) < '0' (0x30); a node short of cpu and memory counts under both reasons.
        assert_eq!(
            err.to_string(),
            "0/12 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) had untolerated taint {dedicated: gpu}, 10 Insufficient cpu, 10 Insufficient memory."
        );
    }

    #[test]
    fn no_nodes_message() {
        let err = Algorithm::new(None, 1)
            .schedule(&pod("p").0, &Snapshot::new(), 0)
            .unwrap_err();
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn schedule_picks_the_least_allocated_fitting_node() {
        let mut snap = snapshot(vec![
            node("busy", 4000, 8 << 30),
            node("idle", 4000, 8 << 30),
            node("small", 500, 8 << 30),
        ]);
        place(&mut snap, "busy", pod("x").cpu("3").mem("4Gi"));
        let p = pod("p").cpu("1").mem("1Gi");
        for seed in 0..20 {
            let r = Algorithm::new(None, seed)
                .schedule(&p.0, &snap, seed as usize)
                .unwrap();
            assert_eq!(r.node, "idle");
            assert_eq!(r.evaluated, 3);
            assert_eq!(r.feasible, 2);
        }
    }

    #[test]
    fn a_single_feasible_node_is_taken_without_scoring() {
        let snap = snapshot(vec![node("a", 100, 1 << 30), node("b", 4000, 8 << 30)]);
        let r = Algorithm::new(None, 1)
            .schedule(&pod("p").cpu("1").0, &snap, 0)
            .unwrap();
        assert_eq!(
            r,
            ScheduleResult {
                node: "b".into(),
                evaluated: 2,
                feasible: 1
            }
        );
    }

    #[test]
    fn ties_are_broken_at_random_over_all_tied_nodes() {
        let snap = snapshot(
            (0..4)
                .map(|i| node(&format!("n{i}"), 4000, 8 << 30))
                .collect(),
        );
        let p = pod("p").cpu("1");
        let mut alg = Algorithm::new(None, 42);
        let mut seen = std::collections::BTreeMap::<String, u32>::new();
        for _ in 0..400 {
            *seen
                .entry(alg.schedule(&p.0, &snap, 0).unwrap().node)
                .or_default() += 1;
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.values().all(|&c| c > 50), "{seen:?}");
    }

    #[test]
    fn evaluation_stops_after_enough_feasible_nodes_and_rotates() {
        let snap = snapshot(
            (0..5000)
                .map(|i| node(&format!("n{i:04}"), 4000, 8 << 30))
                .collect(),
        );
        let p = pod("p").cpu("100m");
        let mut alg = Algorithm::new(None, 7);
        let r = alg.schedule(&p.0, &snap, 0).unwrap();
        assert_eq!((r.evaluated, r.feasible), (500, 500));
        assert!(
            r.node.as_str() < "n0500",
            "chosen among the first 500: {}",
            r.node
        );
        let r = alg.schedule(&p.0, &snap, 4900).unwrap();
        assert_eq!(r.evaluated, 500);
        let idx: usize = r.node[1..].parse().unwrap();
        assert!(
            !(400..4900).contains(&idx),
            "walk wraps from 4900: {}",
            r.node
        );
    }

    #[test]
    fn infeasible_nodes_do_not_count_toward_the_target() {
        // 200 nodes want max(200 * 49%, 100) = 100 feasible ones; only 50 exist, so the walk
        // covers every node.
        let mut nodes: Vec<_> = (0..150)
            .map(|i| node(&format!("s{i:03}"), 100, 1 << 30))
            .collect();
        nodes.extend((0..50).map(|i| node(&format!("b{i:03}"), 4000, 8 << 30)));
        let snap = snapshot(nodes);
        let r = Algorithm::new(None, 1)
            .schedule(&pod("p").cpu("1").0, &snap, 0)
            .unwrap();
        assert_eq!((r.evaluated, r.feasible), (200, 50));
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        for _ in 0..100 {
            let x = a.below(7);
            assert_eq!(x, b.below(7));
            assert!(x < 7);
        }
    }
}
