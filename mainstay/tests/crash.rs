//! Durability across `kill -9`: every write the node acknowledged is there after a restart on the
//! same data directory, with its value and revision, and revisions never go backwards.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, within, Server};
use etcd_client::{Client, GetOptions};

const ROUNDS: usize = 3;
const WRITERS: usize = 8;
/// How long writes run before the kill.
const WRITE_FOR: Duration = Duration::from_millis(1200);
/// A put that has not answered in this time counts as not acknowledged.
const PUT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
struct Ack {
    key: String,
    value: String,
    revision: i64,
}

/// Puts distinct keys until stopped or until a put fails, recording every acknowledged one.
async fn writer(
    mut c: Client,
    round: usize,
    task: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) {
    for seq in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("crash/{round}/{task}/{seq:07}");
        let value = format!("{round}-{task}-{seq}-{:016x}", rand::random::<u64>());
        match tokio::time::timeout(PUT_TIMEOUT, c.put(key.clone(), value.clone(), None)).await {
            Ok(Ok(resp)) => {
                let revision = resp.header().expect("put header").revision();
                acks.lock().unwrap().push(Ack {
                    key,
                    value,
                    revision,
                });
            }
            // The node is gone: this put may or may not have been applied.
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Checks every acknowledged write of `round` against the restarted node.
async fn verify_round(c: &mut Client, round: usize, acks: &[Ack]) {
    let mut expected: BTreeMap<&str, &Ack> = BTreeMap::new();
    for a in acks {
        assert!(
            expected.insert(a.key.as_str(), a).is_none(),
            "key {} acknowledged twice",
            a.key
        );
    }
    let mut found = 0;
    for task in 0..WRITERS {
        let prefix = format!("crash/{round}/{task}/");
        let r = within(
            "reading back a round",
            c.get(prefix, Some(GetOptions::new().with_prefix())),
        )
        .await
        .unwrap();
        for kv in r.kvs() {
            let key = kv.key_str().unwrap();
            let Some(a) = expected.get(key) else {
                continue; // applied but not acknowledged before the kill: allowed
            };
            assert_eq!(kv.value_str().unwrap(), a.value, "value of {key}");
            assert_eq!(kv.mod_revision(), a.revision, "mod_revision of {key}");
            assert_eq!(kv.create_revision(), a.revision, "create_revision of {key}");
            assert_eq!(kv.version(), 1, "version of {key}");
            found += 1;
        }
    }
    if found != expected.len() {
        let present: HashSet<String> = {
            let mut s = HashSet::new();
            for task in 0..WRITERS {
                let r = c
                    .get(
                        format!("crash/{round}/{task}/"),
                        Some(GetOptions::new().with_prefix().with_keys_only()),
                    )
                    .await
                    .unwrap();
                s.extend(r.kvs().iter().map(|kv| kv.key_str().unwrap().to_string()));
            }
            s
        };
        let lost: Vec<&&Ack> = expected
            .values()
            .filter(|a| !present.contains(&a.key))
            .take(10)
            .collect();
        panic!(
            "round {round}: {} of {} acknowledged writes lost, e.g. {lost:?}",
            expected.len() - found,
            expected.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = Server::start(&[]).await;
    let mut rounds: Vec<Vec<Ack>> = Vec::new();
    let mut max_acked = 0;

    for round in 0..ROUNDS {
        let client = server.client().await;
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|t| tokio::spawn(writer(client.clone(), round, t, stop.clone(), acks.clone())))
            .collect();

        // Let the writers get going, run for a while, then kill the node under them.
        eventually(
            "writes are being acknowledged",
            Duration::from_secs(10),
            || {
                let n = acks.lock().unwrap().len();
                async move { (n >= 100).then_some(()) }
            },
        )
        .await;
        tokio::time::sleep(WRITE_FOR).await; // the length of the write burst, not a sync point
        let in_flight = tasks.iter().filter(|t| !t.is_finished()).count();
        server.kill();
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            in_flight, WRITERS,
            "every writer was still writing at the kill"
        );
        for t in tasks {
            within("a writer to stop", t).await.unwrap();
        }
        let acks = std::mem::take(&mut *acks.lock().unwrap());
        let revisions: HashSet<i64> = acks.iter().map(|a| a.revision).collect();
        assert_eq!(
            revisions.len(),
            acks.len(),
            "two puts acknowledged at one revision"
        );
        max_acked = max_acked.max(acks.iter().map(|a| a.revision).max().unwrap());
        rounds.push(acks);

        server.restart().await;
        let mut c = server.client().await;
        // Every acknowledged write of every round so far is there.
        for (r, acks) in rounds.iter().enumerate() {
            verify_round(&mut c, r, acks).await;
        }
        let header_rev = c
            .get("\0", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        assert!(
            header_rev >= max_acked,
            "revision {header_rev} after restart, but {max_acked} was acknowledged"
        );
        // New writes continue after every revision handed out before the crash.
        let p = c
            .put(format!("crash/after/{round}"), "x", None)
            .await
            .unwrap();
        let rev = p.header().unwrap().revision();
        assert!(
            rev > max_acked,
            "revision {rev} reused (acknowledged up to {max_acked})"
        );
        max_acked = rev;
    }
    let total: usize = rounds.iter().map(Vec::len).sum();
    eprintln!("{total} acknowledged writes over {ROUNDS} kill -9 rounds, all present");
}
