//! kube's default Score plugins, each normalized to 0..=100 as kube normalizes it, weighted as
//! kube 1.32 weighs it (`getDefaultPlugins`), and summed:
//!
//! | plugin | weight | raw score | normalization |
//! |---|---|---|---|
//! | NodeResourcesFit (LeastAllocated, cpu:1 memory:1) | 1 | `(alloc - req) * 100 / alloc` per resource, weighted mean; requests with the 100m / 200Mi non-zero defaults | none |
//! | NodeResourcesBalancedAllocation (cpu, memory) | 1 | `(1 - std(fractions)) * 100` over actual requests | none |
//! | TaintToleration | 3 | count of untolerated PreferNoSchedule taints | `DefaultNormalizeScore(100, reverse)` |
//! | NodeAffinity | 2 | sum of the weights of matching preferred terms | `DefaultNormalizeScore(100)` (skipped without preferred terms) |
//! | PodTopologySpread (system defaults) | 2 | see [`spread_scores`] | `100 * (max + min - s) / max` |
//!
//! InterPodAffinity (weight 2) and ImageLocality (1) are not run: without pod affinity terms
//! kube's InterPodAffinity skips scoring, and ImageLocality needs node image lists.

use std::collections::HashMap;

use super::filter::{required_affinity_matches, term_matches, tolerates, PREFER_NO_SCHEDULE};
use super::prepared::PreparedPod;
use crate::snapshot::{NodeInfo, NodeView, Snapshot};

pub const MAX_NODE_SCORE: i64 = 100;
pub const WEIGHT_NODE_RESOURCES_FIT: i64 = 1;
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
pub const WEIGHT_POD_TOPOLOGY_SPREAD: i64 = 2;

pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// kube's system default spreading: (topology key, maxSkew), both ScheduleAnyway.
pub const SYSTEM_DEFAULT_CONSTRAINTS: [(&str, i64); 2] = [(LABEL_HOSTNAME, 3), (LABEL_ZONE, 5)];

/// One feasible node's normalized scores (0..=100 each) and the weighted total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeScore {
    /// Index of the node in the snapshot's walk order.
    pub node: usize,
    pub resources_fit: i64,
    pub balanced_allocation: i64,
    pub taint_toleration: i64,
    pub node_affinity: i64,
    pub pod_topology_spread: i64,
    pub total: i64,
}

/// Scores the feasible nodes (`feasible` holds indexes into the snapshot's walk order).
pub fn score_nodes(
    pod: &PreparedPod<'_>,
    snapshot: &Snapshot,
    feasible: &[usize],
) -> Vec<NodeScore> {
    let infos: Vec<(&NodeInfo, &NodeView)> = feasible
        .iter()
        .filter_map(|&i| {
            let info = snapshot.node_at(i);
            info.node.as_ref().map(|v| (info, v))
        })
        .collect();
    let mut taint: Vec<i64> = infos
        .iter()
        .map(|(_, v)| intolerable_prefer_no_schedule(pod, v))
        .collect();
    default_normalize(&mut taint, true);
    let affinity: Vec<i64> = if pod.preferred_affinity.is_empty() {
        vec![0; infos.len()]
    } else {
        let mut raw: Vec<i64> = infos
            .iter()
            .map(|(i, v)| preferred_affinity_score(pod, &i.name, v))
            .collect();
        default_normalize(&mut raw, false);
        raw
    };
    let spread = spread_scores(pod, snapshot, &infos).unwrap_or_else(|| vec![0; infos.len()]);
    infos
        .iter()
        .zip(feasible)
        .enumerate()
        .map(|(k, ((info, view), &node))| {
            let resources_fit = least_allocated(pod, info, view);
            let balanced_allocation = balanced_allocation(pod, info, view);
            let total = resources_fit * WEIGHT_NODE_RESOURCES_FIT
                + balanced_allocation * WEIGHT_BALANCED_ALLOCATION
                + taint[k] * WEIGHT_TAINT_TOLERATION
                + affinity[k] * WEIGHT_NODE_AFFINITY
                + spread[k] * WEIGHT_POD_TOPOLOGY_SPREAD;
            NodeScore {
                node,
                resources_fit,
                balanced_allocation,
                taint_toleration: taint[k],
                node_affinity: affinity[k],
                pod_topology_spread: spread[k],
                total,
            }
        })
        .collect()
}

/// kube's `leastRequestedScore`: 0 when over capacity or without capacity.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    // i128: allocatable may be up to i64::MAX.
    ((i128::from(capacity - requested) * i128::from(MAX_NODE_SCORE)) / i128::from(capacity)) as i64
}

/// NodeResourcesFit's LeastAllocated score over cpu and memory (weight 1 each), with the
/// non-zero request defaults; a resource the node has none of is left out of the mean.
pub fn least_allocated(pod: &PreparedPod<'_>, info: &NodeInfo, node: &NodeView) -> i64 {
    let pairs = [
        (
            node.allocatable.milli_cpu,
            info.non_zero_milli_cpu
                .saturating_add(pod.requests.non_zero_milli_cpu),
        ),
        (
            node.allocatable.memory,
            info.non_zero_memory
                .saturating_add(pod.requests.non_zero_memory),
        ),
    ];
    let (mut sum, mut weights) = (0i64, 0i64);
    for (alloc, req) in pairs {
        if alloc == 0 {
            continue;
        }
        sum += least_requested_score(req, alloc);
        weights += 1;
    }
    if weights == 0 {
        0
    } else {
        sum / weights
    }
}

/// NodeResourcesBalancedAllocation over cpu and memory, with actual requests (kube's
/// `useRequested: true`): `(1 - |f_cpu - f_mem| / 2) * 100`, each fraction capped at 1.
pub fn balanced_allocation(pod: &PreparedPod<'_>, info: &NodeInfo, node: &NodeView) -> i64 {
    let want = &pod.requests.requests;
    let pairs = [
        (
            node.allocatable.milli_cpu,
            info.requested.milli_cpu.saturating_add(want.milli_cpu),
        ),
        (
            node.allocatable.memory,
            info.requested.memory.saturating_add(want.memory),
        ),
    ];
    let mut fractions = [0.0f64; 2];
    let mut len = 0;
    for (alloc, req) in pairs {
        if alloc != 0 {
            fractions[len] = (req as f64 / alloc as f64).min(1.0);
            len += 1;
        }
    }
    // kube: the std of two fractions is half their distance; of one, zero.
    let std = if len == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// TaintToleration's raw score: PreferNoSchedule taints not tolerated by the pod's tolerations
/// whose effect is empty or PreferNoSchedule.
pub fn intolerable_prefer_no_schedule(pod: &PreparedPod<'_>, node: &NodeView) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == PREFER_NO_SCHEDULE)
        .filter(|t| {
            !pod.tolerations
                .iter()
                .filter(|tol| {
                    matches!(
                        tol.effect.as_deref(),
                        None | Some("") | Some(PREFER_NO_SCHEDULE)
                    )
                })
                .any(|tol| tolerates(tol, t))
        })
        .count() as i64
}

/// NodeAffinity's raw score: the sum of the weights of the preferred terms the node matches
/// (terms with weight 0 or no requirements are ignored, as kube ignores them).
pub fn preferred_affinity_score(pod: &PreparedPod<'_>, name: &str, node: &NodeView) -> i64 {
    pod.preferred_affinity
        .iter()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, name, &node.labels))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// kube's `helper.DefaultNormalizeScore(100, reverse, scores)`.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// PodTopologySpread with kube's system default constraints (hostname maxSkew 3, zone maxSkew
/// 5, ScheduleAnyway) — kube's `initPreScoreState`, `PreScore`, `Score` and `NormalizeScore`
/// with `requireAllTopologies = false`:
///
/// - the pods counted are those with the same owner as this pod (kube counts pods matching the
///   owner's selector; its `PodsWithOwnerRef` fast path counts by the first ownerReference, as
///   here), not terminating;
/// - zone counts sum over **all** nodes that match the pod's required node affinity
///   (`nodeAffinityPolicy: Honor`), but only for zone values present among the feasible nodes
///   (a node without the label is in the zone `""`);
/// - each node's raw score is `Σ round(count · ln(domains + 2) + maxSkew - 1)` over the
///   constraints whose label it has (`domains`: feasible nodes for hostname, distinct zone
///   values among feasible nodes for zone), rounded as a whole;
/// - normalized as `100 · (max + min - s) / max` (all 100 when `max == 0`).
///
/// `None` (kube's Skip) when the pod has no spread owner.
pub fn spread_scores(
    pod: &PreparedPod<'_>,
    snapshot: &Snapshot,
    feasible: &[(&NodeInfo, &NodeView)],
) -> Option<Vec<i64>> {
    let owner = pod.spread_owner.as_deref()?;
    if feasible.is_empty() {
        return None;
    }
    let mut zone_counts: HashMap<&str, i64> = HashMap::new();
    for (_, v) in feasible {
        zone_counts
            .entry(v.labels.get(LABEL_ZONE).map(String::as_str).unwrap_or(""))
            .or_insert(0);
    }
    let zone_domains = zone_counts.len();
    for (node_name, count) in snapshot.owner_nodes(owner) {
        let Some(view) = snapshot.get(node_name).and_then(|i| i.node.as_ref()) else {
            continue;
        };
        if !required_affinity_matches(pod, node_name, &view.labels) {
            continue;
        }
        let zone = view
            .labels
            .get(LABEL_ZONE)
            .map(String::as_str)
            .unwrap_or("");
        if let Some(c) = zone_counts.get_mut(zone) {
            *c += i64::from(count);
        }
    }
    let owner_counts = snapshot.owner_counts(owner);
    let host_weight = topology_normalizing_weight(feasible.len());
    let zone_weight = topology_normalizing_weight(zone_domains);
    let mut raw: Vec<i64> = feasible
        .iter()
        .map(|(info, view)| {
            let mut score = 0.0f64;
            for (key, max_skew) in SYSTEM_DEFAULT_CONSTRAINTS {
                let Some(value) = view.labels.get(key) else {
                    continue;
                };
                let (count, weight) = if key == LABEL_HOSTNAME {
                    (
                        i64::from(
                            owner_counts
                                .and_then(|m| m.get(&info.name))
                                .copied()
                                .unwrap_or(0),
                        ),
                        host_weight,
                    )
                } else {
                    (
                        zone_counts.get(value.as_str()).copied().unwrap_or(0),
                        zone_weight,
                    )
                };
                score += count as f64 * weight + (max_skew - 1) as f64;
            }
            score.round() as i64
        })
        .collect();
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    for s in raw.iter_mut() {
        *s = if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *s) / max
        };
    }
    Some(raw)
}

/// kube's `topologyNormalizingWeight`: `ln(size + 2)`.
pub fn topology_normalizing_weight(size: usize) -> f64 {
    ((size + 2) as f64).ln()
}

/// A small deterministic generator (SplitMix64) for tie-breaking; seeded by the caller.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: the bias is below 2^-64 * n, irrelevant for tie-breaking.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// kube's `selectHost`: the highest total wins; ties are broken uniformly at random by
/// reservoir sampling. Returns an index into `scores` (which must not be empty).
pub fn select_host(scores: &[NodeScore], rng: &mut Rng) -> usize {
    let mut best = 0;
    let mut best_total = i64::MIN;
    let mut ties = 0u64;
    for (i, s) in scores.iter().enumerate() {
        if s.total > best_total {
            best = i;
            best_total = s.total;
            ties = 1;
        } else if s.total == best_total {
            ties += 1;
            if rng.below(ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn scores(p: &TestPod, snap: &Snapshot) -> Vec<NodeScore> {
        let prep = p.prepare();
        let all: Vec<usize> = (0..snap.num_nodes()).collect();
        score_nodes(&prep, snap, &all)
    }

    fn by_name<'a>(snap: &'a Snapshot, s: &[NodeScore]) -> Vec<(&'a str, NodeScore)> {
        s.iter()
            .map(|x| (snap.node_at(x.node).name.as_str(), *x))
            .collect()
    }

    #[test]
    fn least_requested_score_by_hand() {
        assert_eq!(least_requested_score(0, 4000), 100);
        assert_eq!(least_requested_score(1000, 4000), 75);
        assert_eq!(least_requested_score(3333, 10000), 66);
        assert_eq!(least_requested_score(4000, 4000), 0);
        assert_eq!(least_requested_score(5000, 4000), 0);
        assert_eq!(least_requested_score(1, 0), 0);
        assert_eq!(least_requested_score(0, i64::MAX), 100);
    }

    #[test]
    fn resources_fit_and_balanced_by_hand() {
        let mut snap = snapshot(vec![node("n1", 4000, 4 << 30)]);
        place(&mut snap, "n1", pod("x").cpu("1").mem("3Gi"));
        // Pod: 1 cpu, no memory request → non-zero memory 200Mi for least-allocated.
        let s = scores(&pod("p").cpu("1"), &snap)[0];
        // cpu: (4000 - 2000) * 100 / 4000 = 50; memory: (4096Mi - 3072Mi - 200Mi) * 100 / 4096Mi
        // = 824 * 100 / 4096 = 20 → (50 + 20) / 2 = 35.
        assert_eq!(s.resources_fit, 35);
        // Balanced: cpu 2000/4000 = 0.5, memory 3Gi/4Gi = 0.75 → std 0.125 → 87.5 → 87.
        assert_eq!(s.balanced_allocation, 87);
        // Without taints every node gets 100 for TaintToleration; no affinity or spreading: 0.
        assert_eq!(
            (s.taint_toleration, s.node_affinity, s.pod_topology_spread),
            (100, 0, 0)
        );
        assert_eq!(s.total, 35 + 87 + 300);
    }

    #[test]
    fn a_node_without_memory_is_scored_on_cpu_alone() {
        let snap = snapshot(vec![node("n1", 4000, 0)]);
        let s = scores(&pod("p").cpu("1"), &snap)[0];
        assert_eq!(s.resources_fit, 75);
        assert_eq!(s.balanced_allocation, 100);
    }

    #[test]
    fn taint_toleration_counts_prefer_no_schedule_reversed() {
        let snap = snapshot(vec![
            node("clean", 4000, 8 << 30),
            node("one", 4000, 8 << 30).taint("a", "1", PREFER_NO_SCHEDULE),
            node("two", 4000, 8 << 30)
                .taint("a", "1", PREFER_NO_SCHEDULE)
                .taint("b", "2", PREFER_NO_SCHEDULE)
                .taint("c", "3", "NoSchedule"),
        ]);
        let p = pod("p").tolerate("c", "Exists", "", "NoSchedule");
        let s = scores(&p, &snap);
        let t: Vec<i64> = s.iter().map(|x| x.taint_toleration).collect();
        // Raw 0, 1, 2 → 100 - 100*raw/2.
        assert_eq!(t, [100, 50, 0]);
        // Tolerating "a" (effect PreferNoSchedule) leaves raw 0, 0, 1.
        let p = pod("p").tolerate("a", "Exists", "", PREFER_NO_SCHEDULE);
        let t: Vec<i64> = scores(&p, &snap)
            .iter()
            .map(|x| x.taint_toleration)
            .collect();
        assert_eq!(t, [100, 100, 0]);
        // A NoSchedule toleration does not count for PreferNoSchedule taints.
        let p = pod("p").tolerate("a", "Exists", "", "NoSchedule");
        let t: Vec<i64> = scores(&p, &snap)
            .iter()
            .map(|x| x.taint_toleration)
            .collect();
        assert_eq!(t, [100, 50, 0]);
        // The weight is 3: the clean node is ahead by 300 over "two" from this plugin alone.
        let s = scores(&pod("p"), &snap);
        assert_eq!(s[0].total - s[2].total, 300);
    }

    #[test]
    fn node_affinity_preferred_terms_normalized() {
        let snap = snapshot(vec![
            node("a", 4000, 8 << 30)
                .label("disk", "ssd")
                .label("zone", "z1"),
            node("b", 4000, 8 << 30).label("disk", "ssd"),
            node("c", 4000, 8 << 30),
        ]);
        let p = pod("p")
            .prefer(30, term(&[("disk", "In", &["ssd"])], &[]))
            .prefer(10, term(&[("zone", "Exists", &[])], &[]))
            .prefer(0, term(&[("disk", "DoesNotExist", &[])], &[]))
            .prefer(50, term(&[], &[]));
        let s = scores(&p, &snap);
        // Raw 40, 30, 0 → 100, 75, 0; weight 2.
        let a: Vec<i64> = s.iter().map(|x| x.node_affinity).collect();
        assert_eq!(a, [100, 75, 0]);
        assert_eq!(s[0].total - s[1].total, 50);
        // Terms that match nowhere: all 0, not 100.
        let p = pod("p").prefer(5, term(&[("gpu", "Exists", &[])], &[]));
        assert!(scores(&p, &snap).iter().all(|x| x.node_affinity == 0));
    }

    #[test]
    fn default_normalize_by_hand() {
        let mut s = vec![0, 3, 6];
        default_normalize(&mut s, false);
        assert_eq!(s, [0, 50, 100]);
        let mut s = vec![0, 3, 6];
        default_normalize(&mut s, true);
        assert_eq!(s, [100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, [100, 100]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, false);
        assert_eq!(s, [0, 0]);
        let mut s = vec![1, 2, 3];
        default_normalize(&mut s, false);
        assert_eq!(s, [33, 66, 100]);
    }

    fn zoned(name: &str, zone: &str) -> TestNode {
        node(name, 4000, 8 << 30)
            .label(LABEL_HOSTNAME, name)
            .label(LABEL_ZONE, zone)
    }

    #[test]
    fn spreading_by_hand() {
        // Four nodes in two zones; the ReplicaSet has 2 pods on a1, 1 on a2, 0 on b1 and b2.
        let mut snap = snapshot(vec![
            zoned("a1", "a"),
            zoned("a2", "a"),
            zoned("b1", "b"),
            zoned("b2", "b"),
        ]);
        for (i, n) in ["a1", "a1", "a2"].iter().enumerate() {
            place(
                &mut snap,
                n,
                pod(&format!("x{i}")).owner("ReplicaSet", "rs-1"),
            );
        }
        // A pod of another owner does not count.
        place(&mut snap, "b1", pod("other").owner("ReplicaSet", "rs-2"));
        let p = pod("p").owner("ReplicaSet", "rs-1");
        let s = scores(&p, &snap);
        // host weight ln(4 + 2) = 1.7918; zone weight ln(2 + 2) = 1.3863.
        // raw a1 = 2*1.7918 + 2 + 3*1.3863 + 4 = 13.742 → 14
        // raw a2 = 1*1.7918 + 2 + 3*1.3863 + 4 = 11.951 → 12
        // raw b1 = b2 = 0 + 2 + 0 + 4 = 6
        // normalized: 100 * (14 + 6 - s) / 14 → a1 42, a2 57, b 100.
        let got: Vec<(&str, i64)> = by_name(&snap, &s)
            .iter()
            .map(|(n, x)| (*n, x.pod_topology_spread))
            .collect();
        assert_eq!(got, [("a1", 42), ("a2", 57), ("b1", 100), ("b2", 100)]);
        // The weight is 2, and everything else is equal but resources: b1 and b2 win.
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            let won = snap
                .node_at(s[select_host(&s, &mut rng)].node)
                .name
                .as_str();
            assert!(won == "b2" || won == "b1", "{won}");
        }
    }

    #[test]
    fn spreading_is_skipped_without_an_owner_or_with_own_constraints() {
        let mut snap = snapshot(vec![zoned("a1", "a"), zoned("b1", "b")]);
        place(&mut snap, "a1", pod("x").owner("ReplicaSet", "rs-1"));
        assert!(scores(&pod("p"), &snap)
            .iter()
            .all(|x| x.pod_topology_spread == 0));
        // Jobs are not among the owners whose selector kube spreads by default.
        assert!(scores(&pod("p").owner("Job", "rs-1"), &snap)
            .iter()
            .all(|x| x.pod_topology_spread == 0));
        let p = pod("p").owner("ReplicaSet", "rs-1").own_spread_constraint();
        assert!(scores(&p, &snap).iter().all(|x| x.pod_topology_spread == 0));
    }

    #[test]
    fn spreading_without_labels_scores_only_present_keys() {
        // No hostname or zone labels anywhere: every raw score is 0 → all 100.
        let mut snap = snapshot(vec![node("a", 4000, 8 << 30), node("b", 4000, 8 << 30)]);
        place(&mut snap, "a", pod("x").owner("ReplicaSet", "rs-1"));
        let s = scores(&pod("p").owner("ReplicaSet", "rs-1"), &snap);
        assert!(s.iter().all(|x| x.pod_topology_spread == 100));
        // With hostname labels only: zone constraint absent; host weight ln(4) = 1.386.
        // raw a = 1.386 + 2 = 3.39 → 3, b = 2 → 100 * (3 + 2 - s) / 3 → a 66, b 100.
        let mut snap = snapshot(vec![
            node("a", 4000, 8 << 30).label(LABEL_HOSTNAME, "a"),
            node("b", 4000, 8 << 30).label(LABEL_HOSTNAME, "b"),
        ]);
        place(&mut snap, "a", pod("x").owner("ReplicaSet", "rs-1"));
        let s = scores(&pod("p").owner("ReplicaSet", "rs-1"), &snap);
        let got: Vec<i64> = s.iter().map(|x| x.pod_topology_spread).collect();
        assert_eq!(got, [66, 100]);
    }

    #[test]
    fn zone_counts_honor_the_pods_node_affinity() {
        // c1 (zone a, not feasible for the pod's selector) holds 5 pods; they are not counted
        // for zone a because c1 does not match the pod's nodeSelector.
        let mut snap = snapshot(vec![
            zoned("a1", "a").label("pool", "x"),
            zoned("b1", "b").label("pool", "x"),
            zoned("c1", "a"),
        ]);
        for i in 0..5 {
            place(
                &mut snap,
                "c1",
                pod(&format!("x{i}")).owner("ReplicaSet", "rs-1"),
            );
        }
        let p = pod("p").owner("ReplicaSet", "rs-1").selector("pool", "x");
        let prep = p.prepare();
        let feasible: Vec<(&NodeInfo, &NodeView)> = [0usize, 1]
            .iter()
            .map(|&i| (snap.node_at(i), snap.node_at(i).node.as_ref().unwrap()))
            .collect();
        let s = spread_scores(&prep, &snap, &feasible).unwrap();
        assert_eq!(s, [100, 100]);
        // Without the selector the 5 pods count for zone a.
        let p = pod("p").owner("ReplicaSet", "rs-1");
        let prep = p.prepare();
        let s = spread_scores(&prep, &snap, &feasible).unwrap();
        assert!(s[0] < s[1], "{s:?}");
    }

    #[test]
    fn select_host_takes_the_highest_total() {
        let mk = |node, total| NodeScore {
            node,
            resources_fit: 0,
            balanced_allocation: 0,
            taint_toleration: 0,
            node_affinity: 0,
            pod_topology_spread: 0,
            total,
        };
        let s = [mk(0, 10), mk(1, 30), mk(2, 20)];
        assert_eq!(select_host(&s, &mut Rng::new(1)), 1);
        let s = [mk(0, 30), mk(1, 30), mk(2, 20)];
        let mut rng = Rng::new(9);
        let picks: std::collections::BTreeSet<usize> =
            (0..50).map(|_| select_host(&s, &mut rng)).collect();
        assert_eq!(picks.into_iter().collect::<Vec<_>>(), [0, 1]);
    }
}
