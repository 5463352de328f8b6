//! Whole rollouts against a tiny model of the API server, the ReplicaSet controller and the
//! kubelets: plans are applied, pods follow their ReplicaSets, become available after a few
//! ticks, and linger a tick when deleted. The checks are the Deployment's promises at every
//! step (surge and availability bounds for RollingUpdate, no overlap for Recreate) and that the
//! rollout completes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::sync::{plan, Action, Input, PodMap, Requeue};
use super::testing::*;
use super::util::*;

#[derive(Debug, Clone)]
struct Pod {
    rs_uid: String,
    age: u32,
    /// Ticks it needs to become available; `None`: never.
    ready_after: Option<u32>,
    /// Ticks left before a deleted pod is gone.
    terminating: Option<u32>,
}

struct World {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    /// Ticks the pods created from now on need to become available; `None`: never.
    ready_after: Option<u32>,
    now: i64,
    next_uid: u32,
    events: Vec<String>,
}

impl World {
    fn new(d: Deployment, ready_after: Option<u32>) -> World {
        World {
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            ready_after,
            now: 0,
            next_uid: 0,
            events: Vec::new(),
        }
    }

    fn available(&self, p: &Pod) -> bool {
        p.terminating.is_none() && p.ready_after.is_some_and(|r| p.age >= r)
    }

    fn rs_uid(rs: &ReplicaSet) -> String {
        rs.metadata.uid.clone().unwrap_or_default()
    }

    fn pod_map(&self) -> PodMap {
        let mut m = PodMap::new();
        for p in &self.pods {
            m.entry(p.rs_uid.clone())
                .or_default()
                .push("Running".to_string());
        }
        m
    }

    /// One sync of the controller, applied as the API server would.
    fn sync(&mut self) -> Option<Requeue> {
        let p = plan(Input {
            deployment: self.d.clone(),
            replica_sets: self.rss.clone(),
            pods: self.pod_map(),
            now: at(self.now),
        })
        .expect("a plan");
        for a in p.actions {
            match a {
                Action::CreateReplicaSet(rs) => {
                    let mut rs = *rs;
                    assert!(
                        !self.rss.iter().any(|r| r.metadata.name == rs.metadata.name),
                        "created twice: {:?}",
                        rs.metadata.name
                    );
                    self.next_uid += 1;
                    rs.metadata.uid = Some(format!("rs-{}", self.next_uid));
                    rs.metadata.creation_timestamp = Some(Time(at(self.now)));
                    rs.metadata.generation = Some(1);
                    if rs_replicas(&rs) > 0 {
                        self.events.push(format!(
                            "Scaled up replica set {} from 0 to {}",
                            rs.metadata.name.as_deref().unwrap_or(""),
                            rs_replicas(&rs)
                        ));
                    }
                    self.rss.push(rs);
                }
                Action::UpdateReplicaSet { rs, scaled } => {
                    let cur = self
                        .rss
                        .iter_mut()
                        .find(|r| r.metadata.name == rs.metadata.name)
                        .expect("update of a known ReplicaSet");
                    if cur.spec != rs.spec {
                        cur.metadata.generation = Some(cur.metadata.generation.unwrap_or(0) + 1);
                    }
                    cur.spec = rs.spec.clone();
                    cur.metadata.annotations = rs.metadata.annotations.clone();
                    if let Some(sc) = scaled {
                        self.events
                            .push(sc.message(rs.metadata.name.as_deref().unwrap_or("")));
                    }
                }
                Action::DeleteReplicaSet { name } => {
                    let i = self
                        .rss
                        .iter()
                        .position(|r| r.metadata.name.as_deref() == Some(&name))
                        .expect("delete of a known ReplicaSet");
                    let uid = Self::rs_uid(&self.rss[i]);
                    assert!(
                        !self
                            .pods
                            .iter()
                            .any(|p| p.rs_uid == uid && p.terminating.is_none()),
                        "deleted with live pods"
                    );
                    // The garbage collector takes the terminating ones.
                    self.pods.retain(|p| p.rs_uid != uid);
                    self.rss.remove(i);
                }
                Action::UpdateStatus(d) => {
                    self.d.status = d.status.clone();
                    self.d.metadata.annotations = d.metadata.annotations.clone();
                }
                Action::Event { message, .. } => self.events.push(message),
            }
        }
        p.requeue
    }

    /// The ReplicaSet controller: pods follow `spec.replicas`, not-ready pods deleted first.
    fn reconcile_pods(&mut self) {
        for rs in &self.rss {
            let uid = Self::rs_uid(rs);
            let want = usize::try_from(rs_replicas(rs)).unwrap_or(0);
            let mut live: Vec<usize> = (0..self.pods.len())
                .filter(|&i| self.pods[i].rs_uid == uid && self.pods[i].terminating.is_none())
                .collect();
            if live.len() < want {
                for _ in live.len()..want {
                    self.pods.push(Pod {
                        rs_uid: uid.clone(),
                        age: 0,
                        ready_after: self.ready_after,
                        terminating: None,
                    });
                }
            } else {
                // Unavailable first, then the youngest.
                live.sort_by_key(|&i| (self.available(&self.pods[i]), self.pods[i].age));
                for &i in live.iter().take(live.len() - want) {
                    self.pods[i].terminating = Some(1);
                }
            }
        }
    }

    /// Time passes: pods age, terminating ones go, statuses are reported.
    fn tick(&mut self) {
        self.now += 1;
        self.pods.retain(|p| p.terminating != Some(0));
        for p in &mut self.pods {
            p.age += 1;
            if let Some(t) = p.terminating.as_mut() {
                *t -= 1;
            }
        }
        for i in 0..self.rss.len() {
            let uid = Self::rs_uid(&self.rss[i]);
            let live: Vec<&Pod> = self
                .pods
                .iter()
                .filter(|p| p.rs_uid == uid && p.terminating.is_none())
                .collect();
            let available = live.iter().filter(|p| self.available(p)).count() as i32;
            let status = ReplicaSetStatus {
                replicas: live.len() as i32,
                ready_replicas: Some(available),
                available_replicas: Some(available),
                observed_generation: self.rss[i].metadata.generation,
                ..Default::default()
            };
            self.rss[i].status = Some(status);
        }
    }

    fn total_spec(&self) -> i32 {
        self.rss.iter().map(rs_replicas).sum()
    }

    fn available_pods(&self) -> i32 {
        self.pods.iter().filter(|p| self.available(p)).count() as i32
    }

    fn live_pods(&self) -> i32 {
        self.pods.iter().filter(|p| p.terminating.is_none()).count() as i32
    }

    fn complete(&self) -> bool {
        let Some(st) = self.d.status.as_ref() else {
            return false;
        };
        let replicas = deployment_replicas(&self.d);
        get_condition(Some(st), CONDITION_PROGRESSING)
            .is_some_and(|c| condition_reason(c) == reason::NEW_RS_AVAILABLE)
            && st.updated_replicas.unwrap_or(0) == replicas
            && st.replicas.unwrap_or(0) == replicas
            && st.available_replicas.unwrap_or(0) == replicas
    }

    fn set_image(&mut self, image: &str) {
        let spec = self.d.spec.as_mut().unwrap();
        spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(1) + 1);
    }

    fn rs_sizes(&self) -> BTreeMap<String, i32> {
        self.rss
            .iter()
            .map(|r| (r.metadata.name.clone().unwrap_or_default(), rs_replicas(r)))
            .collect()
    }

    /// Runs syncs and ticks until the rollout completes; `check` sees the world after the
    /// controller acted, after the pods followed, and after time passed.
    fn run_until_complete(&mut self, steps_max: usize, mut check: impl FnMut(&World)) -> usize {
        for step in 0..steps_max {
            self.sync();
            check(self);
            self.reconcile_pods();
            check(self);
            self.tick();
            check(self);
            if self.complete() {
                // One more sync settles the status (and cleans up); nothing may move after.
                self.sync();
                return step;
            }
        }
        panic!(
            "not complete after {steps_max} steps: {:?} {:?}",
            self.rs_sizes(),
            self.d.status
        );
    }
}

fn ten_replicas_25_percent() -> Deployment {
    deployment("web", 10, string("25%"), string("25%"))
}

#[test]
fn a_rolling_update_of_ten_stays_within_surge_and_availability_at_every_step() {
    let mut w = World::new(ten_replicas_25_percent(), Some(2));
    w.run_until_complete(50, |_| {});
    assert_eq!(w.rs_sizes().values().copied().collect::<Vec<_>>(), [10]);
    assert_eq!(annotations(&w.d.metadata)[REVISION_ANNOTATION], "1");

    // maxSurge 25% of 10 rounds up to 3, maxUnavailable rounds down to 2.
    let (max_total, min_available) = (13, 8);
    w.set_image("nginx:2");
    w.events.clear();
    let mut steps_seen = 0;
    w.run_until_complete(100, |w| {
        steps_seen += 1;
        assert!(
            w.total_spec() <= max_total,
            "spec total {} at {}: {:?}",
            w.total_spec(),
            w.now,
            w.rs_sizes()
        );
        assert!(
            w.live_pods() <= max_total,
            "pods {} at {}",
            w.live_pods(),
            w.now
        );
        assert!(
            w.available_pods() >= min_available,
            "available {} at {}: {:?}",
            w.available_pods(),
            w.now,
            w.rs_sizes()
        );
    });
    assert!(steps_seen > 6, "a real rollout takes several steps");
    let sizes = w.rs_sizes();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert_eq!(sizes.values().filter(|n| **n == 10).count(), 1);
    assert_eq!(sizes.values().filter(|n| **n == 0).count(), 1);
    assert_eq!(annotations(&w.d.metadata)[REVISION_ANNOTATION], "2");
    assert!(
        w.events[0].starts_with("Scaled up replica set web-")
            && w.events[0].ends_with(" from 0 to 3"),
        "{:?}",
        w.events
    );
    assert!(
        w.events
            .iter()
            .any(|e| e.starts_with("Scaled down replica set ") && e.ends_with(" from 10 to 8")),
        "{:?}",
        w.events
    );
    let avail = get_condition(w.d.status.as_ref(), CONDITION_AVAILABLE).unwrap();
    assert_eq!(avail.status, STATUS_TRUE);
}

#[test]
fn a_stuck_rolling_update_keeps_the_old_pods_and_times_out() {
    let mut w = World::new(ten_replicas_25_percent(), Some(2));
    w.run_until_complete(50, |_| {});
    w.ready_after = None; // the new image never becomes ready
    w.set_image("nginx:broken");
    let mut requeue = None;
    for _ in 0..30 {
        requeue = w.sync();
        w.reconcile_pods();
        w.tick();
        assert!(w.total_spec() <= 13);
        assert!(w.available_pods() >= 8, "available {}", w.available_pods());
    }
    // Surge used, 2 old pods taken down, nothing more moves.
    assert_eq!(w.total_spec(), 13);
    assert_eq!(w.available_pods(), 8);
    let c = get_condition(w.d.status.as_ref(), CONDITION_PROGRESSING).unwrap();
    assert_eq!(c.reason.as_deref(), Some(reason::REPLICA_SET_UPDATED));
    assert!(matches!(requeue, Some(Requeue::After(_))), "{requeue:?}");
    // The deadline passes.
    w.now += 600;
    w.sync();
    let c = get_condition(w.d.status.as_ref(), CONDITION_PROGRESSING).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        (STATUS_FALSE, Some(reason::TIMED_OUT))
    );
    let avail = get_condition(w.d.status.as_ref(), CONDITION_AVAILABLE).unwrap();
    assert_eq!(avail.status, STATUS_TRUE, "8 available is the minimum");

    // `rollout undo`: back to the old template; the old ReplicaSet becomes revision 3 and the
    // rollout completes with no new ReplicaSet.
    let names_before: Vec<String> = w.rs_sizes().into_keys().collect();
    w.ready_after = Some(2);
    w.set_image("nginx:1");
    w.run_until_complete(60, |w| {
        assert!(w.total_spec() <= 13);
        assert!(w.available_pods() >= 8);
    });
    assert_eq!(w.rs_sizes().into_keys().collect::<Vec<_>>(), names_before);
    let back = w
        .rss
        .iter()
        .find(|r| rs_replicas(r) == 10)
        .expect("the old ReplicaSet is back");
    assert_eq!(annotations(&back.metadata)[REVISION_ANNOTATION], "3");
    assert_eq!(
        annotations(&back.metadata)[REVISION_HISTORY_ANNOTATION],
        "1"
    );
    assert_eq!(annotations(&w.d.metadata)[REVISION_ANNOTATION], "3");
}

#[test]
fn scaling_in_the_middle_of_a_rollout_is_proportional() {
    let mut w = World::new(ten_replicas_25_percent(), Some(3));
    w.run_until_complete(50, |_| {});
    w.set_image("nginx:2");
    // One sync into the rollout: new at 3 (the surge), old at 8 (maxUnavailable).
    w.sync();
    w.reconcile_pods();
    w.tick();
    let before = w.rs_sizes();
    let mut sizes: Vec<i32> = before.values().copied().collect();
    sizes.sort();
    assert_eq!(sizes, [3, 8], "{before:?}");
    // kubectl scale --replicas=20: 25 - 11 = 14 more, shared by each ReplicaSet's share of the
    // 13 it was scaled for: old 8 * 25 / 13 = 15.4 -> +7, new 3 * 25 / 13 = 5.8 -> +3; the
    // 4 left over go to the largest (kube's leftover rule).
    w.d.spec.as_mut().unwrap().replicas = Some(20);
    w.d.metadata.generation = Some(w.d.metadata.generation.unwrap_or(0) + 1);
    w.events.clear();
    w.sync();
    let after = w.rs_sizes();
    for (name, n) in &before {
        let want = if *n == 8 { 19 } else { 6 };
        assert_eq!(after[name], want, "{name}: {after:?}");
    }
    assert!(
        w.events.iter().all(|e| e.starts_with("Scaled up ")),
        "{:?}",
        w.events
    );
    w.run_until_complete(100, |w| {
        assert!(w.total_spec() <= 25);
    });
    assert_eq!(w.rs_sizes().values().copied().max(), Some(20));
}

#[test]
fn recreate_never_runs_old_and_new_pods_together() {
    let mut d = deployment("db", 3, IntOrString::Int(0), IntOrString::Int(0));
    set_recreate(&mut d);
    let mut w = World::new(d, Some(2));
    w.run_until_complete(50, |_| {});
    let first = w.rss[0].clone();
    w.set_image("postgres:2");
    w.run_until_complete(50, |w| {
        let old_uid = World::rs_uid(&first);
        let old_pods = w.pods.iter().filter(|p| p.rs_uid == old_uid).count();
        let new_pods = w.pods.iter().filter(|p| p.rs_uid != old_uid).count();
        assert!(
            old_pods == 0 || new_pods == 0,
            "old {old_pods} and new {new_pods} at {}",
            w.now
        );
    });
    let mut sizes: Vec<i32> = w.rs_sizes().into_values().collect();
    sizes.sort();
    assert_eq!(sizes, [0, 3]);
}

#[test]
fn history_beyond_the_limit_is_deleted_after_rollouts() {
    let mut d = deployment("web", 2, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.as_mut().unwrap().revision_history_limit = Some(2);
    let mut w = World::new(d, Some(1));
    w.run_until_complete(50, |_| {});
    for v in 2..=6 {
        w.set_image(&format!("nginx:{v}"));
        w.run_until_complete(50, |_| {});
    }
    // The current ReplicaSet plus two old ones (the latest revisions) remain.
    let mut revisions: Vec<i64> = w
        .rss
        .iter()
        .map(|r| revision(&r.metadata).unwrap())
        .collect();
    revisions.sort();
    assert_eq!(revisions, [4, 5, 6]);
}
