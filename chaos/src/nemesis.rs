//! The faults: kill (SIGKILL) and restart of the leader or a follower, pause and unpause of a
//! member (a frozen process), a network partition of one member (docker network disconnect and
//! connect), and a restart of all members. Each is injected, held, healed, and timed: how long
//! the cluster took no writes after the injection, and how long after the heal until every
//! member had caught up.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng as _;
use serde::Serialize;
use tonic::transport::Channel;

use crate::client;
use crate::compose::docker;
use crate::Error;

/// Time since the run's start.
#[derive(Clone, Copy)]
pub struct Clock(pub std::time::Instant);

impl Clock {
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// A probe or status call's bound.
const PROBE_TIMEOUT: Duration = Duration::from_millis(700);
/// How long a cluster may take to recover after a heal before the fault counts as unrecovered.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(60);

/// One store member of the compose project.
#[derive(Clone)]
pub struct Member {
    pub service: String,
    pub container: String,
    pub network: String,
    pub channel: Channel,
    pub member_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    KillLeader,
    KillFollower,
    Pause,
    Partition,
    RestartAll,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::KillLeader,
        FaultKind::KillFollower,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::RestartAll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill leader",
            FaultKind::KillFollower => "kill follower",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::RestartAll => "restart all",
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// The member(s) it hit, and whether it was the leader ("m2 (leader)").
    pub target: String,
    pub injected_ms: u64,
    pub healed_ms: u64,
    /// From the injection until a write was acknowledged again.
    pub unavailable_ms: Option<f64>,
    /// From the heal until every member answered with the revision of a write made after it.
    pub recovered_ms: Option<f64>,
    /// Why the fault could not be injected or healed, or why the cluster did not recover.
    pub error: Option<String>,
}

/// Every member's status (asked at once), each bounded by `timeout`.
pub async fn statuses(
    members: &[Member],
    timeout: Duration,
) -> Vec<Result<client::Status, String>> {
    futures::future::join_all(
        members
            .iter()
            .map(|m| client::status(m.channel.clone(), timeout)),
    )
    .await
}

/// The cluster as the members see it: which member is the leader, by index.
pub async fn leader_index(members: &[Member]) -> Option<usize> {
    let statuses = statuses(members, PROBE_TIMEOUT).await;
    // The view of the latest term: a member that was just down may still name an old leader.
    let leader = statuses
        .iter()
        .flatten()
        .filter(|s| s.leader != 0)
        .max_by_key(|s| s.raft_term)?
        .leader;
    members.iter().position(|m| m.member_id == leader)
}

/// Probes with writes through every member in turn until one is acknowledged; its revision.
pub async fn probe_until_write(members: &[Member], limit: Duration) -> Option<i64> {
    put_marker(members, "/chaos-probe/", limit).await
}

/// Puts `key` through every member in turn until one put is acknowledged; its revision.
pub async fn put_marker(members: &[Member], key: &str, limit: Duration) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut i = 0;
    while tokio::time::Instant::now() < deadline {
        let m = &members[i % members.len()];
        if let Ok(rev) = client::probe_put(m.channel.clone(), key, PROBE_TIMEOUT).await {
            return Some(rev);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Waits until a write is acknowledged and then every member answers with at least its
/// revision and agrees on one leader.
pub async fn wait_recovered(members: &[Member], limit: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::from("no write was acknowledged");
    while tokio::time::Instant::now() < deadline {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(rev) = probe_until_write(members, left).await else {
            break;
        };
        loop {
            let statuses = statuses(members, PROBE_TIMEOUT).await;
            let leaders: Vec<u64> = statuses.iter().flatten().map(|s| s.leader).collect();
            let caught_up = statuses
                .iter()
                .all(|s| matches!(s, Ok(s) if s.revision >= rev && s.leader != 0));
            if caught_up && leaders.windows(2).all(|w| w[0] == w[1]) {
                return Ok(());
            }
            last = members
                .iter()
                .zip(&statuses)
                .map(|(m, s)| match s {
                    Ok(s) => format!(
                        "{}: revision {} leader {:x} term {}",
                        m.service, s.revision, s.leader, s.raft_term
                    ),
                    Err(e) => format!("{}: {e}", m.service),
                })
                .collect::<Vec<_>>()
                .join("; ");
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A member that is behind gets a fresh probe write once in a while, so a member
            // that fell behind a stalled leader is not waited on forever.
            if statuses.iter().any(|s| s.is_err()) {
                break;
            }
        }
    }
    Err(format!("not recovered within {limit:?}: {last}"))
}

/// Injects one fault, holds it, heals it, and times the recovery.
pub async fn fault(
    kind: FaultKind,
    round: usize,
    members: &[Member],
    clock: Clock,
    rng: &mut StdRng,
) -> FaultRecord {
    let leader = leader_index(members).await;
    let n = members.len();
    // Pause and partition alternate between the leader and a follower.
    let on_leader = match kind {
        FaultKind::KillLeader => true,
        FaultKind::KillFollower => false,
        FaultKind::Pause | FaultKind::Partition => round.is_multiple_of(2),
        FaultKind::RestartAll => false,
    };
    let target = match (on_leader, leader) {
        (true, Some(l)) => l,
        (false, Some(l)) => (l + 1 + rng.random_range(0..n - 1)) % n,
        (_, None) => rng.random_range(0..n),
    };
    let target_name = match kind {
        FaultKind::RestartAll if round.is_multiple_of(2) => "all (SIGTERM, then start)".to_string(),
        FaultKind::RestartAll => "all (SIGKILL, then start)".to_string(),
        _ => format!(
            "{}{}",
            members[target].service,
            if Some(target) == leader {
                " (leader)"
            } else {
                ""
            }
        ),
    };
    let hold = Duration::from_millis(rng.random_range(1500..3000));
    let m = &members[target];
    let containers: Vec<&str> = members.iter().map(|m| m.container.as_str()).collect();
    let mut injected = clock.now();
    // Unavailability is timed from the moment the fault is in place (the docker command has
    // returned) until a probe write is acknowledged.
    let mut probe = None;
    let mut start_probe = || {
        let members = members.to_vec();
        injected = clock.now();
        probe = Some(tokio::spawn(async move {
            probe_until_write(&members, RECOVERY_LIMIT)
                .await
                .map(|_| clock.now())
        }));
    };
    let result: Result<(), Error> = async {
        match kind {
            FaultKind::KillLeader | FaultKind::KillFollower => {
                docker(&["kill", "-s", "KILL", &m.container]).await?;
                start_probe();
                tokio::time::sleep(hold).await;
                docker(&["start", &m.container]).await?;
            }
            FaultKind::Pause => {
                docker(&["pause", &m.container]).await?;
                start_probe();
                tokio::time::sleep(hold).await;
                docker(&["unpause", &m.container]).await?;
            }
            FaultKind::Partition => {
                docker(&["network", "disconnect", &m.network, &m.container]).await?;
                start_probe();
                tokio::time::sleep(hold).await;
                reconnect(m).await?;
            }
            FaultKind::RestartAll if round.is_multiple_of(2) => {
                // All stopped together (docker stops them in parallel), then all started.
                let mut args = vec!["stop", "-t", "10"];
                args.extend(&containers);
                docker(&args).await?;
                start_probe();
                let mut args = vec!["start"];
                args.extend(&containers);
                docker(&args).await?;
            }
            FaultKind::RestartAll => {
                let mut args = vec!["kill", "-s", "KILL"];
                args.extend(&containers);
                docker(&args).await?;
                start_probe();
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut args = vec!["start"];
                args.extend(&containers);
                docker(&args).await?;
            }
        }
        Ok(())
    }
    .await;
    let healed = clock.now();
    let mut record = FaultRecord {
        kind,
        target: target_name,
        injected_ms: injected / 1_000_000,
        healed_ms: healed / 1_000_000,
        unavailable_ms: None,
        recovered_ms: None,
        error: result.err().map(|e| e.to_string()),
    };
    match wait_recovered(members, RECOVERY_LIMIT).await {
        Ok(()) => record.recovered_ms = Some(ms(clock.now() - healed)),
        Err(e) => {
            record.error.get_or_insert(e);
        }
    }
    if let Some(probe) = probe {
        if let Ok(Some(at)) = probe.await {
            record.unavailable_ms = Some(ms(at.saturating_sub(injected)));
        }
    }
    record
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// Puts a member back on its network under its service name (what the other members dial).
async fn reconnect(m: &Member) -> Result<String, Error> {
    docker(&[
        "network",
        "connect",
        "--alias",
        &m.service,
        &m.network,
        &m.container,
    ])
    .await
}

/// Undoes whatever a failed fault may have left: every member running, unpaused and on its
/// network (each step may fail harmlessly when there is nothing to undo).
pub async fn heal_all(members: &[Member]) {
    for m in members {
        let _ = docker(&["unpause", &m.container]).await;
        let _ = reconnect(m).await;
        let _ = docker(&["start", &m.container]).await;
    }
}
