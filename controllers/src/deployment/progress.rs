//! The rollout's status and its Progressing condition (kube's `progress.go`): complete,
//! progressing, or timed out past `progressDeadlineSeconds`; ReplicaFailure copied from the
//! ReplicaSets; and when to look again for the deadline. Pure.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DeploymentCondition;

use super::sync::{quoted, statuses_equal, Requeue, Sim};
use super::util::*;

impl Sim {
    /// `syncRolloutStatus`.
    pub(super) fn sync_rollout_status(&mut self, all: &[usize], new: Option<usize>) {
        let mut status = self.calculate_status(all, new);
        let has_deadline = has_progress_deadline(&self.d);
        if !has_deadline {
            remove_condition(&mut status, CONDITION_PROGRESSING);
        }
        let current = get_condition(self.d.status.as_ref(), CONDITION_PROGRESSING).cloned();
        // A rollout already reported complete is not estimated again on a resync.
        let is_complete = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| condition_reason(c) == reason::NEW_RS_AVAILABLE);
        if has_deadline && !is_complete {
            let d_name = self.d.metadata.name.clone().unwrap_or_default();
            let subject = match new {
                Some(i) => format!("ReplicaSet {}", quoted(self.rs_name(i))),
                None => format!("Deployment {}", quoted(&d_name)),
            };
            if deployment_complete(&self.d, &status) {
                set_condition(
                    &mut status,
                    new_condition(
                        CONDITION_PROGRESSING,
                        STATUS_TRUE,
                        reason::NEW_RS_AVAILABLE,
                        format!("{subject} has successfully progressed."),
                        self.now,
                    ),
                );
            } else if deployment_progressing(&self.d, &status) {
                let mut condition = new_condition(
                    CONDITION_PROGRESSING,
                    STATUS_TRUE,
                    reason::REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                    self.now,
                );
                // Unlike other conditions, Progressing moves its lastUpdateTime on every sign
                // of progress even when the reason stays the same.
                if let Some(current) = &current {
                    if current.status == STATUS_TRUE {
                        condition.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, CONDITION_PROGRESSING);
                }
                set_condition(&mut status, condition);
            } else if deployment_timed_out(&self.d, &status, self.now) {
                set_condition(
                    &mut status,
                    new_condition(
                        CONDITION_PROGRESSING,
                        STATUS_FALSE,
                        reason::TIMED_OUT,
                        format!("{subject} has timed out progressing."),
                        self.now,
                    ),
                );
            }
        }
        match self.replica_failures(all, new).into_iter().next() {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, CONDITION_REPLICA_FAILURE),
        }
        if statuses_equal(self.d.status.as_ref(), &status) {
            self.requeue_stuck_deployment(&status);
            return;
        }
        self.d.status = Some(status);
        self.update_status();
    }

    /// `getReplicaFailures`: the new ReplicaSet's ReplicaFailure conditions, else any other's.
    fn replica_failures(&self, all: &[usize], new: Option<usize>) -> Vec<DeploymentCondition> {
        let of = |i: usize| -> Vec<DeploymentCondition> {
            self.rss[i]
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c.type_ == CONDITION_REPLICA_FAILURE)
                        .map(replica_set_to_deployment_condition)
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(n) = new {
            let from_new = of(n);
            if !from_new.is_empty() {
                return from_new;
            }
        }
        all.iter().flat_map(|&i| of(i)).collect()
    }

    /// `requeueStuckDeployment`: with nothing new to write, look again when the progress
    /// deadline passes (plus a second against timer skew), or right away (rate-limited) when
    /// that is less than a second off.
    fn requeue_stuck_deployment(
        &mut self,
        new_status: &k8s_openapi::api::apps::v1::DeploymentStatus,
    ) {
        let Some(current) = get_condition(self.d.status.as_ref(), CONDITION_PROGRESSING) else {
            return;
        };
        if !has_progress_deadline(&self.d) {
            return;
        }
        if deployment_complete(&self.d, new_status)
            || condition_reason(current) == reason::TIMED_OUT
        {
            return;
        }
        let deadline =
            chrono::Duration::seconds(i64::from(progress_deadline_seconds(&self.d).unwrap_or(0)));
        let after = last_update(current) + deadline - self.now;
        self.requeue = Some(match after.to_std() {
            Ok(after) if after >= Duration::from_secs(1) => {
                Requeue::After(after + Duration::from_secs(1))
            }
            _ => Requeue::RateLimited,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::sync::{plan, Action, Input, PodMap};
    use super::*;
    use crate::deployment::testing::*;
    use k8s_openapi::api::apps::v1::{
        Deployment, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn progressing(d: &Deployment) -> Option<DeploymentCondition> {
        get_condition(d.status.as_ref(), CONDITION_PROGRESSING).cloned()
    }

    fn last_status(actions: &[Action]) -> Option<Deployment> {
        actions.iter().rev().find_map(|a| match a {
            Action::UpdateStatus(d) => Some((**d).clone()),
            _ => None,
        })
    }

    /// A Deployment of 3 midway through a rollout: the new ReplicaSet has 2 of 3 available, the
    /// old one 1; Progressing last set at `since` with `reason_now`; the status otherwise
    /// settled (a sync at `since` has nothing more to write).
    fn midway(since: i64, reason_now: &str, status: &str) -> (Deployment, Vec<ReplicaSet>) {
        let mut d = deployment("foo", 3, IntOrString::Int(1), IntOrString::Int(0));
        let (new, old) = rollout_pair(&d);
        let new = scaled_to(with_status(new, 3, 2, 2), 3, 3, 4);
        let old = scaled_to(with_status(old, 1, 1, 1), 1, 3, 4);
        let mut st = DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(4),
            updated_replicas: Some(3),
            ready_replicas: Some(3),
            available_replicas: Some(3),
            unavailable_replicas: Some(1),
            ..Default::default()
        };
        set_condition(
            &mut st,
            new_condition(
                CONDITION_PROGRESSING,
                status,
                reason_now,
                "m".into(),
                at(since),
            ),
        );
        d.status = Some(st);
        let rss = vec![new, old];
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(since),
        })
        .unwrap();
        assert!(
            p.actions
                .iter()
                .all(|a| matches!(a, Action::UpdateStatus(_))),
            "{:?}",
            p.actions
        );
        (last_status(&p.actions).unwrap_or(d), rss)
    }

    #[test]
    fn a_stuck_rollout_is_looked_at_again_when_its_deadline_passes() {
        let (d, rss) = midway(0, reason::REPLICA_SET_UPDATED, STATUS_TRUE);
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(180),
        })
        .unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        // Updated at 0, deadline 600 s, now 180 s: 420 s left, plus one.
        assert_eq!(p.requeue, Some(Requeue::After(Duration::from_secs(421))));
        // At the deadline (less than a second left): now, rate-limited.
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(600),
        })
        .unwrap();
        assert_eq!(p.requeue, Some(Requeue::RateLimited));
        // Past it: ProgressDeadlineExceeded, False.
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(601),
        })
        .unwrap();
        let c = progressing(&last_status(&p.actions).unwrap()).unwrap();
        assert_eq!(c.status, STATUS_FALSE);
        assert_eq!(c.reason.as_deref(), Some(reason::TIMED_OUT));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"foo-new\" has timed out progressing.")
        );
        assert_eq!(c.last_transition_time, Some(Time(at(601))));
        // Once timed out, no more requeues.
        let mut timed_out = d.clone();
        timed_out.status = last_status(&p.actions).unwrap().status;
        let p = plan(Input {
            deployment: timed_out,
            replica_sets: rss,
            pods: PodMap::new(),
            now: at(700),
        })
        .unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.requeue, None);
    }

    #[test]
    fn progress_moves_the_update_time_and_keeps_the_transition_time() {
        let (d, mut rss) = midway(0, reason::REPLICA_SET_UPDATED, STATUS_TRUE);
        // One more new pod became available: progress at 300 s.
        rss[0] = with_status(rss[0].clone(), 3, 3, 3);
        let p = plan(Input {
            deployment: d,
            replica_sets: rss,
            pods: PodMap::new(),
            now: at(300),
        })
        .unwrap();
        let d = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::UpdateStatus(d) => Some(d),
                _ => None,
            })
            .find(|d| {
                progressing(d)
                    .is_some_and(|c| c.reason.as_deref() == Some(reason::REPLICA_SET_UPDATED))
            })
            .expect("a ReplicaSetUpdated status");
        let c = progressing(d).unwrap();
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"foo-new\" is progressing.")
        );
        assert_eq!(c.last_update_time, Some(Time(at(300))));
        assert_eq!(c.last_transition_time, Some(Time(at(0))));
    }

    #[test]
    fn a_complete_rollout_says_so_once() {
        let mut d = deployment("foo", 3, IntOrString::Int(1), IntOrString::Int(0));
        let (new, old) = rollout_pair(&d);
        let new = scaled_to(with_status(new, 3, 3, 3), 3, 3, 4);
        let old = scaled_to(old, 0, 3, 4);
        let mut st = DeploymentStatus::default();
        set_condition(
            &mut st,
            new_condition(
                CONDITION_PROGRESSING,
                STATUS_TRUE,
                reason::REPLICA_SET_UPDATED,
                "m".into(),
                at(0),
            ),
        );
        d.status = Some(st);
        let rss = vec![new, old];
        let p = plan(Input {
            deployment: d,
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(30),
        })
        .unwrap();
        let done = last_status(&p.actions).unwrap();
        let c = progressing(&done).unwrap();
        assert_eq!(c.reason.as_deref(), Some(reason::NEW_RS_AVAILABLE));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"foo-new\" has successfully progressed.")
        );
        let avail = get_condition(done.status.as_ref(), CONDITION_AVAILABLE).unwrap();
        assert_eq!(
            avail.reason.as_deref(),
            Some(reason::MINIMUM_REPLICAS_AVAILABLE)
        );
        // Resynced later: nothing to write, and no deadline to watch.
        let p = plan(Input {
            deployment: done,
            replica_sets: rss,
            pods: PodMap::new(),
            now: at(5000),
        })
        .unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.requeue, None);
    }

    #[test]
    fn pausing_and_resuming_set_unknown_progress_but_never_over_a_timeout() {
        let (mut d, rss) = midway(0, reason::REPLICA_SET_UPDATED, STATUS_TRUE);
        d.spec.as_mut().unwrap().paused = Some(true);
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(10),
        })
        .unwrap();
        let Some(Action::UpdateStatus(paused)) = p.actions.first() else {
            panic!("{:?}", p.actions)
        };
        let c = progressing(paused).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            (STATUS_UNKNOWN, Some(reason::PAUSED))
        );
        assert_eq!(c.message.as_deref(), Some("Deployment is paused"));
        // Paused: the rollout does not move (no ReplicaSet is scaled).
        assert!(
            !p.actions.iter().any(|a| matches!(
                a,
                Action::UpdateReplicaSet { .. } | Action::CreateReplicaSet(_)
            )),
            "{:?}",
            p.actions
        );
        // Paused for longer than the deadline, then resumed: resumed, not timed out.
        let mut resumed = (**paused).clone();
        resumed.spec.as_mut().unwrap().paused = Some(false);
        let p = plan(Input {
            deployment: resumed,
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(5000),
        })
        .unwrap();
        let Some(Action::UpdateStatus(first)) = p.actions.first() else {
            panic!("{:?}", p.actions)
        };
        let c = progressing(first).unwrap();
        assert_eq!(c.reason.as_deref(), Some(reason::RESUMED));
        assert_eq!(c.message.as_deref(), Some("Deployment is resumed"));
        assert!(p.actions.iter().all(|a| match a {
            Action::UpdateStatus(d) =>
                progressing(d).unwrap().reason.as_deref() != Some(reason::TIMED_OUT),
            _ => true,
        }));
        // A timed-out Deployment that is paused keeps its timeout.
        let (mut d, rss) = midway(0, reason::TIMED_OUT, STATUS_FALSE);
        d.spec.as_mut().unwrap().paused = Some(true);
        let p = plan(Input {
            deployment: d,
            replica_sets: rss,
            pods: PodMap::new(),
            now: at(10),
        })
        .unwrap();
        assert!(
            p.actions.iter().all(|a| match a {
                Action::UpdateStatus(d) =>
                    progressing(d).unwrap().reason.as_deref() == Some(reason::TIMED_OUT),
                _ => true,
            }),
            "{:?}",
            p.actions
        );
    }

    #[test]
    fn replica_failure_is_copied_from_the_replica_sets_and_cleared() {
        let (d, mut rss) = midway(0, reason::REPLICA_SET_UPDATED, STATUS_TRUE);
        rss[1].status.as_mut().unwrap().conditions = Some(vec![ReplicaSetCondition {
            type_: CONDITION_REPLICA_FAILURE.into(),
            status: STATUS_TRUE.into(),
            reason: Some("FailedCreate".into()),
            message: Some("quota".into()),
            last_transition_time: Some(Time(at(5))),
        }]);
        let p = plan(Input {
            deployment: d,
            replica_sets: rss.clone(),
            pods: PodMap::new(),
            now: at(10),
        })
        .unwrap();
        let with = last_status(&p.actions).unwrap();
        let c = get_condition(with.status.as_ref(), CONDITION_REPLICA_FAILURE).unwrap();
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(c.last_update_time, Some(Time(at(5))));
        rss[1].status.as_mut().unwrap().conditions = None;
        let p = plan(Input {
            deployment: with,
            replica_sets: rss,
            pods: PodMap::new(),
            now: at(20),
        })
        .unwrap();
        let without = last_status(&p.actions).unwrap();
        assert!(get_condition(without.status.as_ref(), CONDITION_REPLICA_FAILURE).is_none());
    }
}
