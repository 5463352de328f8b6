//! Membership changes under load: add a fourth member as a learner, start it, let it catch up,
//! promote it, then remove the leader (an original member) and stop it. A writer keeps writing
//! throughout; after every step writes are acknowledged again within a bound, and the member list
//! says what it should (names, peer URLs, learner flags).
//!
//! Run: `MAINSTAY_TEST_TARGET=etcd cargo test -p mainstay-testkit --test membership -- --nocapture`

use std::time::Duration;

use mainstay_testkit::cluster::{AddMember, Cluster, MemberInfo, LEADER_TIMEOUT};
use mainstay_testkit::workload::{spawn_unique_writers, verify_acked_puts, Endpoints, Stop};
use tokio::time::Instant;

const PREFIX: &str = "/membership/";
/// After each step, a put issued after it must be acknowledged within this.
const WRITE_RESUMES_WITHIN: Duration = Duration::from_secs(5);
/// How long a member list may take to show a committed change.
const LIST_SETTLES_WITHIN: Duration = Duration::from_secs(10);
/// No gap between acknowledged puts may be longer than this.
const LONGEST_GAP: Duration = Duration::from_secs(5);

/// Waits until the member list has exactly these members: (index, name as listed, learner).
/// MemberList answers from the asked member's own view (etcd 3.4 has no linearizable
/// MemberList), which may lag a change just committed, so it is polled for a bounded time.
async fn expect_members(
    cluster: &mut Cluster,
    expected: &[(usize, &str, bool)],
    step: &str,
) -> Vec<MemberInfo> {
    let mut want: Vec<(u64, String, Vec<String>, bool)> = expected
        .iter()
        .map(|&(i, name, learner)| {
            (
                cluster.member_id(i).expect("a known member ID"),
                name.to_string(),
                vec![cluster.peer_url(i)],
                learner,
            )
        })
        .collect();
    want.sort();
    let deadline = Instant::now() + LIST_SETTLES_WITHIN;
    loop {
        let list = cluster.member_list().await;
        let mut got: Vec<(u64, String, Vec<String>, bool)> = list
            .iter()
            .map(|m| (m.id, m.name.clone(), m.peer_urls.clone(), m.is_learner))
            .collect();
        got.sort();
        if got == want {
            let shown: Vec<String> = list
                .iter()
                .map(|m| {
                    format!(
                        "{}{}",
                        if m.name.is_empty() {
                            "(unstarted)"
                        } else {
                            &m.name
                        },
                        if m.is_learner { " (learner)" } else { "" }
                    )
                })
                .collect();
            println!("  member list: {}", shown.join(", "));
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "member list after {step}:\n  got  {got:?}\n  want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_learner_promote_remove_under_load() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3).await;
    let endpoints = Endpoints::new(cluster.endpoints());
    let stop = Stop::new();
    let writers = spawn_unique_writers(&endpoints, 2, PREFIX, Duration::from_secs(2), &stop);
    expect_members(
        &mut cluster,
        &[(0, "n1", false), (1, "n2", false), (2, "n3", false)],
        "start",
    )
    .await;
    let mut steps: Vec<(&str, Instant)> = Vec::new();

    // 1. MemberAdd as learner: listed, without a name until it starts.
    let t = Instant::now();
    let new = cluster
        .add_member(AddMember {
            learner: true,
            reuse: None,
        })
        .await;
    steps.push(("add learner", Instant::now()));
    println!(
        "step 1: added {} as a learner in {} ms (MemberAdd is refused until every voter has been \
         connected for a while)",
        cluster.name(new),
        t.elapsed().as_millis()
    );
    expect_members(
        &mut cluster,
        &[
            (0, "n1", false),
            (1, "n2", false),
            (2, "n3", false),
            (new, "", true),
        ],
        "MemberAdd (learner)",
    )
    .await;

    // 2. Start it; it catches up as a learner and publishes its name.
    let t = Instant::now();
    cluster.start_member(new).await;
    steps.push(("start learner", Instant::now()));
    let caught_up = cluster.wait_caught_up(new, Duration::from_secs(60)).await;
    let status = cluster.status(new).await.expect("the learner's status");
    assert!(
        status.is_learner(),
        "the new member reports itself a learner"
    );
    let new_name = cluster.name(new).to_string();
    println!(
        "step 2: started {new_name}, answering and caught up after {} ms (catch-up wait {} ms)",
        t.elapsed().as_millis(),
        caught_up.as_millis()
    );
    // The name appears once the member's publish is applied.
    let list = expect_members(
        &mut cluster,
        &[
            (0, "n1", false),
            (1, "n2", false),
            (2, "n3", false),
            (new, &new_name, true),
        ],
        "starting the learner",
    )
    .await;
    let listed = list.iter().find(|m| m.name == new_name).expect("listed");
    assert_eq!(listed.client_urls, vec![cluster.client_url(new)]);

    // 3. Promote it to a voter; clients may use it now (a learner serves no writes).
    let t = Instant::now();
    cluster.member_promote(new).await;
    steps.push(("promote", Instant::now()));
    endpoints.add(cluster.client_url(new));
    println!(
        "step 3: promoted {new_name} in {} ms",
        t.elapsed().as_millis()
    );
    expect_members(
        &mut cluster,
        &[
            (0, "n1", false),
            (1, "n2", false),
            (2, "n3", false),
            (new, &new_name, false),
        ],
        "MemberPromote",
    )
    .await;

    // 4. Remove the leader (an original member) and stop it.
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let victim = if leader < 3 { leader } else { 0 };
    let victim_name = cluster.name(victim).to_string();
    let t = Instant::now();
    cluster.member_remove(victim).await;
    let removed_at = Instant::now();
    endpoints.remove(&cluster.client_url(victim));
    // etcd stops a member by itself once it learns it was removed; give it a moment to.
    let exit_deadline = Instant::now() + Duration::from_secs(5);
    while cluster.is_running(victim) && Instant::now() < exit_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exited_by_itself = !cluster.is_running(victim);
    cluster.kill(victim);
    let new_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    println!(
        "step 4: removed {victim_name} ({}) in {} ms; its process {}; leader now {}",
        if victim == leader {
            "the leader"
        } else {
            "a follower"
        },
        (removed_at - t).as_millis(),
        if exited_by_itself {
            "exited by itself"
        } else {
            "was still running after 5 s and was killed"
        },
        cluster.name(new_leader)
    );
    let remaining: Vec<usize> = (0..cluster.len()).filter(|&i| i != victim).collect();
    let names: Vec<String> = remaining
        .iter()
        .map(|&i| cluster.name(i).to_string())
        .collect();
    let expected: Vec<(usize, &str, bool)> = remaining
        .iter()
        .zip(&names)
        .map(|(&i, name)| (i, name.as_str(), false))
        .collect();
    expect_members(&mut cluster, &expected, "MemberRemove").await;
    steps.push(("remove leader", removed_at));

    // Let the writers run on the new configuration for a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.stop();
    let log = tokio::time::timeout(Duration::from_secs(30), writers)
        .await
        .expect("the writers stop within 30 s")
        .expect("the writers did not panic");

    let mut failures = Vec::new();
    for (i, (step, at)) in steps.iter().enumerate() {
        let until = steps.get(i + 1).map(|&(_, t)| t);
        let not_acked = log
            .unacked_calls
            .iter()
            .filter(|&&c| c >= *at && until.is_none_or(|u| c < u))
            .count();
        match log.first_ack_after(*at) {
            Some(d) => {
                println!(
                    "after \"{step}\": first write acknowledged {} ms later; {not_acked} puts \
                     unacknowledged until the next step",
                    d.as_millis()
                );
                if d > WRITE_RESUMES_WITHIN {
                    failures.push(format!("after {step}: writes resumed after {d:?}"));
                }
            }
            None => failures.push(format!("after {step}: no write was acknowledged")),
        }
    }
    let (gap, _) = log.longest_ack_gap().expect("writes were acknowledged");
    println!(
        "writer: {} puts acknowledged, {} refused before sending, {} unknown; longest gap \
         between acknowledgements {} ms",
        log.acked.len(),
        log.failed,
        log.unknown,
        gap.as_millis()
    );
    assert!(failures.is_empty(), "{}", failures.join("; "));
    assert!(gap <= LONGEST_GAP, "writes stalled for {gap:?}");

    let urls: Vec<String> = remaining.iter().map(|&i| cluster.client_url(i)).collect();
    verify_acked_puts(&urls, PREFIX, &log.acked).await;
    let (revision, hash) = cluster
        .wait_converged(&remaining, Duration::from_secs(60))
        .await;
    println!(
        "remaining members have HashKV {hash:08x} at revision {revision}; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// What a membership call answered: `Ok` or the gRPC code's name and the message.
fn outcome<T>(result: Result<T, etcd_client::Error>) -> Result<(), (String, String)> {
    match result {
        Ok(_) => Ok(()),
        Err(etcd_client::Error::GRpcStatus(s)) => {
            Err((format!("{:?}", s.code()), s.message().to_string()))
        }
        Err(e) => panic!("not a gRPC answer: {e}"),
    }
}

/// etcd's strict reconfiguration check, on real etcd 3.4 and on Mainstay, which must answer
/// alike. Three adds of members that will never start (mistyped URLs): the first is taken, the
/// next two are refused as "unhealthy cluster" (a voter is not connected), so the cluster keeps a
/// quorum of started members and goes on writing. Then, with one member down, removing a live
/// one (which would leave one of three active) is refused, and removing the dead one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistaken_membership_changes_are_refused_as_etcd_refuses_them() {
    use mainstay_testkit::cluster::{ClusterOptions, Target};
    const UNHEALTHY: &str = "etcdserver: unhealthy cluster";
    for target in [Target::Etcd, Target::Mainstay] {
        let options = ClusterOptions {
            target: Some(target),
            ..Default::default()
        };
        let mut cluster = Cluster::start_with(3, options).await;
        let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
        let mut client = cluster.client(leader).await;
        let bogus = |i: u16| vec![format!("http://127.0.0.1:{}", 1000 + i)];

        // The first add waits until every voter has been connected for etcd's health interval.
        let deadline = Instant::now() + Duration::from_secs(20);
        let first = loop {
            match client.member_add(bogus(1), None).await {
                Ok(r) => break r.member().expect("the added member").id(),
                Err(e) if e.to_string().contains(UNHEALTHY) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("{target:?}: the first add: {e}"),
            }
        };
        for i in 2..=3 {
            assert_eq!(
                outcome(client.member_add(bogus(i), None).await),
                Err(("Unavailable".to_string(), UNHEALTHY.to_string())),
                "{target:?}: add {i}"
            );
        }
        client.put("after-adds", "v", None).await.unwrap();
        assert_eq!(cluster.member_list().await.len(), 4, "{target:?}");
        // A member that never answered is safe to remove.
        outcome(client.member_remove(first).await).unwrap_or_else(|e| panic!("{target:?}: {e:?}"));

        // One follower down: removing the other would leave the leader alone of three.
        let (x, y) = ((leader + 1) % 3, (leader + 2) % 3);
        cluster.kill(y);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (x_id, y_id) = (cluster.member_id(x).unwrap(), cluster.member_id(y).unwrap());
        assert_eq!(
            outcome(client.member_remove(x_id).await),
            Err(("Unavailable".to_string(), UNHEALTHY.to_string())),
            "{target:?}: removing a live member while another is down"
        );
        outcome(client.member_remove(y_id).await)
            .unwrap_or_else(|e| panic!("{target:?}: removing the dead member: {e:?}"));
        client.put("after-removal", "v", None).await.unwrap();
        let got = client.get("after-adds", None).await.unwrap();
        assert_eq!(got.kvs().len(), 1, "{target:?}");
        println!("{target:?}: refused as etcd refuses");
    }
}
