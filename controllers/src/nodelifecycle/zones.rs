//! Zone-aware rate limiting of NoExecute taints (kube's `handleDisruption`, `ComputeZoneState`,
//! `ReducedQPSFunc`/`HealthyQPSFunc` and the `RateLimitedTimedQueue` of
//! `nodelifecycle/scheduler`). Nodes are grouped by zone; a zone whose nodes are all not
//! Ready is in FullDisruption, one where at least `--unhealthy-zone-threshold` of them (and
//! more than two) are not Ready in PartialDisruption, otherwise Normal. Taints are added at
//! `--node-eviction-rate` per zone in Normal and FullDisruption zones; in PartialDisruption at
//! `--secondary-node-eviction-rate` when the zone is larger than
//! `--large-cluster-size-threshold`, else not at all; and when every zone is fully disrupted
//! (the control plane has most likely lost the nodes, not the nodes died) no taint is added
//! and the existing ones are removed. No I/O; time is `tokio::time::Instant`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use tokio::time::Instant;

/// kube's `nodetopology.GetZoneKey`: region and zone labels (GA, then beta), `""` without both.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |ga: &str, beta: &str| {
        labels
            .and_then(|l| l.get(ga).or_else(|| l.get(beta)))
            .cloned()
            .unwrap_or_default()
    };
    let region = get(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = get(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

/// A node labelled so is left out of zone health (`node.kubernetes.io/exclude-disruption`).
pub fn excluded_from_disruption(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key("node.kubernetes.io/exclude-disruption"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Initial,
    Normal,
    PartialDisruption,
    FullDisruption,
}

impl ZoneState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ZoneState::Initial => "Initial",
            ZoneState::Normal => "Normal",
            ZoneState::PartialDisruption => "PartialDisruption",
            ZoneState::FullDisruption => "FullDisruption",
        }
    }
}

/// Rates and thresholds (the four flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub eviction_qps: f64,
    pub secondary_eviction_qps: f64,
    pub large_cluster_threshold: usize,
    pub unhealthy_zone_threshold: f64,
}

/// kube's `ComputeZoneState`: (not-ready nodes, state) from each node's Ready status.
pub fn compute_zone_state(ready: &[bool], unhealthy_threshold: f64) -> (usize, ZoneState) {
    let ready_nodes = ready.iter().filter(|r| **r).count();
    let not_ready = ready.len() - ready_nodes;
    let state = if ready_nodes == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && (not_ready as f64) / (ready.len() as f64) >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (not_ready, state)
}

/// The taint rate of a zone in `state` with `size` nodes (`setLimiterInZone`).
pub fn zone_qps(rates: &Rates, state: ZoneState, size: usize) -> f64 {
    match state {
        ZoneState::Normal | ZoneState::FullDisruption | ZoneState::Initial => rates.eviction_qps,
        ZoneState::PartialDisruption if size > rates.large_cluster_threshold => {
            rates.secondary_eviction_qps
        }
        ZoneState::PartialDisruption => 0.0,
    }
}

/// What `handle_disruption` asks of the caller.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DisruptionActions {
    /// New taint rates, per zone.
    pub limiters: Vec<(String, f64)>,
    /// Every zone just became fully disrupted: remove the NoExecute taints of every node.
    pub mark_all_reachable: bool,
    /// Some zone just left full disruption: every node's probe time starts again now.
    pub reset_probes: bool,
    /// Zones whose state changed (for logs and Events).
    pub changed: Vec<(String, ZoneState)>,
}

/// kube's `handleDisruption`. `zones`: each zone's nodes' Ready statuses, this pass.
pub fn handle_disruption(
    states: &mut BTreeMap<String, ZoneState>,
    zones: &BTreeMap<String, Vec<bool>>,
    rates: &Rates,
) -> DisruptionActions {
    let mut out = DisruptionActions::default();
    let mut new_states = BTreeMap::new();
    let mut all_are_fully = true;
    for (zone, ready) in zones {
        let (_, s) = compute_zone_state(ready, rates.unhealthy_zone_threshold);
        if s != ZoneState::FullDisruption {
            all_are_fully = false;
        }
        new_states.insert(zone.clone(), s);
        states.entry(zone.clone()).or_insert(ZoneState::Initial);
    }
    // Zones without nodes any more are forgotten.
    states.retain(|z, _| zones.contains_key(z));
    let all_were_fully = states.values().all(|s| *s == ZoneState::FullDisruption);
    if all_are_fully && all_were_fully {
        return out;
    }
    if all_are_fully {
        out.mark_all_reachable = true;
        for (zone, s) in states.iter_mut() {
            out.limiters.push((zone.clone(), 0.0));
            *s = ZoneState::FullDisruption;
            out.changed.push((zone.clone(), *s));
        }
        return out;
    }
    if all_were_fully {
        out.reset_probes = true;
        for (zone, s) in states.iter_mut() {
            let new = new_states[zone];
            let size = zones[zone].len();
            out.limiters
                .push((zone.clone(), zone_qps(rates, new, size)));
            if *s != new {
                out.changed.push((zone.clone(), new));
            }
            *s = new;
        }
        return out;
    }
    for (zone, s) in states.iter_mut() {
        let new = new_states[zone];
        if *s == new {
            continue;
        }
        let size = zones[zone].len();
        out.limiters
            .push((zone.clone(), zone_qps(rates, new, size)));
        out.changed.push((zone.clone(), new));
        *s = new;
    }
    out
}

/// client-go's token bucket (`NewTokenBucketRateLimiter(qps, burst)`), on tokio's clock. A
/// rate of 0 never accepts (kube's `NewFakeNeverRateLimiter`).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

/// kube's `EvictionRateLimiterBurst`.
pub const EVICTION_BURST: f64 = 1.0;

impl TokenBucket {
    /// A full bucket.
    pub fn new(qps: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            qps,
            burst,
            tokens: if qps > 0.0 { burst } else { 0.0 },
            last: now,
        }
    }

    pub fn qps(&self) -> f64 {
        self.qps
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.qps).min(self.burst);
        self.last = now;
    }

    /// Takes a token if one is there.
    pub fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// kube's `SwapLimiter`: a new rate; a bucket that was empty leaves the new one empty too.
    pub fn swap(&mut self, qps: f64, now: Instant) {
        if self.qps == qps {
            return;
        }
        let was_waiting = !self.try_accept(now);
        let mut new = TokenBucket::new(qps, self.burst, now);
        if qps > 0.0 && was_waiting {
            new.try_accept(now);
        }
        *self = new;
    }
}

/// One node waiting for its NoExecute taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedValue {
    pub node: String,
    pub uid: String,
    pub process_at: Instant,
}

/// kube's `RateLimitedTimedQueue`: unique node names, each handed out when due and when the
/// rate limiter allows. A name handed out and done stays in the set (`RemoveFromQueue`) so it
/// is not queued again until [`remove`](Self::remove) (the node became reachable).
///
/// Bound: one entry per node name.
#[derive(Debug)]
pub struct TaintQueue {
    queue: BTreeSet<(Instant, u64, String)>,
    entries: HashMap<String, (Instant, u64, String)>,
    /// Names added and not removed (queued or done).
    set: BTreeSet<String>,
    seq: u64,
    pub limiter: TokenBucket,
}

impl TaintQueue {
    pub fn new(qps: f64, now: Instant) -> TaintQueue {
        TaintQueue {
            queue: BTreeSet::new(),
            entries: HashMap::new(),
            set: BTreeSet::new(),
            seq: 0,
            limiter: TokenBucket::new(qps, EVICTION_BURST, now),
        }
    }

    /// Queues `node` to be processed now; false when it is already in the set.
    pub fn add(&mut self, node: &str, uid: &str, now: Instant) -> bool {
        if !self.set.insert(node.to_string()) {
            return false;
        }
        self.push(node, uid, now);
        true
    }

    fn push(&mut self, node: &str, uid: &str, at: Instant) {
        self.seq += 1;
        let k = (at, self.seq, node.to_string());
        self.queue.insert(k.clone());
        self.entries
            .insert(node.to_string(), (at, self.seq, uid.to_string()));
    }

    fn unqueue(&mut self, node: &str) {
        if let Some((at, seq, _)) = self.entries.remove(node) {
            self.queue.remove(&(at, seq, node.to_string()));
        }
    }

    /// Forgets `node` entirely; true when it was in the set.
    pub fn remove(&mut self, node: &str) -> bool {
        self.unqueue(node);
        self.set.remove(node)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The next node to process (kube's `Try` loop body): none when the queue is empty, the
    /// limiter refuses (a token is spent even if the head is not yet due, as kube's), or the
    /// head is not due. The caller reports back with [`done`](Self::done) or
    /// [`retry`](Self::retry).
    pub fn next(&mut self, now: Instant) -> Option<TimedValue> {
        let (at, _, node) = self.queue.first()?.clone();
        if !self.limiter.try_accept(now) {
            return None;
        }
        if now < at {
            return None;
        }
        let (_, _, uid) = self.entries.get(&node).cloned()?;
        self.unqueue(&node);
        Some(TimedValue {
            node,
            uid,
            process_at: at,
        })
    }

    /// Processed: out of the queue, kept in the set.
    pub fn done(&mut self, _v: &TimedValue) {}

    /// Not processed: back in the queue after `wait` (plus kube's one nanosecond).
    pub fn retry(&mut self, v: &TimedValue, wait: Duration, now: Instant) {
        if self.set.contains(&v.node) {
            self.push(&v.node, &v.uid, now + wait + Duration::from_nanos(1));
        }
    }
}

/// How often the tainting pass runs (kube's `NodeEvictionPeriod`).
pub const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodelifecycle::taints::testing::{node, with_labels};

    const RATES: Rates = Rates {
        eviction_qps: 0.1,
        secondary_eviction_qps: 0.01,
        large_cluster_threshold: 50,
        unhealthy_zone_threshold: 0.55,
    };

    #[test]
    fn zone_keys_are_region_and_zone() {
        assert_eq!(zone_key(&node("a")), "");
        let n = with_labels(
            node("a"),
            &[
                ("topology.kubernetes.io/region", "r1"),
                ("failure-domain.beta.kubernetes.io/zone", "z1"),
            ],
        );
        assert_eq!(zone_key(&n), "r1:\x00:z1");
        assert!(!excluded_from_disruption(&n));
        let x = with_labels(node("b"), &[("node.kubernetes.io/exclude-disruption", "")]);
        assert!(excluded_from_disruption(&x));
    }

    #[test]
    fn zone_states_as_kube_computes_them() {
        // (ready statuses, not ready count, state) — kube's ComputeZoneState.
        let cases: &[(&[bool], usize, ZoneState)] = &[
            (&[true, true, true], 0, ZoneState::Normal),
            (&[true, true, false], 1, ZoneState::Normal),
            (&[false, false, true], 2, ZoneState::Normal), // two is not more than two
            (
                &[false, false, false, true],
                3,
                ZoneState::PartialDisruption,
            ),
            (
                &[false, false, false, true, true, true],
                3,
                ZoneState::Normal,
            ), // 0.5 < 0.55
            (&[false], 1, ZoneState::FullDisruption),
            (&[false, false, false], 3, ZoneState::FullDisruption),
            (&[], 0, ZoneState::Normal),
        ];
        for (ready, n, state) in cases {
            assert_eq!(compute_zone_state(ready, 0.55), (*n, *state), "{ready:?}");
        }
    }

    #[test]
    fn rates_per_state_and_size() {
        assert_eq!(zone_qps(&RATES, ZoneState::Normal, 3), 0.1);
        assert_eq!(zone_qps(&RATES, ZoneState::FullDisruption, 3), 0.1);
        assert_eq!(zone_qps(&RATES, ZoneState::PartialDisruption, 50), 0.0);
        assert_eq!(zone_qps(&RATES, ZoneState::PartialDisruption, 51), 0.01);
    }

    fn zones(v: &[(&str, &[bool])]) -> BTreeMap<String, Vec<bool>> {
        v.iter().map(|(z, r)| (z.to_string(), r.to_vec())).collect()
    }

    #[test]
    fn disruption_transitions() {
        let mut states = BTreeMap::new();
        // First pass: every zone leaves Initial.
        let a = handle_disruption(
            &mut states,
            &zones(&[("a", &[true, true]), ("b", &[true])]),
            &RATES,
        );
        assert_eq!(a.limiters, [("a".to_string(), 0.1), ("b".to_string(), 0.1)]);
        assert!(!a.mark_all_reachable && !a.reset_probes);
        // Zone b loses its only node: FullDisruption there, normal rate (not all zones).
        let a = handle_disruption(
            &mut states,
            &zones(&[("a", &[true, true]), ("b", &[false])]),
            &RATES,
        );
        assert_eq!(a.changed, [("b".to_string(), ZoneState::FullDisruption)]);
        assert_eq!(a.limiters, [("b".to_string(), 0.1)]);
        // Every zone down: stop tainting, untaint everyone.
        let a = handle_disruption(
            &mut states,
            &zones(&[("a", &[false, false]), ("b", &[false])]),
            &RATES,
        );
        assert!(a.mark_all_reachable);
        assert_eq!(a.limiters, [("a".to_string(), 0.0), ("b".to_string(), 0.0)]);
        // Still all down: nothing more.
        let a = handle_disruption(
            &mut states,
            &zones(&[("a", &[false, false]), ("b", &[false])]),
            &RATES,
        );
        assert_eq!(a, DisruptionActions::default());
        // One node back: probe times restart, rates by state.
        let a = handle_disruption(
            &mut states,
            &zones(&[("a", &[true, false]), ("b", &[false])]),
            &RATES,
        );
        assert!(a.reset_probes);
        assert_eq!(a.limiters, [("a".to_string(), 0.1), ("b".to_string(), 0.1)]);
        assert_eq!(states["a"], ZoneState::Normal);
        // A partially disrupted small zone stops tainting.
        let a = handle_disruption(
            &mut states,
            &zones(&[("a", &[false, false, false, true]), ("b", &[true])]),
            &RATES,
        );
        assert!(a.limiters.contains(&("a".to_string(), 0.0)));
        assert_eq!(states["a"], ZoneState::PartialDisruption);
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.1, 1.0, t0);
        assert!(b.try_accept(t0), "starts full");
        assert!(!b.try_accept(t0));
        assert!(!b.try_accept(t0 + Duration::from_millis(9_999)));
        assert!(b.try_accept(t0 + Duration::from_secs(10)));
        let mut never = TokenBucket::new(0.0, 1.0, t0);
        assert!(!never.try_accept(t0 + Duration::from_secs(1000)));
        // Swapping while empty keeps the new bucket empty; while full, full.
        b.swap(1.0, t0 + Duration::from_secs(10));
        assert!(!b.try_accept(t0 + Duration::from_secs(10)));
        assert!(b.try_accept(t0 + Duration::from_secs(11)));
        let mut full = TokenBucket::new(0.1, 1.0, t0);
        full.swap(0.5, t0);
        assert!(
            full.try_accept(t0),
            "the old token was spent; the new one starts full"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_taint_queue_is_unique_rate_limited_and_retried() {
        let t0 = Instant::now();
        let mut q = TaintQueue::new(0.1, t0);
        assert!(q.add("n1", "u1", t0));
        assert!(!q.add("n1", "u1", t0), "unique");
        assert!(q.add("n2", "u2", t0));
        let v = q.next(t0).expect("first token");
        assert_eq!(v.node, "n1");
        q.done(&v);
        assert!(q.next(t0).is_none(), "one taint per 10 s");
        assert!(!q.add("n1", "u1", t0), "done but still in the set");
        let v = q.next(t0 + Duration::from_secs(10)).expect("refilled");
        assert_eq!(v.node, "n2");
        // A failure comes back after its wait.
        q.retry(&v, Duration::from_millis(50), t0 + Duration::from_secs(10));
        assert!(q.next(t0 + Duration::from_secs(20)).is_some());
        assert!(q.remove("n1"));
        assert!(q.add("n1", "u1", t0), "removed: can come again");
        assert!(q.remove("n1"));
        assert!(!q.remove("n1"));
        assert!(q.is_empty());
    }
}
