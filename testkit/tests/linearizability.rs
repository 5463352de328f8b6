//! Concurrent clients run put / linearizable get / compare-and-swap on a few keys through all
//! members while the leader is killed (-9) and restarted; the recorded history must be
//! linearizable per key, and the revisions each client sees must never go backwards.
//!
//! Run: `MAINSTAY_TEST_TARGET=etcd cargo test -p mainstay-testkit --test linearizability -- --nocapture`
//! A failure prints the seed; `MAINSTAY_TEST_SEED=<seed>` replays the same client choices (the
//! timing, and so the history, differs).

use std::sync::Arc;
use std::time::Duration;

use mainstay_testkit::cluster::{Cluster, LEADER_TIMEOUT};
use mainstay_testkit::history::{History, Outcome};
use mainstay_testkit::lincheck;
use mainstay_testkit::workload::{seed_from_env, Endpoints, OutcomeCounts, RegisterWorkload, Stop};
use tokio::time::Instant;

const CLIENTS: usize = 6;
const KEYS: usize = 4;
/// Leader kills, one every `KILL_EVERY`; the workload runs `KILL_EVERY` longer than the last.
const KILLS: usize = 3;
const KILL_EVERY: Duration = Duration::from_secs(6);
/// How long a killed leader stays down.
const DOWN_FOR: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizability_under_leader_kills() {
    let started = Instant::now();
    let seed = seed_from_env();
    let mut cluster = Cluster::start(3).await;
    let endpoints = Endpoints::new(cluster.endpoints());
    let history = Arc::new(History::new());
    let stop = Stop::new();
    let workload = RegisterWorkload {
        clients: CLIENTS,
        keys: (0..KEYS).map(|k| format!("/lin/k{k}")).collect(),
        get_percent: 40,
        cas_percent: 30,
        op_timeout: Duration::from_secs(2),
        think_time: Duration::ZERO,
        seed,
    };
    let tasks = workload.spawn(&endpoints, &history, &stop);

    let mut leaders = Vec::new();
    for round in 1..=KILLS {
        tokio::time::sleep(KILL_EVERY - DOWN_FOR).await;
        let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
        leaders.push(cluster.name(leader).to_string());
        cluster.kill(leader);
        tokio::time::sleep(DOWN_FOR).await;
        cluster.start_member(leader).await;
        cluster
            .wait_caught_up(leader, Duration::from_secs(30))
            .await;
        println!(
            "round {round}: killed leader {} for {DOWN_FOR:?}, restarted",
            cluster.name(leader)
        );
    }
    tokio::time::sleep(KILL_EVERY).await;
    stop.stop();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a client stops within 30 s")
            .expect("a client task panicked");
    }
    let workload_secs = started.elapsed().as_secs_f64();

    let records = history.records();
    let counts = OutcomeCounts::of(&records);
    println!(
        "{} operations by {CLIENTS} clients on {KEYS} keys: {} gets, {} puts, {} CAS swapped, {} CAS \
         not swapped, {} failed (not sent), {} unknown",
        counts.total(),
        counts.get,
        counts.put,
        counts.cas_swapped,
        counts.cas_not_swapped,
        counts.failed,
        counts.unknown
    );
    println!("killed leaders: {}", leaders.join(", "));
    assert!(
        counts.get > 100
            && counts.put > 100
            && counts.cas_swapped > 10
            && counts.cas_not_swapped > 10,
        "too few operations of some kind to mean anything: {counts:?}"
    );

    let check_started = std::time::Instant::now();
    let result = lincheck::check(&records);
    println!(
        "linearizability check took {:.2} s",
        check_started.elapsed().as_secs_f64()
    );
    if let Err(violation) = result {
        panic!("{violation} (seed {seed})");
    }
    if let Err(e) = lincheck::check_revisions_monotonic(&records) {
        panic!("revisions went backwards: {e} (seed {seed})");
    }
    // Negative control: the same history with one read changed to a value nobody wrote must be
    // refused, or the check above proves nothing.
    let mut tampered = records.clone();
    let read = tampered
        .iter_mut()
        .rev()
        .find(|r| matches!(r.outcome, Outcome::Get(Some(_))))
        .expect("some read returned a value");
    read.outcome = Outcome::Get(Some("never-written".to_string()));
    assert!(
        lincheck::check(&tampered).is_err(),
        "the checker accepted a read of a value nobody wrote"
    );
    println!(
        "history is linearizable; workload {workload_secs:.1} s, total {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
