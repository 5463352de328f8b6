//! kube's `tryUpdateNodeHealth`: when this controller last saw a node's kubelet alive (its
//! Ready condition's heartbeat changed, or its Lease was renewed), timed by the *local* clock
//! when the change was observed (never by the timestamps' values, so clock skew between
//! machines does not matter), and the status to write once that is longer ago than the grace
//! period: Ready, MemoryPressure, DiskPressure and PIDPressure Unknown. No I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

use super::taints::condition;

pub const REASON_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
pub const MESSAGE_STATUS_UNKNOWN: &str = "Kubelet stopped posting node status.";
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// The conditions marked Unknown (NetworkUnavailable is the network plugin's, left alone).
pub const UNKNOWN_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller remembers of a node (kube's `nodeHealthData`).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeHealth {
    /// When (locally) the node was last seen alive.
    pub probe: Instant,
    /// When (locally) its Ready condition last changed.
    pub ready_transition: Instant,
    /// The Ready condition last seen.
    pub ready: Option<NodeCondition>,
    /// The Lease's renewTime last seen.
    pub lease_renew: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub monitor: Duration,
    pub startup: Duration,
}

/// The outcome of one look at a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The Ready condition as the node had it (a fake Unknown one when it had none).
    pub observed_ready: NodeCondition,
    /// The Ready condition after this look (changed when `write` is set).
    pub current_ready: Option<NodeCondition>,
    /// The status to write (`UpdateStatus`), when the node went silent for too long and a
    /// condition is not yet Unknown.
    pub write: Option<NodeStatus>,
    /// What to remember.
    pub health: NodeHealth,
}

/// The local instant at which a wall-clock time `t` was `now - (wall - t)` ago.
fn local(now: Instant, wall: DateTime<Utc>, t: Option<&Time>) -> Instant {
    let ago = t
        .and_then(|t| (wall - t.0).to_std().ok())
        .unwrap_or_default();
    now.checked_sub(ago).unwrap_or(now)
}

fn fresh(
    node_ready: Option<&NodeCondition>,
    now: Instant,
    lease: Option<DateTime<Utc>>,
) -> NodeHealth {
    NodeHealth {
        probe: now,
        ready_transition: now,
        ready: node_ready.cloned(),
        lease_renew: lease,
    }
}

/// One look at `node` (kube's `tryUpdateNodeHealth`). `lease_renew` is its Lease's renewTime,
/// `now` the local clock and `wall` the wall clock (for the times written).
pub fn observe(
    saved: Option<&NodeHealth>,
    node: &Node,
    lease_renew: Option<DateTime<Utc>>,
    grace: Grace,
    now: Instant,
    wall: DateTime<Utc>,
) -> Observed {
    let created = node.metadata.creation_timestamp.as_ref();
    let current = condition(node, "Ready");
    let (observed_ready, grace_period) = match current {
        Some(c) => (c.clone(), grace.monitor),
        None => (
            NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: created.cloned(),
                last_transition_time: created.cloned(),
                ..NodeCondition::default()
            },
            grace.startup,
        ),
    };
    let mut health = match (saved, current) {
        // Never posted: the node's creation stands for its last sign of life.
        (None, None) => NodeHealth {
            probe: local(now, wall, created),
            ready_transition: local(now, wall, created),
            ready: None,
            lease_renew: None,
        },
        (None, Some(_)) => fresh(current, now, None),
        (Some(s), None) if s.ready.is_some() => fresh(None, now, s.lease_renew),
        (Some(s), None) => s.clone(),
        (Some(s), Some(c)) => match &s.ready {
            None => fresh(current, now, s.lease_renew),
            Some(prev) if prev.last_heartbeat_time != c.last_heartbeat_time => NodeHealth {
                probe: now,
                ready_transition: if prev.last_transition_time != c.last_transition_time {
                    now
                } else {
                    s.ready_transition
                },
                ready: Some(c.clone()),
                lease_renew: s.lease_renew,
            },
            Some(_) => s.clone(),
        },
    };
    // A renewed Lease is a sign of life too.
    if let Some(renewed) = lease_renew {
        if health.lease_renew.is_none_or(|seen| seen < renewed) {
            health.lease_renew = Some(renewed);
            health.probe = now;
        }
    }
    let mut out = Observed {
        observed_ready: observed_ready.clone(),
        current_ready: current.cloned(),
        write: None,
        health,
    };
    if now <= out.health.probe + grace_period {
        return out;
    }
    // Silent for longer than the grace period: Unknown, whatever it said.
    let mut status = node.status.clone().unwrap_or_default();
    let conds = status.conditions.get_or_insert_with(Vec::new);
    for type_ in UNKNOWN_CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == type_) {
            None => conds.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some(REASON_NEVER_UPDATED.into()),
                message: Some(MESSAGE_NEVER_UPDATED.into()),
                last_heartbeat_time: created.cloned(),
                last_transition_time: Some(Time(wall)),
            }),
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_STATUS_UNKNOWN.into());
                c.message = Some(MESSAGE_STATUS_UNKNOWN.into());
                c.last_transition_time = Some(Time(wall));
            }
            Some(_) => {}
        }
    }
    let ready_after = conds.iter().find(|c| c.type_ == "Ready").cloned();
    if ready_after.as_ref() != Some(&observed_ready) {
        out.current_ready = ready_after.clone();
        out.health = NodeHealth {
            probe: out.health.probe,
            ready_transition: now,
            ready: ready_after,
            lease_renew: out.health.lease_renew,
        };
        out.write = Some(status);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodelifecycle::taints::testing::*;

    const GRACE: Grace = Grace {
        monitor: Duration::from_secs(50),
        startup: Duration::from_secs(60),
    };

    fn ready_node(status: &str, heartbeat: i64) -> Node {
        with_conditions(
            node("n"),
            vec![
                cond("Ready", status, heartbeat, 0),
                cond("MemoryPressure", "False", heartbeat, 0),
                cond("DiskPressure", "False", heartbeat, 0),
                cond("PIDPressure", "False", heartbeat, 0),
            ],
        )
    }

    fn statuses(s: &NodeStatus) -> Vec<(String, String, String)> {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_node_goes_unknown_after_the_grace_period() {
        let t0 = Instant::now();
        let n = ready_node("True", 10);
        let first = observe(None, &n, None, GRACE, t0, at(10));
        assert!(first.write.is_none());
        assert_eq!(first.health.probe, t0);
        // Nothing changes for 50 s: still within the grace period (kube's `After` is strict).
        let at50 = observe(
            Some(&first.health),
            &n,
            None,
            GRACE,
            t0 + GRACE.monitor,
            at(60),
        );
        assert!(at50.write.is_none());
        let late = observe(
            Some(&at50.health),
            &n,
            None,
            GRACE,
            t0 + GRACE.monitor + Duration::from_secs(1),
            at(61),
        );
        let s = late.write.expect("marked unknown");
        assert_eq!(
            statuses(&s),
            [
                ("Ready".into(), "Unknown".into(), "NodeStatusUnknown".into()),
                (
                    "MemoryPressure".into(),
                    "Unknown".into(),
                    "NodeStatusUnknown".into()
                ),
                (
                    "DiskPressure".into(),
                    "Unknown".into(),
                    "NodeStatusUnknown".into()
                ),
                (
                    "PIDPressure".into(),
                    "Unknown".into(),
                    "NodeStatusUnknown".into()
                ),
            ]
        );
        let ready = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(ready.message.as_deref(), Some(MESSAGE_STATUS_UNKNOWN));
        assert_eq!(ready.last_transition_time, Some(Time(at(61))));
        assert_eq!(
            ready.last_heartbeat_time,
            Some(Time(at(10))),
            "heartbeat kept"
        );
        assert_eq!(late.observed_ready.status, "True");
        assert_eq!(late.current_ready.as_ref().unwrap().status, "Unknown");
    }

    #[tokio::test(start_paused = true)]
    async fn lease_renewals_keep_a_node_alive_without_status_posts() {
        let t0 = Instant::now();
        let n = ready_node("True", 0);
        let mut h = observe(None, &n, Some(at(0)), GRACE, t0, at(0)).health;
        for i in 1..=20u64 {
            let now = t0 + Duration::from_secs(10 * i);
            let o = observe(Some(&h), &n, Some(at(10 * i as i64)), GRACE, now, at(0));
            assert!(o.write.is_none(), "renewed at {i}");
            assert_eq!(o.health.probe, now);
            h = o.health;
        }
        // The Lease stops: Unknown after the grace period from the last renewal seen.
        let last = h.probe;
        let o = observe(
            Some(&h),
            &n,
            Some(at(200)),
            GRACE,
            last + GRACE.monitor,
            at(0),
        );
        assert!(o.write.is_none());
        let o = observe(
            Some(&o.health),
            &n,
            Some(at(200)),
            GRACE,
            last + GRACE.monitor + Duration::from_millis(1),
            at(0),
        );
        assert!(o.write.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_never_posted_gets_the_startup_grace_from_its_creation() {
        let t0 = Instant::now();
        let n = node("n"); // created at at(0), no conditions
                           // First seen 30 s after creation: 30 s of the 60 s startup grace are left.
        let o = observe(None, &n, None, GRACE, t0, at(30));
        assert!(o.write.is_none());
        let o = observe(
            Some(&o.health),
            &n,
            None,
            GRACE,
            t0 + Duration::from_secs(31),
            at(61),
        );
        let s = o.write.expect("never posted");
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(c.type_, "Ready");
        assert_eq!(c.reason.as_deref(), Some(REASON_NEVER_UPDATED));
        assert_eq!(c.message.as_deref(), Some(MESSAGE_NEVER_UPDATED));
        assert_eq!(c.last_heartbeat_time, Some(Time(at(0))));
        assert_eq!(s.conditions.as_ref().unwrap().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_node_is_not_written_again_and_recovers_on_a_new_heartbeat() {
        let t0 = Instant::now();
        let n = ready_node("Unknown", 0);
        let h = observe(None, &n, None, GRACE, t0, at(0)).health;
        let o = observe(
            Some(&h),
            &n,
            None,
            GRACE,
            t0 + Duration::from_secs(100),
            at(100),
        );
        assert!(o.write.is_none(), "already Unknown: nothing to write");
        // kubelet posts again: a new heartbeat and transition time.
        let back = with_conditions(node("n"), vec![cond("Ready", "True", 101, 101)]);
        let o = observe(
            Some(&o.health),
            &back,
            None,
            GRACE,
            t0 + Duration::from_secs(101),
            at(101),
        );
        assert!(o.write.is_none());
        assert_eq!(o.health.probe, t0 + Duration::from_secs(101));
        assert_eq!(o.health.ready_transition, t0 + Duration::from_secs(101));
        assert_eq!(o.current_ready.unwrap().status, "True");
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_without_a_transition_keeps_the_transition_time() {
        let t0 = Instant::now();
        let h = observe(None, &ready_node("True", 0), None, GRACE, t0, at(0)).health;
        let later = t0 + Duration::from_secs(20);
        let o = observe(
            Some(&h),
            &ready_node("True", 20),
            None,
            GRACE,
            later,
            at(20),
        );
        assert_eq!(o.health.probe, later);
        assert_eq!(o.health.ready_transition, t0);
    }
}
