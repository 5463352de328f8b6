//! What a simulated node keeps of each pod (`PodSim` and its `State`) and the clock that maps
//! timers to the wall times statuses carry: the data that the state machine (`sim`) changes and
//! the status writer (`status`) reads.

use std::net::Ipv4Addr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::observe::{PodKey, PodSpecLite};

/// Exit code of a container killed with SIGKILL when its grace period ran out, and of one
/// that never started in a pod that was deleted.
pub const EXIT_KILLED: i32 = 137;
/// Maps tokio's clock to wall time: statuses carry wall times, timers use `Instant`s.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub instant: Instant,
    pub wall: DateTime<Utc>,
}

impl Clock {
    pub fn wall(&self, at: Instant) -> DateTime<Utc> {
        if at >= self.instant {
            let d = chrono::Duration::from_std(at - self.instant).unwrap_or(chrono::Duration::MAX);
            self.wall.checked_add_signed(d).unwrap_or(self.wall)
        } else {
            let d = chrono::Duration::from_std(self.instant - at).unwrap_or(chrono::Duration::MAX);
            self.wall.checked_sub_signed(d).unwrap_or(self.wall)
        }
    }

    /// The instant of a wall time (of a pod found running); times before what this process
    /// can represent are clamped to the clock's base.
    pub fn instant(&self, wall: DateTime<Utc>) -> Instant {
        match (wall - self.wall).to_std() {
            Ok(ahead) => self.instant + ahead,
            Err(_) => {
                let behind = (self.wall - wall).to_std().unwrap_or_default();
                self.instant.checked_sub(behind).unwrap_or(self.instant)
            }
        }
    }
}

/// A condition of the pod that is on or off since a moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flip {
    pub on: bool,
    pub since: Instant,
}

impl Flip {
    pub(crate) fn new(on: bool, since: Instant) -> Flip {
        Flip { on, since }
    }

    /// Sets the value; true when it changed.
    pub(crate) fn set(&mut self, on: bool, at: Instant) -> bool {
        if self.on == on {
            return false;
        }
        self.on = on;
        self.since = at;
        true
    }
}

/// A previous run of the containers (for `lastState`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exit {
    pub code: i32,
    pub started: Instant,
    pub finished: Instant,
}

#[derive(Debug, Clone)]
pub(crate) enum State {
    /// Refused by admission: phase Failed with a reason.
    Rejected {
        reason: &'static str,
        message: Box<str>,
    },
    /// Sandbox and images being prepared.
    Creating { until: Instant },
    Running {
        since: Instant,
        exits_at: Option<Instant>,
    },
    /// Exited; restarting after a CrashLoopBackOff.
    BackOff { until: Instant, delay: Duration },
    /// SIGTERM sent; the containers stop at `done_at` with `exit_code`.
    Killing {
        since: Instant,
        done_at: Instant,
        exit_code: i32,
    },
    /// Finished for good. `started` None: the containers never ran.
    Terminated {
        started: Option<Instant>,
        finished: Instant,
        exit_code: i32,
    },
}

impl State {
    pub fn is_terminal(&self) -> bool {
        matches!(self, State::Rejected { .. } | State::Terminated { .. })
    }
}

/// One pod of the node.
#[derive(Debug, Clone)]
pub(crate) struct PodSim {
    pub key: PodKey,
    pub spec: PodSpecLite,
    pub deletion_grace: Option<Duration>,
    pub gates: Option<Box<str>>,
    pub add_pod_scheduled: bool,
    /// When the node first saw the pod (`status.startTime`).
    pub acknowledged: Instant,
    /// When the containers first ran (sandbox ready, init containers done).
    pub first_started: Option<Instant>,
    pub state: State,
    pub ip: Option<Ipv4Addr>,
    /// The IP is ours to give back to the node's range.
    pub ip_owned: bool,
    pub restart_count: u32,
    pub last_exit: Option<Exit>,
    pub sandbox_ready: Flip,
    pub initialized: Flip,
    pub containers_ready: Flip,
    pub ready: Flip,
    /// Bumped on every change the API should see; `written` is the last one it has.
    pub(crate) version: u32,
    pub(crate) written: u32,
    pub(crate) in_flight: bool,
    pub(crate) queued: bool,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) write_failures: u32,
    pub(crate) delete_issued: bool,
    pub(crate) seen_epoch: u32,
}
