//! Kill -9 the leader of a 3-member cluster again and again while writers keep writing: writes
//! resume through the survivors within 2 s (median), no acknowledged write is lost, and the
//! members converge to the same data.
//!
//! Run: `MAINSTAY_TEST_TARGET=etcd cargo test -p mainstay-testkit --test leader_failover -- --nocapture`

use std::time::Duration;

use mainstay_testkit::cluster::{Cluster, LEADER_TIMEOUT};
use mainstay_testkit::workload::{
    median, spawn_unique_writers, time_until_write_succeeds, verify_acked_puts, Endpoints, Stop,
};
use tokio::time::Instant;

const ROUNDS: usize = 10;
const WRITERS: usize = 8;
/// What the issue requires of the median failover.
const MEDIAN_LIMIT: Duration = Duration::from_secs(2);
const PREFIX: &str = "/failover/";
/// A writer gives up on a put after this long (its outcome is then unknown) and moves to another
/// member: a put forwarded to a dead leader only ever times out.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3).await;
    let endpoints = Endpoints::new(cluster.endpoints());
    let stop = Stop::new();
    let writers = spawn_unique_writers(&endpoints, WRITERS, PREFIX, WRITE_TIMEOUT, &stop);
    // Let the writers get going.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut failovers = Vec::new();
    for round in 1..=ROUNDS {
        let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
        let survivors: Vec<String> = (0..cluster.len())
            .filter(|&i| i != leader)
            .map(|i| cluster.client_url(i))
            .collect();
        let killed_at = Instant::now();
        cluster.kill(leader);
        // A put every 20 ms through the survivors, each allowed to hang up to 10 s: requests sent
        // into the dead leader's term only time out; the first acknowledged one marks recovery.
        let took = time_until_write_succeeds(
            &survivors,
            "/failover-probe",
            killed_at,
            Duration::from_millis(20),
            Duration::from_secs(10),
            Duration::from_secs(30),
        )
        .await;
        let new_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
        assert_ne!(new_leader, leader, "the killed member cannot be leader");
        failovers.push(took);
        cluster.start_member(leader).await;
        // Before the next kill the restarted member must be back in the quorum, or killing the
        // next leader would leave one member of three.
        let caught_up = cluster
            .wait_caught_up(leader, Duration::from_secs(30))
            .await;
        println!(
            "round {round:2}: killed leader {}, writes accepted again after {:4} ms, new leader {}, \
             {} restarted and caught up in {} ms",
            cluster.name(leader),
            took.as_millis(),
            cluster.name(new_leader),
            cluster.name(leader),
            caught_up.as_millis()
        );
    }

    stop.stop();
    let log = tokio::time::timeout(Duration::from_secs(30), writers)
        .await
        .expect("the writers stop within 30 s")
        .expect("the writers did not panic");
    let mut sorted = failovers.clone();
    sorted.sort();
    let median = median(&failovers);
    println!(
        "failover (kill -9 of the leader until a write is acknowledged): median {} ms, min {} ms, \
         max {} ms over {ROUNDS} rounds",
        median.as_millis(),
        sorted[0].as_millis(),
        sorted[sorted.len() - 1].as_millis()
    );
    let (gap, _) = log
        .longest_ack_gap()
        .expect("some writes were acknowledged");
    println!(
        "writers: {} puts acknowledged, {} refused before sending, {} with unknown outcome; \
         longest gap between acknowledgements {} ms",
        log.acked.len(),
        log.failed,
        log.unknown,
        gap.as_millis()
    );

    let mut latencies: Vec<Duration> = log.acked.iter().map(|a| a.returned - a.call).collect();
    latencies.sort();
    println!(
        "acknowledged put latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );

    let alive = cluster.alive_endpoints();
    let keys = verify_acked_puts(&alive, PREFIX, &log.acked).await;
    println!(
        "all {} acknowledged puts read back ({keys} keys present, the rest had unknown outcomes)",
        log.acked.len()
    );
    let members: Vec<usize> = (0..cluster.len()).collect();
    let (revision, hash) = cluster
        .wait_converged(&members, Duration::from_secs(60))
        .await;
    println!("all members have HashKV {hash:08x} at revision {revision}");
    println!("total {:.1} s", started.elapsed().as_secs_f64());

    assert!(
        median <= MEDIAN_LIMIT,
        "median failover {median:?} exceeds {MEDIAN_LIMIT:?}: {failovers:?}"
    );
}
