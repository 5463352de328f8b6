//! The RollingUpdate rollout (kube's `rolling.go`): grow the new ReplicaSet within
//! `replicas + maxSurge` pods, shrink the old ones while at least `replicas - maxUnavailable`
//! pods stay available, unhealthy old replicas first. Pure.

use super::sync::Sim;
use super::util::*;
use crate::{Error, Result};

impl Sim {
    /// `rolloutRolling`.
    pub(super) fn rollout_rolling(&mut self) -> Result<()> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
        let Some(new) = new else {
            // Unreachable: asked to create, the simulation always has a new ReplicaSet.
            return Err(Error::Invalid("no new replica set".into()));
        };
        let all: Vec<usize> = old.iter().copied().chain([new]).collect();

        if self.reconcile_new_replica_set(&all, new)? {
            self.sync_rollout_status(&all, Some(new));
            return Ok(());
        }
        let active_old = self.active(&old);
        if self.reconcile_old_replica_sets(&all, &active_old, new) {
            self.sync_rollout_status(&all, Some(new));
            return Ok(());
        }
        if deployment_complete(&self.d, &self.current_status()) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(&all, Some(new));
        Ok(())
    }

    /// `reconcileNewReplicaSet`: scale the new ReplicaSet up as far as the surge allows (or down
    /// to `replicas` when above). True when it was scaled.
    pub(super) fn reconcile_new_replica_set(&mut self, all: &[usize], new: usize) -> Result<bool> {
        let replicas = self.replicas();
        let current = rs_replicas(&self.rss[new]);
        if current == replicas {
            return Ok(false);
        }
        if current > replicas {
            return Ok(self.scale_replica_set_and_record_event(new, replicas));
        }
        let count = new_rs_new_replicas(&self.d, all.iter().map(|&i| &self.rss[i]), &self.rss[new])
            .map_err(Error::Invalid)?;
        Ok(self.scale_replica_set_and_record_event(new, count))
    }

    /// `reconcileOldReplicaSets`: how far old pods may go is
    /// `all pods - minAvailable - unavailable new pods` (unavailable new pods must not let the
    /// old ones go further); unhealthy old replicas go first, then healthy ones while enough
    /// stay available. True when anything was scaled down.
    pub(super) fn reconcile_old_replica_sets(
        &mut self,
        all: &[usize],
        old: &[usize],
        new: usize,
    ) -> bool {
        if self.sum(old, rs_replicas) == 0 {
            return false;
        }
        let all_pods = self.sum(all, rs_replicas);
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(&self.rss[new]) - rs_available(&self.rss[new]);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut old = old.to_vec();
        // kube swallows these errors (an invalid scale request) and reports no scaling.
        let Some(cleaned) = self.cleanup_unhealthy_replicas(&mut old, max_scaled_down) else {
            return false;
        };
        let all: Vec<usize> = old.iter().copied().chain([new]).collect();
        let scaled = self.scale_down_old_replica_sets_for_rolling_update(&all, &mut old);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: scales old ReplicaSets down by their unavailable replicas,
    /// oldest first, at most `max_cleanup` in all; the ReplicaSet controller deletes
    /// not-ready pods first, so availability does not drop. `None` on a scale kube refuses
    /// (more available than desired: a stale status).
    pub(super) fn cleanup_unhealthy_replicas(
        &mut self,
        old: &mut [usize],
        max_cleanup: i32,
    ) -> Option<i32> {
        old.sort_by(|&a, &b| by_creation(&self.rss[a], &self.rss[b]));
        let mut total = 0;
        for &i in old.iter() {
            if total >= max_cleanup {
                break;
            }
            let replicas = rs_replicas(&self.rss[i]);
            let available = rs_available(&self.rss[i]);
            if replicas == 0 || replicas == available {
                continue;
            }
            let count = (max_cleanup - total).min(replicas - available);
            let new_count = replicas - count;
            if new_count > replicas {
                return None;
            }
            self.scale_replica_set_and_record_event(i, new_count);
            total += count;
        }
        Some(total)
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: scales old ReplicaSets down, oldest first, by
    /// the available pods beyond `replicas - maxUnavailable`.
    pub(super) fn scale_down_old_replica_sets_for_rolling_update(
        &mut self,
        all: &[usize],
        old: &mut [usize],
    ) -> i32 {
        let min_available = self.replicas() - max_unavailable(&self.d);
        let available = self.sum(all, rs_available);
        if available <= min_available {
            return 0;
        }
        old.sort_by(|&a, &b| by_creation(&self.rss[a], &self.rss[b]));
        let to_scale_down = available - min_available;
        let mut total = 0;
        for &i in old.iter() {
            if total >= to_scale_down {
                break;
            }
            let replicas = rs_replicas(&self.rss[i]);
            if replicas == 0 {
                continue;
            }
            let count = replicas.min(to_scale_down - total);
            self.scale_replica_set_and_record_event(i, replicas - count);
            total += count;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::super::sync::{plan, Action, Input, PodMap};
    use super::*;
    use crate::deployment::testing::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn sim(d: Deployment, rss: Vec<k8s_openapi::api::apps::v1::ReplicaSet>) -> Sim {
        Sim::new(Input {
            deployment: d,
            replica_sets: rss,
            pods: PodMap::new(),
            now: at(0),
        })
    }

    /// kube's TestDeploymentController_reconcileNewReplicaSet.
    #[test]
    fn reconcile_new_replica_set_follows_kubes_table() {
        // (deployment replicas, maxSurge, old replicas, new replicas, expected new replicas)
        let cases = [
            (10, 0, 10, 0, None),
            (10, 2, 10, 0, Some(2)),
            (10, 2, 5, 0, Some(7)),
            (10, 2, 10, 2, None),
            (10, 2, 2, 11, Some(10)),
        ];
        for (i, (replicas, surge, old, new, want)) in cases.into_iter().enumerate() {
            let d = deployment(
                "foo",
                replicas,
                IntOrString::Int(surge),
                IntOrString::Int(0),
            );
            let mut s = sim(d, vec![rs("foo-new", new, 1), rs("foo-old", old, 0)]);
            let scaled = s.reconcile_new_replica_set(&[0, 1], 0).unwrap();
            assert_eq!(scaled, want.is_some(), "case {i}");
            match want {
                Some(n) => {
                    assert_eq!(s.actions.len(), 1, "case {i}");
                    assert_eq!(rs_replicas(&s.rss[0]), n, "case {i}");
                }
                None => assert!(s.actions.is_empty(), "case {i}"),
            }
        }
    }

    /// kube's TestDeploymentController_reconcileOldReplicaSets.
    #[test]
    fn reconcile_old_replica_sets_follows_kubes_table() {
        // (replicas, maxUnavailable, old replicas, new replicas, old available, new available,
        //  expected old replicas or None for no scaling)
        let cases = [
            (10, 0, 10, 0, 10, 0, Some(9)),
            (10, 2, 10, 0, 10, 0, Some(8)),
            (10, 2, 10, 0, 8, 0, Some(8)),
            (10, 2, 10, 0, 9, 0, Some(8)),
            (10, 2, 8, 2, 8, 0, None),
        ];
        for (i, (replicas, unavailable, old, new, old_ready, new_ready, want)) in
            cases.into_iter().enumerate()
        {
            let d = deployment(
                "foo",
                replicas,
                IntOrString::Int(0),
                IntOrString::Int(unavailable),
            );
            let mut s = sim(
                d,
                vec![
                    with_available(rs("foo-old", old, 0), old_ready),
                    with_available(rs("foo-new", new, 1), new_ready),
                ],
            );
            let scaled = s.reconcile_old_replica_sets(&[0, 1], &[0], 1);
            assert_eq!(scaled, want.is_some(), "case {i}");
            if let Some(n) = want {
                assert_eq!(rs_replicas(&s.rss[0]), n, "case {i}");
            }
        }
    }

    /// kube's TestDeploymentController_cleanupUnhealthyReplicas.
    #[test]
    fn cleanup_unhealthy_replicas_follows_kubes_table() {
        // (old replicas, ready, max cleanup, expected cleaned)
        let cases = [(10, 8, 1, 1), (10, 8, 3, 2), (10, 8, 0, 0), (10, 10, 3, 0)];
        for (i, (old, ready, max, want)) in cases.into_iter().enumerate() {
            let d = deployment("foo", 10, IntOrString::Int(2), IntOrString::Int(2));
            let mut s = sim(d, vec![with_available(rs("foo-v2", old, 0), ready)]);
            assert_eq!(
                s.cleanup_unhealthy_replicas(&mut [0], max),
                Some(want),
                "case {i}"
            );
            assert_eq!(rs_replicas(&s.rss[0]), old - want, "case {i}");
        }
        // A stale status with more available than desired is refused, as kube does.
        let d = deployment("foo", 10, IntOrString::Int(2), IntOrString::Int(2));
        let mut s = sim(d, vec![with_available(rs("foo-v2", 2, 0), 3)]);
        assert_eq!(s.cleanup_unhealthy_replicas(&mut [0], 5), None);
    }

    /// kube's TestDeploymentController_scaleDownOldReplicaSetsForRollingUpdate.
    #[test]
    fn scale_down_old_replica_sets_follows_kubes_table() {
        // (replicas, maxUnavailable, ready, old replicas, expected old replicas)
        let cases = [
            (10, 0, 10, 10, Some(9)),
            (10, 2, 10, 10, Some(8)),
            (10, 2, 8, 10, None),
            (10, 2, 10, 0, None),
            (10, 2, 1, 10, None),
        ];
        for (i, (replicas, unavailable, ready, old, want)) in cases.into_iter().enumerate() {
            let d = deployment(
                "foo",
                replicas,
                IntOrString::Int(0),
                IntOrString::Int(unavailable),
            );
            let mut s = sim(d, vec![with_available(rs("foo-v2", old, 0), ready)]);
            let n = s.scale_down_old_replica_sets_for_rolling_update(&[0], &mut [0]);
            assert_eq!(n > 0, want.is_some(), "case {i}");
            if let Some(w) = want {
                assert_eq!(rs_replicas(&s.rss[0]), w, "case {i}");
                let Action::UpdateReplicaSet {
                    scaled: Some(sc), ..
                } = &s.actions[0]
                else {
                    panic!("case {i}: {:?}", s.actions)
                };
                assert_eq!(
                    sc.message("foo-v2"),
                    format!("Scaled down replica set foo-v2 from {old} to {w}")
                );
            }
        }
    }

    #[test]
    fn first_step_creates_the_new_replica_set_with_the_surge() {
        let mut d = deployment("foo", 10, string("25%"), string("25%"));
        let (_, old) = rollout_pair(&d);
        let old = scaled_to(with_status(old, 10, 10, 10), 10, 10, 13);
        d.metadata.generation = Some(2);
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: vec![old],
            pods: PodMap::new(),
            now: at(0),
        })
        .unwrap();
        let Action::CreateReplicaSet(rs) = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        let hash = rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL].clone();
        assert_eq!(
            rs.metadata.name.as_deref(),
            Some(format!("foo-{hash}").as_str())
        );
        assert_eq!(rs_replicas(rs), 3, "10 + ceil(2.5) - 10");
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL],
            hash
        );
        assert_eq!(
            spec.template
                .as_ref()
                .unwrap()
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap()[POD_TEMPLATE_HASH_LABEL],
            hash
        );
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("Deployment", Some(true), Some(true))
        );
        let ann = annotations(&rs.metadata);
        assert_eq!(ann[REVISION_ANNOTATION], "2");
        assert_eq!(ann[DESIRED_REPLICAS_ANNOTATION], "10");
        assert_eq!(ann[MAX_REPLICAS_ANNOTATION], "13");
        // Then the Deployment's revision and NewReplicaSetCreated.
        let Action::UpdateStatus(after) = &p.actions[1] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(annotations(&after.metadata)[REVISION_ANNOTATION], "2");
        let c = get_condition(after.status.as_ref(), CONDITION_PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(reason::NEW_REPLICA_SET));
        assert_eq!(
            c.message,
            Some(format!("Created new replica set \"foo-{hash}\""))
        );
        // In the same sync the old ReplicaSet gives up what maxUnavailable allows: 13 pods
        // minus 8 that must stay available minus 3 new ones not available yet.
        let scaled: Vec<String> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::UpdateReplicaSet {
                    rs,
                    scaled: Some(sc),
                } => Some(sc.message(rs.metadata.name.as_deref().unwrap())),
                _ => None,
            })
            .collect();
        assert_eq!(scaled, ["Scaled down replica set foo-old from 10 to 8"]);
    }

    #[test]
    fn undo_reuses_the_old_replica_set_with_the_next_revision() {
        // Revision 1 (template A, 0 replicas), revision 2 (template B, current, 3 replicas);
        // `kubectl rollout undo` patched the Deployment's template back to A.
        let d_b = deployment("foo", 3, IntOrString::Int(1), IntOrString::Int(0));
        let (rs_b, rs_a) = rollout_pair(&d_b);
        let rs_a = scaled_to(rs_a, 0, 3, 4);
        let rs_b = scaled_to(with_status(rs_b, 3, 3, 3), 3, 3, 4);
        let mut d_a = d_b.clone();
        d_a.spec.as_mut().unwrap().template = rs_template(&rs_a).unwrap().clone();
        d_a.spec
            .as_mut()
            .unwrap()
            .template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .remove(POD_TEMPLATE_HASH_LABEL);
        d_a.metadata.generation = Some(2);
        let p = plan(Input {
            deployment: d_a,
            replica_sets: vec![rs_b, rs_a],
            pods: PodMap::new(),
            now: at(0),
        })
        .unwrap();
        assert!(
            !p.actions
                .iter()
                .any(|a| matches!(a, Action::CreateReplicaSet(_))),
            "{:?}",
            p.actions
        );
        // First write: foo-old gets revision 3 and remembers 1.
        let Action::UpdateReplicaSet { rs, scaled: None } = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(rs.metadata.name.as_deref(), Some("foo-old"));
        assert_eq!(annotations(&rs.metadata)[REVISION_ANNOTATION], "3");
        assert_eq!(annotations(&rs.metadata)[REVISION_HISTORY_ANNOTATION], "1");
        // The Deployment takes revision 3 and notes it found its new ReplicaSet.
        let Action::UpdateStatus(d) = &p.actions[1] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(annotations(&d.metadata)[REVISION_ANNOTATION], "3");
        let c = get_condition(d.status.as_ref(), CONDITION_PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(reason::FOUND_NEW_RS));
        assert_eq!(
            c.message.as_deref(),
            Some("Found new replica set \"foo-old\"")
        );
        // Then it is scaled up within the surge: 3 + 1 - 3 = 1.
        let Action::UpdateReplicaSet {
            rs,
            scaled: Some(sc),
        } = &p.actions[2]
        else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(rs.metadata.name.as_deref(), Some("foo-old"));
        assert_eq!(
            sc.message("foo-old"),
            "Scaled up replica set foo-old from 0 to 1"
        );
    }

    #[test]
    fn a_new_rollout_during_a_rollout_starts_the_newest_at_zero_when_the_surge_is_used() {
        // kube's "roll over" example: 10 replicas, maxSurge 3, maxUnavailable 2; two old
        // ReplicaSets already at 13 pods. The new one starts at 0, old ones go down by 5.
        let d = deployment("foo", 10, IntOrString::Int(3), IntOrString::Int(2));
        let (_, older) = rollout_pair(&d);
        let older = scaled_to(with_status(older, 8, 8, 8), 8, 10, 13);
        let mut middle = rs_for(
            &d,
            template(&[("app", "foo")], "nginx:0.5"),
            "foo-mid",
            "2",
            5,
        );
        middle = scaled_to(with_status(middle, 5, 0, 0), 5, 10, 13);
        let p = plan(Input {
            deployment: d,
            replica_sets: vec![older, middle],
            pods: PodMap::new(),
            now: at(0),
        })
        .unwrap();
        let Action::CreateReplicaSet(new) = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(rs_replicas(new), 0);
        // 13 - 8 - 0 = 5 may go: the 5 unavailable of foo-mid first (cleanup), then none of
        // foo-old (8 available = minAvailable).
        let scaled: Vec<(String, i32)> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::UpdateReplicaSet {
                    rs,
                    scaled: Some(_),
                } => Some((rs.metadata.name.clone().unwrap(), rs_replicas(rs))),
                _ => None,
            })
            .collect();
        assert_eq!(scaled, [("foo-mid".to_string(), 0)]);
    }
}
