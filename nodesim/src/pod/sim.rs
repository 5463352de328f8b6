//! The pods of one simulated node: a state machine per pod, driven by what the watch shows
//! (`observe`, `forget`, resyncs), by time (`advance`), and by the outcome of the writes it
//! asks for (`next_write`, `write_done`). It plays kubelet's pod workers and status manager:
//!
//! - admission (at most `maxPods` pods that are not finished; beyond: `Failed`/`OutOfpods`);
//! - ContainerCreating for `start_delay`, then containers running with a pod IP from the
//!   node's CIDR, each ready once its readiness probe's `initialDelaySeconds` has passed;
//! - containers that exit on their own (Jobs, the `mainstay.io/run-seconds` annotation):
//!   under restartPolicy Never they stay terminated, under OnFailure they restart when the
//!   exit code is not 0, under Always they restart; a restart waits kubelet's CrashLoopBackOff
//!   (10 s doubling to 5 min);
//! - deletion: SIGTERM, the containers stop after `mainstay.io/termination-seconds` (0 by
//!   default) or are killed when the grace period ends first, the final status is written,
//!   then the pod is deleted with grace 0 and a UID precondition.
//!
//! Writes are level-triggered, like kubelet's status manager: a pod whose state changed gets
//! one status write, built when it is sent, so a change that comes before the previous one was
//! written is folded into it. No I/O; time is passed in.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::observe::{ContainerLite, Observed, ObservedPhase, PodKey, RestartPolicy};
pub use super::state::{Clock, EXIT_KILLED};
use super::state::{Exit, Flip, PodSim, State};
use super::status;
use crate::config::MAX_CONTAINER_BACKOFF;
use crate::ipam::Ipam;
use crate::schedule::backoff;

/// Retry of a failed write: from 200 ms, doubling, to 10 s (kubelet's status manager
/// re-syncs every 10 s).
const WRITE_RETRY_INITIAL: Duration = Duration::from_millis(200);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(10);
/// When the node's pod CIDR is full, the sandbox is retried this much later (kubelet retries
/// the failed sandbox on its next sync).
const SANDBOX_RETRY: Duration = Duration::from_secs(10);
/// A pod makes at most this many state transitions per `advance`, so zero-length runs and
/// backoffs cannot spin within one call.
const MAX_TRANSITIONS_PER_ADVANCE: usize = 8;

/// What the simulation of a node's pods needs to know.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub start_delay: Duration,
    pub crash_loop_backoff: Duration,
    pub max_pods: u32,
    pub pod_events: bool,
}

impl PodSim {
    fn needs_status(&self) -> bool {
        self.version != self.written
    }

    fn needs_delete(&self) -> bool {
        self.deletion_grace.is_some()
            && self.state.is_terminal()
            && !self.delete_issued
            && !self.needs_status()
    }

    fn needs_write(&self) -> bool {
        self.needs_status() || self.needs_delete()
    }

    fn bump(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    /// Whether container `ready_after` is ready at `now` in the current state.
    pub fn container_ready(&self, ready_after: Duration, now: Instant) -> bool {
        match self.state {
            State::Running { since, .. } | State::Killing { since, .. } => {
                now >= since + ready_after
            }
            _ => false,
        }
    }

    fn all_containers_ready(&self, now: Instant) -> bool {
        let sidecars = self.spec.init_containers.iter().filter(|c| c.sidecar);
        self.spec
            .containers
            .iter()
            .chain(sidecars)
            .all(|c| self.container_ready(c.ready_after, now))
    }

    /// Sets the four conditions from the state at `now`; true when one changed.
    fn update_conditions(&mut self, now: Instant) -> bool {
        let running = matches!(
            self.state,
            State::Running { .. } | State::BackOff { .. } | State::Killing { .. }
        );
        let mut changed = self.sandbox_ready.set(running, now);
        if self.first_started.is_some() {
            changed |= self.initialized.set(true, now);
        }
        let containers = self.all_containers_ready(now);
        changed |= self.containers_ready.set(containers, now);
        changed |= self.ready.set(containers && self.gates.is_none(), now);
        changed
    }

    /// The next moment something happens to this pod by itself.
    fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let own = match self.state {
            State::Creating { until } | State::BackOff { until, .. } => Some(until),
            State::Running { since, exits_at } => {
                let readiness = self.next_readiness(since, now);
                match (readiness, exits_at) {
                    (Some(r), Some(e)) => Some(r.min(e)),
                    (r, e) => r.or(e),
                }
            }
            State::Killing { since, done_at, .. } => Some(
                self.next_readiness(since, now)
                    .map_or(done_at, |r| r.min(done_at)),
            ),
            State::Rejected { .. } | State::Terminated { .. } => None,
        };
        match (own, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_readiness(&self, since: Instant, now: Instant) -> Option<Instant> {
        let sidecars = self.spec.init_containers.iter().filter(|c| c.sidecar);
        self.spec
            .containers
            .iter()
            .chain(sidecars)
            .map(|c| since + c.ready_after)
            .filter(|t| *t > now)
            .min()
    }
}

/// An Event kubelet would record about a pod's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    pub pod: PodKey,
    pub container: Option<Box<str>>,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// A write the node should send.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub key: PodKey,
    pub action: WriteAction,
    version: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteAction {
    /// A strategic merge patch of `pods/<name>/status` (with `metadata.uid` as kubelet sends
    /// it, a precondition on API servers that check it).
    PatchStatus(Value),
    /// `DELETE` with `gracePeriodSeconds: 0` and a UID precondition.
    Delete,
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    /// 404, or the UID precondition failed: the pod is gone; forget it.
    Gone,
    /// Refused for good (another 4xx): do not send this change again.
    Refused,
    /// Worth trying again (5xx, 429, connection trouble).
    Retry,
}

/// A node's pods by UID. Boxed: the table then holds pointers, and its spare capacity
/// costs 8 bytes a slot instead of a whole pod's state.
type Pods = HashMap<Box<str>, Box<PodSim>>;

/// The pods of one node.
#[derive(Debug)]
pub struct NodePods {
    cfg: SimConfig,
    host_ip: Ipv4Addr,
    ipam: Ipam,
    clock: Clock,
    pods: Pods,
    /// UIDs with a write due, oldest first; a UID is in it at most once (`queued`), so its
    /// length is bounded by the number of pods.
    queue: VecDeque<Box<str>>,
    epoch: u32,
    events: Vec<SimEvent>,
}

/// What the per-pod transitions touch besides the pod: the node's range and Event buffer.
struct Ctx<'a> {
    cfg: &'a SimConfig,
    host_ip: Ipv4Addr,
    ipam: &'a mut Ipam,
    events: &'a mut Vec<SimEvent>,
}

impl Ctx<'_> {
    fn event(
        &mut self,
        p: &PodSim,
        container: Option<&str>,
        warning: bool,
        reason: &'static str,
        message: impl FnOnce() -> String,
    ) {
        if self.cfg.pod_events {
            self.events.push(SimEvent {
                pod: p.key.clone(),
                container: container.map(Into::into),
                warning,
                reason,
                message: message(),
            });
        }
    }

    /// One Event per container (when pod Events are on).
    fn container_events(
        &mut self,
        p: &PodSim,
        warning: bool,
        reason: &'static str,
        message: impl Fn(&ContainerLite) -> String,
    ) {
        if self.cfg.pod_events {
            for c in p.spec.containers.iter() {
                self.events.push(SimEvent {
                    pod: p.key.clone(),
                    container: Some(c.name.clone()),
                    warning,
                    reason,
                    message: message(c),
                });
            }
        }
    }

    fn release_ip(&mut self, p: &mut PodSim) {
        if p.ip_owned {
            p.ip_owned = false;
            if let Some(ip) = p.ip {
                self.ipam.free(ip);
            }
        }
    }
}

impl NodePods {
    pub fn new(cfg: SimConfig, host_ip: Ipv4Addr, ipam: Ipam, clock: Clock) -> NodePods {
        NodePods {
            cfg,
            host_ip,
            ipam,
            clock,
            pods: HashMap::new(),
            queue: VecDeque::new(),
            epoch: 0,
            events: Vec::new(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Pod IPs in use on the node.
    #[cfg(test)]
    pub fn ips_in_use(&self) -> u32 {
        self.ipam.in_use()
    }

    /// Takes the pod CIDR the node was assigned after registering; ignored while pods hold
    /// addresses of the old range (kube never changes a node's CIDR once set).
    pub fn set_pod_cidr(&mut self, ipam: Ipam) -> bool {
        if self.ipam.in_use() != 0 {
            return false;
        }
        self.ipam = ipam;
        true
    }

    /// Events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<SimEvent> {
        std::mem::take(&mut self.events)
    }

    /// The pod's status as it would be written now (tests and diagnostics).
    #[cfg(test)]
    pub fn status_of(&self, uid: &str, now: Instant) -> Option<Value> {
        let p = self.pods.get(uid)?;
        Some(status::patch(p, self.host_ip, &self.clock, now))
    }

    /// Splits the node into its pods and the rest.
    fn parts(&mut self) -> (&mut Pods, &mut VecDeque<Box<str>>, Ctx<'_>) {
        let NodePods {
            cfg,
            host_ip,
            ipam,
            pods,
            queue,
            events,
            ..
        } = self;
        let ctx = Ctx {
            cfg,
            host_ip: *host_ip,
            ipam,
            events,
        };
        (pods, queue, ctx)
    }

    /// A watch event (or list item) about a pod bound to this node.
    pub fn observe(&mut self, o: Observed, now: Instant) {
        let epoch = self.epoch;
        let clock = self.clock;
        let (pods, queue, mut ctx) = self.parts();
        let deletion = o.deletion_grace;
        let uid = o.key.uid.clone();
        // Admission counts the pods that are not finished (only needed for a new one).
        let admitted = if pods.contains_key(&uid) {
            0
        } else {
            pods.values().filter(|q| !q.state.is_terminal()).count()
        };
        let p = match pods.entry(uid) {
            Entry::Occupied(e) => {
                let p = e.into_mut();
                update(p, o, &mut ctx, now);
                p
            }
            Entry::Vacant(e) => e.insert(Box::new(admit(o, &mut ctx, clock, admitted, epoch, now))),
        };
        p.seen_epoch = epoch;
        if let Some(grace) = deletion {
            delete_requested(p, &mut ctx, grace, now);
        }
        enqueue(queue, p);
    }

    /// The pod is gone from the API (watch deletion, or a failed precondition).
    pub fn forget(&mut self, uid: &str) {
        let (pods, _, mut ctx) = self.parts();
        if let Some(mut p) = pods.remove(uid) {
            ctx.release_ip(&mut p);
        }
        // Its queue entry, if any, is skipped when reached.
    }

    /// A relist of the watch begins: pods not listed again by `resync_done` are gone.
    pub fn resync_begin(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    pub fn resync_done(&mut self) {
        let epoch = self.epoch;
        let (pods, _, mut ctx) = self.parts();
        pods.retain(|_, p| {
            let keep = p.seen_epoch == epoch;
            if !keep {
                ctx.release_ip(p);
            }
            keep
        });
    }

    /// Runs every transition due by `now`.
    pub fn advance(&mut self, now: Instant) {
        let (pods, queue, mut ctx) = self.parts();
        for p in pods.values_mut() {
            advance_pod(p, &mut ctx, now);
            enqueue(queue, p);
        }
    }

    /// The next moment `advance` has something to do.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.pods.values().filter_map(|p| p.next_wakeup(now)).min()
    }

    /// The oldest pending write, built now; the pod has no other write until `write_done`.
    pub fn next_write(&mut self, now: Instant) -> Option<Write> {
        while let Some(uid) = self.queue.pop_front() {
            let Some(p) = self.pods.get_mut(&uid) else {
                continue;
            };
            p.queued = false;
            if p.in_flight || p.retry_at.is_some() || !p.needs_write() {
                continue;
            }
            p.in_flight = true;
            let action = if p.needs_status() {
                WriteAction::PatchStatus(status::patch(p, self.host_ip, &self.clock, now))
            } else {
                WriteAction::Delete
            };
            return Some(Write {
                key: p.key.clone(),
                action,
                version: p.version,
            });
        }
        None
    }

    /// How the write from `next_write` went.
    pub fn write_done(&mut self, w: &Write, outcome: WriteOutcome, now: Instant) {
        let uid = &w.key.uid;
        if outcome == WriteOutcome::Gone {
            self.forget(uid);
            return;
        }
        let (pods, queue, _) = self.parts();
        let Some(p) = pods.get_mut(uid) else {
            return;
        };
        p.in_flight = false;
        match outcome {
            WriteOutcome::Done | WriteOutcome::Refused => {
                p.write_failures = 0;
                match w.action {
                    WriteAction::PatchStatus(_) => p.written = w.version,
                    WriteAction::Delete => p.delete_issued = true,
                }
            }
            WriteOutcome::Gone => {}
            WriteOutcome::Retry => {
                p.write_failures = p.write_failures.saturating_add(1);
                p.retry_at =
                    Some(now + backoff(WRITE_RETRY_INITIAL, WRITE_RETRY_MAX, p.write_failures));
            }
        }
        enqueue(queue, p);
    }
}

fn enqueue(queue: &mut VecDeque<Box<str>>, p: &mut PodSim) {
    if p.needs_write() && !p.queued && !p.in_flight && p.retry_at.is_none() {
        p.queued = true;
        queue.push_back(p.key.uid.clone());
    }
}

/// A new pod: taken over as the API shows it when it is finished or running (after a restart
/// of this process), otherwise admitted and started, or refused when `admitted` pods already
/// fill the node.
fn admit(
    o: Observed,
    ctx: &mut Ctx<'_>,
    clock: Clock,
    admitted: usize,
    epoch: u32,
    now: Instant,
) -> PodSim {
    let mut p = PodSim {
        key: o.key,
        spec: o.spec,
        // Applied by the caller once the pod is in place.
        deletion_grace: None,
        gates: o.gates,
        add_pod_scheduled: !o.has_pod_scheduled,
        acknowledged: now,
        first_started: None,
        state: State::Creating {
            until: now + ctx.cfg.start_delay,
        },
        ip: None,
        ip_owned: false,
        restart_count: 0,
        last_exit: None,
        sandbox_ready: Flip::new(false, now),
        initialized: Flip::new(false, now),
        containers_ready: Flip::new(false, now),
        ready: Flip::new(false, now),
        version: 1,
        written: 0,
        in_flight: false,
        queued: false,
        retry_at: None,
        write_failures: 0,
        delete_issued: false,
        seen_epoch: epoch,
    };
    match (o.phase, o.running) {
        (ObservedPhase::Succeeded | ObservedPhase::Failed, _) => {
            p.state = State::Terminated {
                started: None,
                finished: now,
                exit_code: i32::from(o.phase == ObservedPhase::Failed),
            };
            // Nothing to tell the API: it is already finished there.
            p.written = p.version;
        }
        (ObservedPhase::Running, Some(r)) => {
            let since = clock.instant(r.started_at).min(now);
            p.acknowledged = since;
            p.first_started = Some(since);
            p.restart_count = r.restart_count;
            p.state = State::Running {
                since,
                exits_at: p.spec.run.map(|plan| since + plan.run),
            };
            if p.spec.host_network {
                p.ip = Some(ctx.host_ip);
            } else if let Some(ip) = r.pod_ip {
                p.ip = Some(ip);
                p.ip_owned = ctx.ipam.reserve(ip);
            }
            p.initialized.set(true, since);
            p.sandbox_ready.set(true, since);
            p.update_conditions(now);
            // Written once (version 1), as kubelet re-syncs every pod's status after a restart.
        }
        _ => {
            if p.spec.init_containers.iter().all(|c| c.sidecar) {
                p.initialized.set(true, now);
            }
            let max = ctx.cfg.max_pods as usize;
            if o.deletion_grace.is_none() && admitted >= max {
                let detail = format!(
                    "Node didn't have enough resource: pods, requested: 1, used: {admitted}, capacity: {max}"
                );
                p.state = State::Rejected {
                    reason: "OutOfpods",
                    message: format!("Pod was rejected: {detail}").into(),
                };
                ctx.event(&p, None, true, "OutOfpods", || detail);
            }
        }
    }
    p
}

/// A pod the node already has, seen again.
fn update(p: &mut PodSim, o: Observed, ctx: &mut Ctx<'_>, now: Instant) {
    p.spec = o.spec;
    p.add_pod_scheduled = !o.has_pod_scheduled;
    if p.gates != o.gates {
        p.gates = o.gates;
        if p.update_conditions(now) {
            p.bump();
        }
    }
    let ended_elsewhere = matches!(o.phase, ObservedPhase::Succeeded | ObservedPhase::Failed)
        && !p.state.is_terminal();
    if ended_elsewhere {
        // Someone else ended the pod (an eviction, a controller). kubelet never moves a pod
        // out of a terminal phase: it stops the containers and has nothing to write.
        p.state = State::Terminated {
            started: p.first_started,
            finished: now,
            exit_code: i32::from(o.phase == ObservedPhase::Failed),
        };
        p.update_conditions(now);
        p.written = p.version;
        ctx.release_ip(p);
    }
}

/// The pod has (or got a shorter) deletion grace period: stop its containers.
fn delete_requested(p: &mut PodSim, ctx: &mut Ctx<'_>, grace: Duration, now: Instant) {
    p.deletion_grace = Some(grace);
    match p.state {
        State::Rejected { .. } | State::Terminated { .. } => {}
        State::Creating { .. } => {
            p.state = State::Terminated {
                started: None,
                finished: now,
                exit_code: EXIT_KILLED,
            };
            ctx.release_ip(p);
            p.update_conditions(now);
            p.bump();
        }
        State::BackOff { .. } => {
            let last = p.last_exit;
            p.state = State::Terminated {
                started: last.map(|e| e.started),
                finished: last.map_or(now, |e| e.finished),
                exit_code: last.map_or(EXIT_KILLED, |e| e.code),
            };
            ctx.release_ip(p);
            p.update_conditions(now);
            p.bump();
        }
        State::Running { since, exits_at } => {
            let (mut done_at, mut code) = if p.spec.termination <= grace {
                (now + p.spec.termination, 0)
            } else {
                (now + grace, EXIT_KILLED)
            };
            // Containers about to exit by themselves do so before the signal matters.
            if let (Some(e), Some(plan)) = (exits_at, p.spec.run) {
                if e < done_at {
                    (done_at, code) = (e, plan.exit_code);
                }
            }
            p.state = State::Killing {
                since,
                done_at,
                exit_code: code,
            };
            ctx.container_events(p, false, "Killing", |c| {
                format!("Stopping container {}", c.name)
            });
        }
        State::Killing { since, done_at, .. } => {
            // A shorter grace period (a forced deletion) cuts the wait short.
            let deadline = now + grace;
            if deadline < done_at {
                p.state = State::Killing {
                    since,
                    done_at: deadline,
                    exit_code: EXIT_KILLED,
                };
            }
        }
    }
}

fn advance_pod(p: &mut PodSim, ctx: &mut Ctx<'_>, now: Instant) {
    if p.retry_at.is_some_and(|t| t <= now) {
        p.retry_at = None;
    }
    for _ in 0..MAX_TRANSITIONS_PER_ADVANCE {
        let changed = match p.state {
            State::Creating { until } if until <= now => {
                start_containers(p, ctx, until, now);
                true
            }
            State::Running {
                since,
                exits_at: Some(e),
            } if e <= now => {
                containers_exited(p, ctx, since, e);
                true
            }
            State::BackOff { until, .. } if until <= now => {
                p.restart_count = p.restart_count.saturating_add(1);
                p.state = State::Running {
                    since: until,
                    exits_at: p.spec.run.map(|plan| until + plan.run),
                };
                p.bump();
                ctx.container_events(p, false, "Started", |c| {
                    format!("Started container {}", c.name)
                });
                true
            }
            State::Killing {
                since,
                done_at,
                exit_code,
            } if done_at <= now => {
                p.state = State::Terminated {
                    started: Some(since),
                    finished: done_at,
                    exit_code,
                };
                p.bump();
                ctx.release_ip(p);
                true
            }
            _ => false,
        };
        if p.update_conditions(now) {
            p.bump();
        }
        if !changed {
            return;
        }
    }
}

/// ContainerCreating is over: a pod IP, then the containers run from `at`.
fn start_containers(p: &mut PodSim, ctx: &mut Ctx<'_>, at: Instant, now: Instant) {
    if p.ip.is_none() {
        if p.spec.host_network {
            p.ip = Some(ctx.host_ip);
        } else if let Some(ip) = ctx.ipam.allocate() {
            p.ip = Some(ip);
            p.ip_owned = true;
        } else {
            p.state = State::Creating {
                until: now + SANDBOX_RETRY,
            };
            ctx.event(p, None, true, "FailedCreatePodSandBox", || {
                "Failed to create pod sandbox: no IP addresses available in range set".to_string()
            });
            return;
        }
    }
    p.first_started = Some(at);
    p.state = State::Running {
        since: at,
        exits_at: p.spec.run.map(|plan| at + plan.run),
    };
    p.bump();
    ctx.container_events(p, false, "Pulled", |c| {
        format!("Container image {:?} already present on machine", c.image)
    });
    ctx.container_events(p, false, "Created", |c| {
        format!("Created container {}", c.name)
    });
    ctx.container_events(p, false, "Started", |c| {
        format!("Started container {}", c.name)
    });
}

/// The containers of a running pod exited by themselves at `at`.
fn containers_exited(p: &mut PodSim, ctx: &mut Ctx<'_>, since: Instant, at: Instant) {
    let code = p.spec.run.map_or(0, |plan| plan.exit_code);
    let restart = match p.spec.restart_policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    };
    p.bump();
    if !restart {
        p.state = State::Terminated {
            started: Some(since),
            finished: at,
            exit_code: code,
        };
        ctx.release_ip(p);
        return;
    }
    p.last_exit = Some(Exit {
        code,
        started: since,
        finished: at,
    });
    let base = ctx.cfg.crash_loop_backoff.max(Duration::from_millis(1));
    let delay = backoff(
        base,
        MAX_CONTAINER_BACKOFF.max(base),
        p.restart_count.saturating_add(1),
    );
    p.state = State::BackOff {
        until: at + delay,
        delay,
    };
    let pod = format!("{}_{}({})", p.key.name, p.key.namespace, p.key.uid);
    ctx.container_events(p, true, "BackOff", |c| {
        format!(
            "Back-off restarting failed container {} in pod {pod}",
            c.name
        )
    });
}

#[cfg(test)]
mod tests;
