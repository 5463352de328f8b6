//! The Recreate rollout (kube's `recreate.go`): scale every old ReplicaSet to zero, wait until
//! none of their pods runs, then create or scale up the new ReplicaSet. Pure.

use super::sync::Sim;
use super::util::*;
use crate::Result;

impl Sim {
    /// `rolloutRecreate`.
    pub(super) fn rollout_recreate(&mut self) -> Result<()> {
        // Not created yet, so that nothing is scaled up before the old pods are down.
        let (mut new, mut old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let mut all: Vec<usize> = old.iter().copied().chain(new).collect();
        let active_old = self.active(&old);

        if self.scale_down_old_replica_sets_for_recreate(&active_old) {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }
        if self.old_pods_running(new, &old) {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }
        if new.is_none() {
            (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
            all = old.iter().copied().chain(new).collect();
        }
        if let Some(n) = new {
            // scaleUpNewReplicaSetForRecreate
            let replicas = self.replicas();
            self.scale_replica_set_and_record_event(n, replicas);
        }
        if deployment_complete(&self.d, &self.current_status()) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(&all, new);
        Ok(())
    }

    /// `scaleDownOldReplicaSetsForRecreate`: every active old ReplicaSet to zero.
    fn scale_down_old_replica_sets_for_recreate(&mut self, old: &[usize]) -> bool {
        let mut scaled = false;
        for &i in old {
            if rs_replicas(&self.rss[i]) == 0 {
                continue;
            }
            scaled |= self.scale_replica_set_and_record_event(i, 0);
        }
        scaled
    }

    /// `oldPodsRunning`: an old ReplicaSet still counts pods, or a pod of any ReplicaSet but the
    /// new one is in a phase other than Succeeded or Failed (Unknown counts as running).
    pub(super) fn old_pods_running(&self, new: Option<usize>, old: &[usize]) -> bool {
        if self.sum(old, rs_status_replicas) > 0 {
            return true;
        }
        let new_uid = new.and_then(|i| self.rss[i].metadata.uid.as_deref());
        self.pods
            .iter()
            .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
            .flat_map(|(_, phases)| phases)
            .any(|phase| phase != "Succeeded" && phase != "Failed")
    }
}

#[cfg(test)]
mod tests {
    use super::super::sync::{plan, Action, Input, PodMap};
    use super::*;
    use crate::deployment::testing::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn old_pods_must_be_gone_before_the_new_replica_set_exists() {
        let mut d = deployment("foo", 3, IntOrString::Int(0), IntOrString::Int(0));
        set_recreate(&mut d);
        let (_, old) = rollout_pair(&d);
        let old_uid = old.metadata.uid.clone().unwrap();
        let old = scaled_to(with_status(old, 3, 3, 3), 3, 3, 3);

        // 1. The old ReplicaSet goes to zero; nothing is created.
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: vec![old.clone()],
            pods: PodMap::from([(old_uid.clone(), vec!["Running".into(); 3])]),
            now: at(0),
        })
        .unwrap();
        let Action::UpdateReplicaSet {
            rs,
            scaled: Some(sc),
        } = &p.actions[0]
        else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(
            (rs_replicas(rs), sc.message("foo-old").as_str()),
            (0, "Scaled down replica set foo-old from 3 to 0")
        );
        assert!(!p
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_))));

        // 2. Scaled to zero, its status says no pods, but two are still terminating: wait.
        let old = with_status(scaled_to(old, 0, 3, 3), 0, 0, 0);
        let p = plan(Input {
            deployment: d.clone(),
            replica_sets: vec![old.clone()],
            pods: PodMap::from([(old_uid.clone(), vec!["Running".into(), "Pending".into()])]),
            now: at(5),
        })
        .unwrap();
        assert!(
            !p.actions.iter().any(|a| matches!(
                a,
                Action::CreateReplicaSet(_) | Action::UpdateReplicaSet { .. }
            )),
            "{:?}",
            p.actions
        );

        // 3. Only finished pods are left: the new ReplicaSet is created with every replica.
        let p = plan(Input {
            deployment: d,
            replica_sets: vec![old],
            pods: PodMap::from([(old_uid, vec!["Succeeded".into(), "Failed".into()])]),
            now: at(10),
        })
        .unwrap();
        let Some(Action::CreateReplicaSet(new)) = p.actions.first() else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(rs_replicas(new), 3);
        assert_eq!(
            annotations(&new.metadata)[MAX_REPLICAS_ANNOTATION],
            "3",
            "no surge for Recreate"
        );
    }

    #[test]
    fn pods_of_the_new_replica_set_do_not_block_it() {
        let mut d = deployment("foo", 2, IntOrString::Int(0), IntOrString::Int(0));
        set_recreate(&mut d);
        let (new, old) = rollout_pair(&d);
        let new_uid = new.metadata.uid.clone().unwrap();
        let new = scaled_to(new, 1, 2, 2);
        let old = scaled_to(old, 0, 2, 2);
        let p = plan(Input {
            deployment: d,
            replica_sets: vec![new, old],
            pods: PodMap::from([(new_uid, vec!["Running".into()])]),
            now: at(0),
        })
        .unwrap();
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
        assert_eq!(scaled, ["Scaled up replica set foo-new from 1 to 2"]);
    }
}
