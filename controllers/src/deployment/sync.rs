//! One Deployment sync as a plan: kube's `syncDeployment` (`deployment_controller.go`) and
//! `sync.go` (new ReplicaSet and revisions, proportional scaling, history cleanup, status),
//! with the rollouts in `rolling.rs` and `recreate.rs` and the Progressing condition in
//! `progress.rs`. Pure: no I/O, the clock is an input.
//!
//! The port keeps kube's control flow. Where kube writes (create, update, delete a ReplicaSet,
//! update the Deployment's status), the [`Sim`] appends an [`Action`] and applies the write to
//! its own copies, assuming it succeeds, so that later steps see what kube's would. The
//! executor (`mod.rs`) performs the actions in order and stops at the first failure, which is
//! where kube's sync returns its error.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::util::*;
use crate::{Error, Result};

/// The phases of the pods of each ReplicaSet, by ReplicaSet uid (kube's `podMap`); only the
/// Recreate rollout reads it.
pub type PodMap = BTreeMap<String, Vec<String>>;

/// What one sync looks at.
#[derive(Debug, Clone)]
pub struct Input {
    pub deployment: Deployment,
    /// The ReplicaSets the Deployment controls (after adoption and release).
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: PodMap,
    pub now: DateTime<Utc>,
}

/// `Normal` or `Warning`, as Events are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// A scale of a ReplicaSet, for its `ScalingReplicaSet` Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaled {
    /// "up" or "down": in proportional scaling, the direction of the whole Deployment's change,
    /// as kube words it.
    pub operation: &'static str,
    pub from: i32,
    pub to: i32,
}

impl Scaled {
    /// kube 1.31+'s wording (kubernetes/kubernetes#125118 put `from` before `to`).
    pub fn message(&self, rs_name: &str) -> String {
        format!(
            "Scaled {} replica set {} from {} to {}",
            self.operation, rs_name, self.from, self.to
        )
    }
}

/// The Event reason of every scale.
pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";

/// One write of the plan, in the order kube makes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the new ReplicaSet. On success with replicas > 0: "Scaled up replica set <name>
    /// from 0 to <n>". On AlreadyExists the executor checks for a hash collision.
    CreateReplicaSet(Box<ReplicaSet>),
    /// Replace a ReplicaSet (spec.replicas, minReadySeconds, annotations), with the Event to
    /// record when the write succeeds.
    UpdateReplicaSet {
        rs: Box<ReplicaSet>,
        scaled: Option<Scaled>,
    },
    /// Delete an old ReplicaSet beyond the revision history limit.
    DeleteReplicaSet { name: String },
    /// Write `deployments/<name>/status` with this object (its status and annotations).
    UpdateStatus(Box<Deployment>),
    Event {
        kind: EventKind,
        reason: &'static str,
        message: String,
    },
}

/// When to sync the Deployment again regardless of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// kube's `enqueueAfter` (the progress deadline check).
    After(Duration),
    /// kube's `enqueueRateLimited` (the deadline is less than a second away).
    RateLimited,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue: Option<Requeue>,
}

/// Plans one sync of `input.deployment`.
pub fn plan(input: Input) -> Result<Plan> {
    let mut sim = Sim::new(input);
    sim.sync_deployment()?;
    Ok(Plan {
        actions: sim.actions,
        requeue: sim.requeue,
    })
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

fn nonzero(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// Go's `%q` of a Kubernetes name (names are plain ASCII, so quoting is enough).
pub fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

pub fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// kube's sync, run against copies of the Deployment and its ReplicaSets.
pub(super) struct Sim {
    pub(super) d: Deployment,
    pub(super) rss: Vec<ReplicaSet>,
    pub(super) pods: PodMap,
    pub(super) now: DateTime<Utc>,
    pub(super) actions: Vec<Action>,
    pub(super) requeue: Option<Requeue>,
}

impl Sim {
    pub(super) fn new(input: Input) -> Sim {
        // Whole seconds: metav1.Time is written with second precision, so a condition read
        // back compares equal to the one computed.
        let now = DateTime::from_timestamp(input.now.timestamp(), 0).unwrap_or(input.now);
        Sim {
            d: input.deployment,
            rss: input.replica_sets,
            pods: input.pods,
            now,
            actions: Vec::new(),
            requeue: None,
        }
    }

    pub(super) fn replicas(&self) -> i32 {
        deployment_replicas(&self.d)
    }

    pub(super) fn status_mut(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    pub(super) fn current_status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    pub(super) fn update_status(&mut self) {
        self.actions
            .push(Action::UpdateStatus(Box::new(self.d.clone())));
    }

    pub(super) fn event(&mut self, kind: EventKind, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            kind,
            reason,
            message,
        });
    }

    pub(super) fn rs_name(&self, i: usize) -> &str {
        name_of(&self.rss[i].metadata)
    }

    /// `FilterActiveReplicaSets`: the ones with replicas.
    pub(super) fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|&i| rs_replicas(&self.rss[i]) > 0)
            .collect()
    }

    pub(super) fn sum(&self, idx: &[usize], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
        idx.iter().map(|&i| f(&self.rss[i])).sum()
    }

    /// `syncDeployment` after the lister lookups.
    pub(super) fn sync_deployment(&mut self) -> Result<()> {
        let Some(spec) = self.d.spec.as_ref() else {
            return Err(invalid("deployment has no spec"));
        };
        let selector = &spec.selector;
        let everything = selector
            .match_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty);
        if everything {
            self.event(
                EventKind::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let generation = self.d.metadata.generation.unwrap_or(0);
            if self.current_status().observed_generation.unwrap_or(0) < generation {
                self.status_mut().observed_generation = Some(generation);
                self.update_status();
            }
            return Ok(());
        }
        if is_rolling_update(&self.d) {
            // kube's validation refuses values that do not resolve; here they stop the sync.
            fenceposts(&self.d).map_err(invalid)?;
        }
        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only();
        }
        self.check_paused_conditions();
        if is_paused(&self.d) {
            return self.sync();
        }
        if self.is_scaling_event()? {
            return self.sync();
        }
        match strategy_type(&self.d) {
            STRATEGY_RECREATE => self.rollout_recreate(),
            STRATEGY_ROLLING_UPDATE => self.rollout_rolling(),
            other => Err(invalid(format!(
                "unexpected deployment strategy type: {other}"
            ))),
        }
    }

    /// `syncStatusOnly` (a Deployment being deleted).
    fn sync_status_only(&mut self) -> Result<()> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        self.sync_deployment_status(&all, new);
        Ok(())
    }

    /// `sync`: a scaling event or a paused Deployment: scale, no rollout.
    pub(super) fn sync(&mut self) -> Result<()> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        self.scale(new, &old);
        if is_paused(&self.d) {
            self.cleanup_deployment(&old);
        }
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        self.sync_deployment_status(&all, new);
        Ok(())
    }

    /// `checkPausedConditions`: Progressing goes Unknown with DeploymentPaused while paused and
    /// DeploymentResumed once resumed, so time spent paused never counts against the deadline.
    /// A timed-out Deployment keeps its condition.
    pub(super) fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let cond_reason = get_condition(self.d.status.as_ref(), CONDITION_PROGRESSING)
            .map(|c| condition_reason(c).to_string());
        if cond_reason.as_deref() == Some(reason::TIMED_OUT) {
            return;
        }
        let paused_cond_exists = cond_reason.as_deref() == Some(reason::PAUSED);
        let paused = is_paused(&self.d);
        let now = self.now;
        let condition = if paused && !paused_cond_exists {
            new_condition(
                CONDITION_PROGRESSING,
                STATUS_UNKNOWN,
                reason::PAUSED,
                "Deployment is paused".into(),
                now,
            )
        } else if !paused && paused_cond_exists {
            new_condition(
                CONDITION_PROGRESSING,
                STATUS_UNKNOWN,
                reason::RESUMED,
                "Deployment is resumed".into(),
                now,
            )
        } else {
            return;
        };
        set_condition(self.status_mut(), condition);
        self.update_status();
    }

    /// `isScalingEvent`: an active ReplicaSet was last scaled for another `spec.replicas`.
    fn is_scaling_event(&mut self) -> Result<bool> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        let replicas = self.replicas();
        Ok(self
            .active(&all)
            .into_iter()
            .filter_map(|i| desired_replicas_annotation(&self.rss[i]))
            .any(|desired| desired != replicas))
    }

    /// `getAllReplicaSetsAndSyncRevision`: (the new ReplicaSet, every old one).
    pub(super) fn get_all_replica_sets_and_sync_revision(
        &mut self,
        create_if_not_existed: bool,
    ) -> Result<(Option<usize>, Vec<usize>)> {
        let new = find_new_replica_set(&self.d, &self.rss);
        let old: Vec<usize> = (0..self.rss.len()).filter(|&i| Some(i) != new).collect();
        let new = self.get_new_replica_set(&old, create_if_not_existed)?;
        Ok((new, old))
    }

    /// `getNewReplicaSet`: finds the ReplicaSet whose template is the Deployment's and syncs its
    /// revision and annotations, or (when asked) creates it.
    fn get_new_replica_set(
        &mut self,
        old: &[usize],
        create_if_not_existed: bool,
    ) -> Result<Option<usize>> {
        let existing = find_new_replica_set(&self.d, &self.rss);
        let max_old_revision = max_revision(old.iter().map(|&i| &self.rss[i]));
        let new_revision = (max_old_revision + 1).to_string();
        let d_min_ready = deployment_min_ready_seconds(&self.d);

        if let Some(i) = existing {
            let mut copy = self.rss[i].clone();
            let annotations_updated = set_new_replica_set_annotations(
                &self.d,
                &mut copy,
                &new_revision,
                true,
                MAX_REVISION_HISTORY_CHARS,
            );
            let min_ready_needs_update = rs_min_ready_seconds(&copy) != d_min_ready;
            if annotations_updated || min_ready_needs_update {
                copy.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = nonzero(d_min_ready);
                self.rss[i] = copy.clone();
                self.actions.push(Action::UpdateReplicaSet {
                    rs: Box::new(copy),
                    scaled: None,
                });
                return Ok(Some(i));
            }
            // The revision the ReplicaSet carries (it may be above `new_revision` when old
            // ReplicaSets were deleted since).
            let rs_revision = annotations(&self.rss[i].metadata)
                .get(REVISION_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let mut needs_update = set_deployment_revision(&mut self.d, &rs_revision);
            if has_progress_deadline(&self.d)
                && get_condition(self.d.status.as_ref(), CONDITION_PROGRESSING).is_none()
            {
                let msg = format!("Found new replica set {}", quoted(self.rs_name(i)));
                let now = self.now;
                set_condition(
                    self.status_mut(),
                    new_condition(
                        CONDITION_PROGRESSING,
                        STATUS_TRUE,
                        reason::FOUND_NEW_RS,
                        msg,
                        now,
                    ),
                );
                needs_update = true;
            }
            if needs_update {
                self.update_status();
            }
            return Ok(Some(i));
        }

        if !create_if_not_existed {
            return Ok(None);
        }

        let rs = self.new_replica_set(old, &new_revision)?;
        let name = name_of(&rs.metadata).to_string();
        self.actions
            .push(Action::CreateReplicaSet(Box::new(rs.clone())));
        let mut created = rs;
        created.metadata.creation_timestamp = Some(Time(self.now));
        self.rss.push(created);
        let idx = self.rss.len() - 1;

        let mut needs_update = set_deployment_revision(&mut self.d, &new_revision);
        if has_progress_deadline(&self.d) {
            let msg = format!("Created new replica set {}", quoted(&name));
            let now = self.now;
            set_condition(
                self.status_mut(),
                new_condition(
                    CONDITION_PROGRESSING,
                    STATUS_TRUE,
                    reason::NEW_REPLICA_SET,
                    msg,
                    now,
                ),
            );
            needs_update = true;
        }
        if needs_update {
            self.update_status();
        }
        Ok(Some(idx))
    }

    /// The ReplicaSet `getNewReplicaSet` creates: `<deployment>-<hash>`, the hash label in its
    /// labels, selector and template, owned by the Deployment, sized by `NewRSNewReplicas`.
    fn new_replica_set(&self, old: &[usize], new_revision: &str) -> Result<ReplicaSet> {
        let spec = self
            .d
            .spec
            .as_ref()
            .ok_or_else(|| invalid("deployment has no spec"))?;
        let owner =
            controller_ref(&self.d).ok_or_else(|| invalid("deployment has no name or uid"))?;
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        let labels = template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let labels = labels.clone();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{}", owner.name, hash)),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![owner]),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: nonzero(deployment_min_ready_seconds(&self.d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let replicas =
            new_rs_new_replicas(&self.d, old.iter().map(|&i| &self.rss[i]).chain([&rs]), &rs)
                .map_err(invalid)?;
        set_rs_replicas(&mut rs, replicas);
        set_new_replica_set_annotations(
            &self.d,
            &mut rs,
            new_revision,
            false,
            MAX_REVISION_HISTORY_CHARS,
        );
        Ok(rs)
    }

    /// `scale`: scaling that is not a rollout step (a scaling event, or a paused Deployment).
    /// One active ReplicaSet takes the whole size; a saturated new one makes the old ones go;
    /// otherwise (RollingUpdate) the change is shared in proportion to each ReplicaSet's size,
    /// the rounding leftovers going to the first (largest; newest when scaling up, oldest when
    /// scaling down).
    pub(super) fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        let replicas = self.replicas();
        if let Some(i) = self.find_active_or_latest(new, old) {
            if rs_replicas(&self.rss[i]) != replicas {
                self.scale_replica_set_and_record_event(i, replicas);
            }
            return;
        }
        if new.is_some_and(|n| is_saturated(&self.d, &self.rss[n])) {
            for i in self.active(old) {
                self.scale_replica_set_and_record_event(i, 0);
            }
            return;
        }
        if !is_rolling_update(&self.d) {
            return;
        }
        let with_new: Vec<usize> = old.iter().copied().chain(new).collect();
        let mut all = self.active(&with_new);
        let all_replicas = self.sum(&all, rs_replicas);
        let allowed = if replicas > 0 {
            replicas + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - all_replicas;
        let operation = match to_add {
            n if n > 0 => {
                all.sort_by(|&a, &b| by_size_newer(&self.rss[a], &self.rss[b]));
                "up"
            }
            n if n < 0 => {
                all.sort_by(|&a, &b| by_size_older(&self.rss[a], &self.rss[b]));
                "down"
            }
            _ => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for &i in &all {
            let rs = &self.rss[i];
            if to_add != 0 {
                let p = get_proportion(rs, &self.d, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        if to_add != 0 {
            if let Some(first) = sizes.first_mut() {
                *first = (*first + to_add - added).max(0);
            }
        }
        for (&i, size) in all.iter().zip(sizes) {
            self.scale_replica_set(i, size, operation);
        }
    }

    /// `FindActiveOrLatest`: the only active ReplicaSet; the newest one when none is active;
    /// `None` when several are active.
    fn find_active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if new.is_none() && old.is_empty() {
            return None;
        }
        let mut old_sorted = old.to_vec();
        old_sorted.sort_by(|&a, &b| by_creation(&self.rss[b], &self.rss[a]));
        let with_new: Vec<usize> = old_sorted.iter().copied().chain(new).collect();
        let active = self.active(&with_new);
        match active.len() {
            0 => new.or_else(|| old_sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `scaleReplicaSetAndRecordEvent`; true when the ReplicaSet was scaled.
    pub(super) fn scale_replica_set_and_record_event(&mut self, i: usize, new_scale: i32) -> bool {
        let current = rs_replicas(&self.rss[i]);
        if current == new_scale {
            return false;
        }
        let operation = if current < new_scale { "up" } else { "down" };
        self.scale_replica_set(i, new_scale, operation)
    }

    /// `scaleReplicaSet`: writes the size and the replica annotations when either changed.
    pub(super) fn scale_replica_set(
        &mut self,
        i: usize,
        new_scale: i32,
        operation: &'static str,
    ) -> bool {
        let replicas = self.replicas();
        let max = replicas.saturating_add(max_surge(&self.d));
        let current = rs_replicas(&self.rss[i]);
        let size_needs_update = current != new_scale;
        let annotations_need_update = replicas_annotations_need_update(&self.rss[i], replicas, max);
        if !size_needs_update && !annotations_need_update {
            return false;
        }
        let mut copy = self.rss[i].clone();
        set_rs_replicas(&mut copy, new_scale);
        set_replicas_annotations(&mut copy, replicas, max);
        self.rss[i] = copy.clone();
        let scaled = size_needs_update.then_some(Scaled {
            operation,
            from: current,
            to: new_scale,
        });
        self.actions.push(Action::UpdateReplicaSet {
            rs: Box::new(copy),
            scaled,
        });
        size_needs_update
    }

    /// `cleanupDeployment`: deletes the oldest old ReplicaSets (by revision) beyond
    /// `revisionHistoryLimit`, only those with no replicas, no pods, an observed spec and no
    /// deletion under way.
    pub(super) fn cleanup_deployment(&mut self, old: &[usize]) {
        let Some(limit) = revision_history_limit(&self.d) else {
            return;
        };
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| self.rss[i].metadata.deletion_timestamp.is_none())
            .collect();
        let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|&a, &b| by_revision(&self.rss[a], &self.rss[b]));
        for &i in cleanable
            .iter()
            .take(usize::try_from(diff).unwrap_or(usize::MAX))
        {
            let rs = &self.rss[i];
            let generation = rs.metadata.generation.unwrap_or(0);
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || generation > observed
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let name = name_of(&rs.metadata).to_string();
            self.actions.push(Action::DeleteReplicaSet { name });
            // Marked, so that a later step of this sync never deletes it twice.
            self.rss[i].metadata.deletion_timestamp = Some(Time(self.now));
        }
    }

    /// `syncDeploymentStatus`: the status from the ReplicaSets, written when it changed.
    pub(super) fn sync_deployment_status(&mut self, all: &[usize], new: Option<usize>) {
        let status = self.calculate_status(all, new);
        if statuses_equal(self.d.status.as_ref(), &status) {
            return;
        }
        self.d.status = Some(status);
        self.update_status();
    }

    /// `calculateStatus`: counts from the ReplicaSets, and the Available condition.
    pub(super) fn calculate_status(&self, all: &[usize], new: Option<usize>) -> DeploymentStatus {
        let available = self.sum(all, rs_available);
        let total = self.sum(all, rs_replicas);
        let unavailable = (total - available).max(0);
        let current = self.current_status();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation.filter(|g| *g != 0),
            replicas: nonzero(self.sum(all, rs_status_replicas)),
            updated_replicas: nonzero(new.map_or(0, |i| rs_status_replicas(&self.rss[i]))),
            ready_replicas: nonzero(self.sum(all, rs_ready)),
            available_replicas: nonzero(available),
            unavailable_replicas: nonzero(unavailable),
            collision_count: current.collision_count,
            conditions: current.conditions,
        };
        let condition = if available >= self.replicas() - max_unavailable(&self.d) {
            new_condition(
                CONDITION_AVAILABLE,
                STATUS_TRUE,
                reason::MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                CONDITION_AVAILABLE,
                STATUS_FALSE,
                reason::MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut status, condition);
        status
    }
}

/// After a create answered AlreadyExists by a ReplicaSet that is not this Deployment's new one
/// (a hash collision): the Deployment with `status.collisionCount` one higher, so the next sync
/// hashes to another name.
pub fn with_collision_bumped(d: &Deployment) -> Deployment {
    let mut d = d.clone();
    let status = d.status.get_or_insert_with(Default::default);
    status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
    d
}

/// Whether an existing ReplicaSet named as the new one is the Deployment's new ReplicaSet
/// (controlled by it, same template): then the create raced with the cache and nothing is wrong.
pub fn is_own_new_replica_set(d: &Deployment, existing: &ReplicaSet) -> bool {
    let controlled = existing
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)))
        .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
    controlled
        && d.spec
            .as_ref()
            .zip(rs_template(existing))
            .is_some_and(|(spec, t)| equal_ignore_hash(&spec.template, t))
}

/// When the new ReplicaSet cannot be created: the message of the Warning Event (reason
/// `ReplicaSetCreateError`), and the Deployment with Progressing False for that reason, to
/// write when it has a progress deadline.
pub fn create_failed(
    d: &Deployment,
    rs_name: &str,
    error: &str,
    now: DateTime<Utc>,
) -> (String, Option<Deployment>) {
    let msg = format!(
        "Failed to create new replica set {}: {error}",
        quoted(rs_name)
    );
    if !has_progress_deadline(d) {
        return (msg, None);
    }
    let mut d = d.clone();
    set_condition(
        d.status.get_or_insert_with(Default::default),
        new_condition(
            CONDITION_PROGRESSING,
            STATUS_FALSE,
            reason::FAILED_RS_CREATE,
            msg.clone(),
            now,
        ),
    );
    (msg, Some(d))
}

/// kube compares statuses with `reflect.DeepEqual` on Go structs where zero counts are
/// omitted on the wire; here a zero count, an empty list and an empty string equal their
/// absence, whichever form the API server sent back.
pub fn statuses_equal(a: Option<&DeploymentStatus>, b: &DeploymentStatus) -> bool {
    canonical(&a.cloned().unwrap_or_default()) == canonical(b)
}

fn canonical(s: &DeploymentStatus) -> DeploymentStatus {
    let nz = |v: Option<i32>| v.filter(|n| *n != 0);
    let empty_none = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    DeploymentStatus {
        observed_generation: s.observed_generation.filter(|g| *g != 0),
        replicas: nz(s.replicas),
        updated_replicas: nz(s.updated_replicas),
        ready_replicas: nz(s.ready_replicas),
        available_replicas: nz(s.available_replicas),
        unavailable_replicas: nz(s.unavailable_replicas),
        collision_count: s.collision_count,
        conditions: s.conditions.as_ref().filter(|c| !c.is_empty()).map(|cs| {
            cs.iter()
                .map(|c| DeploymentCondition {
                    reason: empty_none(&c.reason),
                    message: empty_none(&c.message),
                    ..c.clone()
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::testing::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn sizes(sim: &Sim) -> Vec<(String, i32)> {
        sim.rss
            .iter()
            .map(|r| (r.metadata.name.clone().unwrap_or_default(), rs_replicas(r)))
            .collect()
    }

    /// kube's TestScale: `dc.scale` with the ReplicaSets annotated for the old Deployment.
    #[test]
    fn proportional_scaling_follows_kubes_table() {
        struct Case {
            name: &'static str,
            replicas: i32,
            old_replicas: i32,
            surge: i32,
            old_surge: i32,
            /// (name, replicas, created, desired-replicas override); the first is the new RS
            /// when `has_new`.
            rss: Vec<(&'static str, i32, i64, Option<i32>)>,
            has_new: bool,
            want: Vec<i32>,
        }
        let c = |name, replicas, old_replicas, rss, has_new, want| Case {
            name,
            replicas,
            old_replicas,
            surge: 0,
            old_surge: 0,
            rss,
            has_new,
            want,
        };
        let cases = vec![
            c(
                "normal scaling event: 10 -> 12",
                12,
                10,
                vec![("foo-v1", 10, 2, None)],
                true,
                vec![12],
            ),
            c(
                "normal scaling event: 10 -> 5",
                5,
                10,
                vec![("foo-v1", 10, 2, None)],
                true,
                vec![5],
            ),
            c(
                "proportional scaling: 5 -> 10",
                10,
                5,
                vec![("foo-v2", 2, 2, None), ("foo-v1", 3, 1, None)],
                true,
                vec![4, 6],
            ),
            c(
                "proportional scaling: 5 -> 3",
                3,
                5,
                vec![("foo-v2", 2, 2, None), ("foo-v1", 3, 1, None)],
                true,
                vec![1, 2],
            ),
            c(
                "proportional scaling: 9 -> 4",
                4,
                9,
                vec![("foo-v2", 8, 2, None), ("foo-v1", 1, 1, None)],
                true,
                vec![4, 0],
            ),
            c(
                "proportional scaling: 7 -> 10",
                10,
                7,
                vec![
                    ("foo-v3", 2, 2, None),
                    ("foo-v2", 3, 1, None),
                    ("foo-v1", 2, 0, None),
                ],
                true,
                vec![3, 4, 3],
            ),
            c(
                "proportional scaling: 13 -> 8",
                8,
                13,
                vec![
                    ("foo-v3", 2, 2, None),
                    ("foo-v2", 8, 1, None),
                    ("foo-v1", 3, 0, None),
                ],
                true,
                vec![1, 5, 2],
            ),
            c(
                "leftover distribution: 3 -> 4",
                4,
                3,
                vec![
                    ("foo-v3", 1, 2, None),
                    ("foo-v2", 1, 1, None),
                    ("foo-v1", 1, 0, None),
                ],
                true,
                vec![2, 1, 1],
            ),
            c(
                "leftover distribution: 3 -> 2",
                2,
                3,
                vec![
                    ("foo-v3", 1, 2, None),
                    ("foo-v2", 1, 1, None),
                    ("foo-v1", 1, 0, None),
                ],
                true,
                vec![1, 1, 0],
            ),
            c(
                "proportional scaling (no new rs): 4 -> 5",
                5,
                4,
                vec![("foo-v2", 2, 1, None), ("foo-v1", 2, 0, None)],
                false,
                vec![3, 2],
            ),
            c(
                "proportional scaling: 6 -> 0",
                0,
                6,
                vec![
                    ("foo-v3", 3, 2, None),
                    ("foo-v2", 2, 1, None),
                    ("foo-v1", 1, 0, None),
                ],
                true,
                vec![0, 0, 0],
            ),
            c(
                "proportional scaling: 0 -> 6",
                6,
                6,
                vec![
                    ("foo-v3", 0, 2, None),
                    ("foo-v2", 0, 1, None),
                    ("foo-v1", 0, 0, None),
                ],
                true,
                vec![6, 0, 0],
            ),
            c(
                "failed rs update",
                5,
                5,
                vec![
                    ("foo-v3", 2, 2, None),
                    ("foo-v2", 1, 1, Some(3)),
                    ("foo-v1", 1, 0, None),
                ],
                true,
                vec![2, 2, 1],
            ),
            Case {
                surge: 2,
                old_surge: 2,
                ..c(
                    "deployment with surge pods",
                    20,
                    10,
                    vec![("foo-v2", 6, 2, None), ("foo-v1", 6, 1, None)],
                    true,
                    vec![11, 11],
                )
            },
            Case {
                surge: 6,
                old_surge: 3,
                ..c(
                    "change both surge and size",
                    50,
                    10,
                    vec![("foo-v2", 5, 2, None), ("foo-v1", 8, 1, None)],
                    true,
                    vec![22, 34],
                )
            },
            c(
                "change both size and template",
                14,
                10,
                vec![("foo-v2", 7, 2, None), ("foo-v1", 3, 1, None)],
                false,
                vec![10, 4],
            ),
        ];
        for case in cases {
            let d = deployment(
                "foo",
                case.replicas,
                IntOrString::Int(case.surge),
                IntOrString::Int(0),
            );
            let mut rss = Vec::new();
            for (name, replicas, created, desired) in &case.rss {
                let mut r = rs(name, *replicas, *created);
                let desired = desired.unwrap_or(case.old_replicas);
                set_replicas_annotations(&mut r, desired, desired + case.old_surge);
                rss.push(r);
            }
            let mut sim = Sim::new(Input {
                deployment: d,
                replica_sets: rss,
                pods: PodMap::new(),
                now: at(0),
            });
            let (new, old) = if case.has_new {
                (Some(0), (1..case.rss.len()).collect::<Vec<_>>())
            } else {
                (None, (0..case.rss.len()).collect())
            };
            sim.scale(new, &old);
            let got: Vec<i32> = sizes(&sim).into_iter().map(|(_, n)| n).collect();
            assert_eq!(got, case.want, "{}", case.name);
        }
    }

    #[test]
    fn saturated_but_broken_new_replica_set_does_not_affect_old_pods() {
        let d = deployment("foo", 2, IntOrString::Int(1), IntOrString::Int(1));
        let mut new = rs("foo-v2", 2, 2);
        set_replicas_annotations(&mut new, 2, 3);
        let mut old = rs("foo-v1", 1, 1);
        set_replicas_annotations(&mut old, 2, 3);
        let mut sim = Sim::new(Input {
            deployment: d,
            replica_sets: vec![new, old],
            pods: PodMap::new(),
            now: at(0),
        });
        sim.scale(Some(0), &[1]);
        assert_eq!(
            sizes(&sim),
            [("foo-v2".to_string(), 2), ("foo-v1".to_string(), 1)]
        );
        assert!(sim.actions.is_empty(), "{:?}", sim.actions);
    }

    #[test]
    fn a_saturated_new_replica_set_takes_the_old_ones_down() {
        let d = deployment("foo", 2, IntOrString::Int(1), IntOrString::Int(1));
        let mut new = with_available(rs("foo-v2", 2, 2), 2);
        set_replicas_annotations(&mut new, 2, 3);
        let old = rs("foo-v1", 1, 1);
        let mut sim = Sim::new(Input {
            deployment: d,
            replica_sets: vec![new, old],
            pods: PodMap::new(),
            now: at(0),
        });
        sim.scale(Some(0), &[1]);
        assert_eq!(sizes(&sim)[1].1, 0);
        let Action::UpdateReplicaSet { scaled, .. } = &sim.actions[0] else {
            panic!("{:?}", sim.actions)
        };
        assert_eq!(
            scaled.unwrap().message("foo-v1"),
            "Scaled down replica set foo-v1 from 1 to 0"
        );
    }

    /// kube's TestDeploymentController_cleanupDeployment.
    #[test]
    fn history_cleanup_keeps_the_limit_and_only_deletes_empty_ones() {
        // (old ReplicaSets as (spec, status) replicas, history limit, deletions)
        type Case = (Vec<(i32, i32)>, i32, usize);
        let cases: Vec<Case> = vec![
            (vec![(0, 0), (0, 0), (0, 0)], 1, 2),
            (vec![(0, 0), (0, 1), (1, 0), (1, 1)], 0, 1),
            (vec![(0, 0), (0, 0)], 0, 2),
            (vec![(1, 1), (1, 1)], 0, 0),
            (vec![(0, 0), (0, 0), (0, 0)], i32::MAX, 0),
        ];
        for (i, (olds, limit, deletions)) in cases.into_iter().enumerate() {
            let mut d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
            d.spec.as_mut().unwrap().revision_history_limit = Some(limit);
            let rss: Vec<ReplicaSet> = olds
                .iter()
                .enumerate()
                .map(|(k, (spec, status))| {
                    let mut r = rs(&format!("foo-{k}"), *spec, k as i64);
                    r.status.get_or_insert_with(Default::default).replicas = *status;
                    r
                })
                .collect();
            let n = rss.len();
            let mut sim = Sim::new(Input {
                deployment: d,
                replica_sets: rss,
                pods: PodMap::new(),
                now: at(0),
            });
            sim.cleanup_deployment(&(0..n).collect::<Vec<_>>());
            let deleted = sim
                .actions
                .iter()
                .filter(|a| matches!(a, Action::DeleteReplicaSet { .. }))
                .count();
            assert_eq!(deleted, deletions, "case {i}");
        }
    }

    #[test]
    fn history_cleanup_goes_by_revision_and_skips_deleting_ones() {
        let mut d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
        d.spec.as_mut().unwrap().revision_history_limit = Some(10);
        // 12 old ReplicaSets: revisions 1..=12, created in reverse order (so creation order
        // would pick others); revision 2 is being deleted already.
        let mut rss: Vec<ReplicaSet> = (1..=12)
            .map(|rev| with_revision(rs(&format!("foo-r{rev}"), 0, 100 - rev), &rev.to_string()))
            .collect();
        rss[1].metadata.deletion_timestamp = Some(Time(at(0)));
        let mut sim = Sim::new(Input {
            deployment: d,
            replica_sets: rss,
            pods: PodMap::new(),
            now: at(0),
        });
        sim.cleanup_deployment(&(0..12).collect::<Vec<_>>());
        // 11 cleanable, limit 10: the lowest revision goes.
        assert_eq!(
            sim.actions,
            [Action::DeleteReplicaSet {
                name: "foo-r1".into()
            }]
        );
    }

    #[test]
    fn status_counts_and_availability() {
        let d = deployment("foo", 10, string("25%"), string("25%"));
        let new = with_status(rs("foo-new", 5, 2), 5, 3, 3);
        let old = with_status(rs("foo-old", 6, 1), 6, 6, 5);
        let sim = Sim::new(Input {
            deployment: d,
            replica_sets: vec![new, old],
            pods: PodMap::new(),
            now: at(0),
        });
        let st = sim.calculate_status(&[1, 0], Some(0));
        assert_eq!(st.replicas, Some(11));
        assert_eq!(st.updated_replicas, Some(5));
        assert_eq!(st.ready_replicas, Some(9));
        assert_eq!(st.available_replicas, Some(8));
        assert_eq!(st.unavailable_replicas, Some(3));
        assert_eq!(st.observed_generation, Some(1));
        let c = get_condition(Some(&st), CONDITION_AVAILABLE).unwrap();
        assert_eq!(c.status, STATUS_TRUE, "8 >= 10 - 2");
        assert_eq!(
            c.message.as_deref(),
            Some("Deployment has minimum availability.")
        );
        let sim = Sim::new(Input {
            deployment: deployment("foo", 10, string("25%"), string("25%")),
            replica_sets: vec![with_status(rs("foo-new", 10, 2), 10, 7, 7)],
            pods: PodMap::new(),
            now: at(0),
        });
        let st = sim.calculate_status(&[0], Some(0));
        let c = get_condition(Some(&st), CONDITION_AVAILABLE).unwrap();
        assert_eq!(c.status, STATUS_FALSE);
        assert_eq!(
            c.reason.as_deref(),
            Some(reason::MINIMUM_REPLICAS_UNAVAILABLE)
        );
        assert_eq!(
            c.message.as_deref(),
            Some("Deployment does not have minimum availability.")
        );
    }

    #[test]
    fn zero_counts_equal_absent_ones() {
        let a = DeploymentStatus {
            replicas: Some(0),
            conditions: Some(vec![]),
            ..Default::default()
        };
        assert!(statuses_equal(None, &a));
        let b = DeploymentStatus {
            replicas: Some(1),
            ..Default::default()
        };
        assert!(!statuses_equal(Some(&a), &b));
    }

    #[test]
    fn an_empty_selector_only_reports() {
        let mut d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
        d.spec.as_mut().unwrap().selector = Default::default();
        d.metadata.generation = Some(3);
        let p = plan(Input {
            deployment: d,
            replica_sets: vec![],
            pods: PodMap::new(),
            now: at(0),
        })
        .unwrap();
        assert!(matches!(
            &p.actions[0],
            Action::Event {
                reason: "SelectingAll",
                kind: EventKind::Warning,
                ..
            }
        ));
        let Action::UpdateStatus(d) = &p.actions[1] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(3));
        assert_eq!(p.actions.len(), 2);
    }

    #[test]
    fn unresolvable_fenceposts_are_invalid() {
        let d = deployment("foo", 1, string("lots"), IntOrString::Int(0));
        let r = plan(Input {
            deployment: d,
            replica_sets: vec![],
            pods: PodMap::new(),
            now: at(0),
        });
        assert!(matches!(r, Err(Error::Invalid(m)) if m.contains("maxSurge")));
    }

    #[test]
    fn collisions_and_create_failures() {
        let d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
        let bumped = with_collision_bumped(&d);
        assert_eq!(bumped.status.as_ref().unwrap().collision_count, Some(1));
        assert_eq!(
            with_collision_bumped(&bumped)
                .status
                .unwrap()
                .collision_count,
            Some(2)
        );
        // The bumped count names the new ReplicaSet differently.
        let name = |d: &Deployment| {
            let p = plan(Input {
                deployment: d.clone(),
                replica_sets: vec![],
                pods: PodMap::new(),
                now: at(0),
            })
            .unwrap();
            match &p.actions[0] {
                Action::CreateReplicaSet(rs) => rs.metadata.name.clone().unwrap(),
                other => panic!("{other:?}"),
            }
        };
        assert_ne!(name(&d), name(&bumped));

        let (new, old) = rollout_pair(&d);
        assert!(is_own_new_replica_set(&d, &new));
        assert!(!is_own_new_replica_set(&d, &old), "another template");
        let mut foreign = new.clone();
        foreign.metadata.owner_references = None;
        assert!(
            !is_own_new_replica_set(&d, &foreign),
            "not controlled by it"
        );

        let (msg, written) = create_failed(&d, "foo-abc", "quota exceeded", at(5));
        assert_eq!(
            msg,
            "Failed to create new replica set \"foo-abc\": quota exceeded"
        );
        let c = get_condition(
            written.as_ref().unwrap().status.as_ref(),
            CONDITION_PROGRESSING,
        )
        .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            (STATUS_FALSE, Some(reason::FAILED_RS_CREATE))
        );
        let mut no_deadline = d.clone();
        no_deadline.spec.as_mut().unwrap().progress_deadline_seconds = None;
        assert!(create_failed(&no_deadline, "foo-abc", "x", at(5))
            .1
            .is_none());
    }
}
