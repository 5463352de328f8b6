//! A watcher on a prefix, connected to one member, survives that member being killed: it
//! reconnects to another member and resumes from the revision after the last event it saw. In
//! the end it has seen every change under the prefix from its start revision exactly once, in
//! order, as the store's history (read back by Range at each revision) has them.
//!
//! Run: `MAINSTAY_TEST_TARGET=etcd cargo test -p mainstay-testkit --test watch_failover -- --nocapture`

use std::collections::HashMap;
use std::time::Duration;

use mainstay_testkit::cluster::{Cluster, LEADER_TIMEOUT};
use mainstay_testkit::watchcheck::{check_watch, Change};
use mainstay_testkit::watching::{collect_watch, history_by_ranges, ResumingWatcher};
use mainstay_testkit::workload::{spawn_churn_writers, write_keys, Endpoints, Stop};
use tokio::time::Instant;

const PREFIX: &str = "/watch/";
const ROUNDS: usize = 3;
/// Writes made before the watch opens; it starts from the middle of them, so it replays history
/// before it follows live changes.
const EARLIER_WRITES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_resumes_on_another_member() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3).await;
    let endpoints = Endpoints::new(cluster.endpoints());

    let mut earlier = write_keys(
        &endpoints,
        &format!("{PREFIX}earlier-"),
        EARLIER_WRITES,
        1,
        Duration::from_secs(30),
    )
    .await;
    earlier.sort_by_key(|p| p.revision);
    let start_revision = earlier[EARLIER_WRITES / 2].revision;

    // Start on a follower: the first kill then does not also fail over the leader.
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let first = (leader + 1) % cluster.len();
    let watcher = ResumingWatcher::spawn(
        endpoints.clone(),
        first,
        PREFIX,
        start_revision,
        Duration::from_secs(180),
    );
    let stop = Stop::new();
    let writers = spawn_churn_writers(&endpoints, 4, PREFIX, 10, 20, Duration::from_secs(2), &stop);
    watcher
        .wait_for_revision(
            start_revision + EARLIER_WRITES as i64,
            Duration::from_secs(30),
        )
        .await;

    for round in 1..=ROUNDS {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let url = watcher.connected_to();
        let victim = (0..cluster.len())
            .find(|&i| cluster.client_url(i) == url)
            .expect("the watcher is connected to a member");
        let was_leader = cluster.leader().await == Some(victim);
        let seen_before = watcher.last_revision();
        let killed_at = Instant::now();
        cluster.kill(victim);
        // Resumed: streaming from another member, with events newer than before the kill.
        let deadline = killed_at + Duration::from_secs(30);
        while watcher.connected_to() == url || watcher.last_revision() <= seen_before {
            assert!(
                Instant::now() < deadline,
                "the watcher did not resume on another member within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let resumed = killed_at.elapsed();
        let now_on = watcher.connected_to();
        let now_on = (0..cluster.len())
            .find(|&i| cluster.client_url(i) == now_on)
            .map(|i| cluster.name(i).to_string())
            .unwrap_or(now_on);
        println!(
            "round {round}: killed {} ({}) under the watcher at revision {seen_before}; it \
             resumed on {} and received new events after {} ms",
            cluster.name(victim),
            if was_leader { "leader" } else { "follower" },
            now_on,
            resumed.as_millis()
        );
        cluster.start_member(victim).await;
        cluster
            .wait_caught_up(victim, Duration::from_secs(30))
            .await;
    }

    stop.stop();
    let log = tokio::time::timeout(Duration::from_secs(30), writers)
        .await
        .expect("the writers stop within 30 s")
        .expect("the writers did not panic");
    // A last write marks the end: everything up to it must have been delivered.
    let mut client = cluster.client_all().await;
    let end_revision = client
        .put(format!("{PREFIX}end"), "end", None)
        .await
        .expect("the final put")
        .header()
        .expect("a header")
        .revision();
    let reconnects = watcher.reconnects();
    let seen = watcher.finish(end_revision, Duration::from_secs(60)).await;

    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let history = history_by_ranges(
        &cluster.client_url(leader),
        PREFIX,
        start_revision,
        end_revision,
    )
    .await;
    let other = (leader + 1) % cluster.len();
    let fresh = collect_watch(
        &cluster.client_url(other),
        PREFIX,
        start_revision,
        end_revision,
    )
    .await;
    println!(
        "writers: {} changes acknowledged, {} refused before sending, {} unknown; history \
         {start_revision}..={end_revision} has {} changes; the watcher saw {} events over {} \
         reconnects",
        log.acked.len(),
        log.failed,
        log.unknown,
        history.len(),
        seen.len(),
        reconnects
    );

    // The reference history must hold every acknowledged change at its revision.
    let by_revision: HashMap<i64, &Change> = history.iter().map(|c| (c.revision, c)).collect();
    for change in &log.acked {
        assert_eq!(
            by_revision.get(&change.revision).copied(),
            Some(change),
            "an acknowledged change is not in the store's history"
        );
    }
    for put in earlier.iter().filter(|p| p.revision >= start_revision) {
        let change = by_revision.get(&put.revision).expect("an earlier put");
        assert_eq!(change.key, put.key.as_bytes());
    }
    assert!(
        reconnects >= ROUNDS,
        "the watcher reconnected {reconnects} times"
    );

    if let Err(e) = check_watch(&fresh, &history, start_revision, Some(end_revision)) {
        panic!("a fresh watch disagrees with the history read by Range: {e}");
    }
    if let Err(e) = check_watch(&seen, &history, start_revision, Some(end_revision)) {
        panic!("the resuming watcher's events are wrong: {e}");
    }
    // Negative control: a stream missing one event must be refused.
    let mut gapped = seen.clone();
    gapped.remove(gapped.len() / 2);
    assert!(
        check_watch(&gapped, &history, start_revision, Some(end_revision)).is_err(),
        "the checker accepted a watch stream with a gap"
    );
    println!(
        "the watcher's {} events match the history exactly; total {:.1} s",
        seen.len(),
        started.elapsed().as_secs_f64()
    );
}
