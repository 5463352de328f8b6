//! Members that missed writes catch up: (a) a follower stopped while 1000 keys are written
//! catches up from the log after a restart; (b) a member removed, wiped and re-added after the
//! leader compacted its log (small `--snapshot-count`) catches up from a snapshot. Either way it
//! ends with the same HashKV as the others.
//!
//! Run: `MAINSTAY_TEST_TARGET=etcd cargo test -p mainstay-testkit --test catch_up -- --nocapture`

use std::time::Duration;

use etcd_client::GetOptions;
use mainstay_testkit::cluster::{AddMember, Cluster, ClusterOptions, Target, LEADER_TIMEOUT};
use mainstay_testkit::workload::{verify_acked_puts, write_keys, Endpoints};
use tokio::time::Instant;

/// Keys written while the follower is down in (a).
const FOLLOWER_MISSES: usize = 1000;
/// `--snapshot-count` in (b).
const SNAPSHOT_COUNT: u64 = 100;
/// Keys written while the member is out of the cluster in (b). etcd keeps the last 5000 log
/// entries after a snapshot for slow followers, so only a member that is more than 5000 entries
/// behind is sent a snapshot; this is more.
const REMOVED_MISSES: usize = 5500;

/// The number of keys under `prefix` in member `i`'s own store (a serializable read: no
/// round trip to the leader).
async fn local_count(cluster: &Cluster, i: usize, prefix: &str) -> i64 {
    let mut client = cluster.client(i).await;
    client
        .get(
            prefix,
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_count_only()
                    .with_serializable(),
            ),
        )
        .await
        .expect("a serializable count")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_follower_catches_up() {
    const PREFIX: &str = "/catch-up/a/";
    let started = Instant::now();
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let follower = (leader + 1) % cluster.len();
    cluster.kill(follower);

    let others: Vec<String> = (0..cluster.len())
        .filter(|&i| i != follower)
        .map(|i| cluster.client_url(i))
        .collect();
    let write_started = Instant::now();
    let acked = write_keys(
        &Endpoints::new(others.clone()),
        PREFIX,
        FOLLOWER_MISSES,
        16,
        Duration::from_secs(120),
    )
    .await;
    let write_secs = write_started.elapsed().as_secs_f64();

    let restarted = Instant::now();
    cluster.start_member(follower).await;
    let all: Vec<usize> = (0..cluster.len()).collect();
    let (revision, hash) = cluster.wait_converged(&all, Duration::from_secs(60)).await;
    let caught_up = restarted.elapsed();
    let count = local_count(&cluster, follower, PREFIX).await;
    println!(
        "(a) {FOLLOWER_MISSES} puts with {} stopped took {write_secs:.2} s ({:.0}/s); restarted, \
         it caught up in {} ms: HashKV {hash:08x} at revision {revision} on all members, {count} \
         keys in its own store; total {:.1} s",
        cluster.name(follower),
        FOLLOWER_MISSES as f64 / write_secs,
        caught_up.as_millis(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(count, FOLLOWER_MISSES as i64);
    verify_acked_puts(&[cluster.client_url(follower)], PREFIX, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_member_re_added_catches_up_from_a_snapshot() {
    const PREFIX: &str = "/catch-up/b/";
    let started = Instant::now();
    let mut cluster = Cluster::start_with(
        3,
        ClusterOptions {
            snapshot_count: Some(SNAPSHOT_COUNT),
            ..ClusterOptions::default()
        },
    )
    .await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let victim = (leader + 1) % cluster.len();
    let old_id = cluster.member_id(victim).expect("a started member's ID");
    cluster.member_remove(victim).await;
    cluster.kill(victim);
    cluster.wipe(victim);
    let list = cluster.member_list().await;
    assert_eq!(list.len(), 2, "after MemberRemove: {list:?}");
    assert!(list.iter().all(|m| m.id != old_id));

    let others: Vec<String> = (0..cluster.len())
        .filter(|&i| i != victim)
        .map(|i| cluster.client_url(i))
        .collect();
    let write_started = Instant::now();
    let acked = write_keys(
        &Endpoints::new(others),
        PREFIX,
        REMOVED_MISSES,
        32,
        Duration::from_secs(180),
    )
    .await;
    let write_secs = write_started.elapsed().as_secs_f64();

    let index = cluster
        .add_member(AddMember {
            learner: false,
            reuse: Some(victim),
        })
        .await;
    assert_eq!(index, victim);
    let new_id = cluster.member_id(victim).expect("MemberAdd gave an ID");
    assert_ne!(new_id, old_id, "a re-added member is a new member");
    let restarted = Instant::now();
    cluster.start_member(victim).await;
    let answering = restarted.elapsed();
    let all: Vec<usize> = (0..cluster.len()).collect();
    let (revision, hash) = cluster.wait_converged(&all, Duration::from_secs(120)).await;
    let caught_up = restarted.elapsed();
    let count = local_count(&cluster, victim, PREFIX).await;

    let list = cluster.member_list().await;
    assert_eq!(list.len(), 3, "after re-adding: {list:?}");
    let re_added = list
        .iter()
        .find(|m| m.id == new_id)
        .expect("the re-added member is listed");
    assert_eq!(re_added.name, cluster.name(victim));
    assert_eq!(re_added.peer_urls, vec![cluster.peer_url(victim)]);
    assert!(!re_added.is_learner);

    // It must have caught up from a snapshot, not from the log: each server says so in its own
    // words.
    let last_run = cluster.last_run_log(victim);
    let installed = match Target::from_env() {
        Target::Mainstay => "installed a snapshot",
        Target::Etcd => "applied incoming snapshot",
    };
    assert!(
        last_run.contains(installed),
        "the re-added member's log does not say {installed:?}: it did not catch up from a snapshot"
    );
    let snapshot_lines: Vec<&str> = last_run
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("snapshot")
                && ["receiv", "install", "appl", "restor"]
                    .iter()
                    .any(|w| l.contains(w))
        })
        .collect();
    println!(
        "(b) --snapshot-count {SNAPSHOT_COUNT}: removed and wiped {}, {REMOVED_MISSES} puts took \
         {write_secs:.2} s ({:.0}/s); re-added as {new_id:x}, it answered after {} ms and caught up in {} ms: HashKV \
         {hash:08x} at revision {revision} on all members, {count} keys in its own store; its log \
         has {} lines on receiving/installing a snapshot{}; total {:.1} s",
        cluster.name(victim),
        REMOVED_MISSES as f64 / write_secs,
        answering.as_millis(),
        caught_up.as_millis(),
        snapshot_lines.len(),
        snapshot_lines
            .first()
            .map(|l| format!(", first: {}", l.trim()))
            .unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(count, REMOVED_MISSES as i64);
    verify_acked_puts(&[cluster.client_url(victim)], PREFIX, &acked).await;
}
